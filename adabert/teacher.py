"""Teacher stage: fine-tune a Hugging Face encoder on one task and export its logits.

Reads the Data contract folder (``meta.json`` and ``{split}.safetensors``) and writes the Teacher contract
folder (docs/ARCHITECTURE.md):

* ``model/``: ``save_pretrained`` folder (safetensors) plus the tokenizer;
* ``logits.safetensors``: ``[N, C]`` float32 per split (``train`` and every eval split, original order);
* ``metrics.json``: eval metrics (percent points), main metric/value, timing, provenance of the splits;
* ``config.json``: the stage config.

Everything is written into a temporary folder that replaces ``out_dir`` only when the stage succeeds.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from adabert import io
from adabert import metrics as metrics_mod
from adabert import models
from adabert import tasks as tasks_mod
from adabert.errors import AdabertError

log = logging.getLogger(__name__)

PACKED_KEYS = ("input_ids", "attention_mask", "token_type_ids")


# --------------------------------------------------------------------------- data helpers


def load_meta(data_dir: str | os.PathLike) -> dict:
    meta = io.read_json(Path(data_dir) / "meta.json")
    for key in ("type", "num_labels", "eval_splits", "main_split", "splits"):
        if key not in meta:
            raise AdabertError(f"{Path(data_dir) / 'meta.json'}: missing key {key!r}")
    if meta["type"] not in ("classification", "regression"):
        raise AdabertError(f"{Path(data_dir) / 'meta.json'}: type must be classification or regression, got {meta['type']!r}")
    if meta["type"] == "regression" and meta["num_labels"] != 1:
        raise AdabertError(f"{Path(data_dir) / 'meta.json'}: a regression task has num_labels 1, got {meta['num_labels']}")
    if meta["main_split"] not in meta["eval_splits"]:
        raise AdabertError(f"{Path(data_dir) / 'meta.json'}: main_split {meta['main_split']!r} is not in eval_splits {meta['eval_splits']}")
    return meta


def load_split(data_dir: str | os.PathLike, split: str, meta: dict) -> dict[str, torch.Tensor]:
    """The packed teacher inputs and labels of one split, checked against ``meta``."""
    path = Path(data_dir) / f"{split}.safetensors"
    tensors = io.load_tensors(path)
    missing = [k for k in (*PACKED_KEYS, "labels") if k not in tensors]
    if missing:
        raise AdabertError(f"{path}: missing tensors {missing}")
    out = {k: tensors[k].long() for k in PACKED_KEYS}
    labels = tensors["labels"]
    out["labels"] = labels.float() if meta["type"] == "regression" else labels.long()
    n = out["input_ids"].shape[0]
    for k, v in out.items():
        if v.shape[0] != n:
            raise AdabertError(f"{path}: {k} has {v.shape[0]} rows, input_ids has {n}")
    expected = meta["splits"].get(split, {}).get("n")
    if expected is not None and expected != n:
        raise AdabertError(f"{path}: {n} rows, but meta.json says splits.{split}.n = {expected}")
    if meta["type"] == "classification" and n and (out["labels"].min() < 0 or out["labels"].max() >= meta["num_labels"]):
        raise AdabertError(f"{path}: labels outside 0..{meta['num_labels'] - 1}")
    return out


def trim_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Dynamic padding: cut the padded columns that no row of the batch uses."""
    mask = batch["attention_mask"]
    used = mask.any(dim=0).nonzero()
    length = int(used[-1]) + 1 if used.numel() else 1
    return {k: (v[:, :length] if v.dim() == 2 and k in PACKED_KEYS else v) for k, v in batch.items()}


