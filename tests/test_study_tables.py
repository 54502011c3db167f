"""Table builders of the studies (ablations, transfer, seeds, efficiency summary) on result records."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from adabert.errors import AdabertError
from adabert.report.ablation_table import build_ablation_table, describe, write_ablation_table
from adabert.report.cost_table import write_cost_table
from adabert.report.efficiency_summary import build_efficiency_summary
from adabert.report.seed_table import build_seed_table
from adabert.report.transfer_table import build_transfer_table

SPLITS = {"dev": {"official": True}}


def rec(variant, task, seed, value, depth=2, params=5e6, **extra):
    return {"variant": variant, "task": task, "seed": seed, "main_value": value, "main_split": "dev",
            "main_metric": "f1", "splits": SPLITS, "depth": depth, "params": params, **extra}


def test_describe_names_every_override():
    assert describe({}) == "(main setting)"
    assert describe({"loss": {"beta": 0.0, "gamma": 0.5}, "augment": True}) == \
        "loss.beta=0.0, loss.gamma=0.5, augmented data"
    assert describe({"loss": {"kd": "final"}, "search": {"fixed_depth": 3}}) == "search.fixed_depth=3, loss.kd=final"


def test_ablation_table_means_and_deltas(tmp_path):
    results = [rec("main", "MRPC", 0, 80.0), rec("main", "MRPC", 1, 82.0), rec("main", "RTE", 0, 55.0),
               rec("beta_0", "MRPC", 0, 78.0, depth=5, params=8e6)]
    eff = pd.DataFrame([{"variant": "beta_0", "task": "MRPC", "engine": "torch", "device": "cpu", "batch": 128,
                         "seq_len": 128, "speedup_vs_bert": 40.0, "seed": 0}])
    df, shown = build_ablation_table(results, eff, {"main": {}, "beta_0": {"loss": {"beta": 0.0}}}, "main")
    df = df.set_index(["variant", "task"])
    assert ("main", "RTE") not in df.index  # only the tasks an ablation ran on
    assert df.loc[("main", "MRPC"), "mean"] == 81.0 and df.loc[("main", "MRPC"), "n_seeds"] == 2
    assert df.loc[("beta_0", "MRPC"), "delta_vs_main"] == pytest.approx(-3.0)
    assert df.loc[("beta_0", "MRPC"), "speedup_vs_bert_mean"] == 40.0
    assert shown.set_index("variant").loc["main", "MRPC (f1)"] == "81.0 ± 1.4 [n=2]"
    with pytest.raises(AdabertError, match="no ablation"):
        build_ablation_table(results[:3], eff, {"main": {}}, "main")
    paths = []
    for i, r in enumerate(results):
        p = tmp_path / f"{i}.json"
        p.write_text(pd.Series(r).to_json())
        paths.append(p)
    eff.to_csv(tmp_path / "eff.csv", index=False)
    write_ablation_table(paths, tmp_path / "eff.csv", {"main": {}, "beta_0": {"loss": {"beta": 0.0}}}, "main",
                         tmp_path / "out" / "ablations")
    for ext in ("md", "tex", "csv"):
        assert (tmp_path / "out" / f"ablations.{ext}").stat().st_size > 0
    assert "loss.beta=0.0" in (tmp_path / "out" / "ablations.tex").read_text()


def test_transfer_matrix_with_random_reference_row():
    results = [rec("from-MRPC", "MRPC", 0, 80.0), rec("from-MRPC", "RTE", 0, 50.0),
               rec("from-RTE", "MRPC", 0, 75.0), rec("from-RTE", "RTE", 0, 56.0),
               rec("random", "MRPC", 0, 70.0), rec("random", "MRPC", 1, 72.0), rec("random", "RTE", 0, 52.0)]
    df, shown = build_transfer_table(results)
    df = df.set_index(["searched_on", "evaluated_on"])
    assert df.loc[("RTE", "MRPC"), "diff_vs_own"] == pytest.approx(-5.0)
    assert df.loc[("random", "MRPC"), "mean"] == 71.0 and df.loc[("random", "MRPC"), "n"] == 2
    assert shown.iloc[0, 1] == "**80.0**"  # diagonal in bold
    assert list(shown["architecture"]) == ["searched on MRPC", "searched on RTE", "random architectures (reference)"]
    with pytest.raises(AdabertError, match="transfer"):
        build_transfer_table(results[4:])


def test_seed_table_keeps_main_and_baselines_only():
    teacher = {"task": "MRPC", "main_value": 85.0, "main_split": "dev", "main_metric": "f1", "splits": SPLITS,
               "model": "minilm"}
    results = [rec("main", "MRPC", 0, 80.0), rec("main", "MRPC", 1, 84.0), rec("beta_0", "MRPC", 0, 10.0),
               rec("bilstm", "MRPC", 0, 70.0), rec("truncated", "MRPC", 0, 83.0, layers=3)]
    df, shown = build_seed_table([teacher], results, "main")
    df = df.set_index("model")
    assert set(df.index) == {"Teacher (minilm)", "AdaBERT (searched)", "BiLSTM-SOFT",
                             "Truncated teacher + KD (first 3 layers)"}
    assert df.loc["AdaBERT (searched)", "mean"] == 82.0 and df.loc["AdaBERT (searched)", "min"] == 80.0
    assert df.loc["AdaBERT (searched)", "std"] == pytest.approx(2.828, abs=1e-3)


def test_efficiency_summary_speedups_are_seed_means_of_matched_ratios():
    # a student's speedup: the mean over seeds of the efficiency table's speedups (each against a BERT-base of the
    # same engine, device, shape, threads and machine); a reference's: BERT-base latency / its latency
    rows = pd.DataFrame([
        {"task": "MRPC", "variant": v, "seed": s, "engine": e, "device": "cpu", "batch": 128, "seq_len": 128,
         "params_M": p, "samples_per_s": sps, "speedup_vs_bert": sp, "student_dev": dev, "teacher_dev": 85.0,
         "split_kind": "dev", "metric": "f1"}
        for v, s, e, p, sps, sp, dev in [("main", 0, "torch", 5.0, 1000.0, 100.0, 80.0),
                                         ("main", 1, "torch", 7.0, 2000.0, 200.0, 82.0),
                                         ("main", 0, "onnxruntime", 5.0, 3000.0, 150.0, 80.0),
                                         ("main", 0, "onnxruntime-int8", 5.0, 1500.0, 75.0, 80.0),
                                         ("bilstm", 0, "torch", 10.0, 500.0, 50.0, 70.0),
                                         ("beta_0", 0, "torch", 4.0, 9999.0, 999.0, 10.0)]
    ])
    refs = pd.DataFrame([
        {"model": "bert-base", "task": None, "engine": e, "device": "cpu", "batch": 128, "seq_len": 128, "threads": 2,
         "params_M": 110.0, "samples_per_s": sps, "latency_ms": lat}
        for e, sps, lat in [("torch", 10.0, 12800.0), ("onnxruntime", 20.0, 6400.0)]
    ] + [{"model": "teacher", "task": "MRPC", "engine": "torch", "device": "cpu", "batch": 128, "seq_len": 128,
          "threads": 2, "params_M": 22.0, "samples_per_s": 50.0, "latency_ms": 2560.0}])
    df, shape = build_efficiency_summary(rows, refs, "main")
    assert shape == (128, 128)
    df = df.set_index("model")
    assert df.loc["AdaBERT", "torch_samples_per_s"] == 1500.0
    assert df.loc["AdaBERT", "torch_speedup_vs_bert"] == 150.0 and df.loc["AdaBERT", "n_seeds"] == 2
    assert df.loc["AdaBERT", "onnxruntime_speedup_vs_bert"] == 150.0
    assert df.loc["AdaBERT", "int8_vs_ort_fp32"] == 0.5 and df.loc["AdaBERT", "dev"] == 81.0
    # ORT fp32 / torch from the same seed-mean throughputs: 3000 / 1500; no ORT row, no ratio
    assert df.loc["AdaBERT", "ort_fp32_vs_torch"] == 2.0 and df.loc["BERT-base", "ort_fp32_vs_torch"] == 2.0
    assert pd.isna(df.loc["BiLSTM-SOFT", "ort_fp32_vs_torch"])
    assert df.loc["AdaBERT", "compression_vs_bert"] == pytest.approx(110.0 / 6.0)
    assert df.loc["Teacher", "torch_speedup_vs_bert"] == 5.0 and df.loc["Teacher", "dev"] == 85.0
    assert df.loc["BERT-base", "torch_speedup_vs_bert"] == 1.0
    assert "beta_0" not in df.index and df.loc["BiLSTM-SOFT", "torch_speedup_vs_bert"] == 50.0
    assert (df["split"].dropna() == "dev").all()


def _eff(variant, task, seed, dev, latency, engine="torch", batch=128, depth=1):
    return {"task": task, "variant": variant, "seed": seed, "engine": engine, "device": "cpu", "batch": batch,
            "seq_len": 128, "latency_ms": latency, "student_dev": dev, "metric": "acc", "split_kind": "dev",
            "depth": depth}


def test_searched_vs_random_median_range_and_pareto():
    from adabert.report.random_study import build_rows

    rows = [_eff("main", "SST-2", 0, 80.0, 10.0), _eff("main", "SST-2", 1, 82.0, 14.0),  # mean 81.0 @ 12 ms
            *[_eff("random", "SST-2", i, d, l, depth=i + 1)
              for i, (d, l) in enumerate([(70, 5), (75, 30), (79, 8), (85, 20)])],
            _eff("main", "RTE", 0, 55.0, 10.0),
            *[_eff("random", "RTE", i, d, l) for i, (d, l) in enumerate([(56, 9), (50, 9), (52, 12)])],
            _eff("random", "RTE", 9, 99.0, 1.0, engine="onnxruntime"),  # another engine: ignored
            _eff("random", "RTE", 8, 99.0, 1.0, batch=1)]  # another shape: ignored
    df = build_rows(pd.DataFrame(rows), "main").set_index("task")
    sst = df.loc["SST-2"]
    assert (sst["searched_n"], sst["random_n"]) == (2, 4) and sst["searched_dev"] == 81.0
    assert sst["random_median"] == 77.0 and (sst["random_min"], sst["random_max"]) == (70.0, 85.0)
    assert sst["at_or_above_median"] and not sst["pareto_dominated"]  # 85 is more accurate but slower
    assert (sst["searched_depths"], sst["random_depths"]) == ("1", "1-4")
    rte = df.loc["RTE"]
    assert rte["random_n"] == 3 and rte["random_median"] == 52.0 and rte["at_or_above_median"]
    assert rte["pareto_dominated"] and rte["dominating_samples"] == "0"  # 56 at 9 ms beats 55 at 10 ms


def test_searched_vs_random_carries_the_fixed_cells(tmp_path):
    import json

    from adabert.errors import AdabertError
    from adabert.report.random_study import write_random_study

    rows = [_eff("main", "SST-2", 0, 80.0, 10.0), _eff("main", "SST-2", 1, 82.0, 14.0),
            _eff("random", "SST-2", 0, 70.0, 5.0), _eff("main", "RTE", 0, 55.0, 10.0), _eff("random", "RTE", 0, 56.0, 9.0)]
    pd.DataFrame(rows).to_csv(tmp_path / "efficiency.csv", index=False)
    metrics = []
    for task, seed, value in (("SST-2", 0, 83.0), ("SST-2", 1, 80.0), ("RTE", 0, 54.0)):
        path = tmp_path / f"{task}{seed}.json"
        path.write_text(json.dumps({"variant": "fixed-skip_connect", "task": task, "seed": seed, "main_value": value}))
        metrics.append(path)
    df = write_random_study(tmp_path / "efficiency.csv", "main", tmp_path / "vs", fixed_metrics=metrics).set_index("task")
    assert df.loc["SST-2", "fixed_skip_connect_dev"] == 81.5 and df.loc["RTE", "fixed_skip_connect_dev"] == 54.0
    text = (tmp_path / "vs.md").read_text()
    assert "a bag of the folded teacher embeddings" in text
    assert "the searched students are at or above it on 1 of 2 tasks" in text  # SST-2 81.0 < 81.5, RTE 55 >= 54
    assert "fixed_skip_connect_dev" in pd.read_csv(tmp_path / "vs.csv").columns
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"variant": "random", "task": "RTE", "main_value": 1.0}))
    with pytest.raises(AdabertError, match="not the metrics of a fixed-cell retrain"):
        write_random_study(tmp_path / "efficiency.csv", "main", tmp_path / "vs2", fixed_metrics=[bad])


def _side_by_side(path, task, latencies):
    """A side-by-side timing record of ``task``: {(variant, seed): ms, or (ms, fastest round, slowest round)}."""
    import json

    def latency(ms):
        median, fastest, slowest = (ms, ms, ms) if isinstance(ms, float) else ms
        return {"median_s": median / 1e3, "p25_s": 0.1, "p75_s": 0.1, "p90_s": 0.1, "mean_s": 0.1, "n_batches": 3,
                "total_s": 0.3, "repeats": 3, "repeat_min_s": fastest / 1e3, "repeat_max_s": slowest / 1e3}

    path.write_text(json.dumps({
        "task": task, "engine": "torch", "device": "cpu", "batch": 128, "seq_len": 128, "threads": 2,
        "models": [{"variant": v, "seed": s, "path": f"x/{v}{s}", "params": 10,
                    "latency_ms": ms if isinstance(ms, float) else ms[0], "latency": latency(ms)}
                   for (v, s), ms in latencies.items()],
        "settings": {}, "protocol": "interleaved", "machine": {}}))
    return path


def test_pareto_verdict_beyond_timing_noise(tmp_path):
    """A random architecture faster than the searched mean by its median but not in every round does not
    dominate beyond noise; one whose slowest round beats the searched students' fastest rounds does."""
    from adabert.report.random_study import write_random_study

    rows = [_eff("main", "RTE", 0, 55.0, 10.0), _eff("main", "RTE", 1, 57.0, 10.0),  # mean 56.0
            _eff("random", "RTE", 0, 58.0, 10.0), _eff("random", "RTE", 1, 60.0, 10.0),
            _eff("random", "RTE", 2, 50.0, 10.0),
            _eff("main", "MRPC", 0, 80.0, 10.0), _eff("random", "MRPC", 0, 81.0, 10.0)]
    pd.DataFrame(rows).to_csv(tmp_path / "efficiency.csv", index=False)
    rte = _side_by_side(tmp_path / "rte.json", "RTE", {
        ("main", 0): (100.0, 80.0, 120.0), ("main", 1): (120.0, 100.0, 130.0),  # mean 110 ms, fastest rounds 90
        ("random", 0): (95.0, 85.0, 100.0),   # faster by the median, its slowest round (100) above 90: noise
        ("random", 1): (70.0, 60.0, 85.0),    # slowest round 85 < 90: clearly faster, and more accurate
        ("random", 2): (20.0, 15.0, 25.0)})   # clearly faster, but less accurate
    mrpc = _side_by_side(tmp_path / "mrpc.json", "MRPC", {("main", 0): (100.0, 90.0, 110.0),
                                                          ("random", 0): (95.0, 92.0, 97.0)})
    df = write_random_study(tmp_path / "efficiency.csv", "main", tmp_path / "vs", side_by_side=[rte, mrpc])
    df = df.set_index("task")
    assert df.loc["RTE", "dominating_samples"] == "0 1" and df.loc["RTE", "clearly_dominating_samples"] == "1"
    assert df.loc["RTE", "dominated_beyond_timing_noise"]
    assert df.loc["MRPC", "pareto_dominated"] and not df.loc["MRPC", "dominated_beyond_timing_noise"]
    assert "Pareto-dominated on 2; beyond timing noise on 1 of the 2 tasks timed side by side." in (
        tmp_path / "vs.md").read_text()


