"""Table builders of the studies (ablations, transfer, seeds, efficiency summary) on result records."""

from __future__ import annotations

import pandas as pd
import pytest

from adabert.errors import AdabertError
from adabert.report.ablation_table import build_ablation_table, describe, write_ablation_table
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


def test_efficiency_summary_speedups_are_throughput_ratios():
    rows = pd.DataFrame([
        {"task": "MRPC", "variant": v, "seed": s, "engine": e, "device": "cpu", "batch": 128, "seq_len": 128,
         "params_M": p, "samples_per_s": sps, "student_dev": 80.0}
        for v, s, e, p, sps in [("main", 0, "torch", 5.0, 1000.0), ("main", 1, "torch", 7.0, 2000.0),
                                ("main", 0, "onnxruntime", 5.0, 3000.0), ("bilstm", 0, "torch", 10.0, 500.0),
                                ("beta_0", 0, "torch", 4.0, 9999.0)]
    ])
    refs = pd.DataFrame([
        {"model": "bert-base", "task": None, "engine": e, "device": "cpu", "batch": 128, "seq_len": 128,
         "params_M": 110.0, "samples_per_s": sps} for e, sps in [("torch", 10.0), ("onnxruntime", 20.0)]
    ] + [{"model": "teacher", "task": "MRPC", "engine": "torch", "device": "cpu", "batch": 128, "seq_len": 128,
          "params_M": 22.0, "samples_per_s": 50.0}])
    df, shape = build_efficiency_summary(rows, refs, "main")
    assert shape == (128, 128)
    df = df.set_index("model")
    assert df.loc["AdaBERT", "torch_samples_per_s"] == 1500.0
    assert df.loc["AdaBERT", "torch_speedup_vs_bert"] == 150.0
    assert df.loc["AdaBERT", "onnxruntime_speedup_vs_bert"] == 150.0
    assert df.loc["AdaBERT", "compression_vs_bert"] == pytest.approx(110.0 / 6.0)
    assert df.loc["Teacher", "torch_speedup_vs_bert"] == 5.0
    assert df.loc["BERT-base", "torch_speedup_vs_bert"] == 1.0
    assert "beta_0" not in df.index and df.loc["BiLSTM-SOFT", "torch_speedup_vs_bert"] == 50.0
