"""What the baseline students share: their settings, their recipe, ``metrics.json`` and the output folder.

Training is the one loop of :func:`adabert.training.fit` (AdamW without weight decay on biases, norms
and embeddings, linear warm-up over ``warmup_ratio`` of the steps then cosine decay to 0, gradient-norm
clipping, a seeded shuffle, best epoch on the main split restored), exactly as the retrain stage of
the AdaBERT students. The folder is :func:`adabert.artifacts.write_trained`'s, as the retrain stage's.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from adabert import artifacts, io, training
from adabert import config as config_mod
from adabert.errors import AdabertError

log = logging.getLogger(__name__)

KINDS = ("bilstm", "truncated")
# Fields of metrics.json that are wall-clock measurements (everything else is a function of the seed on CPU).
TIME_KEYS = ("train_time_s", "train_examples_per_s", "total_time_s")


def settings(cfg: dict, kind: str) -> tuple[dict, dict]:
    """``(baselines[kind], loss)`` of a stage config, validated against the schema and defaults filled
    (so a partial config works and a bad value is an error naming its key)."""
    if kind not in KINDS:
        raise AdabertError(f"baseline kind must be one of {list(KINDS)}, got {kind!r}")
    baselines = copy.deepcopy(cfg.get("baselines") or {})
    resolved = config_mod.validate({"loss": copy.deepcopy(cfg.get("loss") or {}), "baselines": baselines})
    return resolved["baselines"][kind], resolved["loss"]


def start(cfg: dict, kind: str, seed: int) -> tuple[dict, dict, float]:
    """Begin a baseline run: its settings (:func:`settings`), the seeded RNGs and the start time."""
    bcfg, lcfg = settings(cfg, kind)
    io.set_seed(int(seed))
    return bcfg, lcfg, time.perf_counter()


def recipe(bcfg: dict, seed: int, grad_clip: float, warmup_ratio: float = 0.0) -> training.Recipe:
    """The training recipe of a baseline's settings ``baselines.<kind>``."""
    return training.Recipe(epochs=int(bcfg["epochs"]), batch_size=int(bcfg["batch_size"]),
                           learning_rate=float(bcfg["learning_rate"]), weight_decay=float(bcfg["weight_decay"]),
                           warmup_ratio=warmup_ratio, grad_clip=grad_clip, seed=int(seed),
                           max_steps=bcfg.get("max_steps"))


def summary(*, task: str, kind: str, seed: int, data: artifacts.DataFolder, record: dict, params: dict,
            n_train: int, n_eval: dict[str, int], device: torch.device, **extra) -> dict:
    """``metrics.json`` of a baseline, with the keys of the retrain stage's (``variant`` = ``kind``)."""
    train_time = record["train_time_s"]
    out = {
        "task": task,
        "variant": kind,
        "kind": kind,
        "seed": int(seed),
        "eval": record["eval"],
        "main_split": data.main_split,
        "main_metric": data.spec.main_metric,
        "main_value": record["main_value"],
        "best_epoch": record["best_epoch"],
        "epochs": record["epochs"],
        "history": record["history"],
        "params": int(params["params"]),
        "params_without_embeddings": int(params["params_no_embeddings"]),
        "n_train": int(n_train),
        "n_eval": {s: int(n) for s, n in n_eval.items()},
        "train_time_s": train_time,
        "train_examples_per_s": record["examples_seen"] / train_time if train_time > 0 else None,
        "steps": record["steps"],
        "max_steps": record["max_steps"],
        "total_time_s": None,
        "splits": data.provenance,
        "threads": torch.get_num_threads(),
        "device": device.type,
        "precision": record["precision"],
    }
    out.update(extra)
    return out


def train_and_write(model: nn.Module, *, kind: str, task: str, seed: int, cfg: dict, data: artifacts.DataFolder,
                    train: dict, evals: dict, step, predict, recipe: training.Recipe, device: torch.device,
                    params: Callable[[nn.Module], dict], save_model: Callable[[Path], None], out_dir,
                    start_time: float, **extra) -> dict:
    """Train a baseline with :func:`adabert.training.fit`, write its folder; returns ``metrics.json``."""
    label = f"baseline {kind} {task} seed {seed}"
    record = training.fit(model, train=train, evals=evals, spec=data.spec, main_split=data.main_split, step=step,
                          predict=predict, recipe=recipe, label=label, device=device)
    result = summary(task=task, kind=kind, seed=seed, data=data, record=record, params=params(model),
                     n_train=int(train["labels"].shape[0]), n_eval={s: t["labels"].shape[0] for s, t in evals.items()},
                     device=device, **extra)
    artifacts.write_trained(out_dir, cfg=cfg, summary=result, data=data, logits=record["logits"],
                            labels={s: t["labels"] for s, t in evals.items()}, save_model=save_model,
                            start_time=start_time)
    log.info("%s: best epoch %d, %s %s %.2f -> %s", label, record["best_epoch"], data.main_split,
             data.spec.main_metric, record["main_value"], out_dir)
    return result
