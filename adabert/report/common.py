"""Helpers shared by the table builders: split labels and writing Markdown + CSV atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert.io import atomic_path

HELD_OUT = "held-out split, not official dev"


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


def write_table(df: pd.DataFrame, md_path: Path, csv_path: Path, title: str, notes: list[str]) -> None:
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    text = f"# {title}\n\n" + df.to_markdown(index=False, floatfmt=".2f") + "\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    with atomic_path(md_path) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
    """``score_cell`` of a long-table row with ``mean``, ``std`` (NaN = none) and ``split`` columns."""
    std = row["std"]
    return score_cell(row["mean"], None if std is None or pd.isna(std) else std, row["split"] == HELD_OUT)


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


def write_tables(df: pd.DataFrame, stem: Path, title: str, notes: list[str], shown: pd.DataFrame | None = None) -> None:
    """``stem``.csv (every column of ``df``), .md and .tex (``shown``, default ``df``) with the notes."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    shown = df if shown is None else shown
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        df.to_csv(tmp, index=False)
    md = f"# {title}\n\n" + shown.to_markdown(index=False, floatfmt=".2f") + "\n"
    if notes:
        md += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(md, encoding="utf-8")
    latex = f"% {title}\n" + shown.to_latex(index=False, escape=True, float_format="%.2f", na_rep="")
    latex += "".join(f"% {n}\n" for n in notes)
    with atomic_path(stem.with_suffix(".tex")) as tmp:
        tmp.write_text(latex, encoding="utf-8")
