"""Architectures not searched on the task they are trained for, written as derive folders.

Three studies retrain architectures that the search did not produce for the task at hand:

* **random architectures** (baseline): :func:`~adabert.nas.genotype.sample_genotype` draws a genotype
  uniformly from the search space, at the depth of ``baselines.random.depth`` (:func:`random_depth`; by
  default the depth the supernet's search chose). For a fair comparison they start exactly as the
  searched students do (the main variant's ``retrain.init``): with ``inherit`` their weights are cut out
  of the same supernet as the task's searched student (seed ``seeds[0]`` of the main search, the derive
  stage's :func:`~adabert.nas.derive.student_weights`); with ``scratch`` they are a fresh seeded student
  with that supernet's embedding. Either way they are retrained with the main variant's recipe. At
  the searched depth, inherited cells are as trained as the searched student's; a deeper random
  architecture would inherit cells the search hardly trained (it kept one cell in 16 of 18 searches).
* **fixed one-op cells** (the simplest baselines of the space): :func:`~adabert.nas.genotype.fixed_genotype`,
  depth 1, every edge one op (``skip_connect``: a bag of the folded teacher embeddings); weighted and
  retrained exactly as the random architectures, from the supernet of the same search seed as the
  searched student it is compared with.
* **cross-task transfer**: the genotype searched on task A is trained on task B from scratch (the
  supernet of A was trained on A's data), with the target task's searched student's embedding.

Both are written in the Derive contract (``genotype.json`` + ``weights.safetensors`` + ``derive.json``)
so the retrain stage reads them unchanged. The retrain stage's scratch mode keeps the embedding tables
and re-initialises everything else, so every architecture of a comparison starts from the same
embedding and differs only in its cells.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import torch

from adabert import artifacts, io
from adabert.errors import AdabertError
from adabert.nas.derive import load_supernet, student_weights
from adabert.nas.genotype import Genotype, fixed_genotype, sample_genotype, searched_depth
from adabert.nas.head import head_for
from adabert.nas.supernet import SuperNet
from adabert.student import WEIGHTS_FILE, Student

EMBEDDING_KEYS = ("word_embeddings.weight", "position_embeddings.weight", "layer_norm.weight", "layer_norm.bias")


def fresh_student(genotype: Genotype, source: dict[str, torch.Tensor], origin: str, num_labels: int,
                  seed: int) -> dict[str, torch.Tensor]:
    """A seeded fresh student of ``genotype`` with the embedding tables of ``source`` (a student state)."""
    missing = [k for k in EMBEDDING_KEYS if k not in source]
    if missing:
        raise AdabertError(f"{origin}: missing tensor(s) {missing} (expected a derive folder's weights)")
    width = int(source["word_embeddings.weight"].shape[1])
    if width != genotype.width:
        raise AdabertError(f"{origin}: embedding width {width} differs from the genotype's width {genotype.width}")
    torch.manual_seed(int(seed))
    student = Student(genotype, int(source["word_embeddings.weight"].shape[0]),
                      int(source["position_embeddings.weight"].shape[0]), int(num_labels))
    state = student.state_dict()
    for key in EMBEDDING_KEYS:
        state[key] = source[key].clone()
    return {k: v.detach().clone() for k, v in state.items()}


def architecture_weights(genotype: Genotype, embeddings_dir: str | os.PathLike, num_labels: int,
                         seed: int) -> dict[str, torch.Tensor]:
    """A seeded fresh student of ``genotype`` for ``num_labels`` outputs with the embedding of ``embeddings_dir``."""
    path = Path(embeddings_dir) / WEIGHTS_FILE
    return fresh_student(genotype, io.load_tensors(path), str(path), num_labels, seed)


def supernet_weights(genotype: Genotype, supernet_path: str | os.PathLike, num_labels: int, seed: int,
                     init: str) -> dict[str, torch.Tensor]:
    """``genotype``'s weights from a search's supernet: cut out of it (``init`` "inherit", as the derive
    stage does for the searched genotype) or fresh with its embedding ("scratch")."""
    return cut_weights(genotype, load_supernet(supernet_path), str(supernet_path), num_labels, seed, init)


def cut_weights(genotype: Genotype, net: SuperNet, origin: str, num_labels: int, seed: int, init: str) -> dict[str, torch.Tensor]:
    """:func:`supernet_weights` from a loaded supernet ``net`` (``origin`` names it in errors)."""
    if net.num_labels != int(num_labels):
        raise AdabertError(f"{origin}: {net.num_labels} outputs, the task has {num_labels}")
    inherited = student_weights(net, genotype)
    if init == "inherit":
        return inherited
    return fresh_student(genotype, inherited, origin, num_labels, seed)


def write_architecture(genotype: Genotype, tensors: dict[str, torch.Tensor], data: artifacts.DataFolder,
                       out_dir: str | os.PathLike, info: dict, cfg: dict) -> dict:
    """Write ``genotype`` with ``tensors`` as a derive folder for the task of ``data``; returns the summary."""
    info = {**info, "task": data.meta.get("task")}
    return artifacts.write_derived(out_dir, genotype=genotype, tensors=tensors, info=info, cfg=cfg)


def random_depth(rule: str | int, scfg: dict, net: SuperNet) -> int | None:
    """The depth of the random architectures under ``baselines.random.depth`` (None: uniform over 1..k_max).

    ``searched``: the depth the search of the supernet ``net`` chose (:func:`~adabert.nas.genotype.searched_depth`), so
    every random architecture inherits cells trained as much as the searched student's; ``uniform``: any
    depth of the space (``search.fixed_depth`` when the search has one); an integer: that depth.
    """
    if rule == "uniform":
        return scfg.get("fixed_depth")
    if rule == "searched":
        return searched_depth(net.alpha_depth, net.fixed_depth)
    if isinstance(rule, int) and not isinstance(rule, bool) and 1 <= rule <= int(scfg["k_max"]):
        return rule
    raise AdabertError(f"config key 'baselines.random.depth': {rule!r} is not 'searched', 'uniform' or a depth "
                       f"in 1..search.k_max = {scfg['k_max']}")


def run_random_architecture(cfg: dict, task: str, sample: int, search_dir: str | os.PathLike,
                            data_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Sample random architecture number ``sample`` of ``task`` from the search space of ``cfg['search']``,
    with weights from the supernet of ``search_dir`` (see the module docstring)."""
    scfg, init = cfg["search"], cfg["retrain"]["init"]
    rule = cfg["baselines"]["random"]["depth"]  # the random_architecture stage view carries it
    # A per-task seed: the same sample index draws different architectures on different tasks.
    seed = zlib.crc32(f"{task}/{int(sample)}".encode("utf-8"))
    data = artifacts.read_data(data_dir)
    supernet = Path(search_dir) / artifacts.SUPERNET_FILE
    net = load_supernet(supernet)  # read once: the searched depth and the weights
    genotype = sample_genotype(scfg["ops"], int(scfg["nodes"]), int(scfg["k_max"]), int(scfg["width"]), seed,
                               fixed_depth=random_depth(rule, scfg, net),
                               head=head_for(scfg.get("pair_head", "mean"), data.pair),
                               max_parameter_free=scfg.get("max_parameter_free"))
    tensors = cut_weights(genotype, net, str(supernet), data.num_labels, seed, init)
    info = {"kind": "random", "sample": int(sample), "sample_seed": seed, "init": init, "depth_rule": rule,
            "supernet": str(supernet)}
    return write_architecture(genotype, tensors, data, out_dir, info, cfg)


