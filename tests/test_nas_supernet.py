"""Supernet: masking, execution modes, sampling, and the derived Student's exact weight inheritance."""

from __future__ import annotations

import pytest
import torch

from adabert.errors import AdabertError
from adabert.nas.derive import student_weights
from adabert.nas.genotype import Genotype, derive_genotype
from adabert.nas.supernet import SuperNet, argmax_onehot, sample
from adabert.student import Student


pytestmark = pytest.mark.usefixtures("torch_one_thread")


VOCAB, POSITIONS, TEACHER_DIM, WIDTH, K_MAX = 50, 16, 12, 8, 3


def _net(num_labels: int = 2, dropout: float = 0.0, **kwargs) -> SuperNet:
    torch.manual_seed(0)
    return SuperNet(VOCAB, POSITIONS, TEACHER_DIM, num_labels, width=WIDTH, k_max=K_MAX, dropout=dropout, **kwargs)


def _batch(seed: int = 0, length: int = 10):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(1, VOCAB, (4, length), generator=g)
    b = torch.randint(1, VOCAB, (4, length), generator=g)
    am = torch.ones(4, length, dtype=torch.long)
    bm = torch.ones(4, length, dtype=torch.long)
    am[0, 6:] = 0
    am[1, 3:] = 0
    bm[1, 8:] = 0
    bm[2, 2:] = 0
    return a * am, am, b * bm, bm


def _warm_up(net: SuperNet, steps: int = 2) -> None:
    """A few SGD steps in train mode so BatchNorm statistics and weights are not at their init."""
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.05)
    net.train()
    for s in range(steps):
        a, am, b, bm = _batch(seed=10 + s)
        ow, dw = torch.ones(9, len(net.ops)) / len(net.ops), torch.ones(K_MAX) / K_MAX
        out = net(a, am, b, bm, ow, dw, "mixed")
        loss = sum(v.square().mean() for v in out.depth_logits.values())
        opt.zero_grad()
        loss.backward()
        opt.step()


def _one_hot_sample(net: SuperNet, depth: int, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    ops = torch.randint(0, len(net.ops), (9,), generator=g)
    ow = torch.nn.functional.one_hot(ops, len(net.ops)).float()
    dw = torch.zeros(K_MAX)
    dw[depth - 1] = 1.0
    return ow, dw


@pytest.mark.parametrize("execution", ["single_path", "mixed"])
@pytest.mark.parametrize("train", [False, True])
def test_padding_tokens_do_not_leak(execution, train):
    net = _net()
    _warm_up(net)
    net.train(train)
    a, am, b, bm = _batch()
    ow, dw = _one_hot_sample(net, depth=K_MAX)
    out1 = net(a, am, b, bm, ow, dw, execution)
    garbage = torch.randint(1, VOCAB, a.shape, generator=torch.Generator().manual_seed(9))
    a2, b2 = torch.where(am > 0, a, garbage), torch.where(bm > 0, b, garbage.flip(0))
    out2 = net(a2, am, b2, bm, ow, dw, execution)
    for d in out1.depth_logits:
        torch.testing.assert_close(out1.depth_logits[d], out2.depth_logits[d], atol=1e-6, rtol=1e-6)
    for x, y in zip(out1.layer_logits, out2.layer_logits):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-6)


