"""The one distillation objective: task loss, final-logit KD, attentive probe KD (and their regression forms).

Used by the search (:mod:`adabert.nas.losses`, per depth, plus the efficiency term), the retrain stage
and the baselines, with the same ``kd`` modes:

* ``probe+final``: KD = 0.5 probe KD + 0.5 final KD (the authors' 0.4 / 0.4 split of gamma = 0.8);
* ``probe`` / ``final``: that part alone; ``none``: no KD (the loss is the task loss alone);
* ``mse_logits`` (BiLSTM-SOFT, Tang et al. 2019): KD = MSE between the student's and teacher's logits.

Total: ``loss`` = (1 - gamma) task + gamma KD. Task loss: cross-entropy (classification) or MSE to the
gold score (regression). Final KD: T^2 KL(softmax(t / T) || softmax(s / T)) (regression: MSE of the
outputs). Probe KD at student depth d (spec 3.2): student layer i = 0..d (0 = embedding) is matched to
teacher probe m(i) = ceil(i L_T / d); probe KD = sum_i a_i KD(probe m(i), student layer i) with attentive
weights a = softmax(-task loss of the teacher probes m(i) on the batch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from adabert.errors import AdabertError

KD_MODES = ("probe+final", "probe", "final", "none", "mse_logits")
SEARCH_KD_MODES = ("probe+final", "probe", "final")


def teacher_layer(i: int, depth: int, teacher_layers: int) -> int:
    """m(i) = ceil(i * L_T / d): the teacher probe matched to student layer i at depth d."""
    return math.ceil(i * teacher_layers / depth)


def soft_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), mean over the batch."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1), log_target=True, reduction="batchmean"
    ) * (t * t)


class Objective:
    """The task and distillation terms of one batch: ``labels`` [B] (classes or scores) and the
    number of outputs decide classification (CE, KL) or regression (MSE, MSE)."""

    def __init__(self, labels: torch.Tensor, regression: bool, temperature: float):
        self.labels, self.regression, self.temperature = labels, regression, temperature

    def task(self, logits: torch.Tensor) -> torch.Tensor:
        if self.regression:
            return F.mse_loss(logits.squeeze(-1), self.labels.to(logits.dtype))
        return F.cross_entropy(logits, self.labels)

    def distill(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if self.regression:
            return F.mse_loss(student, teacher)
        return soft_kl(student, teacher, self.temperature)

    def probe_quality(self, teacher_probe_logits: torch.Tensor, layers: list[int]) -> torch.Tensor:
        """The task loss of each listed teacher probe on the batch (lower = the probe knows the task better)."""
        if self.regression:
            gold = self.labels.to(teacher_probe_logits.dtype)
            return torch.stack([F.mse_loss(teacher_probe_logits[:, m, 0], gold) for m in layers])
        return torch.stack([F.cross_entropy(teacher_probe_logits[:, m], self.labels) for m in layers])

    def probe_kd(self, layer_logits: list[torch.Tensor], teacher_probe_logits: torch.Tensor,
                 quality: torch.Tensor | None = None) -> torch.Tensor:
        """Attentive probe KD of student layers 0..d (``layer_logits``) against the matched teacher probes.

        ``quality``: the task loss of every teacher probe (all L_T + 1), when computed once for several depths.
        """
        teacher_layers = teacher_probe_logits.shape[1] - 1
        depth = len(layer_logits) - 1
        matched = [teacher_layer(i, depth, teacher_layers) for i in range(depth + 1)]
        q = quality[matched] if quality is not None else self.probe_quality(teacher_probe_logits, matched)
        attention = torch.softmax(-q, dim=0)
        terms = torch.stack([self.distill(layer_logits[i], teacher_probe_logits[:, m]) for i, m in enumerate(matched)])
        return (attention * terms).sum()


def kd_loss(objective: Objective, logits: torch.Tensor, *, kd: str, gamma: float,
            teacher_logits: torch.Tensor | None = None, layer_logits: list[torch.Tensor] | None = None,
            teacher_probe_logits: torch.Tensor | None = None, quality: torch.Tensor | None = None
            ) -> dict[str, torch.Tensor]:
    """``loss`` = (1 - gamma) task + gamma KD (the task loss alone for kd 'none'), with its components
    ``ce``, ``kd``, ``kd_probe``, ``kd_final`` (zero where a mode has no such part)."""
    if kd not in KD_MODES:
        raise AdabertError(f"kd must be one of {list(KD_MODES)}, got {kd!r}")
    ce = objective.task(logits)
    zero = logits.new_zeros(())
    parts = {"ce": ce, "kd_final": zero, "kd_probe": zero, "kd": zero}
    if kd == "none":
        parts["loss"] = ce
        return parts
    if kd == "mse_logits":
        parts["kd"] = F.mse_loss(logits, teacher_logits.to(logits.dtype))
    if kd in ("probe+final", "probe"):
        parts["kd_probe"] = objective.probe_kd(layer_logits, teacher_probe_logits, quality)
    if kd in ("probe+final", "final"):
        parts["kd_final"] = objective.distill(logits, teacher_logits)
    if kd == "probe+final":
        parts["kd"] = 0.5 * parts["kd_probe"] + 0.5 * parts["kd_final"]
    elif kd in ("probe", "final"):
        parts["kd"] = parts["kd_probe"] if kd == "probe" else parts["kd_final"]
    parts["loss"] = (1.0 - gamma) * ce + gamma * parts["kd"]
    return parts
