"""Helpers shared by the table builders: split labels and writing Markdown + CSV atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert.io import atomic_path

HELD_OUT = "held-out split, not official dev"


def split_label(split: str, provenance: dict) -> str:
    """How a table names an evaluation split: official dev, a partial copy, or a held-out carve-out."""
    info = provenance.get(split, {})
    if info.get("official", True):
        return "dev"
    note = info.get("note", "")
    if "held-out" in note or "carved" in note:
        return HELD_OUT
    return f"dev subset ({note})" if note else "dev subset"


def write_table(df: pd.DataFrame, md_path: Path, csv_path: Path, title: str, notes: list[str]) -> None:
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    text = f"# {title}\n\n" + df.to_markdown(index=False, floatfmt=".2f") + "\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    with atomic_path(md_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
