"""The main comparison table: the paper's reported rows next to this run's teachers and students.

Paper rows come from ``paper/reported.yaml`` (GLUE *test* numbers; rows whose ``verified`` flag is
false are marked ``(unverified)``). This run's rows come from the result files: the teacher's
``metrics.json`` (dev), the retrained students' ``metrics.json`` (dev, mean ± std over seeds) and the
efficiency table (parameters and speedup over BERT-base measured in the same run, PyTorch on CPU at
the paper's throughput shape when it was measured). Every score column says which split it is:
``test`` for the paper, ``dev`` for this run, and a task whose evaluation split is not the official
dev set (the local QQP copy has none) is marked ``held-out split, not official dev``.

Written as Markdown, LaTeX and CSV (one file stem, three suffixes).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from adabert.errors import AdabertError
from adabert.io import atomic_path, read_json
from adabert.report.common import BASELINE_LABELS, HELD_OUT, split_label

PAPER_TASKS = ("SST-2", "MRPC", "QQP", "MNLI", "QNLI", "RTE")


def load_reported(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AdabertError(f"{path}: cannot read the paper's reported numbers ({exc})") from None
    for key in ("main_table", "headline"):
        if key not in (data or {}):
            raise AdabertError(f"{path}: missing section '{key}'")
    return data


def _range_text(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value['min']}-{value['max']}"
    return "" if value is None else f"{value}"


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def _score_text(mean: float, std: float | None, label: str) -> str:
    """The cell: mean (± std), † for a held-out split, ‡ for a dev subset (split label of report.common)."""
    text = f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"
    return text + (" †" if label == HELD_OUT else " ‡" if label.startswith("dev subset") else "")


def throughput_shape(efficiency: pd.DataFrame) -> tuple[int, int] | None:
    """The batch/seq shape the speedup column uses: the largest measured torch/CPU shape with a reference."""
    rows = efficiency.dropna(subset=["speedup_vs_bert"])
    rows = rows[(rows["engine"] == "torch") & (rows["device"] == "cpu")]
    if rows.empty:
        return None
    b, s = max(zip(rows["batch"].astype(int), rows["seq_len"].astype(int)))
    return int(b), int(s)


def _teacher_row(teachers: list[dict], references: pd.DataFrame, shape: tuple[int, int] | None,
                 label_of) -> dict[str, Any]:
    """The main table's row of this run's teachers (size, speedup over BERT-base, dev metric per task)."""
    by_task = {t["task"]: t for t in teachers}
    model_names = sorted({t["model"] for t in teachers})
    teacher_row: dict[str, Any] = {"method": f"Teacher: {', '.join(model_names)} (this run)", "source": "this run",
                                   "split": "dev"}
    params = sorted({int(t["params"]) for t in teachers})
    teacher_row["params_M"] = "-".join(dict.fromkeys(f"{p / 1e6:.1f}" for p in (params[0], params[-1]))) if params else ""
    teacher_speed = []
    if shape is not None and not references.empty:
        bert = references[(references["model"] == "bert-base") & (references["engine"] == "torch")
                          & (references["device"] == "cpu") & (references["batch"] == shape[0])
                          & (references["seq_len"] == shape[1])]
        mine = references[(references["model"] == "teacher") & (references["engine"] == "torch")
                          & (references["device"] == "cpu") & (references["batch"] == shape[0])
                          & (references["seq_len"] == shape[1])]
        if not bert.empty:
            teacher_speed = [float(bert["latency_ms"].iloc[0]) / float(v) for v in mine["latency_ms"]]
    teacher_row["speedup_vs_bert"] = _span(teacher_speed)
    for task in PAPER_TASKS:
        t = by_task.get(task)
        teacher_row[task] = "" if t is None else _score_text(float(t["main_value"]), None, label_of(t, task))
        teacher_row[f"{task}_value"] = None if t is None else float(t["main_value"])
    teacher_row["average"] = _average(teacher_row)
    return teacher_row


def build_main_table(reported: dict, teachers: list[dict], students: list[dict], efficiency: pd.DataFrame,
                     references: pd.DataFrame, main_variant: str = "main") -> tuple[pd.DataFrame, list[str]]:
    """Rows and footnotes. Score cells are text (value, ± std, † for held-out splits); numbers are also
    kept in ``<task>_value`` columns so the CSV can be checked against the result JSONs."""
    rows: list[dict[str, Any]] = []
    for r in reported["main_table"]["rows"]:
        mark = "" if r.get("verified") else " (unverified)"
        row = {"method": r["method"] + mark, "source": f"paper ({r.get('source', '?')})", "split": "test",
               "params_M": _range_text(r.get("params_M")), "speedup_vs_bert": _range_text(r.get("speedup"))}
        for task in PAPER_TASKS:
            score = (r.get("scores") or {}).get(task)
            row[task] = "" if score is None else f"{score:.1f}"
            row[f"{task}_value"] = score
        row["average"] = "" if r.get("average") is None else f"{r['average']:.1f}"
        rows.append(row)

    shape = throughput_shape(efficiency)
    held_out_tasks: set[str] = set()
    subset_tasks: set[str] = set()

    def label_of(result: dict, task: str) -> str:
        label = split_label(result["main_split"], result.get("splits", {}))
        (held_out_tasks if label == HELD_OUT else subset_tasks if label.startswith("dev subset") else set()).add(task)
        return label

    # this run: teachers
    rows.append(_teacher_row(teachers, references, shape, label_of))

    # this run: the main variant's students, then the baselines (ablations are in the ablation table)
    present = {s["variant"] for s in students}
    for variant in [v for v in (main_variant, *BASELINE_LABELS) if v in present]:
        group = [s for s in students if s["variant"] == variant]
        if variant == main_variant:
            method = "AdaBERT student (this run)"
        elif variant == "truncated" and group[0].get("layers"):
            method = f"{BASELINE_LABELS[variant]}, first {group[0]['layers']} layers (this run)"
        else:
            method = f"{BASELINE_LABELS[variant]} (this run)"
        row: dict[str, Any] = {"method": method, "source": "this run", "split": "dev"}
        sizes = [float(s["params"]) / 1e6 for s in group if s.get("params")]
        row["params_M"] = _span(sizes)
        speed = pd.Series(dtype=float)
        if shape is not None:
            e = efficiency[(efficiency["variant"] == variant) & (efficiency["engine"] == "torch")
                           & (efficiency["device"] == "cpu") & (efficiency["batch"] == shape[0])
                           & (efficiency["seq_len"] == shape[1])]
            speed = e.groupby("task")["speedup_vs_bert"].mean().dropna()
        row["speedup_vs_bert"] = _span(list(speed))
        for task in PAPER_TASKS:
            values = [float(s["main_value"]) for s in group if s["task"] == task]
            if not values:
                row[task], row[f"{task}_value"] = "", None
                continue
            mean, std = _mean_std(values)
            first = next(s for s in group if s["task"] == task)
            row[task], row[f"{task}_value"] = _score_text(mean, std, label_of(first, task)), mean
        row["average"] = _average(row)
        rows.append(row)

    columns = ["method", "source", "split", "params_M", "speedup_vs_bert", *PAPER_TASKS, "average",
               *[f"{t}_value" for t in PAPER_TASKS]]
    df = pd.DataFrame(rows, columns=columns)
    notes = [
        "Metrics: accuracy for SST-2, MNLI (matched), QNLI and RTE; F1 for MRPC and QQP; percent points. "
        "Paper rows are GLUE test-server numbers; this run's rows are dev numbers (GLUE test labels are hidden).",
        "(unverified) = the number has not been checked against the paper PDF (paper/reported.yaml).",
        "params_M includes embeddings; speedup_vs_bert = BERT-base latency / model latency, both measured in this run"
        + (f" (PyTorch, CPU, batch {shape[0]}, seq {shape[1]})" if shape else " (no BERT-base reference measured)")
        + "; the paper's speedups were measured on hardware it does not name.",
        "this run's students and baselines: mean ± std over seeds (random architectures: over samples, retrained from "
        "scratch); average = mean of the six task columns when all six are present.",
    ]
    if held_out_tasks:
        notes.append(f"† {HELD_OUT}: {', '.join(sorted(held_out_tasks))} (see the data stage's meta.json).")
    if subset_tasks:
        notes.append(f"‡ dev subset (a seeded cap of the official dev set, data.max_eval_examples): "
                     f"{', '.join(sorted(subset_tasks))}.")
    missing = [t for t in PAPER_TASKS if df.loc[df["source"] == "this run", t].eq("").all()]
    if missing:
        notes.append(f"Not in this run's config: {', '.join(missing)}.")
    return df, notes


def _span(values: list[float]) -> str:
    """``min-max`` with one decimal; one number when they print alike; '' for no values."""
    if not values:
        return ""
    low, high = f"{min(values):.1f}", f"{max(values):.1f}"
    return low if low == high else f"{low}-{high}"


def _average(row: dict) -> str:
    values = [row.get(f"{t}_value") for t in PAPER_TASKS]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return ""
    return f"{statistics.fmean(values):.1f}"


def write_main_table(reported_path: Path, teacher_paths: list[Path], student_paths: list[Path],
                     efficiency_csv: Path, out_stem: Path, main_variant: str = "main") -> pd.DataFrame:
    reported = load_reported(reported_path)
    teachers = [read_json(p) for p in teacher_paths]
    students = [read_json(p) for p in student_paths]
    for path, s in zip(student_paths, students):
        for key in ("task", "variant", "seed", "main_value", "main_split"):
            if key not in s:
                raise AdabertError(f"{path}: missing field '{key}' (not a retrain metrics.json)")
    efficiency = pd.read_csv(efficiency_csv)
    refs_path = Path(efficiency_csv).with_name(Path(efficiency_csv).stem + "_references.csv")
    references = pd.read_csv(refs_path) if refs_path.is_file() else pd.DataFrame(
        columns=["model", "task", "engine", "device", "batch", "seq_len", "latency_ms"])
    df, notes = build_main_table(reported, teachers, students, efficiency, references, main_variant)
    shown = df.drop(columns=[f"{t}_value" for t in PAPER_TASKS])
    header = {t: f"{t} ({'F1' if t in ('MRPC', 'QQP') else 'acc'})" for t in PAPER_TASKS}
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_stem.with_suffix(".csv")) as tmp:
        df.to_csv(tmp, index=False)
    md = "# Main comparison: the paper vs this run\n\n" + shown.rename(columns=header).to_markdown(index=False)
    md += "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    with atomic_path(out_stem.with_suffix(".md")) as tmp:
        tmp.write_text(md, encoding="utf-8")
    latex = shown.rename(columns=header).to_latex(index=False, escape=True)
    latex += "\n".join(f"% {n}" for n in notes) + "\n"
    with atomic_path(out_stem.with_suffix(".tex")) as tmp:
        tmp.write_text(latex, encoding="utf-8")
    return df
