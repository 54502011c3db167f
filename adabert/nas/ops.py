"""Candidate operations of the AdaBERT cell, as data (DARTS style): ``OPS[name](width) -> nn.Module``.

Every op maps ``x`` of shape ``[batch, width, seq]`` and ``mask`` of shape ``[batch, 1, seq]``
(float, 1 = real token, 0 = padding) to a tensor of the shape of ``x``, and its output is zero on
padded positions. The ten ops and their order follow the paper / TF cost vector (method spec 1.3):

* ``std_conv_{3,5,7}``: Conv1d(width, width, k, padding k//2, with bias) -> ReLU -> BatchNorm1d.
  The order Conv -> ReLU -> BN is the one the authors' PyTorch code runs (its docstring says
  "ReLU-Conv-BN", the code does not).
* ``dil_conv_{3,5,7}``: the same with a *real* dilated convolution (dilation 2, padding k-1), as in
  the authors' PyTorch code. (The authors' TF code builds morphological ``dilation2d`` here, which is
  a different operation; spec 1.3 warns about it.)
* ``max_pool_3``, ``avg_pool_3``: window 3, stride 1, padding 1, then BatchNorm1d (PyTorch code);
  the average excludes padding from the count (PyTorch ``count_include_pad=False``).
* ``skip_connect``: identity; ``none``: zeros.

Masking (our addition, recipe section 9 fills a gap): both authors' codes let padding flow through
the cells. Here every op first zeroes padded input positions (so padded token ids or values can never
reach a real position), max pooling never picks a padded position (they are filled with -inf),
average pooling averages only real tokens, and every output is multiplied by the mask.

BatchNorm: ``affine=True``. The authors' PyTorch code uses affine-free BN inside the mixed ops during
search (DARTS convention) and the derived network would then learn fresh affine parameters; because
this benchmark *inherits* the searched weights into the student (paper: "derive the searched
structure with its trained operation weights"), the affine parameters are trained during search and
inherited with everything else. Caveat: in training mode the batch statistics of BN are computed over
all positions, padded zeros included, so the amount of padding in a batch shifts the statistics
slightly (values on padded positions never depend on padded tokens, so nothing leaks). Eval mode uses
running statistics, which are position-independent.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

# Order of the paper's / TF cost vector EP (spec 1.3, 3.3); also the default of config search.ops.
OP_NAMES: tuple[str, ...] = (
    "std_conv_3",
    "std_conv_5",
    "std_conv_7",
    "dil_conv_3",
    "dil_conv_5",
    "dil_conv_7",
    "max_pool_3",
    "avg_pool_3",
    "skip_connect",
    "none",
)

# The ops without convolution weights ("parameter-free" in the DARTS literature; the pools' BatchNorm
# has an affine pair per channel): the ones a short differentiable search collapses to, and what
# search.max_parameter_free caps in a derived cell.
PARAMETER_FREE_OPS: frozenset[str] = frozenset({"max_pool_3", "avg_pool_3", "skip_connect"})


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` [B, W, L] over the real tokens of ``mask`` [B, 1, L] -> [B, W]."""
    total = (x * mask).sum(dim=-1)
    count = mask.sum(dim=-1).clamp_min(1.0)
    return total / count


def union_mask(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Positions real in either input (a node that sums edges from both sentences)."""
    return torch.maximum(a, b)


def token_embeddings(
    word_embeddings: nn.Embedding, position_embeddings: nn.Embedding, max_positions: int, ids: torch.Tensor
) -> torch.Tensor:
    """Word plus position embeddings [B, L, dim] of token ids [B, L] (positions 0..L-1, at most max_positions)."""
    length = ids.shape[1]
    if length > max_positions:
        raise ValueError(f"sequence length {length} exceeds max_positions {max_positions}")
    positions = torch.arange(length, device=ids.device)
    return word_embeddings(ids) + position_embeddings(positions)[None]


class ConvReLUBN(nn.Module):
    """Conv1d (optionally dilated) -> ReLU -> BatchNorm1d, length-preserving, mask-aware."""

    def __init__(self, width: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(width, width, kernel_size, padding=padding, dilation=dilation, bias=True)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm1d(width, affine=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.bn(self.relu(self.conv(x * mask))) * mask


class MaxPoolBN(nn.Module):
    """Max pooling (3, stride 1, pad 1) over real tokens only -> BatchNorm1d."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(width, affine=True)

    def pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Padded positions become -inf so they never win; F.max_pool1d pads the sequence ends with
        # -inf too. A real position always sees itself, so its result is finite; padded positions
        # whose whole window is padding come out -inf and are set to zero.
        filled = x.masked_fill(mask == 0, float("-inf"))
        pooled = F.max_pool1d(filled, kernel_size=3, stride=1, padding=1)
        return torch.where(mask > 0, pooled, torch.zeros((), dtype=x.dtype, device=x.device))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pool(x, mask)) * mask


class AvgPoolBN(nn.Module):
    """Average pooling (3, stride 1, pad 1) over real tokens only -> BatchNorm1d."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(width, affine=True)

    def pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Sum of real neighbours / number of real neighbours (both as window means, the 1/3 cancels).
        summed = F.avg_pool1d(x * mask, kernel_size=3, stride=1, padding=1, count_include_pad=True)
        count = F.avg_pool1d(mask, kernel_size=3, stride=1, padding=1, count_include_pad=True)
        return summed / count.clamp_min(1e-6)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pool(x, mask)) * mask


class Identity(nn.Module):
    """skip_connect: the input on real tokens, zero on padding."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x * mask


class Zero(nn.Module):
    """none: zeros (the 'drop this edge' choice; derivation never keeps it)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


OPS: dict[str, Callable[[int], nn.Module]] = {
    "std_conv_3": lambda w: ConvReLUBN(w, 3, 1),
    "std_conv_5": lambda w: ConvReLUBN(w, 5, 1),
    "std_conv_7": lambda w: ConvReLUBN(w, 7, 1),
    "dil_conv_3": lambda w: ConvReLUBN(w, 3, 2),
    "dil_conv_5": lambda w: ConvReLUBN(w, 5, 2),
    "dil_conv_7": lambda w: ConvReLUBN(w, 7, 2),
    "max_pool_3": lambda w: MaxPoolBN(w),
    "avg_pool_3": lambda w: AvgPoolBN(w),
    "skip_connect": lambda w: Identity(),
    "none": lambda w: Zero(),
}

assert tuple(OPS) == OP_NAMES
