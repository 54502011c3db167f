"""Helpers shared by the table builders: split labels and writing Markdown + CSV atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert.io import atomic_path

HELD_OUT = "held-out split, not official dev"
SUBSET = "dev subset"
# The marks a score cell carries after its number, and the note each mark needs under a table.
HELD_OUT_MARK, SUBSET_MARK = "†", "‡"
MARK_NOTES = {
    HELD_OUT_MARK: f"{HELD_OUT_MARK} {HELD_OUT}: a seeded part of the labelled training rows, held out as the "
                   "evaluation split (data.missing_dev: carve, where the local copy has no dev file); see the data "
                   "stage's meta.json.",
    SUBSET_MARK: f"{SUBSET_MARK} {SUBSET} (n of N): a part of the official dev set (a seeded cap, "
                 "data.max_eval_examples, or a partial local copy), not the whole of it.",
}


def folder_of(path: str | Path) -> Path:
    """A stage folder given as itself or as one of its files (the workflow passes files)."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def split_label(split: str, provenance: dict) -> str:
    """How a table names an evaluation split: official dev, a subset of it ("dev subset (n of N)": a
    seeded cap or a partial local copy), or a held-out carve-out of the training data."""
    info = provenance.get(split, {})
    note = info.get("note", "")
    if "held-out" in note or "carved" in note:
        return HELD_OUT
    if info.get("capped") and info.get("n") is not None and info.get("n_available") is not None:
        return f"dev subset ({info['n']:,} of {info['n_available']:,})"
    if info.get("official", True):
        return "dev"
    return f"dev subset ({note})" if note else "dev subset"


def split_mark(label: str | None) -> str:
    """The mark of a split label (``split_label``): † held-out, ‡ dev subset, '' official dev."""
    if not isinstance(label, str):
        return ""
    return HELD_OUT_MARK if label == HELD_OUT else SUBSET_MARK if label.startswith(SUBSET) else ""


def marked(text: str, label: str | None) -> str:
    """``text`` followed by the mark of its split (see ``split_mark``)."""
    mark = split_mark(label)
    return f"{text} {mark}" if mark and text else text


def mark_notes(tables: list[pd.DataFrame], notes: list[str]) -> list[str]:
    """``notes`` plus the explanation of every split mark (†, ‡) a cell of ``tables`` carries and no note
    explains yet, so a table never shows a mark without saying what it means."""
    cells = [str(v) for df in tables for col in df.columns for v in df[col].tolist()]
    extra = [note for mark, note in MARK_NOTES.items()
             if any(c.endswith(f" {mark}") or f" {mark} " in c for c in cells)
             and not any(n.startswith(mark) for n in notes)]
    return [*notes, *extra]


def write_table(df: pd.DataFrame, md_path: Path, csv_path: Path, title: str, notes: list[str]) -> None:
    notes = mark_notes([df], notes)
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    text = f"# {title}\n\n" + df.to_markdown(index=False, floatfmt=".2f") + "\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    with atomic_path(md_path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def throughput_shape(efficiency: pd.DataFrame) -> tuple[int, int] | None:
    """The (batch, seq_len) a table's speedup column uses: the largest measured torch/CPU shape with a
    BERT-base reference (the paper's throughput shape when it was measured)."""
    rows = efficiency.dropna(subset=["speedup_vs_bert"])
    rows = rows[(rows["engine"] == "torch") & (rows["device"] == "cpu")]
    if rows.empty:
        return None
    b, s = max(zip(rows["batch"].astype(int), rows["seq_len"].astype(int)))
    return int(b), int(s)


def span(values) -> str:
    """``min-max`` with one decimal; one number when they print alike; '' for no values."""
    values = [float(v) for v in values if v is not None and not pd.isna(v)]
    if not values:
        return ""
    low, high = f"{min(values):.1f}", f"{max(values):.1f}"
    return low if low == high else f"{low}-{high}"


# How the tables name the rows of this run that are not the main AdaBERT variant.
BASELINE_LABELS = {
    "bilstm": "BiLSTM-SOFT",
    "truncated": "Truncated teacher + KD",
    "random": "Random architectures",
}


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    import statistics

    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def score_cell(mean: float | None, std: float | None = None, held_out: bool = False) -> str:
    """``mean ± std`` (one decimal; no ± for a single value), † for a held-out split, '' for no value."""
    if mean is None:
        return ""
    text = f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"
    return text + (" †" if held_out else "")


def summary_cell(row) -> str:
    """``score_cell`` of a long-table row with ``mean``, ``std`` (NaN = none) and ``split`` columns, with the
    mark of its split (†: held out; ‡: dev subset)."""
    std = row["std"]
    return marked(score_cell(row["mean"], None if std is None or pd.isna(std) else std), row["split"])


def wide_cells(part: pd.DataFrame, column: str, keys, text) -> dict:
    """One row of a wide table: for each key, ``text`` of the first row of ``part`` whose ``column`` is
    that key, or '' where there is none."""
    cells = {}
    for key in keys:
        cell = part[part[column] == key]
        cells[key] = "" if cell.empty else text(cell.iloc[0])
    return cells


def read_results(paths, required=("task", "variant", "seed", "main_value", "main_split")) -> list[dict]:
    """Result JSONs (retrain or baseline metrics.json), checked for the fields the tables read."""
    from adabert.errors import AdabertError
    from adabert.io import read_json

    out = []
    for path in paths:
        record = read_json(path)
        missing = [k for k in required if k not in record]
        if missing:
            raise AdabertError(f"{path}: missing field(s) {missing} (not a retrain/baseline metrics.json)")
        out.append(record)
    return out


def write_tables(df: pd.DataFrame, stem: Path, title: str, notes: list[str], shown: pd.DataFrame | None = None,
                 text_cells: bool = False) -> None:
    """``stem``.csv (every column of ``df``), .md and .tex (``shown``, default ``df``) with the notes (and
    the explanation of every split mark the cells carry). ``text_cells``: ``shown`` holds formatted text
    (the Markdown prints it as it is, never re-reading "80.0" as a number)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    shown = df if shown is None else shown
    notes = mark_notes([df, shown], notes)
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        df.to_csv(tmp, index=False)
    md = f"# {title}\n\n" + shown.to_markdown(index=False, floatfmt=".2f", disable_numparse=text_cells) + "\n"
    if notes:
        md += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(md, encoding="utf-8")
    latex = f"% {title}\n" + shown.to_latex(index=False, escape=True, float_format="%.2f", na_rep="")
    latex += "".join(f"% {n}\n" for n in notes)
    with atomic_path(stem.with_suffix(".tex")) as tmp:
        tmp.write_text(latex, encoding="utf-8")
