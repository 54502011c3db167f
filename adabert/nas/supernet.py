"""The AdaBERT supernet: factorised BERT embedding, K_max search cells, per-depth read-out heads.

Embedding (spec 1.5, the authors' TF code, recipe 9.3): trainable copies of the teacher's word and
position tables (teacher_dim wide, initialised from the fine-tuned teacher) are summed, projected by a
learned Linear(teacher_dim -> width) (Xavier init, as TF), then LayerNorm(width) and dropout. No
token-type embedding. Because the projection is linear, the deployed student only needs
vocab x width and positions x width tables: ``export_embedding`` folds the projection
((w + p) W^T + b = w W^T + (p W^T + b)). Each sentence is tokenised alone, so positions restart at 0
for sentence b (as in TF).

Sentence pairs (spec 1.2/1.5): input node 0 of cell 1 gets sentence a, input node 1 sentence b (the
data stage repeats a as b for single-sentence tasks). Cell k reads (c_{k-2}, c_{k-1}) with
c_{-1} = emb_a and c_0 = emb_b: cell 1 = (emb_a, emb_b), cell 2 = (emb_b, cell 1), cell 3 =
(cell 1, cell 2), ...

Architecture parameters (spec 1.2/1.4, authors' PyTorch code): ONE ``alpha_ops`` [n_edges, n_ops]
shared by every cell (each cell has its own op weights) and ``alpha_depth`` [k_max] over K = 1..k_max,
both initialised 1e-3 * randn and kept apart from the model weights (``arch_parameters`` /
``weight_parameters``).

Read-out (spec 1.6, PyTorch with its off-by-one bug 8 fixed): layer i's representation is the
mask-aware mean over tokens of layer i (layer 0 = embedding of sentence a, layer k = output of cell k).
Depth d pools layers 0..d with its own softmax weights (d + 1 entries, init 0.01 * randn), then tanh,
dropout and its own Linear(width, num_labels); with ``head: interaction`` (sentence pairs,
:mod:`adabert.nas.head`) the classifier also reads the product and absolute difference of the two
sentences' embedding means. Student probes (spec 3.2, PyTorch): one
Linear(width, num_labels) per layer 0..k_max on tanh(layer mean), distilled from the teacher probes.

Execution (config ``search.execution``): "single_path" computes only cells 1..d* with
d* = argmax(depth_weights) + 1 and only the sampled op per edge (GDAS-style: the sample is one-hot,
so this gives the same forward value at a fraction of the cost); "all_ops" computes every op of the
cells 1..d* (the authors' gradient on every op, at the sampled depth's cost); "mixed" computes every
op of all k_max cells and every depth (the authors' PyTorch code, spec 7.1 item 6).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from adabert.nas import head as readout
from adabert.nas.cell import EXECUTIONS, SearchCell
from adabert.nas.genotype import cell_edges
from adabert.nas.ops import OP_NAMES, masked_mean, token_embeddings

ARCH_PARAMETER_NAMES = ("alpha_ops", "alpha_depth")


def sample(alpha: torch.Tensor, tau: float, hard: bool = True) -> torch.Tensor:
    """Gumbel-softmax sample over the last axis (per edge for alpha_ops; over depths for alpha_depth).

    ``hard=True`` is the straight-through estimator of both authors' codes: one-hot forward, the soft
    sample's gradient backward.
    """
    return F.gumbel_softmax(alpha, tau=tau, hard=hard, dim=-1)


def argmax_onehot(alpha: torch.Tensor) -> torch.Tensor:
    """Noise-free one-hot of the largest logit along the last axis (evaluation, derivation)."""
    return F.one_hot(torch.argmax(alpha, dim=-1), alpha.shape[-1]).to(alpha.dtype)


def float_mask(mask: torch.Tensor) -> torch.Tensor:
    """[B, L] attention mask (any dtype) -> [B, 1, L] float mask."""
    return mask.to(torch.float32).unsqueeze(1)


@dataclasses.dataclass
class SuperNetOutput:
    """What one supernet forward produces (and what the losses read).

    depth_logits: depth d -> [B, C] for every computed depth (1..d* single path, 1..k_max mixed).
    layer_logits: student-probe outputs [B, C] for layers 0..computed_depth.
    depth_weights: [k_max] the depth sample used; op_weights: [n_edges, n_ops] the op sample used.
    """

    depth_logits: dict[int, torch.Tensor]
    layer_logits: list[torch.Tensor]
    depth_weights: torch.Tensor
    op_weights: torch.Tensor
    computed_depth: int


class SuperNet(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        max_positions: int,
        teacher_dim: int,
        num_labels: int,
        width: int = 128,
        k_max: int = 8,
        nodes: int = 3,
        ops: Sequence[str] = OP_NAMES,
        dropout: float = 0.1,
        word_embeddings: torch.Tensor | None = None,
        position_embeddings: torch.Tensor | None = None,
        fixed_depth: int | None = None,
        head: str = "mean",
    ) -> None:
        super().__init__()
        if fixed_depth is not None and not 1 <= fixed_depth <= k_max:
            raise ValueError(f"fixed_depth must be in 1..k_max={k_max}, got {fixed_depth}")
        self.vocab_size, self.max_positions, self.teacher_dim = vocab_size, max_positions, teacher_dim
        self.num_labels, self.width, self.k_max, self.nodes = num_labels, width, k_max, nodes
        self.ops = list(ops)
        self.dropout_p = float(dropout)
        self.fixed_depth = fixed_depth
        self.head = readout.check_head(head)

        self.word_embeddings = nn.Embedding(vocab_size, teacher_dim)
        self.position_embeddings = nn.Embedding(max_positions, teacher_dim)
        for table, init in ((self.word_embeddings, word_embeddings), (self.position_embeddings, position_embeddings)):
            if init is None:
                nn.init.normal_(table.weight, std=0.02)  # BERT's initializer_range
            else:
                if tuple(init.shape) != tuple(table.weight.shape):
                    raise ValueError(f"embedding init has shape {tuple(init.shape)}, expected {tuple(table.weight.shape)}")
                with torch.no_grad():
                    table.weight.copy_(init)
        self.projection = nn.Linear(teacher_dim, width)
        nn.init.xavier_uniform_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)
        self.layer_norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

        self.cells = nn.ModuleList(SearchCell(width, self.ops, nodes) for _ in range(k_max))
        self.layer_weights = nn.ParameterList(nn.Parameter(0.01 * torch.randn(d + 1)) for d in range(1, k_max + 1))
        self.classifiers = nn.ModuleList(nn.Linear(readout.feature_width(self.head, width), num_labels)
                                         for _ in range(k_max))
        self.probes = nn.ModuleList(nn.Linear(width, num_labels) for _ in range(k_max + 1))

        n_edges = len(cell_edges(nodes))
        self.alpha_ops = nn.Parameter(1e-3 * torch.randn(n_edges, len(self.ops)))
        self.alpha_depth = nn.Parameter(1e-3 * torch.randn(k_max))

    # -- parameter groups -------------------------------------------------------------------------
    def named_weight_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if n not in ARCH_PARAMETER_NAMES)

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_weight_parameters()]

    def arch_parameters(self) -> list[nn.Parameter]:
        """The optimised architecture logits (alpha_depth is left out when the depth is fixed)."""
        return [self.alpha_ops] + ([self.alpha_depth] if self.fixed_depth is None else [])

    def hparams(self) -> dict:
        """Constructor arguments (without the embedding initialisers), to rebuild the network."""
        return {
            "vocab_size": self.vocab_size,
            "max_positions": self.max_positions,
            "teacher_dim": self.teacher_dim,
            "num_labels": self.num_labels,
            "width": self.width,
            "k_max": self.k_max,
            "nodes": self.nodes,
            "ops": list(self.ops),
            "dropout": self.dropout_p,
            "fixed_depth": self.fixed_depth,
            "head": self.head,
        }

    # -- architecture samples -----------------------------------------------------------------------
    def fixed_depth_weights(self) -> torch.Tensor:
        assert self.fixed_depth is not None
        w = torch.zeros(self.k_max, device=self.alpha_depth.device)
        w[self.fixed_depth - 1] = 1.0
        return w

    def sample_arch(self, tau: float, hard: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Gumbel samples (op weights per edge, depth weights); a fixed depth is a constant one-hot."""
        op_w = sample(self.alpha_ops, tau, hard)
        depth_w = self.fixed_depth_weights() if self.fixed_depth is not None else sample(self.alpha_depth, tau, hard)
        return op_w, depth_w

    def argmax_arch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise-free one-hot choices (every edge its argmax op, incl. 'none'; the argmax depth)."""
        op_w = argmax_onehot(self.alpha_ops.detach())
        depth_w = self.fixed_depth_weights() if self.fixed_depth is not None else argmax_onehot(self.alpha_depth.detach())
        return op_w, depth_w

    # -- forward ----------------------------------------------------------------------------------
    def embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, L] ids and [B, 1, L] float mask -> [B, width, L], zero on padding."""
        h = token_embeddings(self.word_embeddings, self.position_embeddings, self.max_positions, ids)
        h = self.dropout(self.layer_norm(self.projection(h)))
        return h.transpose(1, 2) * mask

    def forward(
        self,
        a_ids: torch.Tensor,
        a_mask: torch.Tensor,
        b_ids: torch.Tensor,
        b_mask: torch.Tensor,
        op_weights: torch.Tensor,
        depth_weights: torch.Tensor,
        execution: str = "single_path",
        lookahead: int = 0,
    ) -> SuperNetOutput:
        """``lookahead`` (single path / all ops, searched depth only): also compute that many cells past
        the sampled depth d*, whose depth logits then enter the loss with their one-hot weight 0 (the
        forward value is unchanged) and give alpha_depth a measured loss for d* + 1, ... instead of an
        imputed one."""
        if execution not in EXECUTIONS:
            raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
        ma, mb = float_mask(a_mask), float_mask(b_mask)
        emb_a, emb_b = self.embed(a_ids, ma), self.embed(b_ids, mb)
        if execution in ("single_path", "all_ops"):
            extra = lookahead if self.fixed_depth is None else 0
            n_cells = min(int(torch.argmax(depth_weights)) + 1 + extra, self.k_max)
        else:
            n_cells = self.k_max

        reps = [masked_mean(emb_a, ma)]
        mean_b = masked_mean(emb_b, mb) if self.head != "mean" else reps[0]
        prev2, prev1 = (emb_a, ma), (emb_b, mb)
        for k in range(n_cells):
            out = self.cells[k](prev2[0], prev2[1], prev1[0], prev1[1], op_weights, execution)
            reps.append(masked_mean(*out))
            prev2, prev1 = prev1, out

        stacked = torch.stack(reps, dim=1)  # [B, n_cells + 1, W]
        depth_logits = {}
        for d in range(1, n_cells + 1):
            att = torch.softmax(self.layer_weights[d - 1], dim=0)
            pooled = torch.einsum("l,blw->bw", att, stacked[:, : d + 1])
            feats = readout.features(self.head, pooled, reps[0], mean_b)
            depth_logits[d] = self.classifiers[d - 1](self.dropout(torch.tanh(feats)))
        layer_logits = [self.probes[i](torch.tanh(reps[i])) for i in range(n_cells + 1)]
        return SuperNetOutput(depth_logits, layer_logits, depth_weights, op_weights, n_cells)

    # -- export -----------------------------------------------------------------------------------
    @torch.no_grad()
    def export_embedding(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-dimensional (word [vocab, width], position [max_positions, width]) tables.

        The projection is folded exactly: the bias goes into the position table, so a student that
        adds the two tables reproduces projection(word + position).
        """
        weight, bias = self.projection.weight, self.projection.bias
        word = self.word_embeddings.weight @ weight.T
        position = self.position_embeddings.weight @ weight.T + bias
        return word.clone(), position.clone()