def test_searched_vs_random_reads_latencies_timed_side_by_side(tmp_path):
    """The side-by-side timing of a task replaces the latencies of separate jobs: here the random architecture
    that looked faster in its own job is slower next to the searched students, so the Pareto verdict flips;
    a task without one keeps its efficiency rows and is marked so."""
    from adabert.errors import AdabertError
    from adabert.report.random_study import write_random_study

    rows = [_eff("main", "SST-2", 0, 80.0, 10.0), _eff("main", "SST-2", 1, 82.0, 14.0),
            _eff("random", "SST-2", 0, 85.0, 5.0), _eff("random", "SST-2", 1, 70.0, 50.0),
            _eff("main", "RTE", 0, 55.0, 10.0), _eff("random", "RTE", 0, 56.0, 9.0)]
    pd.DataFrame(rows).to_csv(tmp_path / "efficiency.csv", index=False)
    timed = _side_by_side(tmp_path / "sst2.json", "SST-2",
                          {("main", 0): 6.0, ("main", 1): 8.0, ("random", 0): 7.5, ("random", 1): 4.0})
    df = write_random_study(tmp_path / "efficiency.csv", "main", tmp_path / "vs", side_by_side=[timed]).set_index("task")
    sst = df.loc["SST-2"]
    assert sst["searched_latency_ms"] == 7.0 and sst["random_latency_median_ms"] == 5.75
    assert not sst["pareto_dominated"] and sst["latency_same_job"]  # 85 at 7.5 ms is slower than 7.0 ms
    assert df.loc["RTE", "pareto_dominated"] and not df.loc["RTE", "latency_same_job"]  # its own jobs: 9 < 10 ms
    assert "On RTE the searched students and the random architectures were timed in different jobs" in (
        tmp_path / "vs.md").read_text()
    lacking = _side_by_side(tmp_path / "lacking.json", "SST-2", {("main", 0): 6.0, ("random", 0): 7.5})
    with pytest.raises(AdabertError, match=r"side-by-side timing of SST-2 lacks \[\('main', 1\), \('random', 1\)\]"):
        write_random_study(tmp_path / "efficiency.csv", "main", tmp_path / "vs2", side_by_side=[lacking])
    with pytest.raises(AdabertError, match="a second side-by-side timing of task SST-2"):
        write_random_study(tmp_path / "efficiency.csv", "main", tmp_path / "vs3", side_by_side=[timed, timed])
    with pytest.raises(AdabertError, match="the side-by-side timings are PyTorch's, but engine 'onnxruntime'"):
        write_random_study(tmp_path / "efficiency.csv", "main", tmp_path / "vs5", engine="onnxruntime",
                           side_by_side=[timed])
    (tmp_path / "bad.json").write_text('{"task": "SST-2", "engine": "torch"}')
    with pytest.raises(AdabertError, match="bad.json: invalid at"):
        write_random_study(tmp_path / "efficiency.csv", "main", tmp_path / "vs4", side_by_side=[tmp_path / "bad.json"])


