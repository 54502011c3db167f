"""The searched architecture as data: ``Genotype`` <-> versioned JSON, and its derivation from alphas.

Cell topology (spec 1.2, both authors' codes): inputs 0 and 1 are the two cell inputs, intermediate
node j (0-based) is node index j + 2 and may read every earlier node, so with N intermediate nodes the
cell has 2 + 3 + ... + (N + 1) candidate edges, numbered node by node, input by input (``cell_edges``).

Derivation (spec 2.3, the authors' PyTorch / DARTS ``parse`` rule): the depth is argmax(alpha_depth)+1;
for every intermediate node take, on each incoming edge, the best op *excluding* ``none`` (by its
softmax weight), then keep the ``k = 2`` edges whose best weight is largest. (The TF code softmaxes at
temperature 0.2 and does not exclude the zero op; we follow PyTorch.)

Optional cap on parameter-free ops (``max_parameter_free``, config ``search.max_parameter_free``; our
addition, after P-DARTS, Chen et al. 2019, which caps the skip connections of the derived cell): when
a cell keeps more pools and identities than the cap, the least confident of them (smallest softmax
weight) are replaced by the best parametric op of the same edge. Random architectures are drawn from
the same capped space (``sample_genotype`` rejects draws over the cap), so the comparison stays fair.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from adabert import io
from adabert.errors import AdabertError
from adabert.nas.head import check_head
from adabert.nas.ops import OPS, PARAMETER_FREE_OPS

SCHEMA_VERSION = 1


def cell_edges(nodes: int) -> list[tuple[int, int]]:
    """(intermediate node j, input index i) for every candidate edge, in alpha row order."""
    return [(j, i) for j in range(nodes) for i in range(j + 2)]


def edge_index(node: int, input_index: int) -> int:
    """Row of alpha_ops for the edge ``input_index -> intermediate node`` (0-based node)."""
    return sum(j + 2 for j in range(node)) + input_index


def nodes_for_edges(n_edges: int) -> int:
    """Inverse of ``len(cell_edges(nodes))``; error if no cell has that many edges."""
    nodes = 0
    while len(cell_edges(nodes)) < n_edges:
        nodes += 1
    if len(cell_edges(nodes)) != n_edges:
        raise AdabertError(f"alpha_ops has {n_edges} rows; no cell with 2 inputs has that many edges")
    return nodes


@dataclasses.dataclass
class Genotype:
    """A derived architecture: depth K and, per intermediate node, its kept (input, op) edges.

    ``nodes[j]`` lists the edges of intermediate node j + 2: ``(input_index, op_name)`` with inputs
    0 and 1 the cell inputs and 2.. the earlier intermediate nodes. ``ops`` are the candidate
    operations the search used, ``width`` the channels of every op, ``k_max`` the search's maximum
    depth, ``head`` the classifier's read-out (:mod:`adabert.nas.head`; files without the field are
    ``mean``, the paper's).
    """

    depth: int
    nodes: list[list[tuple[int, str]]]
    ops: list[str]
    width: int
    k_max: int
    schema_version: int = SCHEMA_VERSION
    head: str = "mean"

    def __post_init__(self) -> None:
        self.nodes = [[(int(i), str(op)) for i, op in node] for node in self.nodes]
        self.ops = list(self.ops)
        self.validate()

    # -- validation ---------------------------------------------------------------------------
    def validate(self, source: str = "genotype") -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise AdabertError(
                f"{source}: schema_version {self.schema_version} is not supported (expected {SCHEMA_VERSION})"
            )
        check_head(self.head, f"{source}: field 'head'")
        unknown = [op for op in self.ops if op not in OPS]
        if unknown:
            raise AdabertError(f"{source}: field 'ops' lists unknown op(s) {unknown}; allowed: {sorted(OPS)}")
        if not isinstance(self.k_max, int) or self.k_max < 1:
            raise AdabertError(f"{source}: field 'k_max' must be an integer >= 1, got {self.k_max!r}")
        if not isinstance(self.depth, int) or not 1 <= self.depth <= self.k_max:
            raise AdabertError(
                f"{source}: field 'depth' must be an integer in 1..k_max={self.k_max}, got {self.depth!r}"
            )
        if not isinstance(self.width, int) or self.width < 1:
            raise AdabertError(f"{source}: field 'width' must be a positive integer, got {self.width!r}")
        if not self.nodes:
            raise AdabertError(f"{source}: field 'nodes' is empty (a cell needs at least one intermediate node)")
        for j, node in enumerate(self.nodes):
            if not node:
                raise AdabertError(f"{source}: node {j + 2} has no incoming edge")
            seen: set[int] = set()
            for i, op in node:
                if op not in self.ops:
                    raise AdabertError(
                        f"{source}: node {j + 2} uses unknown op {op!r}; allowed: {self.ops}"
                    )
                if not 0 <= i <= j + 1:
                    raise AdabertError(
                        f"{source}: node {j + 2} has input index {i} out of range 0..{j + 1}"
                    )
                if i in seen:
                    raise AdabertError(f"{source}: node {j + 2} lists input {i} twice")
                seen.add(i)

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "depth": self.depth,
            "k_max": self.k_max,
            "width": self.width,
            "ops": list(self.ops),
            "nodes": [[{"input": i, "op": op} for i, op in node] for node in self.nodes],
            "head": self.head,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "genotype") -> "Genotype":
        if not isinstance(data, dict):
            raise AdabertError(f"{source}: expected a JSON object, got {type(data).__name__}")
        for key in ("schema_version", "depth", "k_max", "width", "ops", "nodes"):
            if key not in data:
                raise AdabertError(f"{source}: missing field '{key}'")
        unknown = sorted(set(data) - {"schema_version", "depth", "k_max", "width", "ops", "nodes", "head"})
        if unknown:
            raise AdabertError(f"{source}: unknown field(s) {unknown}")
        if not isinstance(data["ops"], list) or not isinstance(data["nodes"], list):
            raise AdabertError(f"{source}: fields 'ops' and 'nodes' must be lists")
        nodes = []
        for j, node in enumerate(data["nodes"]):
            if not isinstance(node, list):
                raise AdabertError(f"{source}: node {j + 2} must be a list of edges")
            edges = []
            for e, edge in enumerate(node):
                if not isinstance(edge, dict):
                    raise AdabertError(f"{source}: node {j + 2} edge {e} must be an object")
                for key in ("input", "op"):
                    if key not in edge:
                        raise AdabertError(f"{source}: node {j + 2} edge {e}: missing field '{key}'")
                if not isinstance(edge["input"], int) or isinstance(edge["input"], bool):
                    raise AdabertError(f"{source}: node {j + 2} edge {e}: field 'input' must be an integer")
                edges.append((edge["input"], edge["op"]))
            nodes.append(edges)
        genotype = cls.__new__(cls)
        genotype.depth = data["depth"]
        genotype.nodes = nodes
        genotype.ops = list(data["ops"])
        genotype.width = data["width"]
        genotype.k_max = data["k_max"]
        genotype.schema_version = data["schema_version"]
        genotype.head = data.get("head", "mean")
        genotype.validate(source)
        return genotype

    def to_json(self) -> str:
        return io.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str, source: str = "genotype") -> "Genotype":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AdabertError(f"{source}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        return cls.from_dict(data, source)

    def save(self, path: str | os.PathLike) -> None:
        io.write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Genotype":
        return cls.from_dict(io.read_json(path), str(Path(path)))

    # -- helpers ------------------------------------------------------------------------------
    def edge_list(self) -> list[tuple[int, int, str]]:
        """(alpha row, input index, op) of every kept edge, node by node."""
        return [(edge_index(j, i), i, op) for j, node in enumerate(self.nodes) for i, op in node]

    @property
    def has_conv(self) -> bool:
        """Whether any kept edge is a convolution (a student without one has no learned token mixing)."""
        return any("conv" in op for _, _, op in self.edge_list())

    def distance(self, other: "Genotype") -> dict[str, int]:
        """How far apart two architectures are: kept edges (node, input, op) of this cell not in the
        other's (0 = the same cell, at most the number of kept edges) and the difference in depth."""
        mine = {(j, i, op) for j, node in enumerate(self.nodes) for i, op in node}
        theirs = {(j, i, op) for j, node in enumerate(other.nodes) for i, op in node}
        return {"edges": max(len(mine - theirs), len(theirs - mine)), "depth": abs(self.depth - other.depth)}

    def op_weights(self, ops: Sequence[str] | None = None) -> torch.Tensor:
        """One-hot op choices [n_edges, n_ops] equivalent to this genotype on the search cell.

        Kept edges get their op; dropped edges get ``none`` if it is a candidate, otherwise an
        all-zero row (both contribute nothing in either execution mode).
        """
        ops = list(self.ops if ops is None else ops)
        weights = torch.zeros(len(cell_edges(len(self.nodes))), len(ops))
        if "none" in ops:
            weights[:, ops.index("none")] = 1.0
        for row, _, op in self.edge_list():
            if op not in ops:
                raise AdabertError(f"genotype op {op!r} is not among the supernet's ops {ops}")
            weights[row] = 0.0
            weights[row, ops.index(op)] = 1.0
        return weights

    def depth_weights(self) -> torch.Tensor:
        """One-hot over depths 1..k_max at K."""
        weights = torch.zeros(self.k_max)
        weights[self.depth - 1] = 1.0
        return weights


