"""The run against its targets: one row per target, what the run measured and whether it is met.

The targets (``paper/targets.yaml``) are the numbers a run of the default configuration is meant to reach:
teacher dev floors, a fine-tuned head at least as good as its best probe, the teacher's share of the
budget, a search whose architecture distribution commits, task adaptivity, the searched students against
random ones, at most a few students without a convolution, and the wall time of the whole run. Every value
is read from the run's own tables (teacher, search, task adaptivity, searched vs random, cost), so the
scorecard is regenerated with them and never typed by hand. A target whose table is absent from the run
(e.g. no random study) is left out, not reported as met.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from adabert.errors import AdabertError
from adabert.report.common import write_tables

COLUMNS = ["area", "target", "this_run", "met", "detail"]
TARGET_KEYS = {
    "teacher": {"floors", "max_minutes"},
    "search": {"min_max_op_prob_mean", "min_depth_max_prob", "max_no_conv_students"},
    "random": {"min_at_or_above_median", "max_pareto_dominated"},
    "run": {"max_minutes"},
}


def read_targets(path: Path) -> dict:
    """``paper/targets.yaml``, with every section and key checked (a typo is an error naming the key)."""
    targets = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    for section, keys in targets.items():
        if section not in TARGET_KEYS:
            raise AdabertError(f"{path}: unknown section {section!r}; allowed: {sorted(TARGET_KEYS)}")
        unknown = set(keys or {}) - TARGET_KEYS[section]
        if unknown:
            raise AdabertError(f"{path}: unknown key(s) {sorted(unknown)} in {section!r}; "
                               f"allowed: {sorted(TARGET_KEYS[section])}")
    return targets


def _row(area: str, target: str, this_run: str, met: bool, detail: str = "") -> dict:
    return {"area": area, "target": target, "this_run": this_run, "met": bool(met), "detail": detail}


def teacher_rows(teacher: pd.DataFrame, cost: pd.DataFrame | None, targets: dict) -> list[dict]:
    """Floors on the main split, the head against the best probe (every task with a floor), teacher time."""
    # the main split's row (a table without the column lists it first)
    main = (teacher[teacher["main_split"].eq(True)] if "main_split" in teacher
            else teacher.drop_duplicates("task")).set_index("task")
    rows = []
    for task, floor in (targets.get("floors") or {}).items():
        if task not in main.index:
            continue
        value, metric = float(main.at[task, "value"]), main.at[task, "main_metric"]
        rows.append(_row("teacher", f"{task} {metric} >= {floor:g}", f"{value:.1f}", value >= floor,
                         str(main.at[task, "split_kind"])))
    tasks = [t for t in (targets.get("floors") or {}) if t in main.index]
    if tasks and "best_probe_minus_head" in main:
        gaps = main.loc[tasks]
        behind = gaps[gaps["best_probe_minus_head"] > 0]
        beyond = behind[behind["probe_better_beyond_noise"].eq(True)] if "probe_better_beyond_noise" in gaps \
            else behind.iloc[:0]
        detail = "; ".join(f"{t} {r.best_probe_minus_head:+.2f} [{r.best_probe_minus_head_ci_low:+.2f}, "
                           f"{r.best_probe_minus_head_ci_high:+.2f}]" for t, r in behind.iterrows())
        rows.append(_row("teacher", "head >= best probe on every task with a floor",
                         f"{len(tasks) - len(behind)} of {len(tasks)} tasks; a probe ahead beyond noise on "
                         f"{len(beyond)}", behind.empty,
                         "best probe - head [95% bootstrap interval]: " + detail if detail else ""))
    if cost is not None and targets.get("max_minutes") is not None:
        stages = cost.set_index("stage")["wall_s"]
        minutes = sum(float(stages.get(s, 0.0)) for s in ("teacher", "probes")) / 60
        rows.append(_row("teacher", f"teacher fine-tuning, labelling and probes <= {targets['max_minutes']:g} min "
                         "of jobs", f"{minutes:.1f} min", minutes <= targets["max_minutes"],
                         "sum of the teacher and probes jobs (cost table)"))
    return rows


def search_rows(search: pd.DataFrame, adaptivity: pd.DataFrame | None, main_variant: str, targets: dict) -> list[dict]:
    """The architecture distribution at the end of every main search, students without a convolution, and
    the genotype distance within vs across tasks."""
    main = search[search["variant"] == main_variant]
    rows = []
    if main.empty:
        return rows
    n = len(main)
    if targets.get("min_max_op_prob_mean") is not None:
        low = targets["min_max_op_prob_mean"]
        ok = int((main["max_op_prob_mean"] >= low).sum())
        rows.append(_row("search", f"mean strongest-op probability >= {low:g} in every main search",
                         f"{ok} of {n}", ok == n, f"range {main['max_op_prob_mean'].min():.2f}-"
                                                   f"{main['max_op_prob_mean'].max():.2f}"))
    if targets.get("min_depth_max_prob") is not None:
        low = targets["min_depth_max_prob"]
        ok = int((main["depth_max_prob"] >= low).sum())
        rows.append(_row("search", f"largest depth probability >= {low:g} in every main search", f"{ok} of {n}",
                         ok == n, f"range {main['depth_max_prob'].min():.2f}-{main['depth_max_prob'].max():.2f}"))
    if targets.get("max_no_conv_students") is not None:
        no_conv = main[main["no_conv"].eq(True)]
        rows.append(_row("search", f"at most {targets['max_no_conv_students']} main students without a convolution",
                         str(len(no_conv)), len(no_conv) <= targets["max_no_conv_students"],
                         ", ".join(f"{r.task} seed {r.seed}" for r in no_conv.itertuples())))
    if adaptivity is not None and not adaptivity.empty:
        same = adaptivity["same_task"].eq(True)
        if same.any() and (~same).any():
            within, across = adaptivity.loc[same, "edges"].mean(), adaptivity.loc[~same, "edges"].mean()
            rows.append(_row("search", "genotypes closer within a task (across seeds) than across tasks",
                             f"{within:.2f} vs {across:.2f} edges", within < across,
                             "mean number of differing edges over pairs of main searches"))
    return rows


def random_rows(study: pd.DataFrame, targets: dict) -> list[dict]:
    """The searched students against random architectures of the same space and recipe."""
    rows, n = [], len(study)
    if n == 0:
        return rows
    if targets.get("min_at_or_above_median") is not None:
        at = study[study["at_or_above_median"].eq(True)]
        rows.append(_row("searched vs random", f"searched at or above the random median on >= "
                         f"{targets['min_at_or_above_median']} tasks", f"{len(at)} of {n}",
                         len(at) >= targets["min_at_or_above_median"], ", ".join(at["task"])))
    if targets.get("max_pareto_dominated") is not None:
        dominated = study[study["pareto_dominated"].eq(True)]
        beyond = (dominated[dominated["dominated_beyond_timing_noise"].eq(True)]
                  if "dominated_beyond_timing_noise" in study else dominated.iloc[:0])
        rows.append(_row("searched vs random", f"Pareto-dominated by a random architecture on <= "
                         f"{targets['max_pareto_dominated']} tasks", f"{len(dominated)} of {n} "
                         f"({len(beyond)} beyond timing noise)", len(dominated) <= targets["max_pareto_dominated"],
                         ", ".join(dominated["task"])))
    return rows


def run_rows(cost: pd.DataFrame, targets: dict) -> list[dict]:
    """The whole run's wall time (the span of its jobs on the clock, cost table's total row)."""
    total = cost[cost["stage"] == "total"]
    if total.empty or targets.get("max_minutes") is None:
        return []
    minutes = float(total["span_s"].iloc[0]) / 60
    return [_row("run", f"the workflow's jobs span <= {targets['max_minutes']:g} min",
                 f"{minutes:.1f} min", minutes <= targets["max_minutes"],
                 f"{int(total['jobs'].iloc[0])} jobs, {float(total['wall_s'].iloc[0]) / 60:.0f} min of job time")]


def scorecard(targets: dict, teacher: pd.DataFrame, search: pd.DataFrame | None = None,
              adaptivity: pd.DataFrame | None = None, study: pd.DataFrame | None = None,
              cost: pd.DataFrame | None = None, main_variant: str = "main") -> pd.DataFrame:
    """Every target the given tables can answer, in the order teacher, search, searched vs random, run."""
    rows = teacher_rows(teacher, cost, targets.get("teacher") or {})
    if search is not None:
        rows += search_rows(search, adaptivity, main_variant, targets.get("search") or {})
    if study is not None:
        rows += random_rows(study, targets.get("random") or {})
    if cost is not None:
        rows += run_rows(cost, targets.get("run") or {})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_scorecard(targets_path: Path, teacher_csv: Path, stem: Path, search_csv: Path | None = None,
                    adaptivity_csv: Path | None = None, study_csv: Path | None = None, cost_csv: Path | None = None,
                    main_variant: str = "main") -> pd.DataFrame:
    """``stem``.csv/.md/.tex from the run's tables (optional ones may be None)."""
    def read(path):
        return None if path is None else pd.read_csv(path)

    df = scorecard(read_targets(targets_path), read(teacher_csv), read(search_csv), read(adaptivity_csv),
                   read(study_csv), read(cost_csv), main_variant)
    met = int(df["met"].sum())
    shown = df.assign(met=df["met"].map({True: "yes", False: "no"}))
    write_tables(df, stem, "Targets of the default run, checked on this run", [
        f"{met} of {len(df)} targets met. The targets: {Path(targets_path).parent.name}/{Path(targets_path).name}; "
        "the values: the run's teacher, "
        "search, task-adaptivity, searched-vs-random and cost tables.",
        "All metrics are dev metrics (QQP: a held-out split of the local training rows where the local copy has no "
        "dev file)."], shown=shown, text_cells=True)
    return df