def test_task_adaptivity_within_vs_across(tmp_path):
    import json

    from adabert.report.adaptivity import write_adaptivity

    conv = [[[0, "std_conv_3"], [1, "std_conv_5"]], [[0, "std_conv_3"], [2, "std_conv_5"]],
            [[1, "std_conv_3"], [3, "std_conv_5"]]]
    pool = [[[0, "max_pool_3"], [1, "avg_pool_3"]], [[0, "max_pool_3"], [2, "avg_pool_3"]],
            [[1, "max_pool_3"], [3, "avg_pool_3"]]]
    paths = []
    for task, seed, nodes, depth in (("A", 0, conv, 2), ("A", 1, conv, 3), ("B", 0, pool, 2), ("B", 1, pool, 2)):
        folder = tmp_path / f"{task}{seed}"
        search = tmp_path / f"s{task}{seed}"
        folder.mkdir()
        search.mkdir()
        genotype = {"schema_version": 1, "depth": depth, "nodes": [[{"input": i, "op": o} for i, o in n] for n in nodes],
                    "ops": ["std_conv_3", "std_conv_5", "max_pool_3", "avg_pool_3", "none"], "width": 16, "k_max": 4}
        (folder / "derive.json").write_text(json.dumps({"genotype": genotype, "search_dir": str(search)}))
        (search / "metrics.json").write_text(json.dumps({"task": task, "seed": seed}))
        paths.append(folder / "genotype.json")
    summary = write_adaptivity(paths, tmp_path / "a.md", tmp_path / "a.csv").set_index("n")
    within, across = summary.iloc[0], summary.iloc[1]
    assert (within.name, across.name) == (2, 4)
    assert within["edges_mean"] == 0.0 and within["depth_mean"] == 0.5 and within["identical"] == 1
    assert across["edges_mean"] == 6.0 and across["depth_mean"] == 0.5
    assert "closer than searches of different tasks" in (tmp_path / "a.md").read_text()
    assert len(pd.read_csv(tmp_path / "a.csv")) == 6


