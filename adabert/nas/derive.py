"""Derive stage: the best epoch's genotype and the student weights it inherits from the supernet.

Spec 2.2/2.3/4 (paper: "derive the searched structure with its trained operation weights"; both
authors' codes select the architecture on the dev set): we take the alphas that the search logged for
its best epoch (``alpha_history.json``; ``supernet.safetensors`` holds that epoch's weights), derive the
genotype with the PyTorch/DARTS rule (``derive_genotype``: K = argmax alpha_depth + 1, top-2 non-zero
edges per node), and cut the student's weights out of the supernet:

* the folded low-dimensional embedding tables (``SuperNet.export_embedding``) and the LayerNorm;
* for cells 1..K, the op weights (incl. BatchNorm running statistics) of the kept edges' kept ops and
  the cell's node-attention weights;
* the depth-K read-out: its layer-attention weights and classifier.

Outputs (``out_dir``): ``genotype.json``, ``weights.safetensors`` (loadable by ``Student.from_folder``),
``derive.json`` (summary: best epoch, dev metric, parameter counts) and ``config.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open

from adabert import artifacts, io
from adabert.errors import AdabertError
from adabert.nas.genotype import Genotype, derive_genotype
from adabert.nas.supernet import SuperNet
from adabert.artifacts import HISTORY_FILE, SUPERNET_FILE



def student_weights(net: SuperNet, genotype: Genotype) -> dict[str, torch.Tensor]:
    """The student's state dict, inherited from ``net`` for ``genotype`` (names as in ``Student``)."""
    if genotype.depth > net.k_max:
        raise AdabertError(f"genotype depth {genotype.depth} exceeds the supernet's k_max {net.k_max}")
    if genotype.width != net.width or len(genotype.nodes) != net.nodes:
        raise AdabertError(
            f"genotype (width {genotype.width}, {len(genotype.nodes)} nodes) does not fit the supernet "
            f"(width {net.width}, {net.nodes} nodes)"
        )
    if genotype.head != net.head:
        raise AdabertError(f"genotype read-out head {genotype.head!r} differs from the supernet's {net.head!r}")
    state = net.state_dict()
    word, position = net.export_embedding()
    out = {"word_embeddings.weight": word, "position_embeddings.weight": position}
    for name in ("weight", "bias"):
        out[f"layer_norm.{name}"] = state[f"layer_norm.{name}"]
    for k in range(genotype.depth):
        out[f"cells.{k}.node_weights"] = state[f"cells.{k}.node_weights"]
        for row, _, op in genotype.edge_list():
            if op == "none":
                continue
            prefix = f"cells.{k}.edges.{row}.{op}."
            out.update({key: value for key, value in state.items() if key.startswith(prefix)})
    d = genotype.depth
    out["layer_weights"] = state[f"layer_weights.{d - 1}"]
    out["classifier.weight"] = state[f"classifiers.{d - 1}.weight"]
    out["classifier.bias"] = state[f"classifiers.{d - 1}.bias"]
    return {key: value.detach().clone() for key, value in out.items()}


def load_supernet(path: str | os.PathLike) -> SuperNet:
    """Rebuild a SuperNet from ``supernet.safetensors`` (hyper-parameters in its metadata)."""
    path = Path(path)
    tensors = io.load_tensors(path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "hparams" not in metadata:
        raise AdabertError(f"{path}: metadata has no 'hparams' (not written by the search stage)")
    hparams = json.loads(metadata["hparams"])
    net = SuperNet(**hparams)
    missing = sorted(set(net.state_dict()) - set(tensors))
    unexpected = sorted(set(tensors) - set(net.state_dict()))
    if missing or unexpected:
        raise AdabertError(f"{path}: missing tensors {missing[:10]}, unexpected tensors {unexpected[:10]}")
    net.load_state_dict(tensors, strict=True)
    return net


def run_derive(cfg: dict, search_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Write genotype.json, weights.safetensors, derive.json and config.json; return the summary."""
    search_dir, out_dir = Path(search_dir), Path(out_dir)
    history = io.read_json(search_dir / HISTORY_FILE)
    for key in ("best_epoch", "epochs", "ops"):
        if key not in history:
            raise AdabertError(f"{search_dir / HISTORY_FILE}: missing field '{key}'")
    best = history["best_epoch"]
    entries = {entry["epoch"]: entry for entry in history["epochs"]}
    if best not in entries:
        raise AdabertError(f"{search_dir / HISTORY_FILE}: best_epoch {best} has no history entry")
    entry = entries[best]
    net = load_supernet(search_dir / SUPERNET_FILE)
    cap = cfg["search"].get("max_parameter_free")
    genotype = derive_genotype(
        torch.tensor(entry["alpha_ops"]),
        torch.tensor(entry["alpha_depth"]),
        history["ops"],
        k=2,
        width=net.width,
        fixed_depth=net.fixed_depth,
        head=net.head,
        max_parameter_free=cap,
    )
    # The weights file was written at the best epoch: its alphas must give the same architecture.
    from_weights = derive_genotype(
        net.alpha_ops, net.alpha_depth, net.ops, k=2, width=net.width, fixed_depth=net.fixed_depth, head=net.head,
        max_parameter_free=cap,
    )
    if from_weights.to_dict() != genotype.to_dict():
        raise AdabertError(
            f"{search_dir}: the alphas in {SUPERNET_FILE} and the best epoch ({best}) of {HISTORY_FILE} "
            "derive different genotypes; the search folder is inconsistent"
        )
    info = {"best_epoch": best, "dev": entry.get("dev"), "dev_main": entry.get("dev_main"),
            "main_metric": history.get("main_metric"), "search_dir": str(search_dir)}
    return artifacts.write_derived(out_dir, genotype=genotype, tensors=student_weights(net, genotype), info=info,
                                   cfg=cfg)