def eval_order(attention_mask: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Index batches over the rows sorted by length (less padding); outputs are put back in order."""
    lengths = attention_mask.sum(dim=1)
    order = torch.argsort(lengths, descending=True, stable=True)
    return list(order.split(batch_size))


@torch.no_grad()
def batched_outputs(forward, data: dict[str, torch.Tensor], batch_size: int, device: torch.device,
                    desc: str) -> torch.Tensor:
    """``forward(batch) -> [B, ...]`` over length-sorted, trimmed batches; float32, CPU, original row order."""
    from tqdm.auto import tqdm

    n = data["input_ids"].shape[0]
    out: torch.Tensor | None = None
    for idx in tqdm(eval_order(data["attention_mask"], batch_size), desc=desc, leave=False, mininterval=2.0):
        batch = trim_batch({k: data[k][idx] for k in PACKED_KEYS})
        values = forward({k: v.to(device) for k, v in batch.items()}).float().cpu()
        if out is None:
            out = torch.empty(n, *values.shape[1:], dtype=torch.float32)
        out[idx] = values
    if out is None:
        raise AdabertError(f"{desc}: no rows")
    return out


def predict(model: nn.Module, data: dict[str, torch.Tensor], batch_size: int, device: torch.device,
            desc: str = "predict") -> torch.Tensor:
    """Logits ``[N, C]`` (float32, CPU, original row order) of ``model`` in eval mode."""
    model.eval()
    return batched_outputs(lambda batch: model(**batch).logits, data, batch_size, device, desc)


def evaluate(spec, logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> dict[str, float]:
    outputs = logits[:, 0] if regression else logits
    result = metrics_mod.compute(spec, outputs.numpy(), labels.numpy())
    return {k: float(v) for k, v in result.items()}


# --------------------------------------------------------------------------- training


def task_spec(cfg: dict, task: str, meta: dict, data_dir: Path):
    """The TaskSpec of ``task``, checked against the data ``meta`` (type, number and names of labels)."""
    spec = tasks_mod.get_task(task, cfg.get("custom_tasks") or {})
    if spec.type != meta["type"] or spec.num_labels != meta["num_labels"]:
        raise AdabertError(f"{data_dir / 'meta.json'}: type/num_labels ({meta['type']}, {meta['num_labels']}) do not match "
                           f"task {task!r} ({spec.type}, {spec.num_labels}); rerun the prepare stage")
    if spec.label_names is not None and meta.get("label_names") is not None and list(meta["label_names"]) != list(spec.label_names):
        raise AdabertError(f"{data_dir / 'meta.json'}: label_names {meta['label_names']} differ from task {task!r} "
                           f"labels {list(spec.label_names)}; rerun the prepare stage")
    return spec


def epoch_steps(n: int, batch_size: int, epochs: float) -> list[int]:
    """Optimiser steps of each (possibly fractional last) epoch; a fractional epoch takes its share of batches."""
    if epochs <= 0:
        raise AdabertError(f"teacher.epochs must be > 0, got {epochs}")
    per_epoch = math.ceil(n / batch_size)
    full = int(math.floor(epochs))
    steps = [per_epoch] * full
    frac = epochs - full
    if frac > 1e-9:
        steps.append(max(1, int(round(frac * per_epoch))))
    return steps


def _optimizer_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name or param.dim() == 1:
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _batches(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    perm = torch.randperm(n, generator=generator)
    for s in range(steps):
        yield perm[s * batch_size:(s + 1) * batch_size]


def _resolves_to(name: str) -> str | None:
    try:
        return models.resolve_model_path(name)
    except AdabertError:
        return None


def train_teacher(cfg: dict, task: str, data_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Fine-tune ``cfg['teacher']['model']`` on ``data_dir`` and write the Teacher contract into ``out_dir``.

    Returns the ``metrics.json`` dict.
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    tcfg = cfg["teacher"]
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    meta = load_meta(data_dir)
    spec = task_spec(cfg, task, meta, data_dir)
    regression = meta["type"] == "regression"
    splits = ["train", *meta["eval_splits"]]
    data = {s: load_split(data_dir, s, meta) for s in splits}
    n_train = int(data["train"]["input_ids"].shape[0])
    if n_train == 0:
        raise AdabertError(f"{data_dir / 'train.safetensors'}: no training examples")

    name = tcfg["model"]
    path = models.resolve_model_path(name)
    if meta.get("tokenizer") not in (None, name) and _resolves_to(meta["tokenizer"]) != path:
        log.warning("%s was tokenised with %r but the teacher is %r; the vocabularies must match",
                    data_dir, meta["tokenizer"], name)

    io.set_seed(int(tcfg["seed"]))
    device = io.device()
    model = models.load_classifier(name, meta["num_labels"], "regression" if regression else "single_label_classification")
    vocab = model.get_input_embeddings().num_embeddings
    for s in splits:
        if int(data[s]["input_ids"].max()) >= vocab:
            raise AdabertError(f"{data_dir / (s + '.safetensors')}: token ids beyond the vocabulary of {name!r} "
                               f"({vocab}); the data was tokenised with {meta.get('tokenizer')!r}")
    model.to(device)

    batch_size = int(tcfg["batch_size"])
    steps = epoch_steps(n_train, batch_size, float(tcfg["epochs"]))
    total = sum(steps)
    optimizer = torch.optim.AdamW(_optimizer_groups(model, float(tcfg["weight_decay"])), lr=float(tcfg["learning_rate"]))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(round(float(tcfg["warmup_ratio"]) * total)), total)
    generator = torch.Generator().manual_seed(int(tcfg["seed"]))
    loss_fn = nn.MSELoss() if regression else nn.CrossEntropyLoss()

    train = data["train"]
    seen = 0
    losses: list[float] = []
    t0 = time.perf_counter()
    model.train()
    with tqdm(total=total, desc=f"teacher {task}", mininterval=2.0) as bar:
        for epoch, n_steps in enumerate(steps):
            running, count = 0.0, 0
            for idx in _batches(n_train, batch_size, n_steps, generator):
                batch = trim_batch({k: train[k][idx] for k in (*PACKED_KEYS, "labels")})
                batch = {k: v.to(device) for k, v in batch.items()}
                labels = batch.pop("labels")
                logits = model(**batch).logits
                loss = loss_fn(logits[:, 0], labels) if regression else loss_fn(logits, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                seen += int(idx.numel())
                running += float(loss.detach()) * idx.numel()
                count += int(idx.numel())
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
            losses.append(running / max(count, 1))
            log.info("teacher %s: epoch %d/%d, mean train loss %.4f", task, epoch + 1, len(steps), losses[-1])
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_time = time.perf_counter() - t0

    eval_bs = int(tcfg["eval_batch_size"])
    logits = {s: predict(model, data[s], eval_bs, device, desc=f"logits {s}") for s in splits}
    eval_metrics = {s: evaluate(spec, logits[s], data[s]["labels"], regression) for s in meta["eval_splits"]}
    main_split = meta["main_split"]
    if spec.main_metric not in eval_metrics[main_split]:
        raise AdabertError(f"task {task!r}: metrics.compute returned no {spec.main_metric!r}")

    result = {
        "task": task,
        "model": name,
        "model_path": path,
        "params": models.count_parameters(model),
        "eval": eval_metrics,
        "main_metric": spec.main_metric,
        "main_split": main_split,
        "main_value": eval_metrics[main_split][spec.main_metric],
        "train_time_s": round(train_time, 3),
        "train_examples_per_s": round(seen / train_time, 3) if train_time > 0 else None,
        "train_loss": losses,
        "n_train": n_train,
        "epochs": float(tcfg["epochs"]),
        "steps": total,
        "device": device.type,
        "splits": meta["splits"],
    }

    tokenizer = models.load_tokenizer(name)
    with io.atomic_dir(out_dir) as tmp:
        with models.quiet_transformers():
            model.cpu().save_pretrained(tmp / "model", safe_serialization=True)
            tokenizer.save_pretrained(tmp / "model")
        io.save_tensors(tmp / "logits.safetensors", logits, metadata={"task": task, "splits": ",".join(splits)})
        io.write_json(tmp / "metrics.json", result)
        io.write_json(tmp / "config.json", cfg)
    log.info("teacher %s: %s %s = %.2f (%s), %.1f examples/s", task, main_split, spec.main_metric,
             result["main_value"], name, result["train_examples_per_s"] or 0.0)
    return result