def test_task_adaptivity_permutation_test_has_known_answers():
    from adabert.report.adaptivity import label_permutation_p

    def pairs(edges):  # searches A0 A1 B0 B1; edges(task_a, task_b) gives each pair's distance
        keys = [("A", 0), ("A", 1), ("B", 0), ("B", 1)]
        return pd.DataFrame([{"task_a": a[0], "seed_a": a[1], "task_b": b[0], "seed_b": b[1],
                              "edges": edges(a[0], b[0]), "depth": 0, "same_task": a[0] == b[0]}
                             for i, a in enumerate(keys) for b in keys[i + 1:]])

    # the same task: identical cells, different tasks: nothing in common. Of the 3 ways to split the four
    # searches into two pairs, only the true one gives a gap of 6, so p = 1/3 exactly over all labelings.
    split = label_permutation_p(pairs(lambda a, b: 0 if a == b else 6), n_permutations=3000, seed=1)
    assert split["observed_gap"] == 6.0 and split["searches"] == 4
    assert split["p_value"] == pytest.approx(1 / 3, abs=0.03)
    flat = label_permutation_p(pairs(lambda a, b: 5), n_permutations=200)
    assert flat["observed_gap"] == 0.0 and flat["p_value"] == 1.0  # every labeling ties with the observed
    one_task = pairs(lambda a, b: 3).assign(task_a="A", task_b="A", same_task=True)
    with pytest.raises(AdabertError, match="within and across tasks"):
        label_permutation_p(one_task, n_permutations=10)


