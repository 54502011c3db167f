"""The main comparison table: the paper's reported rows next to this run's teachers and students.

Paper rows come from ``paper/reported.yaml`` (GLUE *test* numbers). Every number there carries its
source and a status (paper text, authors, secondary source, unverified); the table's ``status`` column
says, per row, which of its numbers have which status, and ``source`` names the sources.

This run's rows come from the result files: the teacher's ``metrics.json`` (dev), the retrained
students' ``metrics.json`` (dev, mean ± std over seeds) and the efficiency tables (parameters and
speedup over BERT-base measured in the same run, PyTorch on CPU at the paper's throughput shape when it
was measured: ``efficiency_summary.build_efficiency_summary``, the numbers of
``paper/tables/efficiency*``).

Columns: the paper's six GLUE tasks, then every custom task of the run (a task that is not a GLUE
task). GLUE tasks outside the paper's table (CoLA, STS-B, WNLI) are not columns; a note names them and
their numbers are in ``paper/tables/efficiency_per_task.*``. The ``params_M`` and ``speedup_vs_bert``
ranges of this run's rows are over the per-task means (mean over seeds) of exactly the task columns the
row fills, and the notes say which tasks those are.

Every score column says which split it is: ``test`` for the paper, ``dev`` for this run; a cell whose
split is a held-out carve-out of the training rows is marked †, one on a dev subset (n of N) ‡, and the
CSV carries each task's split label (``<task>_split``).

Written as Markdown, LaTeX and CSV (one file stem, three suffixes).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import yaml

from adabert.errors import AdabertError
from adabert.io import atomic_path, read_json
from adabert.report.common import (BASELINE_LABELS, HELD_OUT, HELD_OUT_MARK, SUBSET, SUBSET_MARK, marked, span,
                                   split_label, throughput_shape)
from adabert.report.efficiency_summary import build_efficiency_summary, model_labels
from adabert.tasks import GLUE_TASKS

__all__ = ["PAPER_TASKS", "STATUSES", "build_main_table", "load_reported", "reported_numbers", "shown_tasks",
           "throughput_shape", "write_main_table"]

PAPER_TASKS = ("SST-2", "MRPC", "QQP", "MNLI", "QNLI", "RTE")
STATUSES = ("paper text", "authors", "secondary source", "unverified")
PAPER_METRICS = {t: "F1" if t in ("MRPC", "QQP") else "acc" for t in PAPER_TASKS}
SHORT_METRICS = {"accuracy": "acc", "f1": "F1", "mcc": "MCC", "pearson": "Pearson", "spearman": "Spearman"}


# -- the paper's numbers -----------------------------------------------------------------------------
def reported_numbers(node: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every number of ``reported.yaml`` (a mapping with ``value`` or ``min``/``max``) and its dotted path."""
    if isinstance(node, dict):
        if "value" in node or "min" in node or "max" in node:
            yield path, node
            return
        for key, child in node.items():
            if key not in ("paper", "sources", "statuses"):
                yield from reported_numbers(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            name = child.get("method", i) if isinstance(child, dict) else i
            yield from reported_numbers(child, f"{path}[{name}]")


def load_reported(path: Path) -> dict:
    """``paper/reported.yaml``, checked: every number names a source of ``sources`` and a status of
    ``STATUSES``, and every main-table row's numbers are such mappings."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AdabertError(f"{path}: cannot read the paper's reported numbers ({exc})") from None
    for key in ("main_table", "headline", "sources"):
        if key not in (data or {}):
            raise AdabertError(f"{path}: missing section '{key}'")
    sources = data["sources"]
    for where, number in reported_numbers(data):
        if number.get("status") not in STATUSES:
            raise AdabertError(f"{path}: {where}: status {number.get('status')!r} is not one of {list(STATUSES)}")
        if number.get("source") not in sources:
            raise AdabertError(f"{path}: {where}: source {number.get('source')!r} is not listed under 'sources'")
    for row in data["main_table"]["rows"]:
        fields = [row.get("params_M"), row.get("speedup"), row.get("average"), *(row.get("scores") or {}).values()]
        if any(f is not None and not (isinstance(f, dict) and "status" in f) for f in fields):
            raise AdabertError(f"{path}: main_table row {row.get('method')!r}: every number needs a value, "
                               "a source and a status")
    return data


def _value_text(number: dict | None) -> str:
    if number is None:
        return ""
    if "min" in number:
        return f"{number['min']}-{number['max']}"
    return f"{number['value']}"


def _row_fields(r: dict) -> list[tuple[str, dict]]:
    """(field name, number) of a paper row, in the table's column order."""
    fields = [("params", r.get("params_M")), ("speedup", r.get("speedup"))]
    fields += [(task, (r.get("scores") or {}).get(task)) for task in PAPER_TASKS]
    fields.append(("average", r.get("average")))
    return [(name, n) for name, n in fields if n is not None]


def status_text(r: dict) -> str:
    """The statuses of a paper row's numbers: one status when they share it, else ``status: fields`` per
    status (the six task scores named ``scores`` when they share one)."""
    fields = _row_fields(r)
    by_status: dict[str, list[str]] = {}
    for name, number in fields:
        by_status.setdefault(number["status"], []).append(name)
    if len(by_status) == 1:
        return next(iter(by_status))
    parts = []
    for status in sorted(by_status, key=STATUSES.index):
        names = by_status[status]
        scores = [n for n in names if n in PAPER_TASKS]
        all_scores = [n for n, _ in fields if n in PAPER_TASKS]
        if scores and scores == all_scores:
            names = [n for n in names if n not in PAPER_TASKS]
            names.insert(names.index("average") if "average" in names else len(names), "scores")
        parts.append(f"{status}: {', '.join(names)}")
    return "; ".join(parts)


def _paper_row(r: dict, sources: dict, tasks: list[str]) -> dict[str, Any]:
    used = list(dict.fromkeys(n["source"] for _, n in _row_fields(r)))
    source = "paper: " + "; ".join(sources[s].get("short", s) for s in used)
    row: dict[str, Any] = {"method": r["method"], "source": source,
                           "status": status_text(r), "split": "test", "params_M": _value_text(r.get("params_M")),
                           "speedup_vs_bert": _value_text(r.get("speedup"))}
    for task in tasks:
        score = (r.get("scores") or {}).get(task)
        row[task] = "" if score is None else f"{score['value']:.1f}"
        row[f"{task}_value"] = None if score is None else score["value"]
        row[f"{task}_split"] = "" if score is None else "test"
    average = r.get("average")
    row["average"] = "" if average is None else f"{average['value']:.1f}"
    return row


# -- this run -------------------------------------------------------------------------------------------
def shown_tasks(results: list[dict]) -> tuple[list[str], list[str]]:
    """(the task columns: the paper's six, then the run's custom tasks in run order; the run's GLUE tasks
    that the paper's table has no column for)."""
    run = list(dict.fromkeys(r["task"] for r in results))
    custom = [t for t in run if t not in GLUE_TASKS]
    other_glue = [t for t in GLUE_TASKS if t in run and t not in PAPER_TASKS]
    return [*PAPER_TASKS, *custom], other_glue


def _run_efficiency(efficiency: pd.DataFrame, references: pd.DataFrame, main_variant: str) -> dict:
    """(model label, task) -> (params_M, PyTorch CPU speedup over BERT-base): the per-task means of the
    efficiency summary (empty when nothing was timed)."""
    if efficiency.empty or "samples_per_s" not in efficiency or efficiency["samples_per_s"].dropna().empty:
        return {}
    summary, _ = build_efficiency_summary(efficiency, references, main_variant)
    cpu = summary[summary["device"] == "cpu"]
    return {(r["model"], r["task"]): (r["params_M"], r["torch_speedup_vs_bert"]) for _, r in cpu.iterrows()}


class _Marks:
    """Collects the tasks whose cells carry the held-out or dev-subset mark (for the notes)."""

    def __init__(self) -> None:
        self.held_out: set[str] = set()
        self.subset: set[str] = set()

    def label(self, result: dict, task: str) -> str:
        label = split_label(result["main_split"], result.get("splits", {}))
        if label == HELD_OUT:
            self.held_out.add(task)
        elif label.startswith(SUBSET):
            self.subset.add(task)
        return label


def _run_row(method: str, group: list[dict], tasks: list[str], label: str, eff: dict, marks: _Marks) -> dict:
    """One of this run's rows: per task the dev metric (mean ± std over seeds, split mark); params and
    speedup: min-max over the per-task means of the tasks this row fills."""
    row: dict[str, Any] = {"method": method, "source": "this run", "status": "this run", "split": "dev"}
    params, speed, filled = [], [], []
    for task in tasks:
        results = [r for r in group if r["task"] == task]
        if not results:
            row[task], row[f"{task}_value"], row[f"{task}_split"] = "", None, ""
            continue
        filled.append(task)
        values = [float(r["main_value"]) for r in results]
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else None
        split = marks.label(results[0], task)
        text = f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"
        row[task], row[f"{task}_value"], row[f"{task}_split"] = marked(text, split), mean, split
        size, speedup = eff.get((label, task), (None, None))
        if size is None:  # not measured: the result files' own parameter counts
            sizes = [float(r["params"]) / 1e6 for r in results if r.get("params")]
            size = statistics.fmean(sizes) if sizes else None
        params.append(size)
        speed.append(speedup)
    row["params_M"], row["speedup_vs_bert"] = span(params), span(speed)
    row["average"] = _average(row)
    row["range_tasks"] = ", ".join(filled)
    return row


def _student_rows(students: list[dict], tasks: list[str], main_variant: str, eff: dict, marks: _Marks) -> list[dict]:
    """The main variant's students, then the baselines (ablations are in the ablation table)."""
    labels = model_labels(main_variant)
    present = {s["variant"] for s in students}
    rows = []
    for variant in [v for v in (main_variant, *BASELINE_LABELS) if v in present]:
        group = [s for s in students if s["variant"] == variant]
        if variant == main_variant:
            method = "AdaBERT student (this run)"
        elif variant == "truncated" and group[0].get("layers"):
            method = f"{BASELINE_LABELS[variant]}, first {group[0]['layers']} layers (this run)"
        else:
            method = f"{BASELINE_LABELS[variant]} (this run)"
        rows.append(_run_row(method, group, tasks, labels[variant], eff, marks))
    return rows


def _notes(df: pd.DataFrame, tasks: list[str], other_glue: list[str], shape, marks: _Marks,
           metrics: dict[str, str]) -> list[str]:
    custom = [t for t in tasks if t not in PAPER_TASKS]
    notes = [
        "Metrics: accuracy for SST-2, MNLI (matched), QNLI and RTE; F1 for MRPC and QQP"
        + "".join(f"; {metrics.get(t, '?')} for {t}" for t in custom) + "; percent points. "
        "Paper rows are GLUE test-server numbers; this run's rows are dev numbers (GLUE test labels are hidden).",
        "status: how each paper number is confirmed (paper/reported.yaml): paper text = in the paper's own text; "
        "authors = stated by the authors' team; secondary source = restated by a later publication (named in "
        "source); unverified = confirmed by none of these.",
        "params_M includes embeddings; speedup_vs_bert = BERT-base latency / model latency, both measured in this run"
        + (f" (PyTorch, CPU, batch {shape[0]}, seq {shape[1]})" if shape else " (no BERT-base reference measured)")
        + "; the paper's speedups were measured on hardware it does not name.",
        "This run's params_M and speedup_vs_bert: min-max over the per-task means (mean over seeds) of the task "
        "columns the row fills (" + "; ".join(f"{r['method']}: {r['range_tasks'] or 'none'}"
                                              for _, r in df[df["source"] == "this run"].iterrows())
        + "); one number when they print alike. The paper's ranges: over its six tasks.",
        "this run's students and baselines: mean ± std over seeds (random architectures: over samples, each "
        "retrained with the searched students' recipe and initialisation); average = mean of the paper's six task "
        "columns when all six are present.",
    ]
    if marks.held_out:
        notes.append(f"{HELD_OUT_MARK} {HELD_OUT}: {', '.join(sorted(marks.held_out))} (a seeded part of the "
                     "labelled training rows, held out as the evaluation split: data.missing_dev: carve, where the "
                     "local copy has no dev file; see the data stage's meta.json).")
    if marks.subset:
        notes.append(f"{SUBSET_MARK} {SUBSET} (n of N): {', '.join(sorted(marks.subset))} (a part of the official "
                     "dev set: a seeded cap, data.max_eval_examples, or a partial local copy; the CSV's "
                     "<task>_split column gives n of N).")
    missing = [t for t in PAPER_TASKS if df.loc[df["source"] == "this run", t].eq("").all()]
    if missing:
        notes.append(f"Not in this run: {', '.join(missing)}.")
    if other_glue:
        notes.append(f"Also in this run, without a column (the paper's table has none): {', '.join(other_glue)}; "
                     "see paper/tables/efficiency_per_task.*.")
    return notes


def build_main_table(reported: dict, teachers: list[dict], students: list[dict], efficiency: pd.DataFrame,
                     references: pd.DataFrame, main_variant: str = "main") -> tuple[pd.DataFrame, list[str]]:
    """Rows and footnotes. Score cells are text (value, ± std, split mark); numbers are also kept in
    ``<task>_value`` columns and split labels in ``<task>_split`` so the CSV can be checked against the
    result JSONs."""
    tasks, other_glue = shown_tasks([*teachers, *students])
    rows = [_paper_row(r, reported["sources"], tasks) for r in reported["main_table"]["rows"]]
    shape = throughput_shape(efficiency) if "speedup_vs_bert" in efficiency else None
    eff = _run_efficiency(efficiency, references, main_variant)
    marks = _Marks()
    if teachers:
        names = sorted({t["model"] for t in teachers})
        rows.append(_run_row(f"Teacher: {', '.join(names)} (this run)", teachers, tasks, "Teacher", eff, marks))
    rows += _student_rows(students, tasks, main_variant, eff, marks)
    columns = ["method", "source", "status", "split", "params_M", "speedup_vs_bert", *tasks, "average",
               *[f"{t}_value" for t in tasks], *[f"{t}_split" for t in tasks], "range_tasks"]
    df = pd.DataFrame(rows, columns=columns)
    return df, _notes(df, tasks, other_glue, shape, marks, _metrics([*teachers, *students]))


def _average(row: dict) -> str:
    values = [row.get(f"{t}_value") for t in PAPER_TASKS]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return ""
    return f"{statistics.fmean(values):.1f}"


def _metrics(results: list[dict]) -> dict[str, str]:
    """Task -> the short name of its main metric (from the result files)."""
    return {r["task"]: SHORT_METRICS.get(r["main_metric"], r["main_metric"]) for r in results if r.get("main_metric")}


def _header(df: pd.DataFrame, teachers: list[dict], students: list[dict]) -> dict[str, str]:
    metrics = _metrics([*teachers, *students])
    tasks = [c[: -len("_value")] for c in df.columns if c.endswith("_value")]
    return {t: f"{t} ({PAPER_METRICS.get(t) or metrics.get(t) or '?'})" for t in tasks}


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
        columns=["model", "task", "engine", "device", "batch", "seq_len", "threads", "params_M", "latency_ms",
                 "samples_per_s"])
    df, notes = build_main_table(reported, teachers, students, efficiency, references, main_variant)
    shown = df[[c for c in df.columns if not c.endswith(("_value", "_split")) and c != "range_tasks"]]
    shown = shown.rename(columns=_header(df, teachers, students))
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_stem.with_suffix(".csv")) as tmp:
        df.to_csv(tmp, index=False)
    md = "# Main comparison: the paper vs this run\n\n" + shown.to_markdown(index=False, disable_numparse=True)
    md += "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    with atomic_path(out_stem.with_suffix(".md")) as tmp:
        tmp.write_text(md, encoding="utf-8")
    latex = shown.to_latex(index=False, escape=True)
    latex += "\n".join(f"% {n}" for n in notes) + "\n"
    with atomic_path(out_stem.with_suffix(".tex")) as tmp:
        tmp.write_text(latex, encoding="utf-8")
    return df
