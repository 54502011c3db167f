"""Two full runs of the workflow side by side: what a change of the default setting did.

Each run is a folder with the tables ``make readme`` commits to ``docs/results``: the search table
(``search.csv``, one row per search), the searched-vs-random table (``searched_vs_random.csv``, one row
per task) and the per-job cost rows (``cost_jobs.csv``). The comparison reports, for the main searches,
how far the op distribution committed and what the derived cells kept; per task, the searched students'
dev metric in both runs against the seed spread and against each run's random architectures; and the
job time per stage (retrains per variant).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert.errors import AdabertError
from adabert.nas.ops import OP_NAMES, PARAMETER_FREE_OPS

TABLES = ("search.csv", "searched_vs_random.csv", "cost_jobs.csv")


def read_run(folder: Path) -> dict[str, pd.DataFrame]:
    """The three tables of one run's folder; a missing one is named."""
    tables = {}
    for name in TABLES:
        path = Path(folder) / name
        if not path.is_file():
            raise AdabertError(f"{path}: missing; a run's folder needs {', '.join(TABLES)} (make readme copies them)")
        tables[name] = pd.read_csv(path)
    return tables


def search_summary(search: pd.DataFrame, variant: str = "main") -> dict:
    """How far the main searches committed, and what their derived cells kept."""
    rows = search[search["variant"] == variant]
    if rows.empty:
        raise AdabertError(f"search table: no rows of variant {variant!r}")
    edges = {op: int(rows[f"n_{op}"].sum()) for op in OP_NAMES if f"n_{op}" in rows}  # search_table's op counts
    free = sum(n for op, n in edges.items() if op in PARAMETER_FREE_OPS)
    return {
        "searches": len(rows),
        "max_op_prob_mean_min": float(rows["max_op_prob_mean"].min()),
        "max_op_prob_mean_median": float(rows["max_op_prob_mean"].median()),
        "max_op_prob_mean_max": float(rows["max_op_prob_mean"].max()),
        "searches_committed_0.5": int((rows["max_op_prob_mean"] >= 0.5).sum()),
        "depth_max_prob_min": float(rows["depth_max_prob"].min()),
        "depths": {int(k): int(v) for k, v in rows["depth"].value_counts().sort_index().items()},
        "students_without_conv": int(rows["no_conv"].astype(bool).sum()),
        "kept_edges_conv": sum(edges.values()) - free,
        "kept_edges_parameter_free": free,
        "kept_edges_by_op": edges,
    }


def per_task(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per task of both searched-vs-random tables: searched dev before/after, its change against the
    larger of the two seed stds, and where each run's searched students stand among its random ones."""
    cols = ["task", "searched_dev", "searched_dev_std", "random_median", "at_or_above_median", "pareto_dominated"]
    both = before[cols].merge(after[cols], on="task", suffixes=("_before", "_after"))
    if both.empty:
        raise AdabertError("searched-vs-random tables: the two runs share no task")
    both["delta"] = both["searched_dev_after"] - both["searched_dev_before"]
    spread = both[["searched_dev_std_before", "searched_dev_std_after"]].max(axis=1)
    both["beyond_seed_std"] = both["delta"].abs() > spread
    return both.sort_values("task").reset_index(drop=True)


def cost_summary(jobs: pd.DataFrame) -> dict:
    """Job seconds in all, per stage, and per retrain variant (the first part of a retrain job's name)."""
    retrain = jobs[jobs["stage"] == "retrain"]
    variants = retrain.groupby(retrain["job"].str.split("/").str[0])["seconds"].sum()
    return {
        "jobs": len(jobs),
        "job_seconds": round(float(jobs["seconds"].sum()), 1),
        "by_stage": {k: round(float(v), 1) for k, v in jobs.groupby("stage")["seconds"].sum().items()},
        "retrain_by_variant": {k: round(float(v), 1) for k, v in variants.items()},
    }


def compare_runs(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> dict:
    """The whole comparison of two runs' tables (as :func:`read_run` gives them)."""
    tasks = per_task(before["searched_vs_random.csv"], after["searched_vs_random.csv"])
    return {
        "search": {"before": search_summary(before["search.csv"]), "after": search_summary(after["search.csv"])},
        "students": {
            "tasks": tasks.to_dict(orient="records"),
            "mean_searched_dev_before": float(tasks["searched_dev_before"].mean()),
            "mean_searched_dev_after": float(tasks["searched_dev_after"].mean()),
            "tasks_up_beyond_seed_std": sorted(tasks.loc[tasks["beyond_seed_std"] & (tasks["delta"] > 0), "task"]),
            "tasks_down_beyond_seed_std": sorted(tasks.loc[tasks["beyond_seed_std"] & (tasks["delta"] < 0), "task"]),
            "at_or_above_random_median": {"before": int(tasks["at_or_above_median_before"].sum()),
                                          "after": int(tasks["at_or_above_median_after"].sum())},
            "pareto_dominated": {"before": int(tasks["pareto_dominated_before"].sum()),
                                 "after": int(tasks["pareto_dominated_after"].sum())},
        },
        "cost": {"before": cost_summary(before["cost_jobs.csv"]), "after": cost_summary(after["cost_jobs.csv"])},
    }
