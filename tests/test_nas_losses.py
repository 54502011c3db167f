"""Search objective: gradients to weights and both alphas, KD formula, efficiency term, imputation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adabert.nas.costs import cost_vector, op_costs
from adabert.nas.losses import search_loss, teacher_layer
from adabert.nas.ops import OP_NAMES
from adabert.nas.supernet import SuperNet, SuperNetOutput


pytestmark = pytest.mark.usefixtures("torch_one_thread")


K_MAX, LT = 3, 6
COSTS = cost_vector(op_costs(OP_NAMES, 16, 16), OP_NAMES)


def _batch(num_labels: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(1, 40, (6, 9), generator=g)
    b = torch.randint(1, 40, (6, 9), generator=g)
    am = torch.ones_like(a)
    am[0, 5:] = 0
    bm = torch.ones_like(b)
    labels = torch.randint(0, 2, (6,), generator=g) if num_labels > 1 else torch.rand(6, generator=g) * 5
    teacher = torch.randn(6, num_labels, generator=g)
    probes = torch.randn(6, LT + 1, num_labels, generator=g)
    return a, am, b, bm, labels, teacher, probes


@pytest.mark.parametrize("num_labels", [2, 1])
@pytest.mark.parametrize("execution", ["single_path", "mixed"])
def test_total_loss_reaches_op_weights_and_both_alphas(execution, num_labels):
    torch.manual_seed(0)
    net = SuperNet(40, 16, 12, num_labels, width=8, k_max=K_MAX)
    conv = OP_NAMES.index("std_conv_3")
    with torch.no_grad():
        net.alpha_ops[:, conv] = 20.0  # the hard sample picks std_conv_3 on every edge
        net.alpha_depth.copy_(torch.tensor([0.0, 20.0, 0.0]))  # ... and depth 2
    a, am, b, bm, labels, teacher, probes = _batch(num_labels)
    ow, dw = net.sample_arch(tau=1.0)
    assert int(dw.argmax()) == 1 and torch.all(ow.argmax(1) == conv)
    out = net(a, am, b, bm, ow, dw, execution)
    parts = search_loss(out, labels, teacher, probes, COSTS)
    parts["loss"].backward()
    assert net.cells[0].edges[0]["std_conv_3"].conv.weight.grad.abs().sum() > 0
    assert net.cells[1].edges[8]["std_conv_3"].bn.weight.grad.abs().sum() > 0
    assert net.alpha_ops.grad is not None and net.alpha_ops.grad.abs().sum() > 0
    assert net.alpha_depth.grad is not None and net.alpha_depth.grad.abs().sum() > 0
    assert net.projection.weight.grad.abs().sum() > 0 and net.word_embeddings.weight.grad.abs().sum() > 0
    if execution == "single_path":
        assert net.cells[2].edges[0]["std_conv_3"].conv.weight.grad is None  # cell 3 was not computed
        assert net.cells[0].edges[0]["std_conv_5"].conv.weight.grad is None  # op not sampled


def test_teacher_layer_mapping_is_ceil():
    assert [teacher_layer(i, 8, 12) for i in range(9)] == [0, 2, 3, 5, 6, 8, 9, 11, 12]
    assert [teacher_layer(i, 3, 6) for i in range(4)] == [0, 2, 4, 6]
    assert [teacher_layer(i, 8, 6) for i in range(9)] == [0, 1, 2, 3, 3, 4, 5, 6, 6]


def _output(depth_logits, layer_logits, depth: int, k_max: int = K_MAX, n_edges: int = 9):
    y = torch.zeros(k_max)
    y[depth - 1] = 1.0
    ow = F.one_hot(torch.arange(n_edges) % len(OP_NAMES), len(OP_NAMES)).float()
    return SuperNetOutput(depth_logits, layer_logits, y, ow, max(depth_logits))


def test_kd_formula_by_hand():
    _, _, _, _, labels, teacher, probes = _batch()
    g = torch.Generator().manual_seed(1)
    layers = [torch.randn(6, 2, generator=g) for _ in range(3)]
    logits = {1: torch.randn(6, 2, generator=g), 2: torch.randn(6, 2, generator=g)}
    out = _output(logits, layers, depth=2)
    T = 2.0
    parts = search_loss(out, labels, teacher, probes, COSTS, gamma=0.8, beta=0.0, temperature=T)

    def kl(s, t):
        p = torch.softmax(t / T, -1)
        return (p * (torch.log_softmax(t / T, -1) - torch.log_softmax(s / T, -1))).sum(-1).mean() * T * T

    matched = [0, 3, 6]  # ceil(i * 6 / 2)
    quality = torch.stack([F.cross_entropy(probes[:, m], labels) for m in matched])
    att = torch.softmax(-quality, 0)
    probe = sum(att[i] * kl(layers[i], probes[:, m]) for i, m in enumerate(matched))
    final = kl(logits[2], teacher)
    ce = F.cross_entropy(logits[2], labels)
    torch.testing.assert_close(parts["kd_probe"], probe)
    torch.testing.assert_close(parts["kd_final"], final)
    torch.testing.assert_close(parts["kd"], 0.5 * probe + 0.5 * final)
    torch.testing.assert_close(parts["ce"], ce)
    torch.testing.assert_close(parts["loss"], 0.2 * ce + 0.8 * (0.5 * probe + 0.5 * final))
    only_probe = search_loss(out, labels, teacher, probes, COSTS, beta=0.0, temperature=T, kd="probe")
    only_final = search_loss(out, labels, teacher, probes, COSTS, beta=0.0, temperature=T, kd="final")
    torch.testing.assert_close(only_probe["kd"], probe)
    torch.testing.assert_close(only_final["kd"], final)


def test_kd_is_zero_when_student_matches_teacher():
    _, _, _, _, labels, teacher, probes = _batch()
    layers = [probes[:, teacher_layer(i, 3, LT)] for i in range(4)]
    out = _output({1: teacher, 2: teacher, 3: teacher}, layers, depth=3)
    parts = search_loss(out, labels, teacher, probes, COSTS, beta=0.0)
    assert abs(float(parts["kd"])) < 1e-6


def test_regression_uses_mse():
    _, _, _, _, labels, teacher, probes = _batch(num_labels=1)
    layers = [torch.zeros(6, 1) for _ in range(2)]
    logits = {1: torch.ones(6, 1)}
    parts = search_loss(_output(logits, layers, depth=1), labels, teacher, probes, COSTS, beta=0.0)
    torch.testing.assert_close(parts["ce"], F.mse_loss(torch.ones(6), labels))
    torch.testing.assert_close(parts["kd_final"], F.mse_loss(torch.ones(6, 1), teacher))


def test_efficiency_term_value_and_beta():
    _, _, _, _, labels, teacher, probes = _batch()
    layers = [torch.zeros(6, 2) for _ in range(3)]
    out = _output({1: torch.zeros(6, 2), 2: torch.zeros(6, 2)}, layers, depth=2)
    expected = (2 / K_MAX) * float((out.op_weights * COSTS).sum(1).mean())
    p0 = search_loss(out, labels, teacher, probes, COSTS, beta=0.0)
    p4 = search_loss(out, labels, teacher, probes, COSTS, beta=4.0)
    assert float(p4["efficiency"]) == pytest.approx(expected)
    assert float(p4["loss"] - p0["loss"]) == pytest.approx(4 * expected, rel=1e-5)


def test_efficiency_gradient_prefers_cheap_ops_and_shallow_depth():
    alpha_ops = torch.zeros(9, len(OP_NAMES), requires_grad=True)
    alpha_depth = torch.zeros(K_MAX, requires_grad=True)
    ow = torch.softmax(alpha_ops, -1)  # soft weights: every op/depth gets the expected-cost gradient
    y = torch.softmax(alpha_depth, -1)
    out = SuperNetOutput({1: torch.zeros(6, 2)}, [torch.zeros(6, 2)] * 2, y, ow, 1)
    _, _, _, _, labels, teacher, probes = _batch()
    loss = search_loss(out, labels, teacher, probes, COSTS, gamma=0.0, beta=1.0)["loss"]
    loss.backward()
    g = alpha_ops.grad[0]
    assert g[OP_NAMES.index("std_conv_7")] > g[OP_NAMES.index("max_pool_3")] > g[OP_NAMES.index("skip_connect")]
    assert alpha_depth.grad[2] > alpha_depth.grad[1] > alpha_depth.grad[0]


def test_single_path_imputes_uncomputed_depths():
    """Uncomputed deeper depths see the sampled depth's loss, not a free zero."""
    _, _, _, _, labels, teacher, probes = _batch()
    g = torch.Generator().manual_seed(2)
    layers = [torch.randn(6, 2, generator=g) for _ in range(3)]
    logits = {1: torch.randn(6, 2, generator=g), 2: torch.randn(6, 2, generator=g)}
    y = torch.tensor([0.0, 1.0, 0.0, 0.0], requires_grad=True)  # k_max 4, sampled depth 2
    out = SuperNetOutput(logits, layers, y, torch.zeros(9, len(OP_NAMES)), 2)
    parts = search_loss(out, labels, teacher, probes, COSTS, beta=0.0)
    parts["loss"].backward()
    grad = y.grad.tolist()
    assert grad[2] == pytest.approx(grad[1]) and grad[3] == pytest.approx(grad[1])
    assert grad[0] != pytest.approx(grad[1])  # depth 1 was computed: its own loss
    assert float(parts["loss"].detach()) == pytest.approx(grad[1])


