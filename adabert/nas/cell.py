"""The AdaBERT cell: the search cell (every candidate op on every edge) and the fixed, derived cell.

Topology (spec 1.2, both authors' codes): two input nodes, ``nodes`` intermediate nodes, every earlier
node feeds every intermediate node through one edge (2 + 3 + 4 = 9 edges for 3 nodes); an intermediate
node is the sum of its incoming edges. The cell output is an *attentive sum* of the intermediate nodes
with the cell's own softmax weights (PyTorch ``cell_wise_blend_weights``, init 0.01 * randn, trained as
a model weight, not as an architecture parameter).

Masks: each state carries its mask ([B, 1, L]). An edge applies its op with the mask of its input
state; intermediate nodes and the cell output are real where either cell input is real (the two
sentences are summed position by position, as in both authors' codes). Single-sentence tasks feed the
same sentence twice, so the union is that sentence's mask.

Parameter names are shared on purpose: in both cells the op of edge ``e`` is ``edges.{e}.{op}``, so the
derived student's state dict is a subset of the supernet's (weight inheritance is a name filter).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from adabert.nas.genotype import cell_edges, edge_index
from adabert.nas.ops import OPS, union_mask

EXECUTIONS = ("single_path", "all_ops", "mixed")

NodeTerms = Callable[[int, list[torch.Tensor], list[torch.Tensor]], Iterable[torch.Tensor]]


def run_nodes(
    s0: torch.Tensor, m0: torch.Tensor, s1: torch.Tensor, m1: torch.Tensor, nodes: int,
    node_weights: torch.Tensor, node_terms: NodeTerms,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The intermediate nodes of a cell and its attentive output (and mask), shared by both cells.

    ``node_terms(j, states, masks)`` yields the edge outputs into intermediate node ``j`` (which reads
    the states computed so far); the node is their sum, in that order, or zeros when there are none.
    ``node_weights`` [nodes] are the cell's softmax logits over its intermediate nodes.
    """
    out_mask = union_mask(m0, m1)
    states, masks = [s0, s1], [m0, m1]
    for j in range(nodes):
        acc = None
        for term in node_terms(j, states, masks):
            acc = term if acc is None else acc + term
        states.append(torch.zeros_like(s0) if acc is None else acc)
        masks.append(out_mask)
    blend = torch.softmax(node_weights, dim=0)
    out = sum(blend[j] * states[2 + j] for j in range(nodes))
    return out, out_mask


class SearchCell(nn.Module):
    """Cell of the supernet: each edge holds every candidate op (its own weights per cell)."""

    def __init__(self, width: int, ops: Sequence[str], nodes: int = 3) -> None:
        super().__init__()
        self.ops = list(ops)
        self.nodes = nodes
        self.edge_pairs = cell_edges(nodes)
        self.edges = nn.ModuleList(
            nn.ModuleDict({name: OPS[name](width) for name in self.ops}) for _ in self.edge_pairs
        )
        self.node_weights = nn.Parameter(0.01 * torch.randn(nodes))

    def forward(
        self,
        s0: torch.Tensor,
        m0: torch.Tensor,
        s1: torch.Tensor,
        m1: torch.Tensor,
        op_weights: torch.Tensor,
        execution: str = "single_path",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell output and its mask.

        ``op_weights`` [n_edges, n_ops]: a (straight-through) one-hot sample or soft weights.

        * ``single_path`` (GDAS-style, our default): on each edge only the op with the largest weight
          runs, and its output is scaled by that weight entry (1.0 forward for a hard sample, but the
          straight-through gradient reaches alpha through it). Edges whose chosen weight is exactly
          zero, and the ``none`` op, are skipped: they add nothing.
        * ``all_ops`` and ``mixed`` (the authors' PyTorch code): every op runs and the edge is
          sum_o w_o * op(x) (the supernet decides how many cells run, see SuperNet).
        For a one-hot sample both give the same forward value, but only with every op computed does
        the gradient reach the weights of the ops that were not sampled: dL/dw_o = <dL/dedge, op_o(x)>
        compares every op with the sampled one, while single path only says whether the sampled op's
        output should be scaled up or down.
        """
        if execution not in EXECUTIONS:
            raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
        if op_weights.shape != (len(self.edge_pairs), len(self.ops)):
            raise ValueError(
                f"op_weights has shape {tuple(op_weights.shape)}, expected {(len(self.edge_pairs), len(self.ops))}"
            )
        if execution == "single_path":
            # Decide every edge's op (and whether its weight is exactly zero) with one host sync.
            chosen = torch.argmax(op_weights, dim=-1)
            is_zero = (op_weights.gather(1, chosen[:, None])[:, 0] == 0).tolist()
            choice = chosen.tolist()

        def node_terms(j: int, states: list[torch.Tensor], masks: list[torch.Tensor]) -> Iterator[torch.Tensor]:
            for i in range(j + 2):
                e = edge_index(j, i)
                if execution == "single_path":
                    o = choice[e]
                    name = self.ops[o]
                    if name == "none" or is_zero[e]:
                        continue
                    yield op_weights[e, o] * self.edges[e][name](states[i], masks[i])
                else:
                    yield sum(
                        op_weights[e, o] * self.edges[e][name](states[i], masks[i])
                        for o, name in enumerate(self.ops)
                    )

        return run_nodes(s0, m0, s1, m1, self.nodes, self.node_weights, node_terms)


class FixedCell(nn.Module):
    """Derived cell: computes only the genotype's kept edges (each with its one op)."""

    def __init__(self, width: int, nodes: Sequence[Sequence[tuple[int, str]]]) -> None:
        super().__init__()
        self.node_edges = [[(int(i), str(op)) for i, op in node] for node in nodes]
        self.nodes = len(self.node_edges)
        edges: dict[str, nn.ModuleDict] = {}
        for j, node in enumerate(self.node_edges):
            for i, op in node:
                if op == "none":
                    continue  # contributes nothing; no module to hold
                edges.setdefault(str(edge_index(j, i)), nn.ModuleDict())[op] = OPS[op](width)
        self.edges = nn.ModuleDict(edges)
        self.node_weights = nn.Parameter(0.01 * torch.randn(self.nodes))

    def forward(
        self, s0: torch.Tensor, m0: torch.Tensor, s1: torch.Tensor, m1: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        def node_terms(j: int, states: list[torch.Tensor], masks: list[torch.Tensor]) -> Iterator[torch.Tensor]:
            for i, op in self.node_edges[j]:
                if op != "none":
                    yield self.edges[str(edge_index(j, i))][op](states[i], masks[i])

        return run_nodes(s0, m0, s1, m1, self.nodes, self.node_weights, node_terms)