def derive_genotype(
    alpha_ops: torch.Tensor,
    alpha_depth: torch.Tensor,
    ops: Sequence[str],
    k: int = 2,
    *,
    width: int = 128,
    fixed_depth: int | None = None,
    head: str = "mean",
    max_parameter_free: int | None = None,
) -> Genotype:
    """Discretise architecture logits (spec 2.3, PyTorch/DARTS rule, optional cap; see module docstring)."""
    alpha_ops = torch.as_tensor(alpha_ops, dtype=torch.float32).detach().cpu()
    alpha_depth = torch.as_tensor(alpha_depth, dtype=torch.float32).detach().cpu()
    ops = list(ops)
    if alpha_ops.dim() != 2 or alpha_ops.shape[1] != len(ops):
        raise AdabertError(f"alpha_ops has shape {tuple(alpha_ops.shape)}; expected [n_edges, {len(ops)}]")
    candidates = [o for o, name in enumerate(ops) if name != "none"]
    if not candidates:
        raise AdabertError("cannot derive a genotype: the op set contains only 'none'")
    n_nodes = nodes_for_edges(alpha_ops.shape[0])
    k_max = int(alpha_depth.numel())
    probs = torch.softmax(alpha_ops, dim=-1)
    nodes: list[list[tuple[int, str]]] = []
    for j in range(n_nodes):
        scored = []
        for i in range(j + 2):
            row = probs[edge_index(j, i), candidates]
            best = int(torch.argmax(row))  # first maximum: deterministic ties
            scored.append((float(row[best]), i, ops[candidates[best]]))
        # Largest best-op weight first; ties keep the lower input index (stable sort).
        scored.sort(key=lambda s: -s[0])
        kept = sorted(scored[: min(k, len(scored))], key=lambda s: s[1])
        nodes.append([(i, op) for _, i, op in kept])
    if max_parameter_free is not None:
        nodes = cap_parameter_free(nodes, probs, ops, int(max_parameter_free))
    return Genotype(depth=searched_depth(alpha_depth, fixed_depth), nodes=nodes, ops=ops, width=int(width),
                    k_max=k_max, head=head)


