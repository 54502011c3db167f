"""The training loop and the output folder shared by the baseline students (:mod:`adabert.baselines`).

:func:`fit` trains a model for a fixed number of epochs with AdamW (no weight decay on biases, norms
and embeddings; :func:`adabert.retrain.param_groups`), a linear warm-up over ``warmup_ratio`` of the
steps followed by a cosine decay to 0, gradient-norm clipping, and a seeded shuffle. After every epoch
the model is evaluated on every eval split; the best epoch on the main split (ties keep the earlier)
is restored at the end, exactly as the retrain stage of the AdaBERT students selects its epoch.

:func:`write_outputs` writes the folder like the retrain stage: ``metrics.json`` (the retrain keys, see
:func:`summary`), ``config.json``, ``predictions_{split}.jsonl`` (rows of
:func:`adabert.retrain.prediction_rows`) and the model files (a callback), atomically.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from adabert import io
from adabert import metrics as metrics_mod
from adabert import tasks as tasks_mod
from adabert.errors import AdabertError

log = logging.getLogger(__name__)

KINDS = ("bilstm", "truncated")
# Fields of metrics.json that are wall-clock measurements (everything else is a function of the seed on CPU).
TIME_KEYS = ("train_time_s", "train_examples_per_s", "total_time_s")


def settings(cfg: dict, kind: str) -> tuple[dict, dict]:
    """``(baselines[kind], loss)`` of a stage config, validated against the schema and defaults filled
    (so a partial config works and a bad value is an error naming its key)."""
    from adabert import config as config_mod

    if kind not in KINDS:
        raise AdabertError(f"baseline kind must be one of {list(KINDS)}, got {kind!r}")
    baselines = copy.deepcopy(cfg.get("baselines") or {})
    resolved = config_mod.validate({"loss": copy.deepcopy(cfg.get("loss") or {}), "baselines": baselines})
    return resolved["baselines"][kind], resolved["loss"]


# -- data ---------------------------------------------------------------------------------------------
@dataclass
class TaskData:
    """What every baseline reads from the Data contract folder."""

    data_dir: Path
    meta: dict
    spec: tasks_mod.TaskSpec
    main_split: str
    eval_splits: list[str]

    @property
    def regression(self) -> bool:
        return self.spec.is_regression

    @property
    def num_labels(self) -> int:
        return int(self.meta["num_labels"])

    @property
    def pair(self) -> bool:
        return len(self.meta.get("text_columns") or self.spec.text_columns) == 2


def task_data(data_dir: str | os.PathLike) -> TaskData:
    from adabert.teacher import load_meta

    data_dir = Path(data_dir)
    meta = load_meta(data_dir)
    if "max_seq_length" not in meta:
        raise AdabertError(f"{data_dir / 'meta.json'}: missing key 'max_seq_length'")
    spec = tasks_mod.spec_from_meta(meta)
    return TaskData(data_dir=data_dir, meta=meta, spec=spec, main_split=meta["main_split"],
                    eval_splits=list(meta["eval_splits"]))


def teacher_train_logits(teacher_dir: Path, n_train: int, num_labels: int) -> torch.Tensor:
    """The teacher's logits ``[N, C]`` on the training split (``teacher_dir/logits.safetensors``)."""
    path = teacher_dir / "logits.safetensors"
    logits = io.load_tensors(path)
    if "train" not in logits:
        raise AdabertError(f"{path}: missing tensor 'train'")
    out = logits["train"].float()
    if tuple(out.shape) != (n_train, num_labels):
        raise AdabertError(f"{path}: 'train' has shape {list(out.shape)}, expected [{n_train}, {num_labels}]")
    return out


