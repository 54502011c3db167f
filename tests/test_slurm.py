"""The smoke workflow on a real SLURM cluster through profiles/slurm (snakemake-executor-plugin-slurm).

Needs a running cluster: `.ci/run` starts a single-node one on localhost (`.ci/slurm_local.sh start`:
slurmctld + slurmd + slurmdbd, munge, no cgroups) when it runs as root with apt reachable. Without a
cluster the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO

BIN = Path(sys.executable).parent


def cluster_missing() -> str | None:
    """Why the SLURM test cannot run here, or None."""
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return "no SLURM client (sinfo/sacct) here; .ci/run starts a local cluster when it runs as root with apt"
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if state.returncode != 0 or not {"idle", "mixed", "allocated"} & set(state.stdout.split()):
        return f"no SLURM node up (sinfo: {(state.stdout + state.stderr).strip() or state.returncode})"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed"
    return None


@pytest.mark.slow
@pytest.mark.skipif(cluster_missing() is not None, reason=str(cluster_missing()))
def test_smoke_workflow_runs_as_slurm_jobs(tmp_path, glue_dir):
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "ADABERT_GLUE_DIR": str(glue_dir)}
    # the smoke config on one task without its studies (ablations, baselines, transfer) and without the
    # reference models' measurements: every main stage of the DAG, each as a SLURM job, in a few minutes
    cfg = yaml.safe_load((REPO / ".test/config.yaml").read_text())
    cfg.update(tasks=["MRPC"], variants={"main": {}}, transfer={"tasks": []},
               baselines={"bilstm": {"enabled": False}, "truncated": {"enabled": False}, "random": {"samples": 0}})
    cfg["measure"].update(include_bert_base=False, teacher=False, repeat_check=False)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "all", "--profile", str(REPO / "profiles/slurm"),
           "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
           # the local node has 2 CPUs: the profile's 4 threads per training job would never be scheduled
           "--set-threads", "teacher=1", "probes=1", "search=1", "retrain=1",
           "--slurm-init-seconds-before-status-checks", "2", "--jobs", "2"]
    # SIGINT, not SIGTERM, stops a hung snakemake (see the cluster notes)
    proc = subprocess.run(["timeout", "-s", "INT", "1500", *cmd], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-5000:]

    res = tmp_path / "results"
    assert json.loads((res / "teacher/MRPC/metrics.json").read_text())["task"] == "MRPC"
    assert (res / "derive/main/MRPC/seed0/genotype.json").is_file()
    assert (res / "retrain/main/MRPC/seed0/model.safetensors").is_file()
    assert not (res / "measure/bert-base").exists()
    for table in ("teacher", "search", "efficiency", "cost"):
        assert (res / f"tables/{table}.csv").is_file(), table
    assert (tmp_path / "paper/tables/main.md").is_file()

    # The jobs ran as SLURM jobs: sacct records one COMPLETED job per rule instance, tagged with its rule.
    acct = subprocess.run(["sacct", "-X", "-n", "-P", "-S", started, "--format=JobID,Comment%200,State"],
                          capture_output=True, text=True)
    assert acct.returncode == 0, acct.stderr
    rows = [line.split("|") for line in acct.stdout.splitlines() if "rule_" in line]
    rules = {comment.split("_wildcards")[0].removeprefix("rule_") for _, comment, _ in rows}
    assert {"prepare", "teacher", "probes", "search", "retrain", "measure_student"} <= rules, rows
    # seconds-long jobs (derive, tables, figures) are localrules: they never wait for an allocation
    assert not rules & {"derive", "teacher_table", "search_table", "main_table", "figures", "readme_section"}, rows
    assert all(state == "COMPLETED" for _, _, state in rows), rows
    print(f"{len(rows)} SLURM jobs:\n" + acct.stdout)
