"""Architectures not searched on the task they are trained for, written as derive folders.

Two studies retrain architectures that the search did not produce for the task at hand, with the
main variant's retrain recipe from scratch (``retrain.init: scratch``):

* **random architectures** (baseline): :func:`~adabert.nas.genotype.sample_genotype` draws a genotype
  uniformly from the search space;
* **cross-task transfer**: the genotype searched on task A is trained on task B.

Both are written in the Derive contract (``genotype.json`` + ``weights.safetensors`` + ``derive.json``)
so the retrain stage reads them unchanged. The weights are a freshly initialised student (seeded), whose
embedding tables and embedding LayerNorm are the target task's searched student's (``embeddings_dir``:
a derive folder of the target task). The retrain stage's scratch mode keeps exactly those tables and
re-initialises everything else, so every architecture of a comparison starts from the same embedding
and differs only in its cells.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import torch

from adabert import artifacts, io
from adabert.errors import AdabertError
from adabert.nas.genotype import Genotype, sample_genotype
from adabert.student import WEIGHTS_FILE, Student

EMBEDDING_KEYS = ("word_embeddings.weight", "position_embeddings.weight", "layer_norm.weight", "layer_norm.bias")


def architecture_weights(genotype: Genotype, embeddings_dir: str | os.PathLike, num_labels: int,
                         seed: int) -> dict[str, torch.Tensor]:
    """A seeded fresh student of ``genotype`` for ``num_labels`` outputs with the embedding of ``embeddings_dir``."""
    path = Path(embeddings_dir) / WEIGHTS_FILE
    source = io.load_tensors(path)
    missing = [k for k in EMBEDDING_KEYS if k not in source]
    if missing:
        raise AdabertError(f"{path}: missing tensor(s) {missing} (expected a derive folder's weights)")
    width = int(source["word_embeddings.weight"].shape[1])
    if width != genotype.width:
        raise AdabertError(f"{path}: embedding width {width} differs from the genotype's width {genotype.width}")
    torch.manual_seed(int(seed))
    student = Student(genotype, int(source["word_embeddings.weight"].shape[0]),
                      int(source["position_embeddings.weight"].shape[0]), int(num_labels))
    state = student.state_dict()
    for key in EMBEDDING_KEYS:
        state[key] = source[key].clone()
    return {k: v.detach().clone() for k, v in state.items()}


def write_architecture(genotype: Genotype, embeddings_dir: str | os.PathLike, data_dir: str | os.PathLike,
                       out_dir: str | os.PathLike, seed: int, info: dict, cfg: dict) -> dict:
    """Write ``genotype`` as a derive folder for the task of ``data_dir``; returns the summary."""
    data = artifacts.read_data(data_dir)
    tensors = architecture_weights(genotype, embeddings_dir, data.num_labels, seed)
    info = {**info, "task": data.meta.get("task"), "embeddings_dir": str(embeddings_dir)}
    return artifacts.write_derived(out_dir, genotype=genotype, tensors=tensors, info=info, cfg=cfg)


def run_random_architecture(cfg: dict, task: str, sample: int, embeddings_dir: str | os.PathLike,
                            data_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Sample random architecture number ``sample`` of ``task`` from the search space of ``cfg['search']``."""
    scfg = cfg["search"]
    # A per-task seed: the same sample index draws different architectures on different tasks.
    seed = zlib.crc32(f"{task}/{int(sample)}".encode("utf-8"))
    genotype = sample_genotype(scfg["ops"], int(scfg["nodes"]), int(scfg["k_max"]), int(scfg["width"]), seed,
                               fixed_depth=scfg.get("fixed_depth"))
    info = {"kind": "random", "sample": int(sample), "sample_seed": seed}
    return write_architecture(genotype, embeddings_dir, data_dir, out_dir, seed, info, cfg)


def run_transfer_architecture(cfg: dict, task: str, genotype_path: str | os.PathLike,
                              embeddings_dir: str | os.PathLike, data_dir: str | os.PathLike,
                              out_dir: str | os.PathLike, seed: int = 0) -> dict:
    """The genotype of ``genotype_path`` (searched on another task) as a derive folder for ``task``."""
    genotype = Genotype.load(genotype_path)
    derive_json = Path(genotype_path).with_name("derive.json")
    source = io.read_json(derive_json) if derive_json.is_file() else {}
    info = {"kind": "transfer", "genotype_path": str(genotype_path), "source_search": source.get("search_dir"),
            "seed": int(seed)}
    return write_architecture(genotype, embeddings_dir, data_dir, out_dir, seed, info, cfg)
