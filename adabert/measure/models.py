"""The measure stage: one model of any kind of :mod:`adabert.kinds` -> one measurement JSON.

:func:`model_under_test` loads the :class:`~adabert.measure.ModelUnderTest` of a kind from its folder
(a retrained student, a teacher, a baseline folder, or BERT-base: a local bert-base-uncased folder, or
None for the architecture with random weights); :func:`measure_model` measures it
(:func:`adabert.measure.measure`) and records which model it was.
"""

from __future__ import annotations

import logging
import os

from adabert import io
from adabert.kinds import get_kind
from adabert.measure.reference import ModelUnderTest
from adabert.measure.run import measure, validate_measurement

log = logging.getLogger(__name__)


def model_under_test(kind: str, model: str | os.PathLike | None, num_labels: int = 2) -> ModelUnderTest:
    """The model of ``kind`` in folder ``model`` (``num_labels``: outputs of BERT-base)."""
    return get_kind(kind).under_test(model, num_labels)


def measure_model(kind: str, model: str | os.PathLike | None, engine: str, device: str, batch: int, seq_len: int,
                  threads: int, out_json: str | os.PathLike, *, num_labels: int = 2, min_seconds: float = 1.0,
                  min_batches: int = 3, warmup: int = 1, max_batches: int | None = None, peak_seconds: float = 0.5,
                  onnx_dir: str | os.PathLike | None = None, subject: dict | None = None) -> dict:
    """One measurement (:func:`adabert.measure.measure`) written to ``out_json``, with ``subject``
    (task / variant / seed the model belongs to) recorded for the efficiency table."""
    mut = model_under_test(kind, model, num_labels)
    record = measure(mut, engine=engine, device=device, batch=batch, seq_len=seq_len, threads=threads,
                     out_json=None, min_seconds=min_seconds, min_batches=min_batches, onnx_dir=onnx_dir,
                     warmup=warmup, max_batches=max_batches, peak_seconds=peak_seconds)
    record["subject"] = {"model_kind": kind, **{k: v for k, v in (subject or {}).items() if v is not None}}
    validate_measurement(record)
    io.write_json(out_json, record)
    log.info("measure %s %s %s batch %d seq %d: median %.4g s, %.1f samples/s", kind, engine, device, batch, seq_len,
             record["latency"]["median_s"], record["throughput_samples_per_s"])
    return record
