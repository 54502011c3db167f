"""Candidate operations (shape, masking, semantics) and their measured costs."""

from __future__ import annotations

import pytest
import torch

from adabert.nas.costs import cost_vector, op_costs
from adabert.nas.ops import OP_NAMES, OPS, AvgPoolBN, MaxPoolBN, masked_mean


pytestmark = pytest.mark.usefixtures("torch_one_thread")


WIDTH, LENGTH = 8, 12


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, WIDTH, LENGTH, generator=g)
    mask = torch.ones(3, 1, LENGTH)
    mask[0, :, 7:] = 0  # sentence 0 has 7 tokens
    mask[1, :, 3:] = 0  # sentence 1 has 3 tokens
    return x, mask


def _op(name: str, train: bool):
    torch.manual_seed(1)
    op = OPS[name](WIDTH)
    op.train(train)
    return op


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("name", OP_NAMES)
def test_op_keeps_shape_and_zeroes_padding(name, train):
    x, mask = _inputs()
    y = _op(name, train)(x, mask)
    assert y.shape == x.shape
    assert torch.all(y * (1 - mask) == 0), "padded positions must be zero"
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("name", OP_NAMES)
def test_padding_values_do_not_leak(name, train):
    x, mask = _inputs()
    noisy = torch.where(mask > 0, x, 1e4 * torch.randn_like(x))  # garbage (and huge maxima) on padding
    op = _op(name, train)
    y1 = op(x, mask)
    y2 = op(noisy, mask)
    torch.testing.assert_close(y1 * mask, y2 * mask, atol=1e-5, rtol=1e-5)


def test_zero_and_identity():
    x, mask = _inputs()
    assert torch.equal(OPS["none"](WIDTH)(x, mask), torch.zeros_like(x))
    ident = OPS["skip_connect"](WIDTH)(x, mask)
    assert torch.equal(ident * mask, x * mask)
    assert list(OPS["skip_connect"](WIDTH).parameters()) == []


def test_max_pool_ignores_padding_and_sequence_ends():
    x = torch.tensor([[[1.0, -5.0, 3.0, -2.0, 100.0]]])
    mask = torch.tensor([[[1.0, 1.0, 1.0, 1.0, 0.0]]])
    pooled = MaxPoolBN(1).pool(x, mask)
    # windows: [1,-5] [1,-5,3] [-5,3,-2] [3,-2,(pad)] ; the padded 100 must never win
    assert pooled.tolist() == [[[1.0, 3.0, 3.0, 3.0, 0.0]]]
    neg = MaxPoolBN(1).pool(-torch.ones(1, 1, 3), torch.ones(1, 1, 3))
    assert neg.tolist() == [[[-1.0, -1.0, -1.0]]], "sequence-end padding must not act as a zero"


def test_avg_pool_averages_real_tokens_only():
    x = torch.tensor([[[3.0, 6.0, 9.0, 50.0]]])
    mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]])
    pooled = AvgPoolBN(1).pool(x, mask)
    expected = [(3 + 6) / 2, (3 + 6 + 9) / 3, (6 + 9) / 2]
    torch.testing.assert_close(pooled[0, 0, :3], torch.tensor(expected))


@pytest.mark.parametrize("k", [3, 5, 7])
def test_dilated_conv_has_dilation_two_receptive_field(k):
    op = OPS[f"dil_conv_{k}"](1).eval()
    std = OPS[f"std_conv_{k}"](1).eval()
    with torch.no_grad():
        for m in (op, std):
            m.conv.weight.fill_(1.0)
            m.conv.bias.zero_()
    length, centre = 21, 10
    x = torch.zeros(1, 1, length)
    x[0, 0, centre] = 1.0
    mask = torch.ones(1, 1, length)
    touched = set((torch.nonzero(op.conv(x)[0, 0]).flatten() - centre).tolist())
    assert touched == set(range(-(k - 1), k, 2)), "a dilation-2 kernel touches every second position"
    touched_std = set((torch.nonzero(std.conv(x)[0, 0]).flatten() - centre).tolist())
    assert touched_std == set(range(-(k // 2), k // 2 + 1))
    assert op(x, mask).shape == x.shape


def test_masked_mean():
    x = torch.tensor([[[1.0, 3.0, 100.0]]])
    mask = torch.tensor([[[1.0, 1.0, 0.0]]])
    assert masked_mean(x, mask).tolist() == [[2.0]]


# -- costs ------------------------------------------------------------------------------------------
EP = [0.09987373, 0.10367607, 0.10762545, 0.09987373, 0.10367607, 0.10762545, 0.09442003, 0.09442003, 0.09440472, 0.09440472]


def test_costs_reproduce_the_authors_ep_table():
    table = op_costs(OP_NAMES, width=128, seq_len=128, normalisation="softmax")
    costs = cost_vector(table, OP_NAMES).double()
    # Tolerance 2e-5: our BatchNorms are affine (ops.py), adding 2 * 128 parameters to each conv/pool
    # op; that shifts the softmax logits params / 1e6 by 2.56e-4, i.e. the cost by about
    # 0.5 * 0.1 * 2.56e-4 = 1.3e-5. Everything else (conv MACs + bias/ReLU/BN/pool element counts,
    # identity/zero smoothing) is reproduced exactly. Any change to the counting of FLOPs (e.g. forgetting
    # that FlopCounterMode reports 2 FLOPs per MAC) moves the costs by > 1e-3.
    torch.testing.assert_close(costs, torch.tensor(EP, dtype=torch.float64), atol=2e-5, rtol=0)
    assert abs(float(costs.sum()) - 1.0) < 1e-9
    assert table["std_conv_3"]["macs"] == 16384 * 128 * 3 + 3 * 16384
    assert table["max_pool_3"]["macs"] == 2 * 16384


@pytest.mark.parametrize("normalisation", ["softmax", "max"])
def test_cost_order(normalisation):
    table = op_costs(OP_NAMES, width=16, seq_len=16, normalisation=normalisation)
    c = {name: table[name]["cost"] for name in OP_NAMES}
    assert c["std_conv_7"] > c["std_conv_5"] > c["std_conv_3"] > c["max_pool_3"] > c["skip_connect"]
    assert c["avg_pool_3"] > c["skip_connect"] and c["none"] == c["skip_connect"]
    assert c["dil_conv_5"] == pytest.approx(c["std_conv_5"])
    if normalisation == "max":
        assert c["std_conv_7"] == pytest.approx(1.0)


def test_costs_follow_the_configured_op_subset():
    ops = ["std_conv_3", "skip_connect", "none"]
    table = op_costs(ops, width=16, seq_len=16)
    assert list(table) == ops
    assert sum(v["cost"] for v in table.values()) == pytest.approx(1.0)