def test_depth_lookahead_measures_the_next_depth_and_keeps_the_forward_value():
    """With look-ahead 1 the cell after the sampled depth runs: its depth's loss is measured (not imputed
    as the sampled depth's), the loss value is that of the sampled depth alone, and a fixed depth
    computes nothing extra."""
    torch.manual_seed(0)
    net = SuperNet(40, 16, 12, 2, width=8, k_max=4, dropout=0.0).eval()
    a, am, b, bm, labels, teacher, probes = _batch()
    ow = F.one_hot(torch.arange(9) % len(OP_NAMES), len(OP_NAMES)).float()
    grads, losses = {}, {}
    for lookahead in (0, 1):
        y = torch.tensor([1.0, 0.0, 0.0, 0.0], requires_grad=True)  # sampled depth 1
        out = net(a, am, b, bm, ow, y, "single_path", lookahead)
        assert out.computed_depth == 1 + lookahead and sorted(out.depth_logits) == list(range(1, 2 + lookahead))
        parts = search_loss(out, labels, teacher, probes, COSTS, beta=0.0)
        parts["loss"].backward()
        grads[lookahead], losses[lookahead] = y.grad.tolist(), float(parts["loss"].detach())
    assert losses[1] == pytest.approx(losses[0])
    assert grads[0][1] == pytest.approx(grads[0][0])  # imputed: "as good as depth 1"
    assert grads[1][1] != pytest.approx(grads[1][0])  # measured: depth 2's own loss
    assert grads[1][2] == pytest.approx(grads[1][1]) and grads[1][3] == pytest.approx(grads[1][1])
    y = torch.tensor([0.0, 0.0, 0.0, 1.0])
    assert net(a, am, b, bm, ow, y, "single_path", 1).computed_depth == 4  # capped at k_max
    fixed = SuperNet(40, 16, 12, 2, width=8, k_max=4, dropout=0.0, fixed_depth=2).eval()
    assert fixed(a, am, b, bm, ow, fixed.fixed_depth_weights(), "single_path", 1).computed_depth == 2
