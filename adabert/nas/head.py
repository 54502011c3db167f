"""The read-out features the classifier of a student (and of each supernet depth) sees.

``mean`` (the paper, spec 1.6): the attentive sum over the mask-aware token means of layers 0..K.

``interaction`` (sentence pairs, beyond the paper): that sum concatenated with ``[e_a * e_b, |e_a - e_b|]``,
where ``e_a`` and ``e_b`` are the mask-aware means of the two sentences' embeddings (layer 0 of each
sentence, before any cell), so ``3 * width`` features. The paper's cells merge the two sentences
position by position and mean-pool, which keeps little of how two sentences relate: a linear model on
bags of the teacher's input embeddings reads STS-B at Pearson 11 from ``[a, b]`` and 73 from
``[a * b, |a - b|]`` (benchmarks/pair_interaction.py). These are the matching features of pair models such
as InferSent and the BiLSTM-SOFT baseline. Single-sentence tasks feed the same sentence twice, so the
head is ``mean`` for them whatever the config says (:func:`head_for`).
"""

from __future__ import annotations

import torch

from adabert.errors import AdabertError

HEADS = ("mean", "interaction")


def check_head(head: str, source: str = "head") -> str:
    if head not in HEADS:
        raise AdabertError(f"{source}: unknown read-out head {head!r}; allowed: {list(HEADS)}")
    return head


def head_for(pair_head: str, pair: bool) -> str:
    """The head of a task: ``pair_head`` (config ``search.pair_head``) for a sentence-pair task, else ``mean``."""
    return check_head(pair_head, "search.pair_head") if pair else "mean"


def feature_width(head: str, width: int) -> int:
    """Input width of the classifier on top of ``head``."""
    return width if check_head(head) == "mean" else 3 * width


def features(head: str, pooled: torch.Tensor, mean_a: torch.Tensor, mean_b: torch.Tensor) -> torch.Tensor:
    """The classifier's input ``[B, feature_width]`` from the attentive layer sum ``pooled`` and the
    embedding means of sentences a and b (all ``[B, width]``)."""
    if head == "mean":
        return pooled
    return torch.cat([pooled, mean_a * mean_b, (mean_a - mean_b).abs()], dim=-1)
