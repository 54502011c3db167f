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
import os

import torch
import torch.nn.functional as F
from torch import nn

from adabert import artifacts, io, models, training
from adabert import metrics as metrics_mod
from adabert.batching import PACKED_INPUTS, batched_outputs, trim
from adabert.errors import AdabertError

log = logging.getLogger(__name__)


def predict(model: nn.Module, data: dict[str, torch.Tensor], batch_size: int, device: torch.device,
            desc: str = "predict") -> torch.Tensor:
    """Logits ``[N, C]`` (float32, CPU, original row order) of a packed-input model in eval mode."""
    model.eval()
    return batched_outputs(lambda batch: model(**batch).logits, data, batch_size, device, desc)


def evaluate(spec, logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> dict[str, float]:
    outputs = logits[:, 0] if regression else logits
    result = metrics_mod.compute(spec, outputs.numpy(), labels.numpy())
    return {k: float(v) for k, v in result.items()}


def teacher_step(regression: bool):
    """The training step of :func:`adabert.training.fit`: the task loss of the classifier's logits."""

    def step(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = trim(batch)
        logits = model(**{k: batch[k] for k in PACKED_INPUTS}).logits
        if regression:
            return {"loss": F.mse_loss(logits[:, 0], batch["labels"])}
        return {"loss": F.cross_entropy(logits, batch["labels"])}

    return step


def _resolves_to(name: str) -> str | None:
    try:
        return models.resolve_model_path(name)
    except AdabertError:
        return None


def load_model(name: str, data: artifacts.DataFolder, splits: dict[str, dict[str, torch.Tensor]]) -> nn.Module:
    """The pretrained encoder ``name`` with a fresh task head, checked against the data's token ids."""
    path = models.resolve_model_path(name)
    tokenizer = data.meta.get("tokenizer")
    if tokenizer not in (None, name) and _resolves_to(tokenizer) != path:
        log.warning("%s was tokenised with %r but the teacher is %r; the vocabularies must match",
                    data.path, tokenizer, name)
    problem = "regression" if data.regression else "single_label_classification"
    model = models.load_classifier(name, data.num_labels, problem)
    vocab = model.get_input_embeddings().num_embeddings
    for split, tensors in splits.items():
        if int(tensors["input_ids"].max()) >= vocab:
            raise AdabertError(f"{data.path / (split + '.safetensors')}: token ids beyond the vocabulary of {name!r} "
                               f"({vocab}); the data was tokenised with {tokenizer!r}")
    return model


def train_teacher(cfg: dict, task: str, data_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Fine-tune ``cfg['teacher']['model']`` on ``data_dir`` and write the Teacher contract into ``out_dir``.

    Returns the ``metrics.json`` dict.
    """
    tcfg = cfg["teacher"]
    data = artifacts.read_data(data_dir)
    spec = data.check_task(cfg, task)
    splits = {s: data.split(s, PACKED_INPUTS) for s in ["train", *data.eval_splits]}
    n_train = int(splits["train"]["labels"].shape[0])
    if n_train == 0:
        raise AdabertError(f"{data.path / 'train.safetensors'}: no training examples")

    name = tcfg["model"]
    io.set_seed(int(tcfg["seed"]))
    device = io.device()
    model = load_model(name, data, splits).to(device)
    eval_bs = int(tcfg["eval_batch_size"])
    recipe = training.Recipe(epochs=float(tcfg["epochs"]), batch_size=int(tcfg["batch_size"]),
                             learning_rate=float(tcfg["learning_rate"]), weight_decay=float(tcfg["weight_decay"]),
                             warmup_ratio=float(tcfg["warmup_ratio"]), schedule="linear", grad_clip=1.0,
                             seed=int(tcfg["seed"]))
    record = training.fit(
        model, train=splits["train"], evals={s: splits[s] for s in data.eval_splits}, spec=spec,
        main_split=data.main_split, step=teacher_step(data.regression),
        predict=lambda m, split: predict(m, split, eval_bs, device, desc="logits"), recipe=recipe,
        label=f"teacher {task}", device=device,
        groups=training.transformer_param_groups([model], recipe.weight_decay))
    model.to(device)
    logits = {"train": predict(model, splits["train"], eval_bs, device, desc="logits train"), **record["logits"]}
    model.cpu()
    train_time = record["train_time_s"]
    result = {
        "task": task,
        "model": name,
        "model_path": models.resolve_model_path(name),
        "params": models.count_parameters(model),
        "eval": {s: {k: float(v) for k, v in m.items()} for s, m in record["eval"].items()},
        "main_metric": spec.main_metric,
        "main_split": data.main_split,
        "main_value": float(record["main_value"]),
        "best_epoch": record["best_epoch"],
        "train_time_s": round(train_time, 3),
        "train_examples_per_s": round(record["examples_seen"] / train_time, 3) if train_time > 0 else None,
        "train_loss": [epoch["loss"] for epoch in record["history"]],
        "n_train": n_train,
        "epochs": float(tcfg["epochs"]),
        "steps": record["steps"],
        "device": device.type,
        "splits": data.provenance,
    }
    artifacts.write_teacher(out_dir, model=model, tokenizer=models.load_tokenizer(name), logits=logits,
                            metrics=result, cfg=cfg)
    log.info("teacher %s: %s %s = %.2f (%s), %.1f examples/s", task, data.main_split, spec.main_metric,
             result["main_value"], name, result["train_examples_per_s"] or 0.0)
    return result

