"""Two runs' tables compared (adabert.report.run_comparison, benchmarks/compare_runs.py): known answers."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from adabert.errors import AdabertError
from adabert.report.run_comparison import compare_runs, read_run

REPO = Path(__file__).resolve().parents[1]


def _run(folder: Path, probs, no_conv, devs, stds, medians, retrain_s):
    folder.mkdir()
    ops = {"n_std_conv_3": [2, 0], "n_max_pool_3": [4, 6]}
    pd.DataFrame({"variant": ["main", "main"], "task": ["SST-2", "SST-2"], "seed": [0, 1], "depth": [1, 2],
                  "max_op_prob_mean": probs, "depth_max_prob": [0.9, 0.5], "no_conv": no_conv, **ops}
                 ).to_csv(folder / "search.csv", index=False)
    pd.DataFrame({"task": ["MRPC", "SST-2"], "searched_dev": devs, "searched_dev_std": stds,
                  "random_median": medians, "at_or_above_median": [d >= m for d, m in zip(devs, medians)],
                  "pareto_dominated": [False, True]}).to_csv(folder / "searched_vs_random.csv", index=False)
    pd.DataFrame({"stage": ["retrain", "retrain", "search"], "job": ["main/SST-2/seed0", "random/SST-2/seed0", "main/SST-2/seed0"],
                  "seconds": [retrain_s, 30.0, 100.0], "max_rss_mb": [1.0, 1.0, 1.0]}).to_csv(folder / "cost_jobs.csv", index=False)
    return folder


@pytest.fixture()
def runs(tmp_path):
    before = _run(tmp_path / "before", [0.12, 0.3], [False, True], [80.0, 78.0], [0.5, 1.0], [79.0, 77.0], 10.0)
    after = _run(tmp_path / "after", [0.9, 0.6], [False, False], [80.4, 74.0], [0.2, 1.5], [81.0, 75.0], 14.0)
    return before, after


def test_known_answers(runs):
    report = compare_runs(read_run(runs[0]), read_run(runs[1]))
    assert report["search"]["before"]["searches_committed_0.5"] == 0
    assert report["search"]["after"]["searches_committed_0.5"] == 2
    assert report["search"]["before"]["students_without_conv"] == 1 and report["search"]["after"]["students_without_conv"] == 0
    assert report["search"]["after"]["kept_edges_conv"] == 2 and report["search"]["after"]["kept_edges_parameter_free"] == 10
    assert report["search"]["after"]["depths"] == {1: 1, 2: 1}
    tasks = {row["task"]: row for row in report["students"]["tasks"]}
    assert tasks["MRPC"]["delta"] == pytest.approx(0.4) and not tasks["MRPC"]["beyond_seed_std"]  # 0.4 < 0.5
    assert tasks["SST-2"]["delta"] == pytest.approx(-4.0) and tasks["SST-2"]["beyond_seed_std"]  # 4.0 > 1.5
    assert report["students"]["tasks_down_beyond_seed_std"] == ["SST-2"] and report["students"]["tasks_up_beyond_seed_std"] == []
    assert report["students"]["mean_searched_dev_after"] == pytest.approx(77.2)
    assert report["students"]["at_or_above_random_median"] == {"before": 2, "after": 0}
    assert report["cost"]["after"]["retrain_by_variant"] == {"main": 14.0, "random": 30.0}
    assert report["cost"]["after"]["by_stage"] == {"retrain": 44.0, "search": 100.0}


def test_missing_table_is_named(runs):
    (runs[1] / "cost_jobs.csv").unlink()
    with pytest.raises(AdabertError, match="cost_jobs.csv: missing"):
        read_run(runs[1])


def test_script_writes_the_report(runs, tmp_path):
    out = tmp_path / "cmp.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks/compare_runs.py"), "--before", str(runs[0]),
                    "--after", str(runs[1]), "--out", str(out)], check=True, capture_output=True)
    report = json.loads(out.read_text())
    assert report["benchmark"] == "compare_runs" and report["students"]["pareto_dominated"] == {"before": 1, "after": 1}