# -- optimisation -------------------------------------------------------------------------------------
def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up from 0 over ``warmup_steps``, then cosine decay to 0."""
    total_steps = max(1, total_steps)
    warmup_steps = min(max(0, warmup_steps), total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (min(step, total_steps) - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def fit(
    model: nn.Module,
    *,
    train: dict[str, torch.Tensor],
    evals: dict[str, dict[str, torch.Tensor]],
    spec: tasks_mod.TaskSpec,
    main_split: str,
    step: Callable[[nn.Module, dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    predict: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    warmup_ratio: float,
    grad_clip: float | None,
    seed: int,
    label: str,
    device: torch.device,
) -> dict:
    """Train ``model`` and restore its best epoch on ``main_split``; returns the training record.

    ``train`` holds row-aligned tensors (``labels`` included); each step sees ``{key: rows of the
    batch}`` on ``device`` and ``step(model, batch)`` returns the loss components (``loss`` is
    minimised, every component is averaged into the history). ``predict(model, split)`` gives the
    logits ``[N, C]`` (CPU, row order) of an eval split in eval mode. The record: ``best_epoch``,
    ``main_value``, ``eval`` (metrics of the best epoch), ``logits`` (its eval logits), ``history``,
    ``train_time_s``, ``epochs``.
    """
    from adabert.retrain import param_groups

    n_train = int(train["labels"].shape[0])
    if n_train == 0:
        raise AdabertError(f"{label}: no training examples")
    if epochs < 1:
        raise AdabertError(f"{label}: epochs must be >= 1, got {epochs}")
    total_steps = epochs * math.ceil(n_train / batch_size)
    opt = torch.optim.AdamW(param_groups([model], weight_decay), lr=learning_rate)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total_steps, round(warmup_ratio * total_steps)))
    shuffle = torch.Generator().manual_seed(int(seed))
    params = [p for p in model.parameters() if p.requires_grad]

    best: dict = {"epoch": None, "value": -math.inf, "state": None, "logits": None, "eval": None}
    history: list[dict] = []
    train_time = 0.0
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        order = torch.randperm(n_train, generator=shuffle)
        for begin in range(0, n_train, batch_size):
            idx = order[begin:begin + batch_size]
            batch = {k: v[idx].to(device) for k, v in train.items()}
            parts = step(model, batch)
            opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            sched.step()
            value = float(parts["loss"].detach())
            if not math.isfinite(value):
                raise AdabertError(f"{label}: non-finite loss at epoch {epoch} (diverged)")
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * idx.numel()
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time
        logits = {s: predict(model, t) for s, t in evals.items()}
        eval_metrics = {s: metrics_mod.compute(spec, logits[s], evals[s]["labels"]) for s in evals}
        main = float(eval_metrics[main_split][spec.main_metric])
        history.append({"epoch": epoch, **{k: v / n_train for k, v in sums.items()}, "eval": eval_metrics,
                        "main_value": main, "train_time_s": epoch_time, "lr_end": opt.param_groups[0]["lr"]})
        log.info("%s epoch %d: loss %.4f, %s %s %.2f (%.1f s)", label, epoch, history[-1]["loss"], main_split,
                 spec.main_metric, main, epoch_time)
        if main > best["value"]:
            best = {"epoch": epoch, "value": main, "state": copy.deepcopy(model.state_dict()), "logits": logits,
                    "eval": eval_metrics}
    model.load_state_dict(best["state"])
    model.cpu().eval()
    return {"best_epoch": best["epoch"], "main_value": best["value"], "eval": best["eval"], "logits": best["logits"],
            "history": history, "train_time_s": train_time, "epochs": epochs}


# -- outputs ------------------------------------------------------------------------------------------
def summary(*, task: str, kind: str, seed: int, data: TaskData, record: dict, params: dict, n_train: int,
            n_eval: dict[str, int], device: torch.device, **extra) -> dict:
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
        "train_examples_per_s": n_train * record["epochs"] / train_time if train_time > 0 else None,
        "total_time_s": None,
        "splits": data.meta.get("splits", {}),
        "threads": torch.get_num_threads(),
        "device": device.type,
    }
    out.update(extra)
    return out


def write_outputs(out_dir: Path, cfg: dict, result: dict, data: TaskData, logits: dict[str, torch.Tensor],
                  labels: dict[str, torch.Tensor], save_model: Callable[[Path], None], start_time: float) -> None:
    """Write the baseline folder atomically: the model (``save_model(tmp)``), the prediction files,
    ``metrics.json`` (``result`` with ``total_time_s`` filled in) and ``config.json``."""
    from adabert.retrain import prediction_rows, read_indices, write_jsonl

    with io.atomic_dir(out_dir) as tmp:
        save_model(tmp)
        for split, split_logits in logits.items():
            rows = prediction_rows(data.spec, read_indices(data.data_dir, split, split_logits.shape[0]), split_logits,
                                   labels[split])
            write_jsonl(tmp / f"predictions_{split}.jsonl", rows)
        result["total_time_s"] = time.perf_counter() - start_time
        io.write_json(tmp / "metrics.json", result)
        io.write_json(tmp / "config.json", cfg)