def test_extra_padding_columns_do_not_change_eval_outputs():
    net = _net()
    _warm_up(net)
    net.eval()
    a, am, b, bm = _batch(length=10)
    pad = lambda t: torch.cat([t, torch.zeros(4, 5, dtype=t.dtype)], dim=1)  # noqa: E731
    ow, dw = _one_hot_sample(net, depth=2)
    out1 = net(a, am, b, bm, ow, dw)
    out2 = net(pad(a), pad(am), pad(b), pad(bm), ow, dw)
    torch.testing.assert_close(out1.depth_logits[2], out2.depth_logits[2], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("train", [False, True])
def test_single_path_and_mixed_agree_on_one_hot_sample(train):
    net = _net()
    _warm_up(net)
    net.train(train)
    a, am, b, bm = _batch()
    ow, dw = _one_hot_sample(net, depth=2)
    single = net(a, am, b, bm, ow, dw, "single_path")
    all_ops = net(a, am, b, bm, ow, dw, "all_ops")
    mixed = net(a, am, b, bm, ow, dw, "mixed")
    assert single.computed_depth == all_ops.computed_depth == 2 and sorted(all_ops.depth_logits) == [1, 2]
    assert mixed.computed_depth == K_MAX and sorted(mixed.depth_logits) == [1, 2, 3]
    for other in (all_ops, mixed):
        for d in (1, 2):
            torch.testing.assert_close(single.depth_logits[d], other.depth_logits[d], atol=1e-6, rtol=1e-5)
        for i in range(3):
            torch.testing.assert_close(single.layer_logits[i], other.layer_logits[i], atol=1e-6, rtol=1e-5)


def test_all_ops_gives_every_op_a_gradient_single_path_only_the_sampled_one():
    """The op weights' gradient: the same on the sampled ops; elsewhere zero in single path, while all-ops
    execution tells every op (but ``none``, whose output is zero) how the loss would change with it."""
    net = _net()
    _warm_up(net)
    net.train()
    a, am, b, bm = _batch()
    ow, dw = _one_hot_sample(net, depth=2)
    grads = {}
    for execution in ("single_path", "all_ops"):
        torch.manual_seed(1)  # the same dropout masks
        w = ow.clone().requires_grad_(True)
        net(a, am, b, bm, w, dw, execution).depth_logits[2].square().sum().backward()
        grads[execution] = w.grad
    sampled = ow.bool()
    torch.testing.assert_close(grads["all_ops"][sampled], grads["single_path"][sampled], atol=1e-6, rtol=1e-5)
    assert (grads["single_path"][~sampled] == 0).all()
    none = net.ops.index("none")
    others = ~sampled
    others[:, none] = False
    assert (grads["all_ops"][others] != 0).all()
    assert (grads["all_ops"][:, none] == 0).all()


def test_single_path_runs_only_sampled_ops_and_cells():
    net = _net()
    calls: list[tuple[int, int, str]] = []
    for k, cell in enumerate(net.cells):
        for e, edge in enumerate(cell.edges):
            for name, op in edge.items():
                op.register_forward_hook(lambda m, i, o, key=(k, e, name): calls.append(key))
    ow, dw = _one_hot_sample(net, depth=2)
    a, am, b, bm = _batch()
    net(a, am, b, bm, ow, dw, "single_path")
    chosen = [net.ops[int(i)] for i in ow.argmax(1)]
    expected = {(k, e, chosen[e]) for k in range(2) for e in range(9) if chosen[e] != "none"}
    assert set(calls) == expected and len(calls) == len(expected)
    calls.clear()
    net(a, am, b, bm, ow, dw, "all_ops")
    assert len(calls) == 2 * 9 * len(net.ops) and {k for k, _, _ in calls} == {0, 1}
    calls.clear()
    net(a, am, b, bm, ow, dw, "mixed")
    assert len(calls) == K_MAX * 9 * len(net.ops)


def test_sampling_helpers():
    torch.manual_seed(0)
    alpha = torch.randn(9, 10, requires_grad=True)
    w = sample(alpha, tau=0.5)
    assert torch.equal(w.sum(-1), torch.ones(9)) and set(w.detach().unique().tolist()) == {0.0, 1.0}
    (w * torch.arange(10.0)).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0, "straight-through gradient"
    assert torch.equal(argmax_onehot(torch.tensor([[0.1, 2.0, -1.0]])), torch.tensor([[0.0, 1.0, 0.0]]))


def test_parameter_groups_and_fixed_depth():
    net = _net()
    names = {n for n, _ in net.named_weight_parameters()}
    assert "alpha_ops" not in names and "alpha_depth" not in names
    assert len(net.weight_parameters()) + 2 == len(list(net.parameters()))
    assert [p.shape for p in net.arch_parameters()] == [net.alpha_ops.shape, net.alpha_depth.shape]
    fixed = _net(fixed_depth=2)
    assert fixed.arch_parameters() == [fixed.alpha_ops]
    _, dw = fixed.sample_arch(tau=1.0)
    assert dw.tolist() == [0.0, 1.0, 0.0]


def test_export_embedding_folds_projection():
    net = _net()
    word, position = net.export_embedding()
    assert word.shape == (VOCAB, WIDTH) and position.shape == (POSITIONS, WIDTH)
    ids = torch.tensor([3, 7])
    expected = net.projection(net.word_embeddings.weight[ids] + net.position_embeddings.weight[:2])
    torch.testing.assert_close(word[ids] + position[:2], expected, atol=1e-6, rtol=1e-6)


def _derived(net: SuperNet) -> Genotype:
    g = torch.Generator().manual_seed(5)
    return derive_genotype(torch.randn(9, len(net.ops), generator=g), torch.tensor([0.0, 1.0, 0.5]), net.ops, width=WIDTH,
                           head=net.head)


@pytest.mark.parametrize("num_labels,head", [(2, "mean"), (1, "mean"), (3, "interaction")])
def test_student_reproduces_supernet_with_genotype_choices(tmp_path, num_labels, head):
    net = _net(num_labels=num_labels, dropout=0.1, head=head)
    _warm_up(net)
    genotype = _derived(net)
    assert genotype.depth == 2
    Student(genotype, VOCAB, POSITIONS, num_labels).save(tmp_path)  # a random student, overwritten below
    tensors = student_weights(net, genotype)
    from adabert import io

    io.save_tensors(tmp_path / "weights.safetensors", tensors)
    student = Student.from_folder(tmp_path).eval()
    net.eval()
    a, am, b, bm = _batch()
    for execution in ("single_path", "mixed"):
        expected = net(a, am, b, bm, genotype.op_weights(net.ops), genotype.depth_weights(), execution)
        torch.testing.assert_close(student(a, am, b, bm), expected.depth_logits[2], atol=1e-5, rtol=1e-5)
    # only the kept edges' weights are inherited: fewer parameters than the supernet's depth-2 part
    kept = sum(1 for _, _, op in genotype.edge_list() if op.startswith(("std", "dil")))
    conv_params = sum(
        p.numel() for n, p in student.named_parameters() if ".conv." in n
    )
    assert conv_params == 2 * sum(
        net.cells[0].edges[row][op].conv.weight.numel() + WIDTH for row, _, op in genotype.edge_list() if op.startswith(("std", "dil"))
    ) and kept > 0


def test_student_from_folder_is_strict(tmp_path):
    net = _net()
    genotype = _derived(net)
    tensors = student_weights(net, genotype)
    from adabert import io

    genotype.save(tmp_path / "genotype.json")
    missing = dict(tensors)
    dropped = next(k for k in missing if ".conv.weight" in k)
    del missing[dropped]
    io.save_tensors(tmp_path / "weights.safetensors", missing)
    with pytest.raises(AdabertError, match=f"missing tensors.*{dropped}"):
        Student.from_folder(tmp_path)
    io.save_tensors(tmp_path / "weights.safetensors", {**tensors, "cells.0.extra": torch.zeros(1)})
    with pytest.raises(AdabertError, match="unexpected tensors.*cells.0.extra"):
        Student.from_folder(tmp_path)
    bad = dict(tensors)
    bad["layer_weights"] = torch.zeros(7)
    io.save_tensors(tmp_path / "weights.safetensors", bad)
    with pytest.raises(AdabertError, match=r"mismatched shapes.*layer_weights"):
        Student.from_folder(tmp_path)
    (tmp_path / "weights.safetensors").unlink()
    with pytest.raises(AdabertError, match="weights.safetensors: file not found"):
        Student.from_folder(tmp_path)


def test_interaction_head_reads_how_the_two_sentences_relate():
    from adabert.nas import head as readout

    pooled, a, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -1.0]]), torch.tensor([[2.0, 1.0]])
    assert readout.features("mean", pooled, a, b) is pooled
    assert readout.features("interaction", pooled, a, b).tolist() == [[1.0, 2.0, 6.0, -1.0, 1.0, 2.0]]
    assert readout.feature_width("interaction", 8) == 24 and readout.feature_width("mean", 8) == 8
    assert readout.head_for("interaction", pair=True) == "interaction"
    assert readout.head_for("interaction", pair=False) == "mean"  # one sentence fed twice: nothing to relate
    with pytest.raises(AdabertError, match="search.pair_head.*'dot'"):
        readout.head_for("dot", pair=True)

    net = _net(num_labels=2, head="interaction")
    assert net.classifiers[0].in_features == 3 * WIDTH and net.hparams()["head"] == "interaction"
    genotype = _derived(net)
    assert genotype.head == "interaction" and Student(genotype, VOCAB, POSITIONS, 2).classifier.in_features == 3 * WIDTH
    with pytest.raises(AdabertError, match="head 'mean' differs from the supernet's 'interaction'"):
        student_weights(net, derive_genotype(torch.zeros(9, len(net.ops)), torch.zeros(K_MAX), net.ops, width=WIDTH))