def test_ablation_effect_is_claimed_only_beyond_the_seed_spread_and_beta_figure(tmp_path):
    from adabert.report.ablation_table import beta_variants, exceeds_spread
    from adabert.report.figures import beta_tradeoff_figure

    assert exceeds_spread(-3.0, 1.0, 2.0) is True and exceeds_spread(1.5, 1.0, 2.0) is False
    assert exceeds_spread(5.0, None, 1.0) is None  # a single seed has no spread: no claim
    variants = {"main": {}, "beta_0": {"loss": {"beta": 0.0}}, "beta_8": {"loss": {"beta": 8.0}},
                "mixed": {"loss": {"beta": 1.0, "gamma": 0.5}}, "aug": {"loss": {"beta": 2.0}, "augment": True}}
    assert beta_variants(variants, "main", 4.0) == {"main": 4.0, "beta_0": 0.0, "beta_8": 8.0}
    results = [rec("main", "MRPC", 0, 80.0), rec("main", "MRPC", 1, 81.0),
               rec("beta_0", "MRPC", 0, 70.0, params=9e6), rec("beta_0", "MRPC", 1, 71.0, params=9e6),
               rec("beta_8", "MRPC", 0, 79.0, params=3e6), rec("beta_8", "MRPC", 1, 82.0, params=3e6)]
    eff = pd.DataFrame(columns=["variant", "task", "engine", "device", "batch", "seq_len", "speedup_vs_bert", "seed"])
    df, shown = build_ablation_table(results, eff, variants, "main")
    df = df.set_index("variant")
    assert df.loc["beta_0", "exceeds_seed_spread"] is True and df.loc["beta_8", "exceeds_seed_spread"] is False
    assert shown.set_index("variant").loc["beta_0", "MRPC (f1)"].endswith(" *")
    plotted = beta_tradeoff_figure(df.reset_index(), beta_variants(variants, "main", 4.0), tmp_path / "beta")
    assert list(plotted["beta"]) == [0.0, 4.0, 8.0] and list(plotted["mean"]) == [70.5, 80.5, 80.5]
    assert (tmp_path / "beta.png").is_file() and (tmp_path / "beta.pdf").is_file()


