"""Random and transferred architectures: the sampler, the derive folders they become, their retraining."""

from __future__ import annotations

import collections
import json

import pytest
import torch

from adabert import config, io
from adabert.architectures import run_fixed_architecture, run_random_architecture, run_transfer_architecture
from adabert.errors import AdabertError
from adabert.nas.genotype import Genotype, sample_genotype
from adabert.retrain import run_retrain
from adabert.student import Student

OPS = ["std_conv_3", "dil_conv_5", "max_pool_3", "skip_connect", "none"]


def test_sampled_genotypes_are_valid_deterministic_and_cover_the_space():
    a = sample_genotype(OPS, nodes=3, k_max=4, width=16, seed=7)
    assert a.to_dict() == sample_genotype(OPS, nodes=3, k_max=4, width=16, seed=7).to_dict()
    depths, ops, inputs = collections.Counter(), collections.Counter(), collections.Counter()
    for seed in range(300):
        g = sample_genotype(OPS, nodes=3, k_max=4, width=16, seed=seed)
        Genotype.from_dict(g.to_dict())  # round trip validates
        depths[g.depth] += 1
        for j, node in enumerate(g.nodes):
            assert len(node) == 2 and len({i for i, _ in node}) == 2
            for i, op in node:
                ops[op] += 1
                inputs[(j, i)] += 1
    assert set(depths) == {1, 2, 3, 4} and min(depths.values()) > 40  # uniform-ish over 1..k_max
    assert "none" not in ops and set(ops) == set(OPS) - {"none"}
    assert set(inputs) == {(j, i) for j in range(3) for i in range(j + 2)}
    assert sample_genotype(OPS, 3, 4, 16, seed=1, fixed_depth=2).depth == 2
    assert len({json.dumps(sample_genotype(OPS, 3, 4, 16, seed=s).to_dict()) for s in range(20)}) > 15
    with pytest.raises(AdabertError, match="only 'none'"):
        sample_genotype(["none"], 3, 4, 16, seed=0)


def test_fixed_genotype_puts_one_op_on_every_edge():
    from adabert.nas.genotype import fixed_genotype

    g = fixed_genotype("skip_connect", 1, OPS, nodes=3, width=16, k_max=4, head="interaction")
    assert g.depth == 1 and g.head == "interaction" and g.nodes == [[(0, "skip_connect"), (1, "skip_connect")]] * 3
    Genotype.from_dict(g.to_dict())  # a valid genotype of the space
    for op in ("none", "std_conv_7"):  # never kept / not in this op set
        with pytest.raises(AdabertError, match="baselines.fixed_cells"):
            fixed_genotype(op, 1, OPS, nodes=3, width=16, k_max=4)


def test_sampled_genotypes_respect_the_cap_on_parameter_free_ops():
    free = {"max_pool_3", "skip_connect"}
    counts = []
    for seed in range(200):
        uncapped = sample_genotype(OPS, 3, 4, 16, seed=seed)
        capped = sample_genotype(OPS, 3, 4, 16, seed=seed, max_parameter_free=1)
        n_free = [sum(op in free for node in g.nodes for _, op in node) for g in (uncapped, capped)]
        assert n_free[1] <= 1
        if n_free[0] <= 1:  # a first draw within the cap is kept: the capped space is sampled uniformly
            assert capped.to_dict() == uncapped.to_dict()
        counts.append(n_free[1])
    assert set(counts) == {0, 1}
    with pytest.raises(AdabertError, match="no parametric op"):
        sample_genotype(["max_pool_3", "none"], 3, 4, 16, seed=0, max_parameter_free=2)


def test_random_depth_follows_baselines_random_depth(mrpc_searched):
    """searched: the supernet's most likely depth (its fixed depth when it had one); uniform: None (any depth,
    or search.fixed_depth); an integer: that depth within k_max; anything else names the key."""
    from adabert.architectures import random_depth
    from adabert.nas.derive import load_supernet

    net = load_supernet(mrpc_searched["root"] / "search" / "supernet.safetensors")
    expected = net.fixed_depth or int(torch.argmax(net.alpha_depth)) + 1
    scfg = {"k_max": int(net.alpha_depth.numel()), "fixed_depth": None}
    assert random_depth("searched", scfg, net) == expected
    assert Genotype.load(mrpc_searched["root"] / "derive" / "genotype.json").depth == expected  # the derived student's
    assert random_depth("uniform", scfg, net) is None
    assert random_depth("uniform", {**scfg, "fixed_depth": 2}, net) == 2
    assert random_depth(2, scfg, net) == 2
    for bad in (0, scfg["k_max"] + 1, "deep", True):
        with pytest.raises(AdabertError, match="baselines.random.depth"):
            random_depth(bad, scfg, net)


