"""The Snakemake workflow itself: dry runs of the shipped configs, config errors before any job,
lint/format hygiene, and an end-to-end smoke run of the real DAG on small real data."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import n_rows
from recompute import (check_derived_genotype, check_predictions_file, check_teacher_metrics,
                       student_reproduces_its_predictions)

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
    proc = snakemake("-n", "-p", "--directory", str(tmp_path))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    # RTE's teacher starts from MNLI's (teacher.per_task.RTE.init_from): a DAG edge and the --init option
    assert "--out results/teacher/RTE --init results/teacher/MNLI" in proc.stdout
    # ... so MNLI's teacher is scheduled first (priority 1), and the teachers waiting for it do not run last
    teachers = {re.search(r"wildcards: task=(\S+)", b).group(1): b
                for b in proc.stdout.split("\nrule ") if b.startswith("teacher:")}
    assert [t for t, b in teachers.items() if "priority: 1" in b] == ["MNLI"] and len(teachers) == 9
    prepares = [re.search(r"wildcards: task=(\S+)", b).group(1)
                for b in proc.stdout.split("\nrule ") if b.startswith("prepare:") and "priority: 1" in b]
    assert prepares == ["MNLI"]  # ... and its data first (in the run of a777393 it was ready 17 minutes in)
    counts = job_counts(proc.stdout)
    assert counts["prepare"] == counts["teacher"] == counts["probes"] == 9
    assert counts["search"] == counts["derive"] == 18  # the main setting only: 9 tasks x 2 seeds
    assert "ablation_table" not in counts and "transfer_table" not in counts
    # augmented data on CoLA only (variants.main.augment: [CoLA]): its searches and retrains, the random
    # architectures' included, read the augment stage's folders; the other tasks the distillation set
    assert counts["augment"] == 1
    assert "--data results/augment/CoLA/data --teacher results/augment/CoLA/teacher" in proc.stdout
    searches = [b for b in proc.stdout.split("\nrule ") if b.startswith("search:")]
    for block in searches:
        task = re.search(r"--task (\S+)", block).group(1)
        assert ("--data results/augment/" in block) == (task == "CoLA"), task
    random_cola = [b for b in proc.stdout.split("\nrule ") if b.startswith("retrain:") and "random/CoLA" in b]
    assert len(random_cola) == 5 and all("--data results/augment/CoLA/data" in b for b in random_cola)
    # searched students + 5 random architectures on each task but WNLI, weighted from the main supernet
    assert counts["random_architecture"] == 40 and counts["retrain"] == 18 + 40
    # the bag-of-embeddings cell (baselines.fixed_cells) is a study (config/studies.yaml), not in the budget
    assert "fixed_architecture" not in counts and "--kind fixed" not in proc.stdout
    assert "--search results/search/main/RTE/seed0" in proc.stdout
    assert "baseline" not in counts  # BiLSTM-SOFT and the truncated teacher: config/studies.yaml
    # retrain.max_steps and length-grouped batches reach every retrain, the random architectures' included
    assert all('"length_grouped": true, "max_steps": 300' in b for b in random_cola)
    for table in ("teacher_table", "seed_table", "efficiency_summary", "task_adaptivity", "searched_vs_random"):
        assert counts[table] == 1, table
    # one measurement job per model: BERT-base and the teacher architecture once per run
    assert counts["measure_bert_base"] == counts["measure_teacher"] == 1
    # static int8 calibrated on the task's training rows; BERT-base (no task) on a few synthetic rows
    bert = next(b for b in proc.stdout.split("\nrule ") if b.startswith("measure_bert_base:"))
    assert "--int8 static --calibration-examples 32 --out-dir" in bert
    assert "--int8 static --calibration-examples 256 --data results/data/CoLA --task CoLA" in proc.stdout
    # ... and a main student and the teacher are timed as their export stage exported and quantised them
    assert "--export-dir results/export/teacher/CoLA --out-dir results/measure/teacher/CoLA >" in proc.stdout
    # the searched students of a task: one job, every engine, each student timing its own export's graphs
    assert ("--seed 0 1 --export-dir results/export/student/main/RTE/seed0 results/export/student/main/RTE/seed1"
            " --out-dir results/measure/student/main/RTE/seed0 results/measure/student/main/RTE/seed1 >") in proc.stdout
    assert counts["measure_student"] == counts["search"] // 2 == 9
    # the random architectures side by side with the task's searched students, in one job per task,
    # interleaved (the latencies of the searched-vs-random table), alone on the machine like every timing
    # job; the same job writes their measurements (measure.ablation_engines = [torch], one shape): no
    # second timing job
    assert counts["measure_side_by_side"] == 8
    assert "measure_random" not in counts and "measure_student_ablation" not in counts
    side = next(b for b in proc.stdout.split("\nrule ") if b.startswith("measure_side_by_side:") and "task=SST-2" in b)
    models = " ".join([f"--model main {s} results/retrain/main/SST-2/seed{s}" for s in (0, 1)]
                      + [f"--model random {n} results/retrain/random/SST-2/seed{n}" for n in range(5)])
    records = " ".join(f"--record random {n} results/measure/student/random/SST-2/seed{n}" for n in range(5))
    assert f"--task SST-2 {models} {records} --peak-seconds 0.25 --batch 128 --seq-len 128 --threads 2" in side
    assert all(f"results/measure/student/random/SST-2/seed{n}/torch.cpu.b128.s128.json" in side for n in range(5))
    assert re.search(r"resources: .*\bcpu_bench=100\b", side)
    assert "--side-by-side results/measure/side_by_side/CoLA.json" in proc.stdout
    assert "measure_baseline" not in counts
    assert not {"measure_bert_base_repeat", "measure_student_repeat", "repeatability_table"} & set(counts)
    # job_threads: 1: training jobs run one thread each (no "threads:" line in a dry run), measurement
    # jobs keep measure.threads
    blocks = {rule: [b for b in proc.stdout.split("\nrule ") if b.startswith(f"{rule}:")]
              for rule in ("teacher", "search", "retrain", "measure_student")}
    for rule in ("teacher", "search", "retrain"):
        assert blocks[rule] and not any("threads:" in b for b in blocks[rule]), rule
    assert blocks["measure_student"] and all("threads: 2" in b for b in blocks["measure_student"])
    # a timing job holds the whole cpu_bench resource (capacity 100 in profiles/default), a training job one
    # unit, so no training job runs beside a measurement
    for rule in ("teacher", "search", "retrain"):
        assert all(re.search(r"resources: .*\bcpu_bench=1\b", b) for b in blocks[rule]), rule
    assert all(re.search(r"resources: .*\bcpu_bench=100\b", b) for b in blocks["measure_student"])
    profile = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    assert profile["resources"]["cpu_bench"] == 100


def test_smoke_dag_plans_one_measurement_job_per_model_and_the_repeat_check(tmp_path):
    """The smoke config (measure.repeat_check: true) measures BERT-base and the main MRPC student twice, in
    separate jobs, and plans the repeatability table; every model's engines and shapes are one command."""
    proc = snakemake("-n", "-p", "--directory", str(tmp_path), "--configfile", str(REPO / ".test/config.yaml"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    counts = job_counts(proc.stdout)
    assert counts["measure_bert_base"] == counts["measure_teacher"] == 1
    assert counts["measure_student"] == 2 and counts["measure_baseline"] == 4
    assert counts["measure_student_ablation"] == 2  # beta_0 and augmented on MRPC
    # one random architecture per task, timed (and its measurement written) beside the task's searched student
    assert counts["measure_side_by_side"] == 2 and "measure_random" not in counts
    assert counts["measure_bert_base_repeat"] == counts["measure_student_repeat"] == 1
    assert counts["repeatability_table"] == 1
    request = "--engines torch onnxruntime --shapes 1x16"
    assert f"--model-kind bert-base  {request}" in proc.stdout
    assert "--out-dir results/measure/repeat/bert-base >" in proc.stdout
    assert "--out-dir results/measure/repeat/student/main/MRPC/seed0 >" in proc.stdout
    assert f"--model results/teacher/MRPC {request}" in proc.stdout  # the first task's teacher, once
    assert "--out-dir results/measure/teacher/STS-B" not in proc.stdout
    assert "--second results/measure/repeat/bert-base/torch.cpu.b1.s16.json" in proc.stdout


def test_studies_config_adds_seeded_ablations_and_transfer(tmp_path):
    proc = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(REPO / "config/config.yaml"),
                     str(REPO / "config/studies.yaml"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    counts = job_counts(proc.stdout)
    assert counts["search"] == 18 + 7 * 2 * 2  # + 7 ablations x 2 tasks x 2 seeds (effects need a seed spread)
    assert counts["augment"] == 3  # the augmented ablation's two tasks and the main setting's CoLA
    # + the 3 x 3 transfer matrix and the identity cell next to the random architectures, one per main seed
    assert counts["retrain"] == 18 + 28 + 40 + 16 + 9 and counts["fixed_architecture"] == 16
    assert "--kind fixed --op skip_connect --task SST-2 --sample 1" in proc.stdout
    assert counts["baseline"] == 18 == counts["measure_baseline"]  # BiLSTM-SOFT and truncated teacher, 9 tasks
    for table in ("ablation_table", "transfer_table"):
        assert counts[table] == 1, table


def test_paper_tasks_config_runs_the_papers_six_tasks(tmp_path):
    proc = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(REPO / "config/config.yaml"),
                     str(REPO / "config/paper_tasks.yaml"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    counts = job_counts(proc.stdout)
    assert counts["teacher"] == counts["probes"] == 6
    assert counts["search"] == 12 and counts["random_architecture"] == 30
    assert counts["retrain"] == 12 + 30 and "augment" not in counts
    for task in ("CoLA", "STS-B", "WNLI"):
        assert f"results/teacher/{task}" not in proc.stdout, task


@pytest.mark.slow
def test_paper_dag_has_the_full_teacher_dag(tmp_path):
    proc = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(REPO / "config/paper.yaml"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    counts = job_counts(proc.stdout)
    assert counts["teacher"] == counts["probes"] == 9
    assert counts["search"] == 27 + 7 * 6 * 3  # 9 tasks x 3 seeds; 7 ablations x the paper's 6 tasks x 3 seeds
    assert counts["augment"] == 9  # the main setting uses data augmentation
    # + 5 random archs per task + 6 x 6 transfer x 3 seeds + the bag-of-embeddings cell per task and seed
    assert counts["retrain"] == 27 + 126 + 9 * 5 + 6 * 6 * 3 + 9 * 3
    for table in ("ablation_table", "transfer_table", "seed_table", "efficiency_summary", "main_table"):
        assert counts[table] == 1, table
    assert counts["measure_bert_base"] == counts["measure_teacher"] == 1  # once per run, not per task
    assert counts["measure_student"] == 9 and counts["measure_baseline"] == 54  # one job per task / per model
    # the schema's default shapes (batch-1 latency at three lengths besides the throughput shape): the side-by-
    # side job times one, so the random architectures get measurement jobs of their own
    assert counts["measure_student_ablation"] == 126 and counts["measure_random"] == 9
    assert counts["measure_side_by_side"] == 9


def test_random_architectures_on_more_engines_get_a_measurement_job_of_their_own(tmp_path):
    """Where the random architectures are measured on more than PyTorch (measure.ablation_engines), the
    side-by-side job only times them, and one measure_random job per task measures every engine."""
    proc = snakemake("-n", "-p", "--directory", str(tmp_path), "--config",
                     "measure={ablation_engines: [torch, onnxruntime]}")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    counts = job_counts(proc.stdout)
    assert counts["measure_random"] == counts["measure_side_by_side"] == 8
    sst2 = next(b for b in proc.stdout.split("\nrule ") if b.startswith("measure_random:") and "task=SST-2" in b)
    folders = " ".join(f"results/measure/student/random/SST-2/seed{n}" for n in range(5))
    assert f"--seed 0 1 2 3 4 --out-dir {folders} >" in sst2
    assert "--engines torch onnxruntime " in sst2
    assert "--record " not in proc.stdout


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


# The smoke jobs are start-up bound (imports, ONNX export): one thread each lets two run at once on two
# cores, and two measurement jobs (100 cpu_bench units each) may overlap (the smoke run asserts no timing). The whole run took
# 9:54 with two threads per training job and one measurement at a time, 5:57 with one thread per job.
SMOKE = ("all", "--cores", "2", "--max-threads", "1", "--resources", "cpu_bench=200",
         "--configfile", str(REPO / ".test/config.yaml"))
# what the kill/resume test reruns: the main stages up to the retrained students
MAIN_TARGETS = ("results/tables/teacher.md", "results/tables/search.md",
                *(f"results/retrain/main/{t}/seed0/metrics.json" for t in ("MRPC", "STS-B")))
PARTIAL = (*MAIN_TARGETS, *SMOKE[1:])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, glue_dir) -> Path:
    """One uninterrupted run of the real DAG on the smoke config (shared by the tests below)."""
    root = tmp_path_factory.mktemp("smoke")
    proc = snakemake(*SMOKE, "--directory", str(root), env={"ADABERT_GLUE_DIR": str(glue_dir)}, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return root


@pytest.mark.slow
def test_smoke_run_of_the_real_workflow(smoke_run, glue_dir):
    """The real DAG (prepare -> teacher -> probes -> search -> derive -> retrain -> measure -> tables)."""
    tmp_path = smoke_run
    res = tmp_path / "results"
    table = pd.read_csv(res / "tables/teacher.csv")
    assert set(table["task"]) == {"MRPC", "STS-B"}
    assert (table["params_M"] > 20).all()  # MiniLM-L6-H384: 22.7M parameters
    assert {"task", "split", "split_kind", "main_metric", "value", "best_probe_value", "n_train", "train_time_s",
            "train_examples_per_s"} <= set(table.columns)
    probes = table[[c for c in table.columns if c.startswith("probe_L")]]
    assert (table["best_probe_value"] == probes.max(axis=1)).all()
    # the best probe minus the head, recomputed from the saved dev logits, inside its bootstrap interval
    assert np.allclose(table["best_probe_minus_head"], table["best_probe_value"] - table["value"])
    assert (table["best_probe_minus_head_ci_low"] <= table["best_probe_minus_head"]).all()
    assert (table["best_probe_minus_head"] <= table["best_probe_minus_head_ci_high"]).all()
    # the smoke caps, of the rows of the dev files (the full copy: 408 and 1,500)
    assert set(table["split_kind"]) == {f"dev subset (48 of {n_rows(glue_dir / task / 'dev.tsv'):,})"
                                        for task in ("MRPC", "STS-B")}
    for task in ("MRPC", "STS-B"):
        teacher = json.loads((res / f"teacher/{task}/metrics.json").read_text())
        assert teacher["task"] == task and teacher["n_train"] == 64 and teacher["n_labelled"] == 96
        # the students train on the whole teacher-labelled distillation set, more rows than the teacher saw
        assert json.loads((res / f"retrain/main/{task}/seed0/metrics.json").read_text())["n_train"] == 96
        assert json.loads((res / f"teacher/{task}/config.json").read_text())["task"] == task
        # recomputed from what the stages saved: the teacher's and the student's dev metrics from their saved
        # outputs and the gold labels, the genotype from the search's alpha history, the student's saved
        # outputs from its deployable folder
        check_teacher_metrics(res / f"teacher/{task}", res / f"data/{task}")
        check_derived_genotype(res / f"search/main/{task}/seed0", res / f"derive/main/{task}/seed0")
        student = res / f"retrain/main/{task}/seed0"
        recomputed = check_predictions_file(student, res / f"data/{task}")
        assert json.loads((student / "metrics.json").read_text())["main_value"] == pytest.approx(
            recomputed["f1" if task == "MRPC" else "pearson"], abs=1e-3)
        student_reproduces_its_predictions(student, res / f"data/{task}")
        assert (tmp_path / f"logs/search/main/{task}/seed0.log").is_file()
    search = pd.read_csv(res / "tables/search.csv")
    assert len(search) == 4  # main on both tasks, the two MRPC ablations
    cost = pd.read_csv(res / "tables/cost.csv")
    assert set(cost["stage"]) == {"prepare", "teacher", "probes", "augment", "search", "retrain", "baseline",
                                  "export", "measure", "total"}
    assert (cost["wall_s"] > 0).all() and (cost["peak_rss_mb"] > 0).all()
    assert cost["wall_s"].iloc[-1] == pytest.approx(cost["wall_s"].iloc[:-1].sum())
    for fig in ("searched_cells", "search_dynamics", "probes", "speedup", "pareto"):
        for ext in ("png", "pdf"):
            assert (tmp_path / f"paper/figures/{fig}.{ext}").stat().st_size > 0, (fig, ext)
    main = pd.read_csv(tmp_path / "paper/tables/main.csv")
    ours = main[main["method"] == "AdaBERT student (this run)"].iloc[0]
    retrained = json.loads((res / "retrain/main/MRPC/seed0/metrics.json").read_text())
    assert ours["MRPC_value"] == pytest.approx(retrained["main_value"])
    check_study_tables(tmp_path)
    # the repeat check: BERT-base and the main MRPC student measured twice (no timing is asserted)
    repeat = pd.read_csv(res / "tables/repeatability.csv")
    assert set(repeat["model"]) == {"bert-base", "student main/MRPC/seed0"}
    assert set(repeat["engine"]) == {"torch", "onnxruntime"}
    assert {"median_1_ms", "median_2_ms", "ratio", "within_10pct"} <= set(repeat.columns)
    refs = pd.read_csv(res / "tables/efficiency_references.csv")
    teacher = refs[refs["model"] == "teacher"]
    assert set(teacher["task"]) == {"MRPC", "STS-B"} and set(teacher["measured_on"]) == {"MRPC"}
    # the HTML report: every figure and table of the paper with its caption
    report = snakemake(*SMOKE[1:], "--directory", str(tmp_path), "--report", str(tmp_path / "report.html"),
                       env={"ADABERT_GLUE_DIR": str(glue_dir)})
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    for caption in ("Cross-task transfer (paper/tables/transfer", "Ablations (paper/tables/ablations",
                    "Seeds (paper/tables/seeds", "Efficiency per task and engine", "The main comparison"):
        assert caption in html, caption
    for name in ("speedup.png", "pareto.png", "searched_cells.png", "search_dynamics.png", "probes.png"):
        assert name in html, name
    # a second run has nothing to do: outputs are complete and up to date
    again = snakemake(*SMOKE, "-n", "--directory", str(tmp_path), env={"ADABERT_GLUE_DIR": str(glue_dir)})
    assert "Nothing to be done" in again.stdout + again.stderr


def result(root: Path, path: str) -> dict:
    return json.loads((root / "results" / path).read_text())


def check_study_tables(root: Path) -> None:
    """Every paper table of the smoke run holds the values of the result JSONs it was built from."""
    paper = root / "paper/tables"
    for name in ("main", "efficiency", "ablations", "transfer", "seeds"):
        for ext in ("md", "tex", "csv"):
            assert (paper / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    main = pd.read_csv(paper / "main.csv").set_index("method")
    bilstm = result(root, "baselines/bilstm/MRPC/seed0/metrics.json")
    assert main.loc["BiLSTM-SOFT (this run)", "MRPC_value"] == pytest.approx(bilstm["main_value"])
    truncated = next(m for m in main.index if m.startswith("Truncated teacher + KD"))
    assert main.loc[truncated, "MRPC_value"] == pytest.approx(
        result(root, "baselines/truncated/MRPC/seed0/metrics.json")["main_value"])
    random_mrpc = result(root, "retrain/random/MRPC/seed0/metrics.json")
    # random architectures start as the searched students do (retrain.init: inherit, from the same supernet)
    assert random_mrpc["init"] == result(root, "retrain/main/MRPC/seed0/metrics.json")["init"] == "inherit"
    assert main.loc["Random architectures (this run)", "MRPC_value"] == pytest.approx(random_mrpc["main_value"])
    # the bag-of-embeddings cell (baselines.fixed_cells: skip_connect) next to them, from its retrain
    fixed_mrpc = result(root, "retrain/fixed-skip_connect/MRPC/seed0/metrics.json")
    assert fixed_mrpc["genotype"]["depth"] == 1 and fixed_mrpc["init"] == "inherit"
    assert {e["op"] for node in fixed_mrpc["genotype"]["nodes"] for e in node} == {"skip_connect"}
    vs_random = pd.read_csv(paper / "searched_vs_random.csv").set_index("task")
    assert vs_random.loc["MRPC", "fixed_skip_connect_dev"] == pytest.approx(fixed_mrpc["main_value"])
    # its latencies: the searched student and the random architecture timed side by side in one job
    side = {(m["variant"], m["seed"]): m["latency_ms"] for m in result(root, "measure/side_by_side/MRPC.json")["models"]}
    assert set(side) == {("main", 0), ("random", 0)} and bool(vs_random.loc["MRPC", "latency_same_job"])
    assert vs_random.loc["MRPC", "searched_latency_ms"] == pytest.approx(side[("main", 0)])
    assert vs_random.loc["MRPC", "random_latency_median_ms"] == pytest.approx(side[("random", 0)])
    assert vs_random.loc["MRPC", "dominated_beyond_timing_noise"] in (True, False)
    # the scorecard reads the run's own tables, and the README section shows it
    card = pd.read_csv(paper / "scorecard.csv").set_index("target")
    teacher = pd.read_csv(root / "results/tables/teacher.csv")
    mrpc = teacher[(teacher["task"] == "MRPC") & teacher["main_split"]].iloc[0]
    assert card.loc["MRPC f1 >= 86", "this_run"] == f"{mrpc['value']:.1f}"
    assert bool(card.loc["MRPC f1 >= 86", "met"]) == (mrpc["value"] >= 86)
    pareto = card.loc["Pareto-dominated by a random architecture on <= 2 tasks", "this_run"]
    assert pareto.startswith(f"{int(vs_random['pareto_dominated'].sum())} of {len(vs_random)}")
    section = (root / "paper/README_results.md").read_text()
    assert "### This run against its targets" in section and "### Cost of this run" in section
    total = pd.read_csv(root / "results/tables/cost.csv").set_index("stage").loc["total"]
    assert f"{int(total['jobs'])} jobs, {total['wall_s']:,.0f} s of job time" in section

    ablations = pd.read_csv(paper / "ablations.csv").set_index(["variant", "task"])
    assert set(ablations.index) == {("main", "MRPC"), ("beta_0", "MRPC"), ("augmented", "MRPC")}
    for variant in ("main", "beta_0", "augmented"):
        value = result(root, f"retrain/{variant}/MRPC/seed0/metrics.json")["main_value"]
        assert ablations.loc[(variant, "MRPC"), "mean"] == pytest.approx(value), variant
    assert ablations.loc[("beta_0", "MRPC"), "change"] == "loss.beta=0.0"
    augmented = result(root, "retrain/augmented/MRPC/seed0/metrics.json")
    assert augmented["n_train"] > result(root, "retrain/main/MRPC/seed0/metrics.json")["n_train"]

    transfer = pd.read_csv(paper / "transfer.csv").set_index(["searched_on", "evaluated_on"])
    assert len(transfer) == 2 * 2 + 2  # the 2 x 2 matrix + the random reference row
    for source in ("MRPC", "STS-B"):
        for target in ("MRPC", "STS-B"):
            value = result(root, f"retrain/from-{source}/{target}/seed0/metrics.json")["main_value"]
            assert transfer.loc[(source, target), "mean"] == pytest.approx(value), (source, target)
    assert transfer.loc[("random", "STS-B"), "mean"] == pytest.approx(
        result(root, "retrain/random/STS-B/seed0/metrics.json")["main_value"])
    genotype = result(root, "retrain/from-MRPC/STS-B/seed0/metrics.json")["genotype"]
    assert genotype == json.loads((root / "results/derive/main/MRPC/seed0/genotype.json").read_text())

    seeds = pd.read_csv(paper / "seeds.csv").set_index(["model", "task"])
    assert seeds.loc[("AdaBERT (searched)", "MRPC"), "mean"] == pytest.approx(
        result(root, "retrain/main/MRPC/seed0/metrics.json")["main_value"])
    assert seeds.loc[("BiLSTM-SOFT", "STS-B"), "mean"] == pytest.approx(
        result(root, "baselines/bilstm/STS-B/seed0/metrics.json")["main_value"])

    efficiency = pd.read_csv(paper / "efficiency.csv").set_index(["task", "device", "model"])
    measured = result(root, "measure/student/main/MRPC/seed0/torch.cpu.b1.s16.json")
    assert efficiency.loc[("MRPC", "cpu", "AdaBERT"), "torch_samples_per_s"] == pytest.approx(
        measured["throughput_samples_per_s"])
    measured = result(root, "measure/baseline/bilstm/MRPC/seed0/onnxruntime.cpu.b1.s16.json")
    assert efficiency.loc[("MRPC", "cpu", "BiLSTM-SOFT"), "onnxruntime_samples_per_s"] == pytest.approx(
        measured["throughput_samples_per_s"])
    assert efficiency.loc[("MRPC", "cpu", "BERT-base"), "torch_speedup_vs_bert"] == pytest.approx(1.0)


TIMING_WORDS = ("time", "per_s", "rss", "machine", "throughput", "latency", "gflops", "peak")


def is_timing(key: str) -> bool:
    """Keys that hold timings or machine readings (seconds, MB, rates), which no two runs share."""
    return key.endswith(("_s", "_mb")) or any(w in key for w in TIMING_WORDS)


def without_timings(obj):
    """A result JSON without the fields that are timings or machine readings (everything else must agree)."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if not is_timing(k)}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def makefile_list(name: str) -> list[str]:
    """The words of a ``NAME := ...`` variable of the Makefile (continued lines joined)."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    return re.search(rf"^{name} :=(.*)$", text, re.M).group(1).split()


@pytest.mark.slow
def test_make_readme_runs_no_stage_of_a_finished_run(smoke_run):
    """`make readme` (the Makefile's snakemake options) on a finished run, under a config that differs from
    the run's (no ADABERT_GLUE_DIR): it plans no job of a stage, while a plain snakemake call would rerun
    the data preparation and everything after it."""
    rules = makefile_list("REPORT_RULES")
    listed = snakemake("--list-rules", "--configfile", str(REPO / ".test/config.yaml")).stdout.split()
    assert set(rules) <= set(listed), set(rules) - set(listed)
    assert not {"prepare", "teacher", "search", "retrain", "export_student", "measure_student"} & set(rules)
    env = {k: v for k, v in os.environ.items() if k != "ADABERT_GLUE_DIR"}
    options = ("--configfile", str(REPO / ".test/config.yaml"), "--directory", str(smoke_run), "-n")
    target = (*options, "--", "paper/README_results.md")
    guarded = subprocess.run([str(Path(BIN) / "snakemake"), "-s", str(REPO / "Snakefile"), "--cores", "1",
                              "--rerun-triggers", "mtime", "--allowed-rules", *rules, *target],
                             cwd=smoke_run, env=env, capture_output=True, text=True, timeout=300)
    assert guarded.returncode == 0, guarded.stderr[-3000:]
    planned = job_counts(guarded.stdout) if "Job stats:" in guarded.stdout else {}
    assert set(planned) <= set(rules), planned
    plain = subprocess.run([str(Path(BIN) / "snakemake"), "-s", str(REPO / "Snakefile"), "--cores", "1", *target],
                           cwd=smoke_run, env=env, capture_output=True, text=True, timeout=300)
    assert job_counts(plain.stdout).get("prepare", 0) > 0, plain.stdout[-3000:]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_results_and_runs_are_deterministic(smoke_run, tmp_path, glue_dir):
    """Kill the workflow (SIGKILL, the whole process group) while a search job runs, unlock and rerun it:
    it completes, keeps what was already computed, and equals the uninterrupted run apart from timings."""
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", ""), "ADABERT_GLUE_DIR": str(glue_dir)}
    cmd = [str(Path(BIN) / "snakemake"), "-s", str(REPO / "Snakefile"), *PARTIAL, "--directory", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    search_log = tmp_path / "logs/search/main/MRPC/seed0.log"
    search_out = tmp_path / "results/search/main/MRPC/seed0/metrics.json"
    deadline = time.monotonic() + 900
    while not (search_log.exists() and not search_out.exists()):
        assert proc.poll() is None, "the workflow ended before its search stage could be interrupted"
        assert time.monotonic() < deadline, "no search job started"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not search_out.exists()
    teacher = tmp_path / "results/teacher/MRPC/metrics.json"
    before = teacher.stat().st_mtime_ns

    unlock = snakemake(*PARTIAL, "--directory", str(tmp_path), "--unlock", env={"ADABERT_GLUE_DIR": str(glue_dir)})
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    rerun = snakemake(*PARTIAL, "--directory", str(tmp_path), env={"ADABERT_GLUE_DIR": str(glue_dir)}, timeout=1200)
    assert rerun.returncode == 0, rerun.stderr[-5000:]
    assert teacher.stat().st_mtime_ns == before  # computed before the kill: kept, not recomputed

    a, b = smoke_run / "results", tmp_path / "results"
    for task in ("MRPC", "STS-B"):
        genotype = f"derive/main/{task}/seed0/genotype.json"
        assert (b / genotype).read_bytes() == (a / genotype).read_bytes(), task
        for result in (f"teacher/{task}/metrics.json", f"probes/{task}/probes.json",
                       f"search/main/{task}/seed0/metrics.json", f"retrain/main/{task}/seed0/metrics.json"):
            assert without_timings(json.loads((b / result).read_text())) == \
                without_timings(json.loads((a / result).read_text())), result
    for table in ("teacher", "search"):
        cols = [c for c in pd.read_csv(a / f"tables/{table}.csv").columns if not is_timing(c)]
        pd.testing.assert_frame_equal(pd.read_csv(b / f"tables/{table}.csv")[cols],
                                      pd.read_csv(a / f"tables/{table}.csv")[cols])
