"""The paper-style efficiency tables, per task: each model's size, speedup over BERT-base and dev metric.

Inputs: the efficiency table's CSV (one row per student / baseline measurement) and its
``_references.csv`` (the teacher of each task and BERT-base). Both tables use one (batch, seq_len)
shape: the largest measured PyTorch/CPU shape with a BERT-base reference (``common.throughput_shape``),
else the largest measured shape. Numbers of students are means over seeds, per task.

* ``paper/tables/efficiency.{md,tex,csv}`` (:func:`build_efficiency_summary`): one row per (task,
  device, model) for BERT-base, the teacher, the main AdaBERT variant and the baselines: parameters,
  compression, and per engine the throughput and the speedup over BERT-base (a student's: the mean
  over seeds of the efficiency table's speedups, each against a BERT-base measured with the same
  engine, device, shape, threads and machine), the ORT fp32 / PyTorch and int8 / ORT fp32 throughput
  ratios, the int8 dev drop, the dev metric and its split.
* ``paper/tables/efficiency_per_task.{md,tex,csv}`` (:func:`build_per_task_table`): the paper's layout,
  task x {params, speedup over BERT-base (PyTorch), dev metric} for the teacher, AdaBERT and each
  baseline (CSV: one row per task and model).

Every dev cell carries the mark of its split (†: held-out split, not official dev; ‡: dev subset
(n of N)); the CSVs carry the split label in a ``split`` column. The main table
(``report.main_table``) and the README's results section take their sizes and speedups from
:func:`build_efficiency_summary`, so the three agree.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from adabert.errors import AdabertError
from adabert.report.common import BASELINE_LABELS, marked, throughput_shape, write_tables

ENGINES = ("torch", "torch-fp16", "onnxruntime", "onnxruntime-int8")
OPTIONAL_ENGINES = ("torch-fp16",)  # GPU only: a column only when some row measured it
MAIN_LABEL = "AdaBERT"
PER_TASK_SUFFIX = "_per_task"


def model_labels(main_variant: str) -> dict[str, str]:
    """Variant -> the model name the efficiency tables and the main table give it."""
    return {main_variant: MAIN_LABEL, **{k: v for k, v in BASELINE_LABELS.items() if k != main_variant}}


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df else pd.Series([None] * len(df), index=df.index, dtype=object)


def _first(series: pd.Series):
    values = series.dropna()
    return None if values.empty else values.iloc[0]


def _mean(series: pd.Series) -> float | None:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return None if values.empty else float(values.mean())


def _shape(df: pd.DataFrame) -> tuple[int, int] | None:
    shape = throughput_shape(df) if "speedup_vs_bert" in df and "engine" in df else None
    if shape is not None:
        return shape
    rows = df.dropna(subset=["samples_per_s"])
    if rows.empty:
        return None
    return max(zip(rows["batch"].astype(int), rows["seq_len"].astype(int)))


def _student_row(df: pd.DataFrame) -> dict:
    """Size, speedup per engine, int8 figures and dev metric of one model on one task/device (seed means)."""
    seeds = _column(df, "seed").fillna(0)
    per_seed = df.assign(_seed=seeds).groupby("_seed")
    row = {"params_M": float(per_seed["params_M"].first().mean()), "n_seeds": int(seeds.nunique())}
    for engine in ENGINES:
        e = df[df["engine"] == engine]
        if e.empty and engine in OPTIONAL_ENGINES:
            continue
        row[f"{engine}_samples_per_s"] = _mean(e["samples_per_s"])
        row[f"{engine}_speedup_vs_bert"] = _mean(_column(e, "speedup_vs_bert"))
    # per seed first (a seed has one row per engine), then the mean over seeds
    int8 = df[df["engine"] == "onnxruntime-int8"] if (df["engine"] == "onnxruntime-int8").any() else df
    row["int8_drop"] = _mean(int8.assign(_v=_column(int8, "int8_drop"), _seed=seeds[int8.index])
                             .groupby("_seed")["_v"].first())
    row["dev"] = _mean(df.assign(_v=_column(df, "student_dev"), _seed=seeds).groupby("_seed")["_v"].first())
    row["split"] = _first(_column(df, "split_kind"))
    return row


def _reference_row(ref: pd.DataFrame, bert: pd.DataFrame, device: str) -> dict:
    """The same figures of a reference model (BERT-base or the teacher) from its own measurements."""
    row = {"params_M": float(ref["params_M"].iloc[0]), "n_seeds": 1}
    for engine in ENGINES:
        e = ref[(ref["engine"] == engine) & (ref["device"] == device)]
        if e.empty and engine in OPTIONAL_ENGINES:
            continue
        b = bert[(bert["engine"] == engine) & (bert["device"] == device)]
        if "threads" in e and not e.empty:
            b = b[b["threads"] == e["threads"].iloc[0]]
        row[f"{engine}_samples_per_s"] = _mean(e["samples_per_s"])
        row[f"{engine}_speedup_vs_bert"] = (float(b["latency_ms"].iloc[0]) / float(e["latency_ms"].iloc[0])
                                            if not e.empty and not b.empty else None)
    return row


def build_efficiency_summary(rows: pd.DataFrame, refs: pd.DataFrame, main_variant: str) -> tuple[pd.DataFrame, tuple]:
    """One row per (task, device, model) at one shape; see the module docstring."""
    shape = _shape(rows)
    if shape is None:
        raise AdabertError("efficiency summary: the efficiency table has no timed rows")
    at = lambda df: df[(df["batch"] == shape[0]) & (df["seq_len"] == shape[1])]  # noqa: E731
    rows, refs = at(rows.dropna(subset=["samples_per_s"])), at(refs)
    bert = refs[refs["model"] == "bert-base"]
    labels = model_labels(main_variant)
    out = []
    for (task, device), part in rows.groupby(["task", "device"], sort=True):
        teacher = refs[(refs["model"] == "teacher") & (refs["task"] == task) & (refs["device"] == device)]
        entries = [("BERT-base", _reference_row(bert[bert["device"] == device], bert, device)
                    if not bert[bert["device"] == device].empty else None),
                   ("Teacher", _reference_row(teacher, bert, device) if not teacher.empty else None)]
        if entries[1][1] is not None:
            entries[1][1].update(dev=_mean(_column(part, "teacher_dev")), split=_first(_column(part, "split_kind")))
        entries += [(label, _student_row(part[part["variant"] == variant]))
                    for variant, label in labels.items() if not part[part["variant"] == variant].empty]
        bert_params = float(bert["params_M"].iloc[0]) if not bert.empty else None
        for label, figures in entries:
            if figures is None:
                continue
            row = {"task": task, "device": device, "model": label, "metric": _first(_column(part, "metric")),
                   **figures}
            row["compression_vs_bert"] = bert_params / row["params_M"] if bert_params else None
            fp32, int8 = row.get("onnxruntime_samples_per_s"), row.get("onnxruntime-int8_samples_per_s")
            row["int8_vs_ort_fp32"] = int8 / fp32 if fp32 and int8 else None
            torch_rate = row.get("torch_samples_per_s")
            row["ort_fp32_vs_torch"] = fp32 / torch_rate if fp32 and torch_rate else None
            out.append(row)
    columns = ["task", "device", "model", "metric", "split", "n_seeds", "params_M", "compression_vs_bert",
               *[f"{e}_{k}" for e in ENGINES for k in ("samples_per_s", "speedup_vs_bert")],
               "ort_fp32_vs_torch", "int8_vs_ort_fp32", "int8_drop", "dev"]
    return pd.DataFrame(out, columns=columns), shape


def _number(value, fmt: str = "{:.1f}") -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def _dev_cell(row) -> str:
    return marked(_number(row["dev"]), row["split"])


def build_per_task_table(summary: pd.DataFrame, device: str = "cpu") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's per-task layout from the summary: (long table: one row per task and model; shown table:
    one row per task, params / speedup over BERT-base (PyTorch) / dev metric per model)."""
    part = summary[summary["device"] == device]
    if part.empty and not summary.empty:
        part = summary[summary["device"] == summary["device"].iloc[0]]
    part = part[part["model"] != "BERT-base"]
    long = part.rename(columns={"torch_speedup_vs_bert": "speedup_vs_bert"})[
        ["task", "model", "metric", "split", "n_seeds", "params_M", "compression_vs_bert", "speedup_vs_bert",
         "dev"]].reset_index(drop=True)
    models = list(dict.fromkeys(long["model"]))
    shown_rows = []
    for task, rows in long.groupby("task", sort=True):
        metric = _first(rows["metric"])
        shown = {"task": f"{task} ({metric})" if metric else task}
        by_model = {r["model"]: r for _, r in rows.iterrows()}
        for model in models:
            r = by_model.get(model)
            shown[f"{model}: params (M)"] = "" if r is None else _number(r["params_M"])
            shown[f"{model}: speedup"] = "" if r is None else _number(r["speedup_vs_bert"], "{:.1f}x")
            shown[f"{model}: dev"] = "" if r is None else _dev_cell(r)
        shown_rows.append(shown)
    return long, pd.DataFrame(shown_rows)


