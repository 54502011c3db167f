"""Genotype JSON contract, validation and derivation from architecture logits."""

from __future__ import annotations

import json

import pytest
import torch

from adabert.errors import AdabertError
from adabert.nas.genotype import Genotype, cell_edges, derive_genotype, edge_index, nodes_for_edges
from adabert.nas.ops import OP_NAMES


pytestmark = pytest.mark.usefixtures("torch_one_thread")


OPS = list(OP_NAMES)


def _genotype(**overrides) -> Genotype:
    kwargs = dict(
        depth=3,
        nodes=[[(0, "std_conv_7"), (1, "dil_conv_5")], [(0, "std_conv_7"), (1, "dil_conv_5")], [(1, "std_conv_3"), (3, "dil_conv_3")]],
        ops=OPS,
        width=128,
        k_max=8,
    )
    kwargs.update(overrides)
    return Genotype(**kwargs)


def test_edges_numbering():
    assert len(cell_edges(3)) == 9
    assert cell_edges(2) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    assert edge_index(2, 3) == 8 and edge_index(1, 0) == 2
    assert nodes_for_edges(9) == 3
    with pytest.raises(AdabertError, match="8 rows"):
        nodes_for_edges(8)


def test_json_round_trip(tmp_path):
    g = _genotype()
    assert Genotype.from_json(g.to_json()) == g
    g.save(tmp_path / "genotype.json")
    assert Genotype.load(tmp_path / "genotype.json") == g
    data = json.loads((tmp_path / "genotype.json").read_text())
    assert data["schema_version"] == 1
    assert data["nodes"][2] == [{"input": 1, "op": "std_conv_3"}, {"input": 3, "op": "dil_conv_3"}]


def test_unknown_op_is_named_with_allowed_list():
    data = _genotype().to_dict()
    data["nodes"][1][0]["op"] = "sep_conv_3"
    with pytest.raises(AdabertError, match=r"sep_conv_3.*allowed.*std_conv_3"):
        Genotype.from_dict(data, "g.json")
    with pytest.raises(AdabertError, match="transformer"):
        _genotype(ops=OPS + ["transformer"])


def test_depth_out_of_range():
    with pytest.raises(AdabertError, match=r"depth.*k_max=8.*9"):
        _genotype(depth=9)
    with pytest.raises(AdabertError, match="depth"):
        _genotype(depth=0)


@pytest.mark.parametrize("field", ["depth", "nodes", "ops", "width", "k_max", "schema_version"])
def test_missing_field_is_named(field):
    data = _genotype().to_dict()
    del data[field]
    with pytest.raises(AdabertError, match=f"g.json: missing field '{field}'"):
        Genotype.from_dict(data, "g.json")


def test_bad_edges():
    data = _genotype().to_dict()
    data["nodes"][0][1]["input"] = 2  # node 2 can only read inputs 0 and 1
    with pytest.raises(AdabertError, match="node 2 has input index 2 out of range 0..1"):
        Genotype.from_dict(data, "g.json")
    data = _genotype().to_dict()
    del data["nodes"][0][0]["op"]
    with pytest.raises(AdabertError, match="missing field 'op'"):
        Genotype.from_dict(data, "g.json")
    with pytest.raises(AdabertError, match="schema_version"):
        Genotype.from_dict({**_genotype().to_dict(), "schema_version": 2}, "g.json")
    with pytest.raises(AdabertError, match="not valid JSON"):
        Genotype.from_json("{", "g.json")


def test_derive_excludes_none_and_keeps_top2_edges():
    torch.manual_seed(0)
    alpha = torch.zeros(9, len(OPS))
    none = OPS.index("none")
    alpha[:, none] = 5.0  # 'none' dominates everywhere but is never kept
    # node 2 (edges 0, 1): edge 1 prefers cnn7
    alpha[1, OPS.index("std_conv_7")] = 3.0
    alpha[0, OPS.index("max_pool_3")] = 1.0
    # node 3 (edges 2, 3, 4): the two strongest are inputs 2 (dil5) and 0 (skip)
    alpha[4, OPS.index("dil_conv_5")] = 4.0
    alpha[2, OPS.index("skip_connect")] = 2.0
    alpha[3, OPS.index("avg_pool_3")] = 1.0
    # node 4 (edges 5..8): inputs 3 (cnn3) and 1 (dil7)
    alpha[8, OPS.index("std_conv_3")] = 2.5
    alpha[6, OPS.index("dil_conv_7")] = 2.0
    alpha[5, OPS.index("max_pool_3")] = 0.5
    depth = torch.tensor([0.0, 0.3, 0.1, 0.0])
    g = derive_genotype(alpha, depth, OPS, k=2, width=16)
    assert g.depth == 2 and g.k_max == 4 and g.width == 16
    assert g.nodes == [
        [(0, "max_pool_3"), (1, "std_conv_7")],
        [(0, "skip_connect"), (2, "dil_conv_5")],
        [(1, "dil_conv_7"), (3, "std_conv_3")],
    ]
    assert derive_genotype(alpha, depth, OPS, fixed_depth=4).depth == 4
    with pytest.raises(AdabertError, match="depth"):
        derive_genotype(alpha, depth, OPS, fixed_depth=5)


