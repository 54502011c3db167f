"""The benchmark harnesses run and write their reports (tiny shapes; no assertion on any timing value)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from adabert.nas.genotype import Genotype
from conftest import REPO


def test_search_throughput_benchmark_writes_its_report(tmp_path):
    out = tmp_path / "search_throughput.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/search_throughput.py"), "--out", str(out), "--batch-size", "2",
         "--width", "8", "--k-max", "2", "--vocab-size", "1200", "--teacher-dim", "16", "--teacher-layers", "2",
         "--single-steps", "2", "--mixed-steps", "2", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert [r["execution"] for r in report["results"]] == ["single_path", "mixed"]
    for r in report["results"]:
        assert r["steps"] == 2 and r["step_s"] > 0 and r["peak_rss_mb"] > 0
        assert 1 <= r["mean_depth"] <= 2
    assert report["settings"]["width"] == 8 and report["machine"]["threads"] == 1
    assert report["speedup_single_over_mixed"] > 0


def test_teacher_sweep_imports_a_runs_teachers_as_rows(tmp_path):
    """--from-run: each teacher of a results folder becomes a row with its recipe and dev curve; rerunning
    with the same label replaces the rows instead of adding duplicates."""
    for task, init, curve in (("RTE", "MNLI", [61.37, 65.34]), ("CoLA", None, [2.57, 28.8])):
        folder = tmp_path / "results/teacher" / task
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({
            "task": task, "learning_rate": 5e-5, "epochs": 2.0, "n_train": 100, "init_from": init,
            "precision": "fp32", "main_metric": "accuracy", "dev_per_epoch": curve, "main_value": max(curve),
            "train_time_s": 12.34}))
    out, md = tmp_path / "sweep.json", tmp_path / "sweep.md"
    cmd = [sys.executable, str(REPO / "benchmarks/teacher_sweep.py"), "--from-run", f"{tmp_path / 'results'}:B: a run",
           "--note", "a note", "--out", str(out), "--md", str(md)]
    for _ in range(2):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    runs = json.loads(out.read_text())["runs"]
    assert sorted((r["task"], r["setting"], r["best"]) for r in runs) == [("CoLA", "B: a run", 28.8),
                                                                          ("RTE", "B: a run", 65.34)]
    text = md.read_text()
    assert "61.4 / 65.3" in text and "pretrained" in text and text.count("a note") == 1


def test_job_parallelism_benchmark_writes_its_report(tmp_path):
    """Each layout runs its processes (one rate each) and the aggregate is their sum."""
    out = tmp_path / "job_parallelism.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/job_parallelism.py"), "--out", str(out), "--glue-dir",
         str(REPO / "tests/data/glue"), "--cores", "2", "--workloads", "search", "--search-steps", "1",
         "--search-batch", "2", "--search-width", "8"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert [(r["layout"], len(r["rates"])) for r in report["results"]] == [("1x2", 1), ("1x1", 1), ("2x1", 2)]
    for r in report["results"]:
        assert r["aggregate"] == sum(r["rates"]) and all(rate > 0 for rate in r["rates"])
    assert set(report["ratios"]["search"]) == {"2x1 / 1x2", "1x2 / 1x1 (thread scaling)"}


def test_retrain_throughput_benchmark_times_both_orders(mrpc_small, tmp_path):
    """Each depth gets a shuffled and a length-grouped arm on the prepared split; grouping never pads more."""
    out = tmp_path / "retrain_throughput.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/retrain_throughput.py"), "--data", str(mrpc_small["data_dir"]),
         "--depths", "1", "2", "--steps", "2", "--warmup", "1", "--batch-size", "8", "--width", "16",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert [(r["depth"], r["order"]) for r in report["rows"]] == [
        (1, "shuffled"), (1, "length_grouped"), (2, "shuffled"), (2, "length_grouped")]
    assert report["task"] == "MRPC" and report["n_train"] == 128 and report["threads"] == 1
    for shuffled, grouped in zip(report["rows"][::2], report["rows"][1::2]):
        assert grouped["mean_trimmed_length"] <= shuffled["mean_trimmed_length"]
        assert grouped["speedup_vs_shuffled"] > 0 and shuffled["examples_per_s"] > 0


def test_optimizer_step_benchmark_times_both_kernels_on_the_teacher_and_a_student(mrpc_small, tmp_path):
    """The loop and the fused AdamW arms start alike and end within rounding of each other (same rule)."""
    out = tmp_path / "optimizer_step.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/optimizer_step.py"), "--results",
         str(mrpc_small["data_dir"].parent.parent), "--task", "MRPC", "--steps", "2", "--repeats", "2",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["task"] == "MRPC" and report["machine"]["threads"] == 1
    assert report["teacher"]["params"] > 20_000_000 > report["student"]["params"] > 1_000_000
    for model in ("teacher", "student"):
        arms = report[model]
        assert arms["loop"]["train"]["steps"] == arms["fused"]["train"]["steps"] == 2
        assert arms["step_speedup"] == round(arms["loop"]["step_s"] / arms["fused"]["step_s"], 2)
        # two steps of the same update: far below what the steps moved the weights
        assert arms["mean_param_difference"] < 0.01 * arms["mean_param_change"], model


def test_search_arms_benchmark_runs_both_heads_through_search_and_retrain(mrpc_small, tmp_path):
    """Each arm searches with its value of the key (here the head: the derived student carries it), and
    both arms retrain every seed."""
    import yaml

    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(mrpc_small["cfg"]))
    out = tmp_path / "pair_head.json"
    out.write_text(json.dumps({"benchmark": "search_arms", "key": "search.pair_head", "tasks": {"RTE": {"task": "RTE"}},
                               "settings": {"search.alpha_weight_decay": 0}, "wall_s": 1.0}))
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/search_arms.py"), "--results", str(mrpc_small["data_dir"].parents[1]),
         "--key", "search.pair_head", "--values", "mean", "interaction", "--tasks", "MRPC", "--seeds", "0",
         "--search-seeds", "0", "1", "--set", "search.alpha_weight_decay=0", "--jobs", "1", "--config", str(cfg_path),
         "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    full = json.loads(out.read_text())
    tasks = full["tasks"]
    assert full["settings"] == {"search.alpha_weight_decay": 0}
    assert set(tasks) == {"RTE", "MRPC"}  # an earlier report of the same key and settings keeps its tasks
    report = tasks["MRPC"]
    assert {h: a["head"] for h, a in report["arms"].items()} == {"mean": "mean", "interaction": "interaction"}
    for name, arm in report["arms"].items():  # one search per search seed, each retrained once (retrain seed 0)
        assert [s["seed"] for s in arm["searches"]] == [0, 1]
        assert [v for s in arm["searches"] for v in s["dev"]] == arm["values"]
        a, b = (Genotype.from_dict(s["genotype"]) for s in arm["searches"])
        within = full["adaptivity"][name]["within a task (across seeds)"]
        assert within["n"] == 1 and within["edges_mean"] == a.distance(b)["edges"]
        assert full["adaptivity"][name]["across tasks"]["n"] == 0  # MRPC only: no pair across tasks
    assert {h: a["value"] for h, a in report["arms"].items()} == {"mean": "mean", "interaction": "interaction"}
    for arm in report["arms"].values():
        assert len(arm["values"]) == 2 and arm["mean"] == pytest.approx(sum(arm["values"]) / 2)
    assert report["delta"] == pytest.approx(report["arms"]["interaction"]["mean"] - report["arms"]["mean"]["mean"])


def test_majority_class_benchmark_scores_the_constant_answers(mrpc_small, tmp_path):
    """Always answering the dev set's most frequent class scores its share as accuracy; F1 of always
    answering the positive class is 2p / (1 + p) with p that share (MRPC: paraphrase is the majority)."""
    from safetensors.torch import load_file

    results = mrpc_small["data_dir"].parents[1]
    out = tmp_path / "majority.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/majority_class.py"), "--results", str(results),
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())["tasks"]["MRPC"]
    gold = load_file(mrpc_small["data_dir"] / f"{report['split']}.safetensors")["labels"]
    share = float((gold == report["eval_majority_label"]).float().mean())
    assert report["n"] == gold.shape[0] and report["eval_majority"]["accuracy"] == pytest.approx(100 * share)
    if report["eval_majority_label"] == 1:
        assert report["eval_majority"]["f1"] == pytest.approx(100 * 2 * share / (1 + share))
    else:
        assert report["eval_majority"]["f1"] == 0.0


def run_folders(mrpc_small: dict, tmp_path) -> tuple:
    """The small config as a file and a run's results folder with MRPC's data, teacher and probes (symlinks)."""
    import yaml

    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(mrpc_small["cfg"]))
    results = tmp_path / "results"
    for stage in ("data", "teacher", "probes"):
        (results / stage).mkdir(parents=True)
        (results / stage / "MRPC").symlink_to(mrpc_small[f"{stage}_dir"])
    return cfg_path, results


def test_fixed_cells_benchmark_retrains_one_op_cells_against_the_runs_students(mrpc_small, mrpc_searched, tmp_path):
    """Each fixed cell is cut out of the task's main supernet and retrained per seed; the run's searched and
    random students are read as references."""
    cfg_path, results = run_folders(mrpc_small, tmp_path)
    (results / "search" / "main" / "MRPC").mkdir(parents=True)
    (results / "search" / "main" / "MRPC" / "seed0").symlink_to(mrpc_searched["root"] / "search")
    for variant, values in (("main", [70.0, 72.0]), ("random", [60.0, 65.0, 80.0])):
        for n, value in enumerate(values):
            folder = results / "retrain" / variant / "MRPC" / f"seed{n}"
            folder.mkdir(parents=True)
            (folder / "metrics.json").write_text(json.dumps({"main_value": value}))
    out = tmp_path / "fixed_cells.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/fixed_cells.py"), "--results", str(results), "--cells",
         "identity=skip_connect", "conv3=std_conv_3", "--tasks", "MRPC", "--seeds", "0", "--jobs", "1",
         "--set", "retrain.max_steps=2", "--config", str(cfg_path), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())["tasks"]["MRPC"]
    assert report["searched"]["mean"] == 71.0 and report["random"]["median"] == 65.0
    identity, conv3 = report["cells"]["identity"], report["cells"]["conv3"]
    assert identity["op"] == "skip_connect" and identity["depth"] == 1 and len(identity["values"]) == 1
    assert identity["steps"] == conv3["steps"] == 2  # --set reaches the retrain
    width, nodes = mrpc_small["cfg"]["search"]["width"], mrpc_small["cfg"]["search"]["nodes"]
    # the conv cell adds 2 convolutions (k=3, with bias) and their BatchNorm per node to the same embedding and head
    assert conv3["params"] - identity["params"] == nodes * 2 * (width * width * 3 + width + 2 * width)
    assert identity["values"] == [identity["mean"]] and conv3["values"] == [conv3["mean"]]
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks/fixed_cells.py"), "--results", str(results),
                          "--cells", "x=conv9", "--tasks", "MRPC", "--jobs", "1", "--config", str(cfg_path),
                          "--out", str(tmp_path / "bad.json")], capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "'conv9' is not an op of the search space" in bad.stderr


def test_retrain_arms_retrains_a_runs_architectures_under_an_override(mrpc_small, mrpc_searched, tmp_path):
    """The searched, random and fixed folders of a run are retrained with the override (here from scratch, 2 steps),
    each kind reported next to the run's own retrains."""
    from adabert import config
    from adabert.architectures import run_fixed_architecture, run_random_architecture

    cfg_path, results = run_folders(mrpc_small, tmp_path)
    (results / "derive" / "main" / "MRPC").mkdir(parents=True)
    (results / "derive" / "main" / "MRPC" / "seed0").symlink_to(mrpc_searched["root"] / "derive")
    arch_cfg = config.stage_config(mrpc_small["cfg"], "random_architecture")
    for n in (0, 1):
        run_random_architecture(arch_cfg, "MRPC", n, mrpc_searched["root"] / "search", mrpc_small["data_dir"],
                                results / "architectures" / "random" / "MRPC" / f"seed{n}")
    run_fixed_architecture(arch_cfg, "MRPC", "skip_connect", 0, mrpc_searched["root"] / "search", mrpc_small["data_dir"],
                           results / "architectures" / "fixed-skip_connect" / "MRPC" / "seed0")
    run = results / "retrain" / "main" / "MRPC" / "seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"main_value": 70.0}))
    out = tmp_path / "retrain_arms.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/retrain_arms.py"), "--results", str(results), "--tasks", "MRPC",
         "--set", "retrain.init=scratch", "retrain.max_steps=2", "--jobs", "1", "--config", str(cfg_path),
         "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["settings"] == {"retrain.init": "scratch", "retrain.max_steps": 2}
    kinds = report["tasks"]["MRPC"]["kinds"]
    assert set(kinds) == {"main", "random", "fixed-skip_connect"}
    assert all(k["init"] == "scratch" and k["steps"] == 2 for k in kinds.values())
    assert [kinds[v]["retrained"]["n"] for v in ("main", "random", "fixed-skip_connect")] == [1, 2, 1]
    assert kinds["main"]["run"]["values"] == [70.0] and kinds["random"]["run"]["n"] == 0