def run_fixed_architecture(cfg: dict, task: str, op: str, seed: int, search_dir: str | os.PathLike,
                           data_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """The depth-1 cell of ``op`` on every edge for ``task``, with weights from the supernet of
    ``search_dir`` (the main search of seed ``seed``), as a derive folder."""
    scfg, init = cfg["search"], cfg["retrain"]["init"]
    data = artifacts.read_data(data_dir)
    genotype = fixed_genotype(op, 1, scfg["ops"], int(scfg["nodes"]), int(scfg["width"]), int(scfg["k_max"]),
                              head=head_for(scfg.get("pair_head", "mean"), data.pair))
    supernet = Path(search_dir) / artifacts.SUPERNET_FILE
    tensors = supernet_weights(genotype, supernet, data.num_labels, seed, init)
    info = {"kind": "fixed", "op": op, "seed": int(seed), "init": init, "supernet": str(supernet)}
    return write_architecture(genotype, tensors, data, out_dir, info, cfg)


def run_transfer_architecture(cfg: dict, task: str, genotype_path: str | os.PathLike,
                              embeddings_dir: str | os.PathLike, data_dir: str | os.PathLike,
                              out_dir: str | os.PathLike, seed: int = 0) -> dict:
    """The genotype of ``genotype_path`` (searched on another task) as a derive folder for ``task``."""
    genotype = Genotype.load(genotype_path)
    derive_json = Path(genotype_path).with_name("derive.json")
    source = io.read_json(derive_json) if derive_json.is_file() else {}
    info = {"kind": "transfer", "genotype_path": str(genotype_path), "source_search": source.get("search_dir"),
            "seed": int(seed), "init": "scratch", "embeddings_dir": str(embeddings_dir)}
    data = artifacts.read_data(data_dir)
    tensors = architecture_weights(genotype, embeddings_dir, data.num_labels, seed)
    return write_architecture(genotype, tensors, data, out_dir, info, cfg)
