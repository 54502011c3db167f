"""The scorecard: the run against its targets, from the run's tables (known answers on small tables)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from adabert.errors import AdabertError
from adabert.report.scorecard import read_targets, scorecard, write_scorecard

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"teacher": {"floors": {"SST-2": 88, "RTE": 58}, "max_minutes": 40},
           "search": {"min_max_op_prob_mean": 0.5, "min_depth_max_prob": 0.4, "max_no_conv_students": 1},
           "random": {"min_at_or_above_median": 2, "max_pareto_dominated": 0},
           "run": {"max_minutes": 120}}


def teacher_table() -> pd.DataFrame:
    nan = math.nan
    return pd.DataFrame([
        # SST-2: floor met, head ahead of its best probe
        {"task": "SST-2", "split": "dev", "main_split": True, "split_kind": "dev", "main_metric": "accuracy",
         "value": 88.5, "best_probe_minus_head": -1.0, "best_probe_minus_head_ci_low": -2.0,
         "best_probe_minus_head_ci_high": -0.1, "probe_better_beyond_noise": False},
        # RTE: floor missed, a probe ahead (within noise)
        {"task": "RTE", "split": "dev", "main_split": True, "split_kind": "dev", "main_metric": "accuracy",
         "value": 57.9, "best_probe_minus_head": 3.0, "best_probe_minus_head_ci_low": -0.5,
         "best_probe_minus_head_ci_high": 6.0, "probe_better_beyond_noise": False},
        # a second split of RTE that is not the main one: never read
        {"task": "RTE", "split": "dev2", "main_split": False, "split_kind": "dev", "main_metric": "accuracy",
         "value": 99.0, "best_probe_minus_head": nan, "best_probe_minus_head_ci_low": nan,
         "best_probe_minus_head_ci_high": nan, "probe_better_beyond_noise": nan},
        # WNLI has no floor: neither a floor row nor part of the head-vs-probe count
        {"task": "WNLI", "split": "dev", "main_split": True, "split_kind": "dev", "main_metric": "accuracy",
         "value": 40.0, "best_probe_minus_head": 10.0, "best_probe_minus_head_ci_low": 1.0,
         "best_probe_minus_head_ci_high": 20.0, "probe_better_beyond_noise": True},
    ])


def other_tables():
    search = pd.DataFrame({"variant": ["main", "main", "main", "beta_0"], "task": ["SST-2", "SST-2", "RTE", "RTE"],
                           "seed": [0, 1, 0, 0], "max_op_prob_mean": [0.9, 0.5, 0.3, 0.99],
                           "depth_max_prob": [0.5, 0.4, 0.9, 0.1], "no_conv": [True, False, True, True]})
    adaptivity = pd.DataFrame({"edges": [2, 4, 6], "depth": [0, 0, 1], "same_task": [True, False, False]})
    study = pd.DataFrame({"task": ["SST-2", "RTE", "CoLA"], "at_or_above_median": [True, False, True],
                          "pareto_dominated": [True, True, False],
                          # side-by-side verdict missing for RTE (NaN): not counted as beyond noise
                          "dominated_beyond_timing_noise": [True, math.nan, math.nan]})
    cost = pd.DataFrame({"stage": ["teacher", "probes", "search", "total"], "jobs": [2, 2, 3, 7],
                         "wall_s": [2000.0, 100.0, 900.0, 3000.0], "span_s": [0, 0, 0, 7260.0]})
    return search, adaptivity, study, cost


def test_scorecard_known_answers():
    df = scorecard(TARGETS, teacher_table(), *other_tables()).set_index("target")
    assert df.loc["SST-2 accuracy >= 88", "met"] and df.loc["SST-2 accuracy >= 88", "this_run"] == "88.5"
    assert not df.loc["RTE accuracy >= 58", "met"] and df.loc["RTE accuracy >= 58", "this_run"] == "57.9"
    head = df.loc["head >= best probe on every task with a floor"]
    assert not head["met"] and head["this_run"] == "1 of 2 tasks; a probe ahead beyond noise on 0"
    assert "RTE +3.00 [-0.50, +6.00]" in head["detail"] and "WNLI" not in head["detail"]
    minutes = df.loc["teacher fine-tuning, labelling and probes <= 40 min of jobs"]
    assert minutes["this_run"] == "35.0 min" and minutes["met"]  # (2000 + 100) s
    # only the main variant's searches: 2 of 3 reach 0.5, all 3 reach a depth probability of 0.4
    op = df.loc["mean strongest-op probability >= 0.5 in every main search"]
    assert op["this_run"] == "2 of 3" and not op["met"] and op["detail"] == "range 0.30-0.90"
    assert df.loc["largest depth probability >= 0.4 in every main search", "met"]
    no_conv = df.loc["at most 1 main students without a convolution"]
    assert no_conv["this_run"] == "2" and not no_conv["met"] and no_conv["detail"] == "SST-2 seed 0, RTE seed 0"
    adaptivity = df.loc["genotypes closer within a task (across seeds) than across tasks"]
    assert adaptivity["this_run"] == "2.00 vs 5.00 edges" and adaptivity["met"]
    median = df.loc["searched at or above the random median on >= 2 tasks"]
    assert median["this_run"] == "2 of 3" and median["met"] and median["detail"] == "SST-2, CoLA"
    pareto = df.loc["Pareto-dominated by a random architecture on <= 0 tasks"]
    assert pareto["this_run"] == "2 of 3 (1 beyond timing noise)" and not pareto["met"]
    run = df.loc["the workflow's jobs span <= 120 min"]
    assert run["this_run"] == "121.0 min" and not run["met"]


def test_scorecard_leaves_out_what_the_run_has_no_table_for(tmp_path):
    df = scorecard(TARGETS, teacher_table())
    assert set(df["area"]) == {"teacher"} and len(df) == 3  # two floors and head vs probe, no cost table
    # a teacher table of an older run (no main_split column): the first row of a task is its main split
    old = teacher_table().drop(columns="main_split")
    assert scorecard(TARGETS, old).set_index("target").loc["RTE accuracy >= 58", "this_run"] == "57.9"


def test_write_scorecard_and_the_shipped_targets(tmp_path):
    targets = read_targets(REPO / "paper/targets.yaml")
    assert targets["run"]["max_minutes"] == 120 and len(targets["teacher"]["floors"]) == 8
    teacher = tmp_path / "teacher.csv"
    teacher_table().to_csv(teacher, index=False)
    df = write_scorecard(REPO / "paper/targets.yaml", teacher, tmp_path / "scorecard")
    md = (tmp_path / "scorecard.md").read_text()
    assert md.startswith("# Targets of the default run") and f"{int(df['met'].sum())} of {len(df)} targets met" in md
    assert "| RTE accuracy >= 58 " in md and "| 57.9 " in md and "| no " in md
    assert pd.read_csv(tmp_path / "scorecard.csv")["met"].tolist() == df["met"].tolist()


def test_a_typo_in_the_targets_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "targets.yaml"
    bad.write_text("search:\n  min_max_op_prob: 0.5\n")
    with pytest.raises(AdabertError, match="min_max_op_prob"):
        read_targets(bad)
    bad.write_text("serach: {}\n")
    with pytest.raises(AdabertError, match="serach"):
        read_targets(bad)
