"""Searched vs random architectures, per task: is the searched student better than what the search space gives
without searching?

Inputs: the efficiency table's CSV (one row per measured student: task, variant, seed, engine, batch,
seq_len, latency_ms, student_dev, split_kind). The random architectures (variant ``random``, seed = sample
index) are drawn uniformly from the same search space (at the searched depth or any depth:
``baselines.random.depth``) and retrained with exactly the searched students' recipe and initialisation (see
:mod:`adabert.architectures`); both are timed with the same engine at the same shape. Per task: the searched
students' dev metric (mean over seeds) and latency, the random ones' median and range, whether the searched
mean is at or above the random median, and whether some random architecture Pareto-dominates the searched
one (at least as accurate and at least as fast as the searched mean, strictly better in one). Latencies come
from the side-by-side timings of :mod:`adabert.measure.side_by_side` where given (all students of a task timed
in one job, interleaved), else from the efficiency rows (separate jobs: drift between them is not resolved).
With side-by-side timings the Pareto test is also made beyond timing noise: a random architecture then has to
be faster in its slowest round than the searched students in their fastest (round medians).

Fixed one-op cells (``fixed-<op>`` retrains, ``baselines.fixed_cells``; e.g. ``skip_connect``: a bag of the
folded teacher embeddings, the simplest student of the space), when given: per task and op the dev mean over
seeds (``fixed_<op>_dev``), read from their retrain metrics, and on how many tasks the searched students
reach each of them. They are not timed (no cell computation: the fastest students of the space).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert import io
from adabert.errors import AdabertError
from adabert.report.common import marked, write_tables

COLUMNS = ["task", "metric_split", "searched_n", "searched_dev", "searched_dev_std", "searched_latency_ms",
           "searched_depths", "random_n", "random_median", "random_min", "random_max", "random_latency_median_ms",
           "random_depths", "at_or_above_median", "pareto_dominated", "dominating_samples",
           "dominated_beyond_timing_noise", "clearly_dominating_samples", "latency_same_job"]


def depth_span(depths: pd.Series) -> str:
    """The depths of some students in words: "1", "1-3" (empty when the table has no depth column)."""
    values = sorted({int(d) for d in depths.dropna()})
    if not values:
        return ""
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def _shape_rows(efficiency: pd.DataFrame, engine: str) -> pd.DataFrame:
    """The rows of ``engine`` at the largest batch and sequence length measured for random architectures."""
    rows = efficiency[efficiency["engine"] == engine]
    random = rows[rows["variant"] == "random"]
    if random.empty:
        raise AdabertError(f"searched vs random: no random-architecture measurement with engine {engine!r}")
    batch, seq = int(random["batch"].max()), int(random[random["batch"] == random["batch"].max()]["seq_len"].max())
    return rows[(rows["batch"] == batch) & (rows["seq_len"] == seq)]


def dominated_by(searched_dev: float, searched_latency: float, random: pd.DataFrame) -> list[int]:
    """Samples of ``random`` at least as accurate and as fast as the searched point, strictly better in one."""
    better = random[(random["student_dev"] >= searched_dev) & (random["latency_ms"] <= searched_latency)
                    & ((random["student_dev"] > searched_dev) | (random["latency_ms"] < searched_latency))]
    return sorted(int(s) for s in better["seed"])


def dominated_beyond_noise(searched_dev: float, searched_fastest_ms: float, random: pd.DataFrame) -> list[int]:
    """Samples of ``random`` at least as accurate as the searched point and faster in every round of the
    side-by-side timing (slowest round ``latency_max_ms``) than the searched students in their fastest
    round (``searched_fastest_ms``, the mean over seeds of each one's fastest round)."""
    better = random[(random["student_dev"] >= searched_dev) & (random["latency_max_ms"] < searched_fastest_ms)]
    return sorted(int(s) for s in better["seed"])


Timed = dict[tuple[str, int], dict[str, float]]


def side_by_side_latencies(paths: list[Path]) -> dict[str, Timed]:
    """Side-by-side timings (:mod:`adabert.measure.side_by_side`, one per task) -> {task: {(variant, seed):
    {"latency_ms": median, "latency_min_ms": fastest round, "latency_max_ms": slowest round}}} (a round's
    value is the median of its batches)."""
    if not paths:
        return {}
    from adabert.measure.side_by_side import read_side_by_side  # lazy: loads torch

    out: dict[str, Timed] = {}
    for path in paths:
        record = read_side_by_side(path)
        if record["task"] in out:
            raise AdabertError(f"{path}: a second side-by-side timing of task {record['task']}")
        out[record["task"]] = {(m["variant"], int(m["seed"])): {
            "latency_ms": float(m["latency_ms"]), "latency_min_ms": 1e3 * float(m["latency"]["repeat_min_s"]),
            "latency_max_ms": 1e3 * float(m["latency"]["repeat_max_s"])} for m in record["models"]}
    return out


def _with_latencies(task: str, timed: Timed, *students: pd.DataFrame) -> list[pd.DataFrame]:
    """Each frame of ``students`` (rows of one task) with the latencies of the task's side-by-side timing."""
    keys = [(v, int(s)) for df in students for v, s in zip(df["variant"], df["seed"])]
    missing = [k for k in keys if k not in timed]
    if missing:
        raise AdabertError(f"searched vs random: the side-by-side timing of {task} lacks {missing}")
    return [df.assign(**{column: [timed[(v, int(s))][column] for v, s in zip(df["variant"], df["seed"])]
                         for column in ("latency_ms", "latency_min_ms", "latency_max_ms")}) for df in students]


def build_rows(efficiency: pd.DataFrame, main_variant: str, engine: str = "torch",
               side_by_side: dict[str, Timed] | None = None) -> pd.DataFrame:
    """One row per task with searched and random students; latencies from ``side_by_side`` (:func:`side_by_side_latencies`)
    for the tasks it has, else from the efficiency rows of ``engine``."""
    rows = _shape_rows(efficiency, engine)
    side_by_side = side_by_side or {}
    out = []
    for task in sorted(set(rows.loc[rows["variant"] == "random", "task"])):
        searched = rows[(rows["variant"] == main_variant) & (rows["task"] == task)].dropna(subset=["student_dev"])
        random = rows[(rows["variant"] == "random") & (rows["task"] == task)].dropna(subset=["student_dev"])
        if searched.empty or random.empty:
            continue
        if task in side_by_side:
            searched, random = _with_latencies(task, side_by_side[task], searched, random)
        dev, latency = float(searched["student_dev"].mean()), float(searched["latency_ms"].mean())
        median = float(random["student_dev"].median())
        dominating = dominated_by(dev, latency, random)
        clearly = (dominated_beyond_noise(dev, float(searched["latency_min_ms"].mean()), random)
                   if task in side_by_side else None)
        out.append({
            "task": task, "metric_split": marked(str(searched["metric"].iloc[0]), searched["split_kind"].iloc[0]),
            "searched_n": len(searched), "searched_dev": dev,
            "searched_dev_std": float(searched["student_dev"].std()) if len(searched) > 1 else None,
            "searched_latency_ms": latency, "searched_depths": depth_span(searched.get("depth", pd.Series(dtype=float))),
            "random_n": len(random), "random_median": median,
            "random_min": float(random["student_dev"].min()), "random_max": float(random["student_dev"].max()),
            "random_latency_median_ms": float(random["latency_ms"].median()),
            "random_depths": depth_span(random.get("depth", pd.Series(dtype=float))),
            "at_or_above_median": dev >= median, "pareto_dominated": bool(dominating),
            "dominating_samples": " ".join(map(str, dominating)),
            "dominated_beyond_timing_noise": None if clearly is None else bool(clearly),
            "clearly_dominating_samples": None if clearly is None else " ".join(map(str, clearly)),
            "latency_same_job": task in side_by_side,
        })
    return pd.DataFrame(out, columns=COLUMNS)


def fixed_means(metrics_files: list[Path]) -> dict[str, dict[str, float]]:
    """``fixed-<op>`` retrain metrics -> {op: {task: mean main dev value over seeds}}."""
    values: dict[str, dict[str, list[float]]] = {}
    for path in metrics_files:
        m = io.read_json(path)
        variant = str(m.get("variant", ""))
        if not variant.startswith("fixed-") or "task" not in m or "main_value" not in m:
            raise AdabertError(f"{path}: not the metrics of a fixed-cell retrain (variant fixed-<op>, task, main_value)")
        values.setdefault(variant.removeprefix("fixed-"), {}).setdefault(m["task"], []).append(float(m["main_value"]))
    return {op: {t: sum(v) / len(v) for t, v in tasks.items()} for op, tasks in values.items()}


def add_fixed(df: pd.DataFrame, fixed: dict[str, dict[str, float]]) -> tuple[pd.DataFrame, list[str]]:
    """The table with a ``fixed_<op>_dev`` column per op, and a note per op: on how many tasks the searched
    mean is at or above it."""
    notes = []
    for op, by_task in sorted(fixed.items()):
        column = f"fixed_{op}_dev"
        df[column] = [by_task.get(t) for t in df["task"]]
        known = df[df[column].notna()]
        reached = int((known["searched_dev"] >= known[column]).sum())
        notes.append(f"{column}: the depth-1 cell with {op} on every edge"
                     + (" (no computation in the cell: a bag of the folded teacher embeddings read by the classifier)"
                        if op == "skip_connect" else "")
                     + ", retrained with the same recipe and initialisation (mean over the main seeds); the searched "
                     f"students are at or above it on {reached} of {len(known)} tasks.")
    return df, notes


def _latency_note(df: pd.DataFrame, engine: str) -> str:
    same = df["latency_same_job"].astype(bool)
    note = f"Latency: {engine}, milliseconds per batch at the largest shape the random architectures were measured at. "
    if same.all():
        return note + ("latency_same_job: the searched students and the random architectures of a task were timed "
                       "side by side in one job, interleaved round by round (measure-side-by-side), so drift of the "
                       "machine between jobs does not enter the latency comparison or the Pareto test.")
    tasks = ", ".join(df.loc[~same, "task"])
    return note + (f"On {tasks} the searched students and the random architectures were timed in different jobs "
                   "(latency_same_job False): a latency difference smaller than the drift between jobs (on a "
                   "shared machine, more than the samples_per_s_spread within one) is not resolved there, nor is a "
                   "Pareto test that rests on it.")


def write_random_study(efficiency_csv: Path, main_variant: str, out_stem: Path, engine: str = "torch",
                       fixed_metrics: list[Path] | None = None, side_by_side: list[Path] | None = None) -> pd.DataFrame:
    if side_by_side and engine != "torch":
        raise AdabertError(f"searched vs random: the side-by-side timings are PyTorch's, but engine {engine!r} was "
                           "asked for")
    efficiency = pd.read_csv(efficiency_csv)
    df = build_rows(efficiency, main_variant, engine, side_by_side_latencies(side_by_side or []))
    if df.empty:
        raise AdabertError(f"{efficiency_csv}: no task has both searched ('{main_variant}') and random students "
                           "with a dev metric")
    df, fixed_notes = add_fixed(df, fixed_means(fixed_metrics or []))
    above, dominated = int(df["at_or_above_median"].sum()), int(df["pareto_dominated"].sum())
    judged = df["dominated_beyond_timing_noise"].dropna()
    notes = [
        f"Searched = the '{main_variant}' students (dev metric: mean over seeds); random = architectures drawn "
        "uniformly from the same search space at the depths in random_depths (baselines.random.depth: searched = "
        "the depth the search chose, uniform = any), retrained with the same recipe and initialisation (weights "
        "cut out of the same supernet when the searched students inherit theirs); dev metric in percent points; "
        "searched_depths, random_depths: the students' numbers of cells.",
        _latency_note(df, engine),
        "pareto_dominated: some random architecture is at least as accurate and at least as fast as the searched "
        "mean and strictly better in one (dominating_samples lists them).",
        "dominated_beyond_timing_noise (side-by-side timings only): some random architecture is at least as "
        "accurate as the searched mean and faster in every round of the timing (its slowest round) than the "
        "searched students in their fastest (the mean over seeds of each one's fastest round); "
        "clearly_dominating_samples lists them. Round-to-round differences of one model in one job are up to "
        "tens of percent on a shared machine, so a latency difference inside that range does not decide.",
        f"The searched students are at or above the random median on {above} of {len(df)} tasks and "
        f"Pareto-dominated on {dominated}"
        + (f"; beyond timing noise on {int(judged.astype(bool).sum())} of the {len(judged)} tasks timed side by side."
           if len(judged) else "."),
        *fixed_notes,
    ]
    write_tables(df, out_stem, "Searched vs random architectures", notes)
    return df
