"""Per-op efficiency costs for L_E, measured on the op modules rather than typed in.

Spec 3.3: both authors' codes give every op one normalised cost combining its parameter size and its
FLOPs, measured once for one op instance at (width, seq_len) = (128, 128). The TF constant EP is
reproduced by ``0.5 * softmax(SIZE / 1e6) + 0.5 * softmax(FLOPs / 1e8)`` where "FLOPs" is what the
PyTorch code's counter (ptflops) reports: multiply-accumulates of the convolution plus one operation per
output element for the conv bias, the ReLU and the BatchNorm, and for pooling one per output element
plus one for its BatchNorm. Identity and zero get 1 parameter and 1 FLOP (the authors' smoothing, so
that the softmax over them is well defined and they are the cheapest ops).

How we measure (per op, on a [1, width, seq_len] input with an all-ones mask, eval mode):

* ``params``: number of elements of the module's parameters (BatchNorm affine weights included: ours
  are affine, see ops.py; this adds 2 * width to each conv/pool op, a 2.6e-4 shift of the softmax
  logits at width 128, i.e. ~1e-5 on the cost).
* ``flop_counter_flops``: ``torch.utils.flop_counter.FlopCounterMode`` total. It counts matmul/conv
  only (2 FLOPs per multiply-accumulate, bias ignored), so pools, BN, ReLU and identity count 0.
* ``elementwise``: our documented count of the element-wise work FlopCounterMode leaves out, taken with
  forward hooks: one op per output element for each conv bias, ReLU, BatchNorm and pooling window
  (mask multiplications are bookkeeping of this implementation and are not counted).
* ``macs``: flop_counter_flops / 2 + elementwise, i.e. ptflops' convention (the "FLOPs" of the authors'
  table). The cost uses this number, so the default reproduces EP.
* ``flops``: flop_counter_flops + elementwise (2 FLOPs per MAC), reported for readers.

Normalisation (config ``search.cost_normalisation``): "softmax" is the formula above over the
configured op set; "max" is 0.5 * params / max(params) + 0.5 * macs / max(macs).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from adabert.nas.ops import OPS, AvgPoolBN, MaxPoolBN

NORMALISATIONS = ("softmax", "max")
SMOOTHED_OPS = ("skip_connect", "none")  # 1 param, 1 FLOP (authors' smoothing)


def _elementwise_count(module: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> int:
    count = 0
    hooks = []

    def add_numel(mod: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal count
        count += output.numel()

    def add_conv_bias(mod: nn.Conv1d, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal count
        if mod.bias is not None:
            count += output.numel()

    for sub in module.modules():
        if isinstance(sub, nn.Conv1d):
            hooks.append(sub.register_forward_hook(add_conv_bias))
        elif isinstance(sub, (nn.ReLU, nn.BatchNorm1d)):
            hooks.append(sub.register_forward_hook(add_numel))
    if isinstance(module, (MaxPoolBN, AvgPoolBN)):
        count += int(x.numel())  # the pooling window itself: one op per output element
    try:
        module(x, mask)
    finally:
        for h in hooks:
            h.remove()
    return count


@torch.no_grad()
def measure_op(name: str, width: int = 128, seq_len: int = 128) -> dict[str, int]:
    """Raw counts for one op instance (see module docstring)."""
    module = OPS[name](width).eval()
    x = torch.randn(1, width, seq_len)
    mask = torch.ones(1, 1, seq_len)
    if name in SMOOTHED_OPS:
        return {"params": 1, "flop_counter_flops": 0, "elementwise": 0, "macs": 1, "flops": 1}
    params = sum(p.numel() for p in module.parameters())
    with FlopCounterMode(display=False) as counter:
        module(x, mask)
    counted = int(counter.get_total_flops())
    elementwise = _elementwise_count(module, x, mask)
    return {
        "params": int(params),
        "flop_counter_flops": counted,
        "elementwise": elementwise,
        "macs": counted // 2 + elementwise,
        "flops": counted + elementwise,
    }


def op_costs(
    ops: Sequence[str], width: int = 128, seq_len: int = 128, normalisation: str = "softmax"
) -> dict[str, dict[str, float]]:
    """Table name -> {params, flops, macs, flop_counter_flops, elementwise, cost} over ``ops``."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"cost normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    table = {name: dict(measure_op(name, width, seq_len)) for name in ops}
    params = torch.tensor([table[n]["params"] for n in ops], dtype=torch.float64)
    macs = torch.tensor([table[n]["macs"] for n in ops], dtype=torch.float64)
    if normalisation == "softmax":
        cost = 0.5 * torch.softmax(params / 1e6, 0) + 0.5 * torch.softmax(macs / 1e8, 0)
    else:
        cost = 0.5 * params / params.max() + 0.5 * macs / macs.max()
    for name, c in zip(ops, cost.tolist()):
        table[name]["cost"] = c
    return table


def cost_vector(table: dict[str, dict[str, float]], ops: Sequence[str]) -> torch.Tensor:
    """Costs in the order of ``ops`` (the columns of alpha_ops), float32."""
    return torch.tensor([table[n]["cost"] for n in ops], dtype=torch.float32)
