"""Efficiency table: size, compression, speedup, achieved GFLOP/s and dev metrics of the retrained students
and the baseline students (a measurement whose subject names a variant is a row; the teacher and
BERT-base measurements without one are the references).

Inputs: measurement JSONs (``python -m adabert measure``; students, teachers, BERT-base), the retrain
stage's ``metrics.json`` of every student, the teacher stage's ``metrics.json`` of every task and,
optionally, the export stage's ``export.json`` (int8 dev metric).

One row per student measurement (task, variant, seed, engine, device, batch, seq_len). Ratios compare
only measurements of the same machine and run settings: a reference measurement is used for a student
row only if engine, device, batch, seq_len and threads are equal AND the machine fingerprint (CPU model,
cores, GPU name, torch/onnxruntime versions) is equal; otherwise the ratio is left empty. Parameter
counts are those of the measurement JSONs (one counting rule for every model: embedding parameters =
``nn.Embedding`` weights and parameters named ``*embed*``).

The teacher: the workflow measures the teacher architecture once per run, as the first task's teacher
(every task's teacher is the same encoder; only the classifier's output count differs). A task without a
teacher measurement of its own is compared with that one (:func:`teacher_references`), and the table
says so in a note; ``{csv stem}_references.csv`` repeats it for every task, with the task it was measured
on in ``measured_on``.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Iterable

import pandas as pd

from adabert.errors import AdabertError
from adabert.io import read_json
from adabert.nas.genotype import Genotype
from adabert.report.common import split_label, write_table

COLUMNS = [
    "task", "variant", "seed", "depth", "no_conv", "engine", "device", "batch", "seq_len", "threads",
    "params_M", "params_no_emb_M", "compression_vs_bert", "compression_vs_bert_no_emb",
    "compression_vs_teacher", "compression_vs_teacher_no_emb",
    "latency_ms", "samples_per_s", "samples_per_s_spread", "speedup_vs_bert", "speedup_vs_teacher",
    "gflops", "fraction_of_peak", "metric", "split_kind", "student_dev", "teacher_dev", "dev_gap", "int8_dev", "int8_drop", "int8_mode",
    "teacher_int8_drop",
]


def machine_fingerprint(record: dict) -> tuple:
    m = record.get("machine") or {}
    cuda = m.get("cuda") or {}
    versions = record.get("versions") or m.get("versions") or {}
    return (m.get("cpu_model"), m.get("logical_cores"), m.get("cores_available"), cuda.get("device_name"),
            versions.get("torch"), versions.get("onnxruntime"))


def _shape_key(record: dict) -> tuple:
    return (record["engine"], record["device"], int(record["batch"]), int(record["seq_len"]), int(record["threads"]),
            machine_fingerprint(record))


def throughput_spread(record: dict) -> float | None:
    """(max - min) / median of the samples/s of the measurement's repeats (each repeat's median batch
    latency); None without per-repeat medians."""
    medians = (record.get("latency") or {}).get("repeat_medians_s") or []
    if len(medians) < 2 or min(medians) <= 0:
        return None
    rates = sorted(record["batch"] / m for m in medians)
    return (rates[-1] - rates[0]) / statistics.median(rates)


def _kind(record: dict) -> str:
    kind = (record.get("subject") or {}).get("model_kind") or record["model"]["kind"]
    return "bert-base" if kind in ("bert-base", "bert-base-arch") else kind


def load_measurements(paths: Iterable[Path]) -> list[dict]:
    out = []
    for path in paths:
        record = read_json(path)
        for key in ("model", "engine", "device", "batch", "seq_len", "threads", "latency", "size"):
            if key not in record:
                raise AdabertError(f"{path}: missing field '{key}' (not a measurement JSON)")
        record["_path"] = str(path)
        out.append(record)
    return out


def no_conv(result: dict) -> bool | None:
    """True for a student whose cell keeps no convolution (None: not a searched-space student)."""
    genotype = result.get("genotype")
    if not isinstance(genotype, dict):
        return None
    return not Genotype.from_dict(genotype).has_conv


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0 or (isinstance(num, float) and math.isnan(num)):
        return None
    return float(num) / float(den)


def _index_exports(exports: list[dict]) -> tuple[dict, dict]:
    """The students' export records by (task, variant, seed) and the teachers' int8 drop by task."""
    int8, teacher_int8 = {}, {}
    for e in exports:
        if e.get("kind") == "student":
            int8[(e["task"], e.get("variant"), e.get("seed"))] = e
        elif e.get("kind") == "teacher":
            teacher_int8[e["task"]] = e.get("int8_drop_points")
    return int8, teacher_int8


def _index_measurements(measurements: list[dict]) -> tuple[dict, dict, dict, dict]:
    """BERT-base by shape key, the teachers by (task, *shape key), the students (and baselines) by
    (task, variant, seed), and the teacher architecture by shape key (the first measured task's teacher)."""
    bert: dict[tuple, dict] = {}
    teacher_meas: dict[tuple, dict] = {}
    student_meas: dict[tuple, list[dict]] = {}
    for r in measurements:
        kind, subject = _kind(r), r.get("subject") or {}
        if kind == "bert-base":
            bert[_shape_key(r)] = r
        elif subject.get("variant") is not None or kind == "student":
            # a row of the table: a student, or a baseline (a truncated teacher is measured as kind 'teacher')
            student_meas.setdefault((subject.get("task"), subject.get("variant"), subject.get("seed")), []).append(r)
        elif kind == "teacher":
            teacher_meas[(subject.get("task"), *_shape_key(r))] = r
    teacher_arch: dict[tuple, dict] = {}
    for key, r in sorted(teacher_meas.items(), key=lambda item: str(item[0][0])):
        teacher_arch.setdefault(key[1:], r)
    return bert, teacher_meas, student_meas, teacher_arch


def _base_row(s: dict, teacher: dict | None, exp: dict | None, teacher_int8_drop: float | None) -> dict:
    """The columns of a student's rows that do not depend on the measurement."""
    teacher_dev = teacher.get("main_value") if teacher else None
    return {
        "task": s["task"], "variant": s["variant"], "seed": s["seed"], "depth": s.get("depth"), "no_conv": no_conv(s),
        "metric": s.get("main_metric"),
        "split_kind": split_label(s["main_split"], s.get("splits", {})) if s.get("main_split") else None,
        "student_dev": s.get("main_value"), "teacher_dev": teacher_dev,
        "dev_gap": None if teacher_dev is None else s.get("main_value") - teacher_dev,
        "int8_dev": exp["main"]["onnx_int8"] if exp else None,
        "int8_drop": exp.get("int8_drop_points") if exp else None,
        "teacher_int8_drop": teacher_int8_drop,
    }


def _size_ratios(size: dict, bert_any: dict | None, teacher_any: dict | None) -> dict:
    """Compression against any measurement of the references (parameters do not depend on the engine)."""
    row = {}
    if bert_any:
        row["compression_vs_bert"] = _ratio(bert_any["size"]["params"], size["params"])
        row["compression_vs_bert_no_emb"] = _ratio(bert_any["size"]["params_no_embeddings"], size["params_no_embeddings"])
    if teacher_any:
        row["compression_vs_teacher"] = _ratio(teacher_any["size"]["params"], size["params"])
        row["compression_vs_teacher_no_emb"] = _ratio(teacher_any["size"]["params_no_embeddings"],
                                                      size["params_no_embeddings"])
    return row


def _measured_row(base: dict, r: dict, exp: dict | None, ref_b: dict | None, ref_t: dict | None) -> dict:
    """One row of the table: a student's base columns and one of its measurements, with its speedups
    over the BERT-base and teacher measurements of the same shape (None where there is none)."""
    size, median = r["size"], r["latency"]["median_s"]
    row = {
        **base, "engine": r["engine"], "device": r["device"], "batch": r["batch"], "seq_len": r["seq_len"],
        "threads": r["threads"], "params_M": size["params"] / 1e6,
        "params_no_emb_M": size["params_no_embeddings"] / 1e6,
        "latency_ms": median * 1e3, "samples_per_s": r.get("throughput_samples_per_s"),
        "samples_per_s_spread": throughput_spread(r), "gflops": r.get("achieved_gflops"),
        "fraction_of_peak": r.get("fraction_of_peak"),
    }
    mode = ((r.get("onnx") or {}).get("int8") or {}).get("mode")
    if r["engine"] == "onnxruntime-int8" and exp and mode in (exp.get("int8") or {}):
        # the dev metric of the int8 graph this row timed (static or dynamic)
        row.update(int8_dev=exp["int8"][mode]["main"], int8_drop=exp["int8"][mode]["drop_points"], int8_mode=mode)
    row["speedup_vs_bert"] = _ratio(ref_b["latency"]["median_s"], median) if ref_b else None
    row["speedup_vs_teacher"] = _ratio(ref_t["latency"]["median_s"], median) if ref_t else None
    return row


def build_rows(measurements: list[dict], retrained: list[dict], teachers: list[dict], exports: list[dict]) -> pd.DataFrame:
    teacher_by_task = {t["task"]: t for t in teachers}
    int8, teacher_int8 = _index_exports(exports)
    bert, teacher_meas, student_meas, teacher_arch = _index_measurements(measurements)
    bert_any = next(iter(bert.values()), None)
    rows = []
    for s in sorted(retrained, key=lambda m: (m["task"], m["variant"], m["seed"])):
        task = s["task"]
        exp = int8.get((task, s["variant"], s["seed"]))
        base = _base_row(s, teacher_by_task.get(task), exp, teacher_int8.get(task))
        meas = student_meas.get((task, s["variant"], s["seed"])) or []
        if not meas:
            params = s.get("params")
            rows.append({**base, "params_M": params / 1e6 if params else None,
                         "params_no_emb_M": (s.get("params_without_embeddings") or 0) / 1e6})
            continue
        teacher_any = next((v for k, v in teacher_meas.items() if k[0] == task), next(iter(teacher_arch.values()), None))
        for r in sorted(meas, key=lambda r: (r["engine"], r["device"], r["batch"], r["seq_len"])):
            key = _shape_key(r)
            row = _measured_row(base, r, exp, bert.get(key), teacher_meas.get((task, *key)) or teacher_arch.get(key))
            row.update(_size_ratios(r["size"], bert_any, teacher_any))
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


REFERENCE_COLUMNS = ["model", "task", "engine", "device", "batch", "seq_len", "threads", "params_M", "params_no_emb_M",
                     "latency_ms", "samples_per_s", "samples_per_s_spread", "gflops", "fraction_of_peak", "label",
                     "measured_on"]


def teacher_references(measurements: list[dict], tasks: Iterable[str]) -> dict[str, str]:
    """Task -> the task whose teacher measurement stands for it: its own where it was measured, else the
    teacher architecture's (the first measured task, sorted) for every other task of ``tasks``."""
    measured = sorted({(r.get("subject") or {}).get("task") for r in measurements
                       if _kind(r) == "teacher" and (r.get("subject") or {}).get("variant") is None} - {None})
    if not measured:
        return {}
    return {task: (task if task in measured else measured[0]) for task in dict.fromkeys([*measured, *tasks])}


def reference_rows(measurements: list[dict], tasks: Iterable[str] = ()) -> pd.DataFrame:
    """The reference models' own measurements (the teacher, BERT-base): ``{csv stem}_references.csv``. The
    teacher's rows are repeated for every task of ``tasks`` without a teacher measurement of its own
    (``measured_on``: the task it was measured on)."""
    stand_in = teacher_references(measurements, tasks)
    rows = []
    for r in measurements:
        kind, subject = _kind(r), r.get("subject") or {}
        if kind == "student" or subject.get("variant") is not None:
            continue
        row = {"model": kind, "task": subject.get("task"), "engine": r["engine"],
               "device": r["device"], "batch": r["batch"], "seq_len": r["seq_len"], "threads": r["threads"],
               "params_M": r["size"]["params"] / 1e6, "params_no_emb_M": r["size"]["params_no_embeddings"] / 1e6,
               "latency_ms": r["latency"]["median_s"] * 1e3, "samples_per_s": r.get("throughput_samples_per_s"),
               "samples_per_s_spread": throughput_spread(r), "gflops": r.get("achieved_gflops"),
               "fraction_of_peak": r.get("fraction_of_peak"), "label": r["model"].get("label", ""),
               "measured_on": subject.get("task")}
        if kind != "teacher" or subject.get("task") is None:
            rows.append(row)
            continue
        rows += [{**row, "task": task} for task, on in stand_in.items() if on == subject.get("task")]
    return pd.DataFrame(rows, columns=REFERENCE_COLUMNS)


def teacher_note(measurements: list[dict], tasks: Iterable[str]) -> str | None:
    """The note that says which teacher measurement the tasks without their own were compared with."""
    stand_in = teacher_references(measurements, tasks)
    borrowed = sorted(task for task, on in stand_in.items() if task != on)
    if not borrowed:
        return None
    on = sorted({stand_in[t] for t in borrowed})
    return (f"Teacher architecture measured once, as the teacher of {', '.join(on)}: speedup_vs_teacher and "
            f"compression_vs_teacher of {', '.join(borrowed)} use that measurement (the tasks' teachers are "
            "the same encoder and differ only in the classifier's output count: hidden size + 1 parameters per "
            "output).")


def write_efficiency_table(measurement_paths: list[Path], retrained_paths: list[Path], teacher_paths: list[Path],
                           export_paths: list[Path], md_path: Path, csv_path: Path) -> pd.DataFrame:
    measurements = load_measurements(measurement_paths)
    retrained = []
    for path in retrained_paths:
        m = read_json(path)
        for key in ("task", "variant", "seed", "main_value"):
            if key not in m:
                raise AdabertError(f"{path}: missing field '{key}' (not a retrain metrics.json)")
        retrained.append(m)
    if not retrained:
        raise AdabertError("efficiency table: no retrained students given")
    teachers = [read_json(p) for p in teacher_paths]
    exports = [read_json(p) for p in export_paths]
    df = build_rows(measurements, retrained, teachers, exports)
    tasks = sorted({m["task"] for m in retrained} | {t["task"] for t in teachers if "task" in t})
    refs = reference_rows(measurements, tasks)
    peaks = sorted({round(r["peak_gflops"], 1) for r in measurements if r.get("peak_gflops")})
    machines = sorted({str(machine_fingerprint(r)[:4]) for r in measurements})
    notes = [
        "One row per student measurement; params in millions (with / without embedding parameters).",
        "compression = reference params / student params; speedup = reference median batch latency / student "
        "median batch latency, only against a reference measured with the same engine, device, batch, seq_len, "
        "threads and machine (CPU, cores, GPU, library versions); empty where no such reference exists.",
        "BERT-base: architecture only (random weights) unless measure.bert_base_weights names a local folder; "
        "its speed and size are BERT-base's, its outputs mean nothing.",
        "samples_per_s: from the median batch latency of all timed batches; samples_per_s_spread: (max - min) / "
        "median of the samples/s of the repeats (measure.repeats), 0.1 = the repeats lie within 10%.",
        "gflops = counted fp32 matmul/conv FLOPs per sample x batch / median latency; fraction_of_peak divides by "
        "the measured fp32 GEMM peak of the same job (int8 engines can exceed 1).",
        "Dev metrics (percent points) on each task's main eval split (split_kind: official 'dev', a 'dev subset', "
        "or a 'held-out split, not official dev'); dev_gap = student - teacher; int8_drop = "
        "torch - ONNX int8 (export stage).",
        "CPU timings are bounded runs (min_seconds / min_batches), not the paper's 50,000 samples.",
    ]
    note = teacher_note(measurements, tasks)
    if note:
        notes.append(note)
    if peaks:
        notes.append(f"Measured fp32 GEMM peak(s), GFLOP/s: {peaks}.")
    notes.append(f"Machine(s): {machines}.")
    write_table(df, md_path, csv_path, "Student efficiency (AdaBERT and baselines)", notes)
    from adabert.io import atomic_path

    with atomic_path(csv_path.with_name(csv_path.stem + "_references.csv")) as tmp:
        refs.to_csv(tmp, index=False)
    return df