@pytest.fixture(scope="module")
def random_arch(mrpc_small, mrpc_searched, tmp_path_factory):
    out = tmp_path_factory.mktemp("random") / "arch"
    cfg = config.stage_config(mrpc_small["cfg"], "random_architecture")
    assert cfg["retrain"]["init"] == "inherit" and cfg["baselines"]["random"]["depth"] == "searched"
    summary = run_random_architecture(cfg, "MRPC", 0, mrpc_searched["root"] / "search", mrpc_small["data_dir"], out)
    return out, summary


def test_random_architecture_is_a_derive_folder_cut_from_the_searched_supernet(random_arch, mrpc_searched,
                                                                                mrpc_small, tmp_path):
    from adabert.nas.derive import load_supernet

    out, summary = random_arch
    source = io.load_tensors(mrpc_searched["root"] / "derive" / "weights.safetensors")
    tensors = io.load_tensors(out / "weights.safetensors")
    for key in ("word_embeddings.weight", "position_embeddings.weight", "layer_norm.weight"):
        assert torch.equal(tensors[key], source[key]), key
    # inherit: every cell weight of the random genotype is the supernet's tensor of that edge and op
    supernet = load_supernet(mrpc_searched["root"] / "search" / "supernet.safetensors").state_dict()
    cell_keys = [k for k in tensors if k.startswith("cells.") and not k.endswith("node_weights")]
    assert cell_keys and all(torch.equal(tensors[k], supernet[k]) for k in cell_keys)
    assert summary["init"] == "inherit"
    # scratch: the same embedding, freshly initialised cells
    cfg = config.stage_config(mrpc_small["cfg"], "random_architecture")
    cfg["retrain"]["init"] = "scratch"
    run_random_architecture(cfg, "MRPC", 0, mrpc_searched["root"] / "search", mrpc_small["data_dir"],
                            tmp_path / "scratch")
    fresh = io.load_tensors(tmp_path / "scratch" / "weights.safetensors")
    assert torch.equal(fresh["word_embeddings.weight"], tensors["word_embeddings.weight"])
    assert any(not torch.equal(fresh[k], tensors[k]) for k in cell_keys if k.endswith(".weight"))
    student = Student.from_folder(out)
    scfg = mrpc_small["cfg"]["search"]
    # the default baselines.random.depth: the searched student's depth
    searched = Genotype.load(mrpc_searched["root"] / "derive" / "genotype.json")
    assert student.genotype.depth == searched.depth and student.genotype.width == scfg["width"]
    assert summary["depth_rule"] == "searched"
    assert student.classifier.out_features == 2
    assert summary["kind"] == "random" and summary["params"] == student.num_parameters()
    again = run_random_architecture(config.stage_config(mrpc_small["cfg"], "random_architecture"), "MRPC", 0,
                                    mrpc_searched["root"] / "search", mrpc_small["data_dir"], out.with_name("again"))
    assert again["genotype"] == summary["genotype"]
    again_tensors = io.load_tensors(out.with_name("again") / "weights.safetensors")
    assert sorted(again_tensors) == sorted(tensors)
    assert all(torch.equal(again_tensors[k], tensors[k]) for k in tensors)
    other = run_random_architecture(config.stage_config(mrpc_small["cfg"], "random_architecture"), "MRPC", 1,
                                    mrpc_searched["root"] / "search", mrpc_small["data_dir"], out.with_name("other"))
    assert other["sample_seed"] != summary["sample_seed"]
    capped_cfg = config.stage_config(mrpc_small["cfg"], "random_architecture")
    capped_cfg["search"]["max_parameter_free"] = 0  # the random architectures follow the searched space's cap
    capped = run_random_architecture(capped_cfg, "MRPC", 0, mrpc_searched["root"] / "search",
                                     mrpc_small["data_dir"], out.with_name("capped"))
    ops = [edge["op"] for node in capped["genotype"]["nodes"] for edge in node]
    assert not set(ops) & {"max_pool_3", "avg_pool_3", "skip_connect"}
    # the fixed identity cell: depth 1, no cell weights, the same embedding and the depth-1 read-out
    fixed = run_fixed_architecture(config.stage_config(mrpc_small["cfg"], "architecture"), "MRPC", "skip_connect", 0,
                                   mrpc_searched["root"] / "search", mrpc_small["data_dir"], out.with_name("fixed"))
    fixed_tensors = io.load_tensors(out.with_name("fixed") / "weights.safetensors")
    assert fixed["kind"] == "fixed" and fixed["genotype"]["depth"] == 1
    assert not [k for k in fixed_tensors if k.startswith("cells.") and not k.endswith("node_weights")]
    assert torch.equal(fixed_tensors["classifier.weight"], supernet["classifiers.0.weight"])
    assert torch.equal(fixed_tensors["word_embeddings.weight"], tensors["word_embeddings.weight"])