def per_task_path(out_stem: Path) -> Path:
    """The per-task table's stem, beside the summary's (``efficiency`` -> ``efficiency_per_task``)."""
    out_stem = Path(out_stem)
    return out_stem.with_name(out_stem.name + PER_TASK_SUFFIX)


def read_efficiency(efficiency_csv: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The efficiency table's CSV and its ``_references.csv``."""
    rows = pd.read_csv(efficiency_csv)
    refs_path = Path(efficiency_csv).with_name(Path(efficiency_csv).stem + "_references.csv")
    if not refs_path.is_file():
        raise AdabertError(f"{refs_path}: file not found (written by the efficiency table)")
    return rows, pd.read_csv(refs_path)


def write_efficiency_summary(efficiency_csv: Path, main_variant: str, out_stem: Path) -> pd.DataFrame:
    rows, refs = read_efficiency(efficiency_csv)
    df, shape = build_efficiency_summary(rows, refs, main_variant)
    shown = df.drop(columns=["n_seeds", "split"]).assign(dev=[_dev_cell(r) for _, r in df.iterrows()])
    shape_text = f"batch {shape[0]}, seq {shape[1]}"
    notes = [
        f"Throughput in samples/s at {shape_text}; speedup = BERT-base latency / model latency with the same "
        "engine, device, shape and threads, measured in this run (BERT-base: architecture only unless "
        "measure.bert_base_weights is set); students: the mean over seeds of the efficiency table's speedups.",
        "AdaBERT and the baselines: means over seeds, per task; params_M includes embeddings; ort_fp32_vs_torch = "
        "ONNX Runtime fp32 / PyTorch throughput (below 1: ONNX Runtime is slower for that model); int8_vs_ort_fp32 = "
        "ONNX Runtime int8 / fp32 throughput; int8_drop = dev points lost by int8 (export stage); dev = dev "
        "metric (percent points) on the task's main split (the CSV's split column names it).",
        "Empty cells: that engine or device was not measured for that model (e.g. random architectures: torch only).",
    ]
    teachers = refs[refs["model"] == "teacher"]
    measured_on = _column(teachers, "measured_on")  # older reference tables have no such column
    borrowed = teachers[measured_on.notna() & (measured_on != teachers["task"])]
    if not borrowed.empty:
        notes.append(f"Teacher: the teacher architecture measured once, as the teacher of "
                     f"{', '.join(sorted(set(measured_on[borrowed.index])))}, for every task (the tasks' teachers differ "
                     "only in the classifier's output count); its dev metric is each task's own.")
    write_tables(df, out_stem, "Efficiency per task and engine", notes, shown)
    long, wide = build_per_task_table(df)
    per_task_notes = [
        f"Per task: parameters in millions (with embeddings), speedup over BERT-base (PyTorch, CPU, {shape_text}, "
        "same machine and threads) and dev metric (percent points); students: means over seeds.",
        "Every task of this run; the main table shows the paper's tasks and the custom tasks.",
    ]
    write_tables(long, per_task_path(out_stem), "Size, speedup and dev metric per task (the paper's layout)",
                 per_task_notes, wide, text_cells=True)
    return df