def test_random_at_depth_draws_cells_of_the_given_depth_from_the_runs_supernet(mrpc_small, mrpc_searched, tmp_path):
    """Every random architecture has the requested depth and inherits the supernet's weights; the searched
    students' standing among them is counted from the run's retrains."""
    cfg_path, results = run_folders(mrpc_small, tmp_path)
    (results / "search" / "main" / "MRPC").mkdir(parents=True)
    (results / "search" / "main" / "MRPC" / "seed0").symlink_to(mrpc_searched["root"] / "search")
    for n, value in enumerate([-1.0, 101.0]):  # the searched students' mean: 50.0
        folder = results / "retrain" / "main" / "MRPC" / f"seed{n}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"main_value": value}))
    out = tmp_path / "random_at_depth.json"
    cmd = [sys.executable, str(REPO / "benchmarks/random_at_depth.py"), "--results", str(results), "--tasks", "MRPC",
           "--samples", "2", "--set", "retrain.max_steps=2", "--jobs", "1", "--config", str(cfg_path), "--out"]
    proc = subprocess.run([*cmd, str(out), "--depth", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    task = report["tasks"]["MRPC"]
    assert report["depth"] == 2 and [c["genotype"]["depth"] for c in task["cells"]] == [2, 2]
    assert all(c["init"] == "inherit" and c["steps"] == 2 for c in task["cells"])
    assert task["cells"][0]["genotype"] != task["cells"][1]["genotype"]
    values = [c["dev"] for c in task["cells"]]
    assert task["random_at_depth"]["values"] == values and task["searched"]["mean"] == 50.0
    standing = task["searched_standing"]
    assert standing["n"] == 2 and standing["below"] == sum(v < 50.0 for v in values)
    assert standing["below"] + standing["equal"] + standing["above"] == 2
    assert report["searched_at_or_above_median"]["n"] == int(50.0 >= task["random_at_depth"]["median"])
    bad = subprocess.run([*cmd, str(tmp_path / "bad.json"), "--depth", "0"], capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "--depth must be >= 1, got 2 and 0" in bad.stderr


def test_an_error_inside_a_benchmark_worker_ends_the_run_with_its_message(tmp_path):
    """A worker process that rejects its arguments (SystemExit) must fail the run, not leave the pool waiting."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/retrain_arms.py"), "--results", str(tmp_path / "none"),
                           "--tasks", "MRPC", "--jobs", "1", "--out", str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--results: no derive folder" in proc.stderr
    assert not (tmp_path / "out.json").exists()


def test_benchmarks_read_the_folders_the_workflow_trains_on(tmp_path, monkeypatch):
    """A task the main variant augments is read from the augment stage's folders, as the workflow's rules read
    it; the other tasks from their own stages' folders."""
    from adabert import config

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from common import task_folders

    cfg = config.resolve({"tasks": ["CoLA", "MRPC"], "variants": {"main": {"augment": ["CoLA"]}}})
    assert task_folders(tmp_path, cfg, "CoLA") == {k: tmp_path / "augment" / "CoLA" / k for k in ("data", "teacher", "probes")}
    assert task_folders(tmp_path, cfg, "MRPC") == {k: tmp_path / k / "MRPC" for k in ("data", "teacher", "probes")}


def test_int8_calibration_rows_benchmark_writes_its_report(tmp_path):
    """Each row count calibrates a static int8 graph of the same model (a tiny student here), which is built
    and timed: one result per count, with the calibration it used."""
    from adabert.nas.ops import OP_NAMES
    from adabert.student import Student

    nodes = [[(0, "std_conv_3"), (1, "max_pool_3")], [(2, "skip_connect"), (0, "avg_pool_3")]]
    genotype = Genotype(depth=1, nodes=nodes, ops=list(OP_NAMES), width=16, k_max=3)
    folder = tmp_path / "student"
    Student(genotype, vocab_size=200, max_positions=32, num_labels=2).save(folder)
    out = tmp_path / "calibration.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/int8_calibration_rows.py"), "--kind", "student", "--model",
         str(folder), "--rows", "2", "6", "--batch", "4", "--seq-len", "16", "--threads", "1", "--min-seconds",
         "0", "--repeats", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert [r["rows"] for r in report["results"]] == [2, 6]
    assert [r["calibration"]["rows"] for r in report["results"]] == [2, 6]
    assert all(len(r["latency_round_medians_s"]) == 2 for r in report["results"])
    assert report["settings"]["seq_len"] == 16 and report["machine"]["cpu_model"]


def test_supernet_proxy_scores_a_runs_architectures_with_inherited_weights(mrpc_small, mrpc_searched, tmp_path):
    """Every architecture cut from the first search's supernet is scored with its inherited weights on the
    search's selection rows: the searched student's score is the search's own best-round dev loss, the
    correlation is that of the proxy losses with the retrained metrics, and the choice is the lowest loss."""
    from scipy.stats import spearmanr

    from adabert import config
    from adabert.architectures import run_fixed_architecture, run_random_architecture

    _, results = run_folders(mrpc_small, tmp_path)
    for stage, sub in (("search", "search"), ("derive", "derive")):
        (results / stage / "main" / "MRPC").mkdir(parents=True)
        (results / stage / "main" / "MRPC" / "seed0").symlink_to(mrpc_searched["root"] / sub)
    arch_cfg = config.stage_config(mrpc_small["cfg"], "random_architecture")
    for n in (0, 1, 2):
        run_random_architecture(arch_cfg, "MRPC", n, mrpc_searched["root"] / "search", mrpc_small["data_dir"],
                                results / "architectures" / "random" / "MRPC" / f"seed{n}")
    run_fixed_architecture(arch_cfg, "MRPC", "skip_connect", 0, mrpc_searched["root"] / "search", mrpc_small["data_dir"],
                           results / "architectures" / "fixed-skip_connect" / "MRPC" / "seed0")
    retrained = {("main", 0): 70.0, ("random", 0): 60.0, ("random", 1): 65.0, ("random", 2): 80.0,
                 ("fixed-skip_connect", 0): 75.0}
    for (variant, n), value in retrained.items():
        folder = results / "retrain" / variant / "MRPC" / f"seed{n}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"main_value": value}))
    out = tmp_path / "proxy.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/supernet_proxy.py"), "--results", str(results),
                           "--tasks", "MRPC", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    task = json.loads(out.read_text())["tasks"]["MRPC"]
    rows = task["rows"]
    assert [(r["variant"], r["sample"]) for r in rows] == [("main", 0), ("random", 0), ("random", 1), ("random", 2),
                                                          ("fixed-skip_connect", 0)]
    assert rows[0]["proxy_loss"] == pytest.approx(mrpc_searched["summary"]["best_dev_loss"], rel=1e-5)
    assert [r["retrained_main"] for r in rows] == [retrained[(r["variant"], r["sample"])] for r in rows]
    losses = [r["proxy_loss"] for r in rows]
    assert task["spearman_proxy_loss_vs_retrained"] == pytest.approx(
        spearmanr(losses, [r["retrained_main"] for r in rows]).statistic)
    best = rows[losses.index(min(losses))]
    assert task["chosen_by_proxy"] == {k: best[k] for k in ("variant", "sample", "retrained_main")}
    assert task["chosen_at_or_above_median"] == (best["retrained_main"] >= 70.0)


def test_searched_vs_random_dev_reads_a_runs_retrains_and_searches(tmp_path):
    """Known answers from a constructed run folder: the searched mean against the random median, the
    fixed cell's mean, and per search its depth, kept convolutions and final op confidence; --targets
    names exactly the retrains the report reads."""
    from adabert.nas.genotype import fixed_genotype

    results = tmp_path / "results"
    ops = ["std_conv_3", "max_pool_3", "skip_connect", "none"]
    values = {("main", 0): 70.0, ("main", 1): 74.0, ("random", 0): 71.0, ("random", 1): 73.0, ("random", 2): 80.0,
              ("fixed-skip_connect", 0): 60.0, ("fixed-skip_connect", 1): 62.0}
    for (variant, n), value in values.items():
        folder = results / "retrain" / variant / "SST-2" / f"seed{n}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"main_value": value, "main_metric": "accuracy"}))
    for seed, op in ((0, "std_conv_3"), (1, "max_pool_3")):
        search = results / "search" / "main" / "SST-2" / f"seed{seed}"
        search.mkdir(parents=True)
        (search / "metrics.json").write_text(json.dumps({
            "schedule": {"total_steps": 3000, "alpha_lr": 0.01}, "total_time_s": 12.0,
            "final": {"max_op_prob_mean": 0.5 + seed / 10, "depth_max_prob": 0.9}}))
        derive = results / "derive" / "main" / "SST-2" / f"seed{seed}"
        derive.mkdir(parents=True)
        genotype = fixed_genotype(op, 2, ops, nodes=3, width=16, k_max=4)
        (derive / "genotype.json").write_text(json.dumps(genotype.to_dict()))
    out = tmp_path / "report.json"
    script = [sys.executable, str(REPO / "benchmarks/searched_vs_random_dev.py"), "--tasks", "SST-2"]
    proc = subprocess.run([*script, "--results", f"long={results}", "--out", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    task = json.loads(out.read_text())["runs"]["long"]["tasks"]["SST-2"]
    assert task["searched_mean"] == 72.0 and task["random_median"] == 73.0 and not task["at_or_above_median"]
    assert (task["random_min"], task["random_max"]) == (71.0, 80.0)
    assert task["fixed"]["fixed-skip_connect"]["mean"] == 61.0
    assert [(s["depth"], s["convolutions_per_cell"], s["max_op_prob_mean"], s["steps"]) for s in task["searches"]] == [
        (2, 6, 0.5, 3000), (2, 0, 0.6, 3000)]
    listed = subprocess.run([*script, "--targets", "--samples", "3"], capture_output=True, text=True, timeout=300)
    assert sorted(listed.stdout.split()) == sorted(
        f"results/retrain/{v}/SST-2/seed{n}/metrics.json" for v, n in values)


def test_uncapped_cells_derives_the_selected_round_with_and_without_the_cap(mrpc_searched, tmp_path):
    """Without a cap the uncapped cell is the derive stage's own genotype; with a cap of 0 the capped cell
    has no parameter-free edge while the uncapped count stays that of the logits."""
    import shutil

    from adabert.nas.genotype import parameter_free_count

    results = tmp_path / "results"
    searches = {"none": None, "zero": 0}
    for name, cap in searches.items():
        folder = results / "search" / "main" / name / "seed0"
        shutil.copytree(mrpc_searched["root"] / "search", folder)
        cfg = json.loads((folder / "config.json").read_text())
        cfg["search"]["max_parameter_free"] = cap
        (folder / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "uncapped.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/uncapped_cells.py"), "--results", str(results),
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["task"]: r for r in json.loads(out.read_text())["searches"]}
    derived = json.loads((mrpc_searched["root"] / "derive" / "genotype.json").read_text())
    cell = [[[e["input"], e["op"]] for e in node] for node in derived["nodes"]]
    expected = parameter_free_count([[tuple(e) for e in node] for node in cell])
    assert rows["none"]["cell_uncapped"] == cell and rows["zero"]["cell_uncapped"] == cell
    assert rows["none"]["parameter_free"] == rows["none"]["parameter_free_uncapped"] == expected
    assert rows["zero"]["parameter_free"] == 0 and rows["zero"]["parameter_free_uncapped"] == expected
    assert rows["none"]["edges"] == sum(len(node) for node in cell)
    assert expected > 0, "the small search kept no parameter-free edge: the cap of 0 would test nothing"


def test_task_adaptivity_permutation_benchmark_reads_a_pair_table(tmp_path):
    """Four searches whose cells follow the task exactly: the gap is 6 edges, p about 1/3 (see the unit test)."""
    keys = [("A", 0), ("A", 1), ("B", 0), ("B", 1)]
    rows = ["task_a,seed_a,task_b,seed_b,edges,depth,same_task"]
    rows += [f"{a[0]},{a[1]},{b[0]},{b[1]},{0 if a[0] == b[0] else 6},0,{a[0] == b[0]}"
             for i, a in enumerate(keys) for b in keys[i + 1:]]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "perm.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/task_adaptivity_permutation.py"),
                           "--pairs", str(tmp_path / "pairs.csv"), "--permutations", "600", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["observed_gap"] == 6.0 and report["searches"] == 4 and report["n_permutations"] == 600
    assert report["p_value"] == pytest.approx(1 / 3, abs=0.06)
