"""Truncated-teacher baseline (BERT-PKD-like, Sun et al. 2019, "Patient knowledge distillation for BERT
model compression"): the fine-tuned teacher cut to its first k encoder layers, distilled from the full one.

Model: a copy of the fine-tuned teacher (``teacher_dir/model``) keeping its embeddings, its first k
encoder layers (k = ``baselines.truncated.layers``; it must be smaller than the teacher's layer count)
and its pooler and classifier, so it starts from exactly the teacher's weights.

Loss: L = (1 - gamma) CE + gamma KD on the teacher's final logits at ``loss.temperature`` (T^2 KL;
MSE for regression), i.e. :func:`adabert.distill.kd_loss` with ``kd="final"``; plus, with
``baselines.truncated.patient_beta`` > 0, beta times the PKD patient loss (PKD-Skip): the [CLS] state of
student layer i = 1..k-1 (the last layer is covered by the logits) matched to teacher layer
ceil(i L / k), as the squared distance of the L2-normalised vectors, summed over layers and averaged
over the batch. The teacher's [CLS] states are computed once, in eval mode, before training.

Inputs: the teacher's packed inputs of the Data contract (``input_ids``, ``attention_mask``,
``token_type_ids``) and ``teacher_dir/logits.safetensors``. Folder (``out_dir``): ``model/`` (the
truncated classifier, ``save_pretrained(safe_serialization=True)`` + tokenizer, the layout of a teacher
folder, so :func:`adabert.measure.reference.load_teacher` and ``python -m adabert export`` load it),
``metrics.json``, ``config.json``, ``predictions_{split}.jsonl``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from adabert import artifacts, io
from adabert.baselines import train as train_mod
from adabert.batching import PACKED_INPUTS, batched_outputs, trim
from adabert.distill import Objective, kd_loss, teacher_layer
from adabert.measure.reference import load_teacher
from adabert.measure.size import count_params
from adabert.models import load_tokenizer, quiet_transformers
from adabert.teacher import predict
from adabert.errors import AdabertError

log = logging.getLogger(__name__)

KIND = "truncated"
LAYERS_KEY = "baselines.truncated.layers"
GRAD_CLIP = 1.0


def encoder_layers(model: nn.Module, source: str = "model") -> tuple[nn.Module, str, nn.ModuleList]:
    """``(parent, attribute, layers)`` of the encoder's layer list: the one ``nn.ModuleList`` holding
    ``config.num_hidden_layers`` modules (``bert.encoder.layer`` for BERT)."""
    n = int(model.config.num_hidden_layers)
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n]
    if len(found) != 1:
        raise AdabertError(f"{source}: cannot tell the encoder's layer list ({len(found)} module lists of "
                           f"{n} layers: {[name for name, _ in found]})")
    name, layers = found[0]
    parent_name, _, attr = name.rpartition(".")
    return model.get_submodule(parent_name) if parent_name else model, attr, layers


def truncate(model: nn.Module, layers: int, source: str = "teacher") -> nn.Module:
    """Keep the first ``layers`` encoder layers of ``model`` (in place; ``config.num_hidden_layers`` too)."""
    total = int(model.config.num_hidden_layers)
    if not 1 <= layers < total:
        raise AdabertError(f"config key '{LAYERS_KEY}': {layers} must be at least 1 and smaller than the "
                           f"teacher's {total} encoder layers ({source})")
    parent, attr, module_list = encoder_layers(model, source)
    setattr(parent, attr, nn.ModuleList(list(module_list)[:layers]))
    model.config.num_hidden_layers = int(layers)
    return model


def patient_layers(layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student layer, teacher layer) pairs of the patient loss: i = 1..k-1 -> ceil(i L / k)."""
    return [(i, teacher_layer(i, layers, teacher_layers)) for i in range(1, layers)]


def patient_loss(student_cls: torch.Tensor, teacher_cls: torch.Tensor) -> torch.Tensor:
    """PKD: sum over layers of || s/||s|| - t/||t|| ||^2, mean over the batch; inputs [B, M, H]."""
    s = nn.functional.normalize(student_cls, dim=-1)
    t = nn.functional.normalize(teacher_cls.to(s.dtype), dim=-1)
    return (s - t).pow(2).sum(-1).sum(-1).mean()


