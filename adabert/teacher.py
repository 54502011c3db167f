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
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from adabert import artifacts, io, models, training
from adabert.probes import layer_features
from adabert.batching import PACKED_INPUTS, batched_outputs, subsample_indices, training_order, trim
from adabert.errors import AdabertError

log = logging.getLogger(__name__)


def predict(model: nn.Module, data: dict[str, torch.Tensor], batch_size: int, device: torch.device,
            desc: str = "predict", precision: str = "fp32") -> torch.Tensor:
    """Logits ``[N, C]`` (float32, CPU, original row order) of a packed-input model in eval mode."""
    model.eval()
    with training.autocast(precision, device):
        return batched_outputs(lambda batch: model(**batch).logits, data, batch_size, device, desc)


def label(model: nn.Module, data: dict[str, torch.Tensor], batch_size: int, device: torch.device, desc: str,
          precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The labelling pass: logits ``[N, C]`` and probe inputs ``[N, L + 1, H]`` of every row in one forward."""
    model.eval()
    num_labels = int(model.config.num_labels)

    def forward(batch):
        out = model(**batch, output_hidden_states=True)
        feats = layer_features(out.hidden_states, batch["attention_mask"])
        return torch.cat([out.logits.float(), feats.flatten(1)], dim=1)

    with training.autocast(precision, device):
        both = batched_outputs(forward, data, batch_size, device, desc)
    return both[:, :num_labels].contiguous(), both[:, num_labels:].reshape(both.shape[0], -1, model.config.hidden_size)


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


def load_model(name: str, data: artifacts.DataFolder, splits: dict[str, dict[str, torch.Tensor]],
               init_dir: Path | None = None) -> nn.Module:
    """The pretrained encoder ``name`` with a fresh task head, checked against the data's token ids; with
    ``init_dir``, another task's fine-tuned teacher (its encoder) with a head for this task."""
    path = models.resolve_model_path(name)
    tokenizer = data.meta.get("tokenizer")
    if tokenizer not in (None, name) and _resolves_to(tokenizer) != path:
        log.warning("%s was tokenised with %r but the teacher is %r; the vocabularies must match",
                    data.path, tokenizer, name)
    problem = "regression" if data.regression else "single_label_classification"
    if init_dir is not None:
        source = artifacts.teacher_model_dir(init_dir)
        if not (source / "config.json").is_file():
            raise AdabertError(f"{source}: no fine-tuned teacher to start from (teacher.per_task.<task>.init_from)")
        model = models.load_classifier(str(source), data.num_labels, problem, new_head=True)
    else:
        model = models.load_classifier(name, data.num_labels, problem)
    vocab = model.get_input_embeddings().num_embeddings
    for split, tensors in splits.items():
        if int(tensors["input_ids"].max()) >= vocab:
            raise AdabertError(f"{data.path / (split + '.safetensors')}: token ids beyond the vocabulary of {name!r} "
                               f"({vocab}); the data was tokenised with {tokenizer!r}")
    return model


def fine_tune(cfg: dict, task: str, data: artifacts.DataFolder, splits: dict, model: nn.Module,
              device: torch.device) -> tuple[dict, dict[str, torch.Tensor]]:
    """Fine-tune on (a seeded subsample of, ``teacher.max_train_examples``) the training rows with the
    shared loop; the training record and the fine-tuning rows. Each evaluation is a labelling pass, so the
    record's ``outputs`` hold the kept epoch's dev logits and probe inputs."""
    tcfg = cfg["teacher"]
    n_all = int(splits["train"]["labels"].shape[0])
    keep = subsample_indices(n_all, tcfg.get("max_train_examples"), int(cfg["data"].get("seed", 0)))
    train = {k: v[keep] for k, v in splits["train"].items()} if len(keep) < n_all else splits["train"]
    order = training_order(train, bool(tcfg.get("length_grouped")))
    recipe = training.Recipe(epochs=float(tcfg["epochs"]), batch_size=int(tcfg["batch_size"]),
                             learning_rate=float(tcfg["learning_rate"]), weight_decay=float(tcfg["weight_decay"]),
                             warmup_ratio=float(tcfg["warmup_ratio"]), schedule="linear", grad_clip=1.0,
                             seed=int(tcfg["seed"]), precision=training.resolve_precision(
                                 tcfg.get("precision", "fp32"), device), order=order)
    eval_bs = int(tcfg["eval_batch_size"])
    record = training.fit(
        model, train=train, evals={s: splits[s] for s in data.eval_splits}, spec=data.spec,
        main_split=data.main_split, step=teacher_step(data.regression),
        predict=lambda m, split: label(m, split, eval_bs, device, "label dev", recipe.precision), recipe=recipe,
        label=f"teacher {task}", device=device,
        groups=training.transformer_param_groups([model], recipe.weight_decay))
    return record, train


def train_teacher(cfg: dict, task: str, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                  init_dir: str | os.PathLike | None = None) -> dict:
    """Fine-tune ``cfg['teacher']['model']`` on ``data_dir``, label every row (logits and probe inputs) in
    one pass, and write the Teacher contract into ``out_dir``. Returns the ``metrics.json`` dict.
    """
    tcfg = cfg["teacher"]
    data = artifacts.read_data(data_dir)
    spec = data.check_task(cfg, task)
    splits = {s: data.split(s, PACKED_INPUTS) for s in ["train", *data.eval_splits]}
    n_labelled = int(splits["train"]["labels"].shape[0])
    if n_labelled == 0:
        raise AdabertError(f"{data.path / 'train.safetensors'}: no training examples")

    name = tcfg["model"]
    if tcfg.get("init_from") and init_dir is None:
        raise AdabertError(f"config key 'teacher.per_task.{task}.init_from' is {tcfg['init_from']!r}: pass that "
                           "task's teacher folder (--init)")
    io.set_seed(int(tcfg["seed"]))
    device = io.device()
    model = load_model(name, data, splits, Path(init_dir) if init_dir else None).to(device)
    record, train = fine_tune(cfg, task, data, splits, model, device)
    model.to(device)
    t0 = time.perf_counter()
    eval_bs = int(tcfg["eval_batch_size"])
    # the dev splits were labelled by the evaluation of the kept epoch (same weights, same pass)
    labelled = {"train": label(model, splits["train"], eval_bs, device, "label train", record["precision"]),
                **{s: record["outputs"][s] for s in data.eval_splits}}
    label_time = time.perf_counter() - t0
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
        "dev_per_epoch": [epoch["main_value"] for epoch in record["history"]],
        "n_train": int(train["labels"].shape[0]),
        "n_labelled": n_labelled,
        "label_time_s": round(label_time, 3),
        "label_examples_per_s": round(n_labelled / label_time, 3),
        "epochs": float(tcfg["epochs"]),
        "learning_rate": float(tcfg["learning_rate"]),
        "init_from": tcfg.get("init_from"),
        "steps": record["steps"],
        "precision": record["precision"],
        "length_grouped": bool(tcfg.get("length_grouped", False)),
        "device": device.type,
        "splits": data.provenance,
    }
    artifacts.write_teacher(out_dir, model=model, tokenizer=models.load_tokenizer(name), cfg=cfg, metrics=result,
                            logits={s: logits for s, (logits, _) in labelled.items()},
                            features={s: feats for s, (_, feats) in labelled.items()})
    log.info("teacher %s: %s %s = %.2f (%s), %.1f examples/s", task, data.main_split, spec.main_metric,
             result["main_value"], name, result["train_examples_per_s"] or 0.0)
    return result