def searched_depth(alpha_depth: torch.Tensor, fixed_depth: int | None = None) -> int:
    """The number of cells a search keeps: ``fixed_depth`` when the search had one, else the most likely
    depth of ``alpha_depth`` (the first maximum: deterministic ties)."""
    return int(fixed_depth) if fixed_depth is not None else int(torch.argmax(alpha_depth)) + 1


def fixed_genotype(op: str, depth: int, ops: Sequence[str], nodes: int, width: int, k_max: int,
                   head: str = "mean") -> Genotype:
    """The one-op architecture of the search space: ``depth`` cells whose every intermediate node reads the
    two cell inputs through ``op`` (``skip_connect``: no computation in the cells, the student is its
    embedding, averaged, and the read-out: a bag of embeddings)."""
    ops = list(ops)
    if op not in ops or op == "none":
        raise AdabertError(f"baselines.fixed_cells: {op!r} is not an op of search.ops {ops} (or is 'none')")
    return Genotype(depth=int(depth), nodes=[[(0, op), (1, op)] for _ in range(int(nodes))], ops=ops,
                    width=int(width), k_max=int(k_max), head=head)


def parameter_free_count(nodes: Sequence[Sequence[tuple[int, str]]]) -> int:
    """How many kept edges of a cell carry a parameter-free op (pool or identity)."""
    return sum(op in PARAMETER_FREE_OPS for edges in nodes for _, op in edges)