def test_cap_on_parameter_free_ops_replaces_the_least_confident_ones():
    alpha = torch.zeros(9, len(OPS))
    # node 2: max pool (strong) and skip (weak); node 3: avg pool and dil5; node 4: skip and cnn3
    alpha[0, OPS.index("max_pool_3")] = 4.0
    alpha[1, OPS.index("skip_connect")] = 1.0
    alpha[1, OPS.index("dil_conv_7")] = 0.5  # the best conv of edge 1
    alpha[3, OPS.index("avg_pool_3")] = 3.0
    alpha[4, OPS.index("dil_conv_5")] = 3.5
    alpha[6, OPS.index("skip_connect")] = 2.0
    alpha[6, OPS.index("std_conv_5")] = 0.2  # the best conv of edge 6
    alpha[8, OPS.index("std_conv_3")] = 2.5
    depth = torch.tensor([1.0, 0.0])
    uncapped = derive_genotype(alpha, depth, OPS)
    assert uncapped.nodes == [
        [(0, "max_pool_3"), (1, "skip_connect")],
        [(1, "avg_pool_3"), (2, "dil_conv_5")],
        [(1, "skip_connect"), (3, "std_conv_3")],
    ]
    assert derive_genotype(alpha, depth, OPS, max_parameter_free=4).nodes == uncapped.nodes
    # cap 2: the weakest two of the four (skip on edge 1, then skip on edge 6) become convolutions
    assert derive_genotype(alpha, depth, OPS, max_parameter_free=2).nodes == [
        [(0, "max_pool_3"), (1, "dil_conv_7")],
        [(1, "avg_pool_3"), (2, "dil_conv_5")],
        [(1, "std_conv_5"), (3, "std_conv_3")],
    ]
    capped = derive_genotype(alpha, depth, OPS, max_parameter_free=0)
    assert all(op.startswith(("std_conv", "dil_conv")) for edges in capped.nodes for _, op in edges)
    assert [[i for i, _ in edges] for edges in capped.nodes] == [[0, 1], [1, 2], [1, 3]]  # same edges
    with pytest.raises(AdabertError, match="max_parameter_free"):
        derive_genotype(alpha, depth, OPS, max_parameter_free=-1)
    pools = ["max_pool_3", "skip_connect", "none"]
    with pytest.raises(AdabertError, match="no parametric op"):
        derive_genotype(torch.zeros(9, 3), depth, pools, max_parameter_free=1)


def test_op_weights_match_genotype():
    g = _genotype()
    w = g.op_weights(OPS)
    assert w.shape == (9, len(OPS)) and torch.all(w.sum(1) == 1)
    assert w[edge_index(2, 3), OPS.index("dil_conv_3")] == 1
    assert w[edge_index(2, 0), OPS.index("none")] == 1  # dropped edge
    no_none = g.op_weights([o for o in OPS if o != "none"])
    assert no_none[edge_index(2, 0)].sum() == 0
    assert g.depth_weights().tolist() == [0, 0, 1, 0, 0, 0, 0, 0]


def test_distance_counts_differing_edges_and_depth():
    a = _genotype()
    assert a.distance(a) == {"edges": 0, "depth": 0}
    # one op changed on node 4, one input changed on node 3, and two more cells
    b = _genotype(depth=5, nodes=[[(0, "std_conv_7"), (1, "dil_conv_5")], [(0, "std_conv_7"), (2, "dil_conv_5")],
                                  [(1, "max_pool_3"), (3, "dil_conv_3")]])
    assert a.distance(b) == b.distance(a) == {"edges": 2, "depth": 2}
    # the same op pairs on other nodes are different edges
    c = _genotype(nodes=[[(0, "avg_pool_3"), (1, "skip_connect")], [(0, "avg_pool_3"), (2, "skip_connect")],
                         [(0, "avg_pool_3"), (2, "skip_connect")]])
    assert a.distance(c)["edges"] == 6


def test_has_conv():
    assert _genotype().has_conv
    pools = [[(0, "avg_pool_3"), (1, "skip_connect")], [(0, "max_pool_3"), (2, "skip_connect")],
             [(0, "avg_pool_3"), (2, "skip_connect")]]
    assert not _genotype(nodes=pools).has_conv
    pools[2][1] = (3, "dil_conv_3")
    assert _genotype(nodes=pools).has_conv


def test_head_round_trip_and_files_without_it_are_the_papers_mean():
    g = _genotype(head="interaction")
    assert Genotype.from_json(g.to_json()).head == "interaction"
    old = _genotype().to_dict()
    del old["head"]
    assert Genotype.from_dict(old).head == "mean"
    with pytest.raises(AdabertError, match="field 'head'.*'max'"):
        Genotype.from_dict({**old, "head": "max"})
