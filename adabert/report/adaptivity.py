"""Task adaptivity, measured: how far apart the searched architectures are within a task (across seeds)
and across tasks.

Input: the ``genotype.json`` of every main search (one per task and seed). For every pair of them the
distance is :meth:`~adabert.nas.genotype.Genotype.distance`: kept edges (node, input, op) of one cell
missing from the other's (0..6 for 3 nodes x 2 edges) and the difference in depth K. If the search
adapts the architecture to the task (the paper's claim), pairs of the same task are closer than pairs
of different tasks; if the architecture follows the seed or the initialisation, they are not.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from adabert.errors import AdabertError
from adabert.io import atomic_path, read_json
from adabert.nas.genotype import Genotype
from adabert.report.common import folder_of


def _identity(path: Path) -> tuple[str, int, Genotype]:
    folder = folder_of(path)
    summary = read_json(folder / "derive.json")
    search = read_json(Path(summary["search_dir"]) / "metrics.json")
    return search["task"], int(search["seed"]), Genotype.from_dict(summary["genotype"], str(folder))


def pair_distances(genotype_paths: list[Path]) -> pd.DataFrame:
    """One row per unordered pair of searches: tasks, seeds, edge and depth distance, same_task."""
    return genotype_pairs([_identity(Path(p)) for p in genotype_paths])


def genotype_pairs(items: list[tuple[str, int, Genotype]]) -> pd.DataFrame:
    """:func:`pair_distances` of (task, seed, genotype) triples."""
    items = sorted(items, key=lambda item: item[:2])
    rows = []
    for (task_a, seed_a, a), (task_b, seed_b, b) in itertools.combinations(items, 2):
        d = a.distance(b)
        rows.append({"task_a": task_a, "seed_a": seed_a, "task_b": task_b, "seed_b": seed_b,
                     "edges": d["edges"], "depth": d["depth"], "same_task": task_a == task_b})
    return pd.DataFrame(rows, columns=["task_a", "seed_a", "task_b", "seed_b", "edges", "depth", "same_task"])


def summarise(pairs: pd.DataFrame) -> pd.DataFrame:
    """Mean distances within a task (across seeds) and across tasks."""
    rows = []
    for label, same in (("within a task (across seeds)", True), ("across tasks", False)):
        part = pairs[pairs["same_task"] == same]
        rows.append({"pairs": label, "n": len(part),
                     "edges_mean": float(part["edges"].mean()) if len(part) else None,
                     "depth_mean": float(part["depth"].mean()) if len(part) else None,
                     "identical": int(((part["edges"] == 0) & (part["depth"] == 0)).sum())})
    return pd.DataFrame(rows)


def label_permutation_p(pairs: pd.DataFrame, n_permutations: int = 5000, seed: int = 0) -> dict:
    """How often the across-task minus within-task mean edge distance is at least the observed one when the
    task labels of the searches are shuffled (a one-sided permutation test of task adaptivity).

    ``pairs``: :func:`genotype_pairs`' table (every unordered pair of searches). Returns the observed gap,
    the p-value (share of permutations with a gap at least as large) and the number of permutations."""
    keys = sorted({(r.task_a, r.seed_a) for r in pairs.itertuples()} | {(r.task_b, r.seed_b) for r in pairs.itertuples()})
    index = {k: i for i, k in enumerate(keys)}
    dist = np.zeros((len(keys), len(keys)))
    for r in pairs.itertuples():
        i, j = index[(r.task_a, r.seed_a)], index[(r.task_b, r.seed_b)]
        dist[i, j] = dist[j, i] = r.edges
    upper = np.triu_indices(len(keys), k=1)
    tasks = np.array([k[0] for k in keys])

    def gap(labels: np.ndarray) -> float:
        same = (labels[:, None] == labels[None, :])[upper]
        if same.all() or not same.any():
            raise AdabertError("a permutation test needs pairs both within and across tasks")
        return float(dist[upper][~same].mean() - dist[upper][same].mean())

    observed = gap(tasks)
    rng = np.random.default_rng(seed)
    hits = sum(gap(rng.permutation(tasks)) >= observed - 1e-12 for _ in range(n_permutations))
    return {"observed_gap": observed, "p_value": hits / n_permutations, "n_permutations": n_permutations,
            "searches": len(keys)}


def verdict(summary: pd.DataFrame) -> str:
    within, across = summary.iloc[0], summary.iloc[1]
    if not within["n"] or not across["n"]:
        return "Not enough searches to compare (needs at least two seeds of a task and two tasks)."
    closer = (within["edges_mean"] < across["edges_mean"]
              or (within["edges_mean"] == across["edges_mean"] and within["depth_mean"] < across["depth_mean"]))
    return ("Searches of the same task are closer than searches of different tasks: the architecture "
            "follows the task." if closer else
            "Searches of the same task are NOT closer than searches of different tasks: the architecture "
            "does not follow the task more than it follows the seed.")


def write_adaptivity(genotype_paths: list[Path], md_path: Path, csv_path: Path) -> pd.DataFrame:
    pairs = pair_distances(genotype_paths)
    if pairs.empty:
        raise AdabertError("task adaptivity: needs at least two searched genotypes")
    summary = summarise(pairs)
    per_task = pairs.assign(a=pairs["task_a"], b=pairs["task_b"]).pivot_table(
        index="a", columns="b", values="edges", aggfunc="mean")
    fmt = summary.copy()
    for col in ("edges_mean", "depth_mean"):
        fmt[col] = [f"{v:.2f}" if v is not None and v == v else "" for v in fmt[col]]
    lines = [
        "# Task adaptivity of the searched architectures", "",
        "Distance between two searched architectures: `edges` = kept edges (node, input, op) of one cell that "
        "the other lacks (0 = the same cell, 6 = nothing in common), `depth` = difference in the number of "
        "cells K. Every pair of main searches (tasks x seeds).", "",
        fmt.to_markdown(index=False), "", verdict(summary), "",
        "Mean edge distance per pair of tasks (diagonal: the same task, different seeds):", "",
        per_task.round(2).astype(object).where(per_task.notna(), "").to_markdown(), "",
    ]
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text("\n".join(lines), encoding="utf-8")
    with atomic_path(csv_path) as tmp:
        pairs.to_csv(tmp, index=False)
    return summary