def cap_parameter_free(
    nodes: list[list[tuple[int, str]]], probs: torch.Tensor, ops: Sequence[str], cap: int
) -> list[list[tuple[int, str]]]:
    """``nodes`` with at most ``cap`` parameter-free ops: the least confident ones (by ``probs``, the
    softmax over ``ops`` per edge row) become their edge's best parametric op; ties keep the earlier edge."""
    if cap < 0:
        raise AdabertError(f"search.max_parameter_free must be >= 0, got {cap}")
    parametric = [o for o, name in enumerate(ops) if name != "none" and name not in PARAMETER_FREE_OPS]
    free = sorted(
        (float(probs[edge_index(j, i), ops.index(op)]), j, slot)
        for j, edges in enumerate(nodes)
        for slot, (i, op) in enumerate(edges)
        if op in PARAMETER_FREE_OPS
    )
    excess = len(free) - cap
    if excess <= 0:
        return nodes
    if not parametric:
        raise AdabertError(
            f"search.max_parameter_free is {cap} but the op set {list(ops)} has no parametric op to put in place "
            "of a pool or identity"
        )
    out = [list(edges) for edges in nodes]
    for _, j, slot in free[:excess]:
        i = out[j][slot][0]
        row = probs[edge_index(j, i), parametric]
        out[j][slot] = (i, ops[parametric[int(torch.argmax(row))]])
    return out


def sample_genotype(
    ops: Sequence[str],
    nodes: int,
    k_max: int,
    width: int,
    seed: int,
    k: int = 2,
    fixed_depth: int | None = None,
    head: str = "mean",
    max_parameter_free: int | None = None,
) -> Genotype:
    """A uniformly random architecture of the search space (the random-architecture baseline).

    Depth uniform in 1..k_max (or ``fixed_depth``); every intermediate node keeps ``k`` distinct inputs
    (uniform among its j + 2 possible inputs) with ops uniform over ``ops`` without ``none``: the
    genotypes the derivation rule can produce, each equally likely. With ``max_parameter_free`` a cell
    over the cap is drawn again (rejection: uniform over the capped space; the first draw is the uncapped
    one). Deterministic given ``seed``.
    """
    ops = list(ops)
    candidates = [op for op in ops if op != "none"]
    if not candidates:
        raise AdabertError("cannot sample a genotype: the op set contains only 'none'")
    if nodes < 1 or k_max < 1:
        raise AdabertError(f"cannot sample a genotype with {nodes} nodes and k_max {k_max}")
    gen = torch.Generator().manual_seed(int(seed))

    def pick(n: int) -> int:
        return int(torch.randint(n, (1,), generator=gen))

    if max_parameter_free is not None and max_parameter_free < 0:
        raise AdabertError(f"search.max_parameter_free must be >= 0, got {max_parameter_free}")
    if max_parameter_free is not None and all(op in PARAMETER_FREE_OPS for op in candidates):
        raise AdabertError(
            f"search.max_parameter_free is {max_parameter_free} but the op set {ops} has no parametric op"
        )
    while True:
        depth = int(fixed_depth) if fixed_depth is not None else pick(k_max) + 1
        sampled = []
        for j in range(nodes):
            inputs = sorted(torch.randperm(j + 2, generator=gen)[: min(k, j + 2)].tolist())
            sampled.append([(int(i), candidates[pick(len(candidates))]) for i in inputs])
        if max_parameter_free is None or parameter_free_count(sampled) <= max_parameter_free:
            break
    return Genotype(depth=depth, nodes=sampled, ops=ops, width=int(width), k_max=int(k_max), head=head)
