"""Figure builders on small real outputs: what they plot equals the result files; PNG and PDF are written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from adabert import io
from adabert.errors import AdabertError
from adabert.nas.genotype import Genotype
from adabert.report import figures


def _written(stem: Path) -> None:
    for ext in ("png", "pdf"):
        path = stem.with_suffix(f".{ext}")
        assert path.is_file() and path.stat().st_size > 1000, path


def test_searched_cell_dynamics_and_probes_from_real_results(mrpc_searched, mrpc_small, tmp_path):
    out = tmp_path / "fig"
    written = figures.write_figures([mrpc_searched["root"] / "derive"], [mrpc_small["probes_dir"] / "probes.json"],
                                    out)
    assert [p.name for p in written] == ["searched_cells.png", "search_dynamics.png", "probes.png"]
    for stem in ("searched_cells", "search_dynamics", "probes"):
        _written(out / stem)

    genotype = Genotype.load(mrpc_searched["root"] / "derive" / "genotype.json")
    drawn = figures.searched_cell_figure({"MRPC": genotype}, tmp_path / "cell")
    assert drawn["MRPC"] == [(i, j + 2, op) for j, node in enumerate(genotype.nodes) for i, op in node]
    assert len(drawn["MRPC"]) == 6

    history = io.read_json(mrpc_searched["root"] / "search" / "alpha_history.json")
    plotted = figures.search_dynamics_figure({"MRPC": history}, tmp_path / "dyn")["MRPC"]
    assert plotted["epochs"] == [e["epoch"] for e in history["epochs"]]
    assert plotted["derived_depth"] == [e["genotype"]["depth"] for e in history["epochs"]]
    assert plotted["top_op_prob"][-1] == [max(p) for p in history["epochs"][-1]["softmax_ops"]]

    probes = io.read_json(mrpc_small["probes_dir"] / "probes.json")
    values = figures.probe_figure({"MRPC": probes}, tmp_path / "probes")["MRPC"]
    assert values == [layer["main_value"] for layer in probes["layers"]] and len(values) == 7


EFFICIENCY = pd.DataFrame([
    {"task": "MRPC", "seed": 0, "engine": "torch", "device": "cpu", "batch": 128, "seq_len": 128,
     "speedup_vs_bert": 20.0, "latency_ms": 50.0, "student_dev": 80.0, "metric": "f1"},
    {"task": "MRPC", "seed": 1, "engine": "torch", "device": "cpu", "batch": 128, "seq_len": 128,
     "speedup_vs_bert": 30.0, "latency_ms": 40.0, "student_dev": 78.0, "metric": "f1"},
    {"task": "MRPC", "seed": 0, "engine": "onnxruntime", "device": "cpu", "batch": 128, "seq_len": 128,
     "speedup_vs_bert": 35.0, "latency_ms": 30.0, "student_dev": 80.0, "metric": "f1"},
    {"task": "MRPC", "seed": 0, "engine": "torch", "device": "cpu", "batch": 1, "seq_len": 32,
     "speedup_vs_bert": 5.0, "latency_ms": 2.0, "student_dev": 80.0, "metric": "f1"},
])
EFFICIENCY["variant"] = "main"


def test_speedup_figure_means_over_seeds_at_one_shape(tmp_path):
    table = figures.speedup_figure(EFFICIENCY, tmp_path / "speedup", batch=128, seq_len=128)
    got = {(r.engine, r.device): r.speedup_vs_bert for r in table.itertuples()}
    assert got == {("torch", "cpu"): 25.0, ("onnxruntime", "cpu"): 35.0}
    _written(tmp_path / "speedup")
    with pytest.raises(AdabertError, match="no row with a speedup"):
        figures.speedup_figure(EFFICIENCY, tmp_path / "none", batch=64, seq_len=64)


def test_pareto_front_and_figure(tmp_path):
    assert figures.pareto_front([(3, 70), (1, 60), (2, 75), (4, 74), (2, 50)]) == [(1, 60), (2, 75)]
    refs = pd.DataFrame([{"model": "teacher", "task": "MRPC", "engine": "torch", "device": "cpu",
                          "latency_ms": 900.0}])
    plotted = figures.pareto_figure(EFFICIENCY, refs, {"MRPC": 88.0}, tmp_path / "pareto")["MRPC"]
    assert plotted["teacher"] == (900.0, 88.0)
    assert plotted["front"] == [(2.0, 80.0)]
    assert len(plotted["students"]) == 3  # the torch/cpu rows
    _written(tmp_path / "pareto")
    # baselines are points of the same front: a faster, better baseline dominates the students
    with_baseline = pd.concat([EFFICIENCY, pd.DataFrame([{**EFFICIENCY.iloc[0].to_dict(), "variant": "bilstm",
                                                           "latency_ms": 1.0, "student_dev": 85.0}])])
    plotted = figures.pareto_figure(with_baseline, refs, {"MRPC": 88.0}, tmp_path / "pareto2")["MRPC"]
    assert plotted["front"] == [(1.0, 85.0)] and len(plotted["students"]) == 4
