"""The cross-task transfer matrix: a genotype searched on task A (row), retrained on task B (column).

Inputs: the retrain ``metrics.json`` of the transfer runs (variant ``from-<A>``, task B) and of the
random-architecture baseline (variant ``random``), all retrained from scratch with the main recipe and
the target task's embedding tables. Cells are dev metrics, mean over seeds (random: over samples);
the diagonal is the task's own searched architecture. ``diff_vs_own`` in the CSV is cell minus
the diagonal of the same column (how much is lost by taking another task's architecture).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert.errors import AdabertError
from adabert.report.common import (HELD_OUT, mean_std, read_results, split_label, summary_cell, wide_cells,
                                   write_tables)

PREFIX = "from-"


def build_transfer_table(results: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    transfer = [r for r in results if r["variant"].startswith(PREFIX)]
    if not transfer:
        raise AdabertError("transfer table: no transfer results (variant 'from-<task>'); is transfer.tasks empty?")
    sources = list(dict.fromkeys(sorted(r["variant"][len(PREFIX):] for r in transfer)))
    targets = list(dict.fromkeys(sorted(r["task"] for r in transfer)))
    rows = []
    for source in [*sources, "random"]:
        for target in targets:
            if source == "random":
                group = [r for r in results if r["variant"] == "random" and r["task"] == target]
            else:
                group = [r for r in transfer if r["variant"] == PREFIX + source and r["task"] == target]
            if not group:
                continue
            mean, std = mean_std([r["main_value"] for r in group])
            rows.append({"searched_on": source, "evaluated_on": target, "metric": group[0]["main_metric"],
                         "split": split_label(group[0]["main_split"], group[0].get("splits", {})),
                         "mean": mean, "std": std, "n": len(group),
                         "depth_mean": mean_std([r["depth"] for r in group])[0]})
    df = pd.DataFrame(rows)
    own = {r["evaluated_on"]: r["mean"] for r in rows if r["searched_on"] == r["evaluated_on"]}
    df["diff_vs_own"] = [None if t not in own else m - own[t] for t, m in zip(df["evaluated_on"], df["mean"])]
    shown_rows = []
    for source in [*sources, "random"]:
        part = df[df["searched_on"] == source]
        if part.empty:
            continue
        label = f"searched on {source}" if source != "random" else "random architectures (reference)"
        cells = wide_cells(part, "evaluated_on", targets,
                           lambda r: f"**{summary_cell(r)}**" if r["evaluated_on"] == source else summary_cell(r))
        shown_rows.append({"architecture": label, **cells})
    header = {t: f"on {t} ({df[df['evaluated_on'] == t]['metric'].iloc[0]})" for t in targets}
    return df, pd.DataFrame(shown_rows).rename(columns=header)


def write_transfer_table(result_paths: list[Path], out_stem: Path) -> pd.DataFrame:
    results = read_results(result_paths)
    df, shown = build_transfer_table(results)
    n_random = sorted(set(df.loc[df["searched_on"] == "random", "n"])) if (df["searched_on"] == "random").any() else []
    notes = [
        "Rows: the task the main variant's genotype was searched on; columns: the task it is retrained and "
        "evaluated on (dev metric, percent points, mean ± std over search seeds). Bold: its own task.",
        "Every cell is retrained from scratch with the main retrain recipe and the target task's embedding tables "
        "(retrain.init scratch), so cells differ only in the architecture.",
        "random architectures: uniform samples of the search space, retrained the same way"
        + (f" ({'/'.join(map(str, n_random))} samples per task)." if n_random else "."),
    ]
    if (df["split"] == HELD_OUT).any():
        notes.append(f"† {HELD_OUT}.")
    write_tables(df, out_stem, "Cross-task transfer of searched architectures", notes, shown)
    return df
