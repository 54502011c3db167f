"""The measure stage: one model of any kind of :mod:`adabert.kinds` -> its measurement JSONs.

:func:`model_under_test` loads the :class:`~adabert.measure.ModelUnderTest` of a kind from its folder
(a retrained student, a teacher, a baseline folder, or BERT-base: a local bert-base-uncased folder, or
None for the architecture with random weights). :func:`measure_models` loads it once and measures every
(engine, device) and (batch, seq_len) asked for in one process (:func:`adabert.measure.run.measure_many`;
int8 graphs calibrated on the task's training rows), records which model it was and writes one JSON per
combination (:data:`~adabert.measure.run.RECORD_NAME`); :func:`measure_model` is one combination and
:func:`measure_each` several models of one kind in one process (start-up and the GEMM peak paid once).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from adabert import io
from adabert.artifacts import read_export
from adabert.kinds import get_kind
from adabert.measure.quantize import calibration_from_data, modes_of
from adabert.measure.reference import ModelUnderTest
from adabert.measure.run import INT8, RECORD_NAME, measure_many, validate_measurement

log = logging.getLogger(__name__)


def model_under_test(kind: str, model: str | os.PathLike | None, num_labels: int = 2) -> ModelUnderTest:
    """The model of ``kind`` in folder ``model`` (``num_labels``: outputs of BERT-base)."""
    return get_kind(kind).under_test(model, num_labels)


def measure_models(kind: str, model: str | os.PathLike | None, runs: Sequence[tuple[str, str]],
                   shapes: Sequence[tuple[int, int]], threads: int, out_dir: str | os.PathLike | None = None, *,
                   num_labels: int = 2, min_seconds: float = 2.0, min_batches: int = 3, warmup: int = 1,
                   max_batches: int | None = None, peak_seconds: float = 1.0, repeats: int = 3,
                   onnx_dir: str | os.PathLike | None = None, subject: dict | None = None, int8_mode: str = "auto",
                   data_dir: str | os.PathLike | None = None, calibration_examples: int = 256,
                   references: bool = True, peaks: dict | None = None,
                   export_dir: str | os.PathLike | None = None, warmup_rows: int | None = None) -> list[dict]:
    """Every (engine, device) of ``runs`` at every (batch, seq_len) of ``shapes`` of one model, loaded once
    (:func:`adabert.measure.run.measure_many`), with ``subject`` (task / variant / seed the model belongs to)
    recorded for the efficiency table; each record written to ``out_dir`` (if given) as
    :data:`~adabert.measure.run.RECORD_NAME`.

    Static int8 graphs are calibrated on ``calibration_examples`` training rows of the Data folder
    ``data_dir`` (the task's prepared data); without it, on as many synthetic rows. ``export_dir``: the
    model's export stage folder, whose graphs the ONNX Runtime engines time instead (nothing is exported or
    quantised again). ``peaks``: the GEMM peaks already measured in this process
    (:func:`adabert.measure.run.measure_many`)."""
    mut = model_under_test(kind, model, num_labels)
    exported = read_export(export_dir) if export_dir is not None else None
    calibration = calibration_info = None
    if (INT8 in [e for e, _ in runs] and data_dir is not None and exported is None
            and "static" in modes_of(int8_mode)):
        calibration, calibration_info = calibration_from_data(data_dir, get_kind(kind).layout, calibration_examples)
    records = measure_many(mut, runs, shapes, threads, min_seconds=min_seconds, min_batches=min_batches,
                           onnx_dir=onnx_dir, warmup=warmup, max_batches=max_batches, peak_seconds=peak_seconds,
                           repeats=repeats, int8_mode=int8_mode, calibration=calibration,
                           calibration_info=calibration_info, calibration_examples=calibration_examples,
                           references=references, peaks=peaks, exported=exported, warmup_rows=warmup_rows)
    for record in records:
        record["subject"] = {"model_kind": kind, **{k: v for k, v in (subject or {}).items() if v is not None}}
        validate_measurement(record)
        if out_dir is not None:
            io.write_json(Path(out_dir) / RECORD_NAME.format(**record), record)
        _log(kind, record)
    return records


def measure_each(kind: str, models: Sequence[tuple[str | os.PathLike | None, str | os.PathLike, dict,
                                                  str | os.PathLike | None]],
                 runs: Sequence[tuple[str, str]], shapes: Sequence[tuple[int, int]], threads: int,
                 **options) -> list[list[dict]]:
    """:func:`measure_models` for each ``(model folder, out_dir, subject, export_dir)`` of ``models`` in turn,
    in this process: one start-up and one GEMM peak per device for all of them (e.g. the searched students
    of a task, each timing its own export's graphs, or a task's random architectures)."""
    peaks: dict = {}
    return [measure_models(kind, model, runs, shapes, threads, out_dir, subject=subject, peaks=peaks,
                           export_dir=export_dir, **options)
            for model, out_dir, subject, export_dir in models]


def measure_model(kind: str, model: str | os.PathLike | None, engine: str, device: str, batch: int, seq_len: int,
                  threads: int, out_json: str | os.PathLike, **options) -> dict:
    """One measurement (:func:`measure_models` with one engine, device and shape) written to ``out_json``."""
    record = measure_models(kind, model, [(engine, device)], [(batch, seq_len)], threads, None, **options)[0]
    io.write_json(out_json, record)
    return record


def _log(kind: str, record: dict) -> None:
    int8 = (record.get("onnx") or {}).get("int8") or {}
    log.info("measure %s %s%s %s batch %d seq %d: median %.4g s (rounds %.4g-%.4g), %.1f samples/s", kind,
             record["engine"], f" ({int8['mode']})" if int8 else "", record["device"], record["batch"],
             record["seq_len"], record["latency"]["median_s"], record["latency"]["repeat_min_s"],
             record["latency"]["repeat_max_s"], record["throughput_samples_per_s"])
    for name, ref in record["references"].items():
        log.info("  same-job reference %s: median %.4g s, speedup %.2fx", name, ref["latency"]["median_s"],
                 ref["speedup"])
