"""Repeatability of the speed measurements: the same models measured twice in one run, by separate jobs.

Inputs: the measurement JSONs of the first measurement jobs and of the second ones (``measure.repeat_check``:
BERT-base and one student, ``results/measure/repeat/``). Each second measurement is paired with the first
one of the same model (kind, task, variant, seed), engine, device, batch, seq_len and threads.

One row per pair (:func:`build_repeatability`): ``median_1_ms`` and ``median_2_ms`` (each the median of its
job's rounds), ``ratio`` = second / first, and ``within_10pct``: the larger median is at most 10% above the
smaller one. ``same_machine`` says whether both jobs ran on the same machine (CPU, cores, GPU, library
versions; :func:`adabert.report.efficiency_table.machine_fingerprint`); a pair from two machines is no
repeatability check and is never counted as within. ``spread_1`` and ``spread_2`` are each job's spread of
its round medians ((max - min) / median), the within-job variation next to the between-job one.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert.errors import AdabertError
from adabert.report.common import write_table
from adabert.report.efficiency_table import load_measurements, machine_fingerprint

TOLERANCE = 0.10
COLUMNS = ["model", "engine", "device", "batch", "seq_len", "threads", "median_1_ms", "median_2_ms", "ratio",
           "within_10pct", "same_machine", "spread_1", "spread_2"]


def model_name(record: dict) -> str:
    """The model a measurement is of: its kind and, where it has them, task / variant / seed."""
    subject = record.get("subject") or {}
    kind = subject.get("model_kind") or record["model"]["kind"]
    kind = "bert-base" if kind == "bert-base-arch" else kind
    where = [str(subject[k]) if k != "seed" else f"seed{subject[k]}" for k in ("variant", "task", "seed")
             if subject.get(k) is not None]
    return " ".join([kind, "/".join(where)]) if where else kind


def _key(record: dict) -> tuple:
    return (model_name(record), record["engine"], record["device"], int(record["batch"]), int(record["seq_len"]),
            int(record["threads"]))


def within(ratio: float, tolerance: float = TOLERANCE) -> bool:
    """Whether two medians with this ratio agree within ``tolerance`` (the larger over the smaller)."""
    return max(ratio, 1.0 / ratio) <= 1.0 + tolerance + 1e-12


def build_repeatability(first: list[dict], second: list[dict], tolerance: float = TOLERANCE) -> pd.DataFrame:
    """One row per second measurement, next to the first measurement of the same model and setting."""
    by_key = {}
    for record in first:
        key = _key(record)
        if key in by_key:
            raise AdabertError(f"repeatability: two first measurements of {key}")
        by_key[key] = record
    rows = []
    for record in second:
        key = _key(record)
        if key not in by_key:
            raise AdabertError(f"repeatability: no first measurement of {key} (second: {record.get('_path', '?')})")
        one, two = by_key[key]["latency"], record["latency"]
        ratio = two["median_s"] / one["median_s"]
        same = machine_fingerprint(by_key[key]) == machine_fingerprint(record)
        rows.append(dict(zip(COLUMNS, [*key, one["median_s"] * 1e3, two["median_s"] * 1e3, ratio,
                                       same and within(ratio, tolerance), same, one.get("repeat_spread"),
                                       two.get("repeat_spread")])))
    if not rows:
        raise AdabertError("repeatability: no second measurements given")
    return pd.DataFrame(rows, columns=COLUMNS)


def summary_note(df: pd.DataFrame) -> str:
    """How many pairs agree, and the largest deviation."""
    worst = df.loc[(df["ratio"].apply(lambda r: max(r, 1 / r))).idxmax()]
    deviation = (max(worst["ratio"], 1 / worst["ratio"]) - 1) * 100
    return (f"{int(df['within_10pct'].sum())} of {len(df)} pairs agree within 10%; the largest difference is "
            f"{deviation:.1f}% ({worst['model']}, {worst['engine']}, batch {worst['batch']}, seq {worst['seq_len']}).")


def write_repeatability_table(first_paths: list[Path], second_paths: list[Path], md_path: Path,
                              csv_path: Path) -> pd.DataFrame:
    df = build_repeatability(load_measurements(first_paths), load_measurements(second_paths))
    notes = [
        summary_note(df),
        "Each model measured twice in this run by two separate measurement jobs (two processes, each loading "
        "the model and timing all its engines); median_1_ms / median_2_ms = each job's median batch latency "
        "(the median of its rounds' medians); ratio = second / first.",
        "within_10pct: the larger median is at most 10% above the smaller, on the same machine (same_machine).",
        "spread_1 / spread_2: each job's spread of its round medians, (max - min) / median.",
        "Timings of this machine and run only.",
    ]
    if not df["same_machine"].all():
        notes.append("Pairs measured on two different machines are no repeatability check (within_10pct false).")
    write_table(df, md_path, csv_path, "Repeatability of the speed measurements", notes)
    return df
