"""Several students of one task timed side by side: one process, one input batch, the models interleaved.

The searched-vs-random comparison asks whether a random architecture is faster than the searched student.
Timed in different jobs, the answer is noise: on a shared machine the same student measured in two jobs of
one run differs by more than the latency gap between two cells of equal depth. Here every student is loaded
once and :func:`adabert.measure.timing.time_interleaved` times them all in PyTorch on one shared input batch,
in rounds whose order rotates, so slow drift of the machine hits all of them alike; a latency ratio within
one record is the comparison. Students only (the signature ``a_ids, a_mask, b_ids, b_mask``): they share
the teacher's vocabulary, so one synthetic batch (:func:`adabert.measure.reference.random_token_inputs`)
serves all of them.

The same job can stand in for the separate measurement of some of its models: for each model named in
``record_dirs`` it also writes the model's measurement record (:data:`adabert.measure.run.MEASUREMENT_SCHEMA`,
engine torch on the CPU at the job's shape, the other models as its same-job references) into that folder,
as the measure stage would (the workflow does so for the random architectures: one timing job, not two).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from adabert import io
from adabert.errors import AdabertError
from adabert.measure import machine, size, timing
from adabert.measure.reference import ModelUnderTest, student_under_test, vocab_size_of
from adabert.measure.run import RECORD_NAME, build_record, first_schema_error, gemm_peak, validate_measurement

PROTOCOL = ("PyTorch fp32, one shared synthetic input batch; after warm-up batches of every model, `repeats` "
            "rounds in which every model times at least min_batches batches and min_seconds of work, the order "
            "of the models rotating from round to round; latency median = median of the rounds' medians")

SIDE_BY_SIDE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["task", "engine", "device", "batch", "seq_len", "threads", "models", "settings", "protocol",
                 "machine"],
    "properties": {
        "task": {"type": "string", "minLength": 1},
        "engine": {"const": "torch"},
        "batch": {"type": "integer", "minimum": 1},
        "seq_len": {"type": "integer", "minimum": 1},
        "threads": {"type": "integer", "minimum": 1},
        "models": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object",
                "required": ["variant", "seed", "path", "params", "latency_ms", "latency"],
                "properties": {"variant": {"type": "string", "minLength": 1},
                               "seed": {"type": "integer", "minimum": 0},
                               "params": {"type": "integer", "minimum": 1},
                               "latency_ms": {"type": "number", "exclusiveMinimum": 0}},
            },
        },
    },
}


def _shared_inputs(muts: Sequence[ModelUnderTest], batch: int, seq_len: int) -> dict:
    """The one input batch of every model; refused when the students do not share a vocabulary."""
    vocabs = {m.name: vocab_size_of(m.module) for m in muts}
    if len(set(vocabs.values())) > 1:
        raise AdabertError(f"side by side: the students do not share a vocabulary ({vocabs}); students of one "
                           "task do")
    return muts[0].make_inputs(batch, seq_len)


def time_side_by_side(task: str, models: Sequence[tuple[str, int, str | os.PathLike]], batch: int, seq_len: int,
                      threads: int, *, min_seconds: float = 1.0, min_batches: int = 1, warmup: int = 1,
                      repeats: int = 3, max_batches: int | None = None,
                      out_json: str | os.PathLike | None = None,
                      record_dirs: Mapping[tuple[str, int], str | os.PathLike] | None = None,
                      peak_seconds: float = 0.0) -> dict[str, Any]:
    """Time the students ``models`` (``(variant, seed, folder)`` each) of ``task`` interleaved on the CPU
    (the module docstring) and return (and write to ``out_json``) one record: every model's latency summary
    (:func:`adabert.measure.timing.summarize`) and median in milliseconds.

    ``record_dirs``: ``(variant, seed) -> folder`` of the models whose measurement record is also written
    (:func:`write_measurements`; ``peak_seconds`` > 0 measures the GEMM peak of their fraction_of_peak)."""
    if not models:
        raise AdabertError("side by side: no model to time")
    keys = [(str(v), int(s)) for v, s, _ in models]
    if len(set(keys)) != len(keys):
        raise AdabertError(f"side by side: a (variant, seed) is given twice: {keys}")
    unknown = sorted(set(record_dirs or {}) - set(keys))
    if unknown:
        raise AdabertError(f"side by side: a measurement record is asked for {unknown}, which is not timed "
                           f"(models: {keys})")
    timing.check_rule(min_seconds, min_batches, max_batches, warmup, repeats)
    machine.set_threads(int(threads))
    muts = [student_under_test(Path(folder), name=f"{variant}/seed{seed}") for variant, seed, folder in models]
    inputs = _shared_inputs(muts, batch, seq_len)
    steps = {mut.name: timing.torch_step(mut.module, inputs, "cpu") for mut in muts}
    results = timing.time_interleaved(steps, batch, min_seconds=min_seconds, min_batches=min_batches,
                                      warmup=warmup, repeats=repeats, max_batches=max_batches)
    record = {
        "task": task, "engine": "torch", "device": "cpu", "precision": "fp32", "batch": int(batch),
        "seq_len": int(seq_len), "threads": int(threads),
        "models": [{"variant": variant, "seed": int(seed), "path": str(folder),
                    "params": size.count_params(mut.module)["params"], "latency_ms": results[mut.name]["median_s"] * 1e3,
                    "latency": results[mut.name]}
                   for (variant, seed, folder), mut in zip(models, muts)],
        "settings": {"min_seconds": min_seconds, "min_batches": min_batches, "warmup_batches": warmup,
                     "repeats": repeats, "max_batches": max_batches, "timer": timing.TORCH_TIMER},
        "protocol": PROTOCOL,
        "machine": machine.machine_info(),
    }
    validate(record)
    if record_dirs:
        write_measurements(task, models, muts, results, record, record_dirs, peak_seconds)
    if out_json is not None:
        io.write_json(out_json, record)
    return record


def write_measurements(task: str, models: Sequence[tuple[str, int, Any]], muts: Sequence[ModelUnderTest],
                       results: dict[str, dict], record: dict[str, Any],
                       record_dirs: Mapping[tuple[str, int], str | os.PathLike], peak_seconds: float) -> list[Path]:
    """The measurement record of each model of ``record_dirs`` from the side-by-side ``results``, written
    to its folder as :data:`~adabert.measure.run.RECORD_NAME`: engine torch, CPU, the job's shape, and the
    other models of the job as same-job references (speedup = their median / this model's)."""
    batch, seq_len, threads = record["batch"], record["seq_len"], record["threads"]
    peak = gemm_peak("cpu", peak_seconds, record["settings"]["repeats"])
    settings = {**record["settings"], "peak_seconds": peak_seconds, "references": True, "int8_mode": None,
                "timed_side_by_side": f"with the {len(models)} students of {task}: {PROTOCOL}"}
    settings.pop("timer")
    written = []
    for (variant, seed, _), mut in zip(models, muts):
        if (variant, int(seed)) not in record_dirs:
            continue
        median = results[mut.name]["median_s"]
        refs = {name: {"latency": lat, "speedup": lat["median_s"] / median}
                for name, lat in results.items() if name != mut.name}
        out = build_record(mut, "torch", "cpu", batch, seq_len, threads, results[mut.name], refs,
                           size.size_report(mut.module, mut.make_inputs, seq_len), None, peak, settings)
        out["subject"] = {"model_kind": "student", "task": task, "variant": variant, "seed": int(seed)}
        validate_measurement(out)
        path = Path(record_dirs[(variant, int(seed))]) / RECORD_NAME.format(**out)
        io.write_json(path, out)
        written.append(path)
    return written


def validate(record: dict[str, Any], where: str = "side-by-side timing") -> dict[str, Any]:
    """Check ``record`` against :data:`SIDE_BY_SIDE_SCHEMA`; the error names the first problem."""
    error = first_schema_error(record, SIDE_BY_SIDE_SCHEMA)
    if error:
        raise AdabertError(f"{where}: invalid at {error[0]}: {error[1]}")
    return record


def read_side_by_side(path: str | os.PathLike) -> dict[str, Any]:
    """A side-by-side record from its JSON file, validated."""
    return validate(io.read_json(path), str(path))