def test_random_architecture_retrains_with_the_main_recipe_and_init(random_arch, mrpc_small, tmp_path):
    out, summary = random_arch
    view = config.retrain_config(mrpc_small["cfg"], "MRPC", "random")
    assert view["variant"] == "random"
    main = config.retrain_config(mrpc_small["cfg"], "MRPC", "main")
    assert view["retrain"] == main["retrain"] and view["retrain"]["init"] == "inherit"
    assert config.retrain_config(mrpc_small["cfg"], "MRPC", "from-RTE")["retrain"]["init"] == "scratch"
    view["retrain"]["epochs"] = 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics = run_retrain(view, "MRPC", "random", 0, mrpc_small["data_dir"], mrpc_small["teacher_dir"],
                              mrpc_small["probes_dir"], out, tmp_path / "retrained")
    finally:
        torch.set_num_threads(threads)
    assert metrics["variant"] == "random" and metrics["init"] == "inherit"
    assert metrics["genotype"] == summary["genotype"]


def test_transfer_keeps_the_source_genotype_and_fits_the_target(mrpc_small, mrpc_searched, tmp_path):
    derive = mrpc_searched["root"] / "derive"
    summary = run_transfer_architecture({"search": {}}, "MRPC", derive / "genotype.json", derive,
                                        mrpc_small["data_dir"], tmp_path / "t")
    assert summary["genotype"] == json.loads((derive / "genotype.json").read_text())
    assert summary["kind"] == "transfer"
    # a genotype of another width does not fit the target's embedding tables
    g = Genotype.load(derive / "genotype.json").to_dict()
    g["width"] = g["width"] * 2
    (tmp_path / "wide.json").write_text(json.dumps(g))
    with pytest.raises(AdabertError, match="width"):
        run_transfer_architecture({}, "MRPC", tmp_path / "wide.json", derive, mrpc_small["data_dir"], tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_variant_config_checks():
    base = {"tasks": ["MRPC", "RTE"], "seeds": [0, 1]}
    cfg = config.resolve({**base, "variants": {"main": {}, "b0": {"tasks": ["RTE"], "seeds": [1], "loss": {"beta": 0}}}})
    assert config.variant_runs(cfg) == [("main", "MRPC", 0), ("main", "MRPC", 1), ("main", "RTE", 0),
                                        ("main", "RTE", 1), ("b0", "RTE", 1)]
    assert config.stage_config(cfg, "search", "RTE", "b0")["loss"]["beta"] == 0
    assert "augmented" not in config.stage_config(cfg, "search", "RTE", "b0")
    for bad, message in [
        ({"variants": {"main": {}, "x": {"tasks": ["SST-2"]}}}, "variants.x.tasks"),
        ({"variants": {"main": {}, "x": {"seeds": [5]}}}, "variants.x.seeds"),
        ({"variants": {"main": {"tasks": ["RTE"]}}}, "variants.main.tasks"),
        ({"variants": {"a": {}}}, "main_variant"),
        ({"variants": {"main": {}, "random": {}}}, "variants"),
        ({"variants": {"main": {}, "from-RTE": {}}}, "variants"),
        ({"variants": {"main": {}, "x": {"retrain": {"kd": "all"}}}}, "variant 'x'"),
        ({"variants": {"main": {}, "x": {"search": {"fixed_depth": 99}}}}, "fixed_depth"),
        ({"transfer": {"tasks": ["QQP"]}}, "transfer.tasks"),
        ({"baselines": {"random": {"tasks": ["QQP"]}}}, "baselines.random.tasks"),
    ]:
        with pytest.raises(AdabertError, match=message):
            config.resolve({**base, **bad})