def test_cost_table_sums_jobs_and_spans_the_clock_from_file_times(tmp_path):
    """Three jobs: two side by side (teacher, 0-100 s and 20-80 s) and one after them (search, 100-130 s)."""
    root = tmp_path / "benchmarks"
    t0 = 1_700_000_000.0
    for rel, seconds, end, rss in (("teacher/A", 100.0, 100.0, 900.0), ("teacher/B", 60.0, 80.0, 1200.0),
                                   ("search/main/A/seed0", 30.0, 130.0, 500.0)):
        path = root / f"{rel}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:00\t{rss}\n")
        os.utime(path, (t0 + end, t0 + end))
    summary = write_cost_table([root], tmp_path / "cost.md", tmp_path / "cost.csv").set_index("stage")
    assert summary.loc["teacher", "jobs"] == 2 and summary.loc["teacher", "wall_s"] == pytest.approx(160.0)
    assert summary.loc["teacher", "span_s"] == pytest.approx(100.0)  # the two jobs overlapped
    assert summary.loc["search", "span_s"] == pytest.approx(30.0)
    assert summary.loc["total", "jobs"] == 3 and summary.loc["total", "wall_s"] == pytest.approx(190.0)
    assert summary.loc["total", "span_s"] == pytest.approx(130.0) and summary.loc["total", "peak_rss_mb"] == 1200.0
    assert list(pd.read_csv(tmp_path / "cost.csv").columns[:4]) == ["stage", "jobs", "wall_s", "mean_s"]
    assert "spanned 130 s" in (tmp_path / "cost.md").read_text()
    assert len(pd.read_csv(tmp_path / "cost_jobs.csv")) == 3


def test_committed_cost_tables_are_one_runs_per_stage_sums_of_its_jobs():
    """docs/results/cost.csv (per stage) and cost_jobs.csv (per job) come from the same run: every stage's
    job count and wall time are those of its job rows, and the total row sums them (the README's per-variant
    and per-job costs are read from cost_jobs.csv)."""
    docs = Path(__file__).resolve().parents[1] / "docs" / "results"
    stages = pd.read_csv(docs / "cost.csv").set_index("stage")
    jobs = pd.read_csv(docs / "cost_jobs.csv")
    assert list(jobs.columns) == ["stage", "job", "seconds", "max_rss_mb"]
    per_stage = jobs.groupby("stage")["seconds"].agg(["count", "sum"])
    assert set(per_stage.index) == set(stages.index) - {"total"}
    for stage, row in per_stage.iterrows():
        assert stages.loc[stage, "jobs"] == row["count"], stage
        assert stages.loc[stage, "wall_s"] == pytest.approx(row["sum"], abs=0.01), stage
    assert stages.loc["total", "jobs"] == len(jobs)
    assert stages.loc["total", "wall_s"] == pytest.approx(jobs["seconds"].sum(), abs=0.01)