@torch.no_grad()
def teacher_cls_states(teacher: nn.Module, split: dict[str, torch.Tensor], layers: list[int], batch_size: int,
                       device: torch.device) -> torch.Tensor:
    """[CLS] states ``[N, len(layers), H]`` of the teacher's ``layers`` (0 = embeddings), eval mode, row order."""
    teacher.to(device).eval()

    def cls_states(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = teacher(**batch, output_hidden_states=True).hidden_states
        return torch.stack([hidden[j][:, 0] for j in layers], dim=1)

    states = batched_outputs(cls_states, split, batch_size, device, "teacher [CLS] states")
    teacher.cpu()
    return states


def truncated_step(gamma: float, temperature: float, regression: bool, pairs: list[tuple[int, int]], beta: float):
    """The training step: final-logit KD (:mod:`adabert.distill`) plus, with ``pairs``, the patient loss."""

    def step(m: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        b = trim(batch)
        out = m(**{k: b[k] for k in PACKED_INPUTS}, output_hidden_states=bool(pairs))
        parts = kd_loss(Objective(b["labels"], regression, temperature), out.logits, kd="final", gamma=gamma,
                        teacher_logits=b["teacher_logits"])
        parts = {k: parts[k] for k in ("loss", "ce", "kd")}
        if pairs:
            student_cls = torch.stack([out.hidden_states[i][:, 0] for i, _ in pairs], dim=1)
            parts["patient"] = patient_loss(student_cls, b["teacher_cls"])
            parts["loss"] = parts["loss"] + beta * parts["patient"]
        return parts

    return step


def run_truncated(cfg: dict, task: str, seed: int, data_dir: str | os.PathLike, teacher_dir: str | os.PathLike,
                  out_dir: str | os.PathLike) -> dict:
    """Train the truncated teacher on one task / seed (``baselines.truncated``, ``loss``); returns metrics."""
    bcfg, lcfg, start_time = train_mod.start(cfg, KIND, seed)
    teacher_dir, gamma, temperature = Path(teacher_dir), float(lcfg["gamma"]), float(lcfg["temperature"])
    layers, beta = int(bcfg["layers"]), float(bcfg["patient_beta"])

    data = artifacts.read_data(data_dir)
    train = artifacts.distillation_set(data, teacher_dir, None, PACKED_INPUTS)
    evals = {s: data.split(s, PACKED_INPUTS) for s in data.eval_splits}
    source = str(artifacts.teacher_model_dir(teacher_dir))
    teacher = load_teacher(teacher_dir).module
    teacher_layers = int(teacher.config.num_hidden_layers)
    if int(teacher.config.num_labels) != data.num_labels:
        raise AdabertError(f"{source}: the teacher has {teacher.config.num_labels} outputs, the task {task} "
                           f"{data.num_labels}")
    model = truncate(load_teacher(teacher_dir).module, layers, source)
    tokenizer = load_tokenizer(source)
    batch_size = int(bcfg["batch_size"])
    device = io.device()
    pairs = patient_layers(layers, teacher_layers) if beta > 0 else []
    if beta > 0 and not pairs:
        log.warning("baselines.truncated.patient_beta > 0 with 1 layer: no intermediate layer to match, no patient loss")
    if pairs:  # the teacher's [CLS] states of the matched layers, once, in eval mode
        train["teacher_cls"] = teacher_cls_states(teacher, train, [t for _, t in pairs], 2 * batch_size, device)
    del teacher
    model.to(device)

    def save_model(tmp: Path) -> None:
        with quiet_transformers():
            model.save_pretrained(tmp / "model", safe_serialization=True)
            tokenizer.save_pretrained(tmp / "model")

    with quiet_transformers():
        return train_mod.train_and_write(
            model, kind=KIND, task=task, seed=seed, cfg=cfg, data=data, train=train, evals=evals,
            step=truncated_step(gamma, temperature, data.regression, pairs, beta),
            predict=lambda m, split: predict(m, split, 2 * batch_size, device, desc="predict"),
            recipe=train_mod.recipe(bcfg, seed, GRAD_CLIP, float(bcfg["warmup_ratio"])), device=device,
            params=count_params, save_model=save_model, out_dir=out_dir, start_time=start_time,
            label=f"truncated teacher + KD ({layers} of {teacher_layers} layers, BERT-PKD-like)",
            depth=layers, layers=layers, teacher_layers=teacher_layers, gamma=gamma, temperature=temperature,
            kd="final", patient_beta=beta, patient_layers=[list(p) for p in pairs],
            loss="(1 - gamma) CE + gamma T^2 KL(teacher || student) + patient_beta PKD(CLS)",
            hyperparameters={k: bcfg[k] for k in sorted(bcfg) if k != "enabled"},
            data_dir=str(data.path), teacher_dir=str(teacher_dir))
