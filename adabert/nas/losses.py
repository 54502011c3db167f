"""The search objective L = (1 - gamma) L_CE + gamma L_KD + beta L_E (spec 3.1; gamma 0.8, beta 4, T 1).

Depth weighting (spec 3.1, both authors' codes): with y the straight-through one-hot depth sample,
L_CE = sum_d y_d CE_d and L_KD = sum_d y_d KD_d, so alpha_depth receives gradient from task quality.

Probe KD at depth d (spec 3.2; the paper's most likely formula, PaddleSlim / EasyTransfer's generic
probe loss): student layer i = 0..d (0 = embedding) is matched to teacher probe m(i) = ceil(i * L_T / d)
(L_T teacher hidden layers, teacher probe 0 = embedding), and
    probe_d = sum_i a_i * T^2 * KL(P^T_{m(i)} || P^S_i)      at temperature T,
with attentive weights a = softmax_i(-CE(P^T_{m(i)}, y_gold)) over the matched layers, the CE being
the teacher probe's mean cross-entropy on the batch (PyTorch "LEARN_HID_MODE_FOCAL"). We use the KL
divergence (soft-target CE minus the teacher's entropy: same gradient, zero at a perfect match, nicer
logs) and Hinton's T^2 factor (a no-op at the paper's T = 1).
Final KD (authors' PyTorch code): final_d = T^2 * KL(P^T_final || P^S_depth d).
``kd`` = "probe+final": 0.5 probe + 0.5 final (the authors' 0.4 / 0.4 split of gamma = 0.8);
"probe" or "final": that part alone.

Regression (num_labels == 1, STS-B; not covered by the authors' codes, recipe gap): CE becomes MSE to
the gold score, each KL becomes the MSE between student and teacher outputs, and the attentive weights
use -MSE of the teacher probes against the gold scores.

Efficiency (spec 3.3, TF code): L_E = (sum_d y_d d / k_max) * mean_e sum_o w[e, o] cost[o] with the
sampled one-hots w, y, so both alpha_ops and alpha_depth get gradient (the PyTorch code gives alpha_depth
none, spec 7.1 item 4).

Single-path execution only computes depths 1..d*. The straight-through gradient of y_d for d > d*
would then see a task loss of 0 and favour deeper networks for free; we impute the missing per-depth
task losses with the value (detached) of the deepest computed depth, i.e. "as good as the sampled depth".
The forward value is unchanged (y_d = 0 there) and with "mixed" execution nothing is imputed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from adabert.nas.supernet import SuperNetOutput

KD_MODES = ("probe+final", "probe", "final")


def teacher_layer(i: int, depth: int, teacher_layers: int) -> int:
    """m(i) = ceil(i * L_T / d): the teacher probe matched to student layer i at depth d."""
    return math.ceil(i * teacher_layers / depth)


def _soft_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), mean over the batch."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1), log_target=True, reduction="batchmean"
    ) * (t * t)


def search_loss(
    out: SuperNetOutput,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor,
    teacher_probe_logits: torch.Tensor,
    op_costs: torch.Tensor,
    *,
    gamma: float = 0.8,
    beta: float = 4.0,
    temperature: float = 1.0,
    kd: str = "probe+final",
) -> dict[str, torch.Tensor]:
    """Total loss (``loss``, differentiable) and detached components for logging.

    labels [B] (int64 classes or float scores); teacher_logits [B, C]; teacher_probe_logits
    [B, L_T + 1, C]; op_costs [n_ops] in the order of the supernet's ops.
    """
    if kd not in KD_MODES:
        raise ValueError(f"kd must be one of {KD_MODES}, got {kd!r}")
    regression = teacher_logits.shape[-1] == 1
    teacher_layers = teacher_probe_logits.shape[1] - 1
    k_max = out.depth_weights.shape[0]

    if regression:
        gold = labels.to(teacher_logits.dtype)

        def task_loss(pred: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(pred.squeeze(-1), gold)

        def distill(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(student, teacher)

        probe_quality = torch.stack(
            [F.mse_loss(teacher_probe_logits[:, m, 0], gold) for m in range(teacher_layers + 1)]
        )
    else:

        def task_loss(pred: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(pred, labels)

        def distill(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
            return _soft_kl(student, teacher, temperature)

        probe_quality = torch.stack(
            [F.cross_entropy(teacher_probe_logits[:, m], labels) for m in range(teacher_layers + 1)]
        )

    per_depth: dict[int, dict[str, torch.Tensor]] = {}
    for d, logits in out.depth_logits.items():
        ce = task_loss(logits)
        parts = {"ce": ce}
        if kd in ("probe+final", "probe"):
            matched = [teacher_layer(i, d, teacher_layers) for i in range(d + 1)]
            attention = torch.softmax(-probe_quality[matched], dim=0)
            probe_terms = torch.stack(
                [distill(out.layer_logits[i], teacher_probe_logits[:, m]) for i, m in enumerate(matched)]
            )
            parts["kd_probe"] = (attention * probe_terms).sum()
        if kd in ("probe+final", "final"):
            parts["kd_final"] = distill(logits, teacher_logits)
        if kd == "probe+final":
            parts["kd"] = 0.5 * parts["kd_probe"] + 0.5 * parts["kd_final"]
        else:
            parts["kd"] = parts["kd_probe"] if kd == "probe" else parts["kd_final"]
        parts["task"] = (1.0 - gamma) * parts["ce"] + gamma * parts["kd"]
        per_depth[d] = parts

    deepest = max(per_depth)
    y = out.depth_weights
    total_task = y.new_zeros(())
    logged = {key: y.new_zeros(()) for key in per_depth[deepest]}
    for d in range(1, k_max + 1):
        parts = per_depth.get(d)
        if parts is None:  # not computed (single path, d > d*): impute, see module docstring
            parts = {key: value.detach() for key, value in per_depth[deepest].items()}
        total_task = total_task + y[d - 1] * parts["task"]
        for key, value in parts.items():
            logged[key] = logged[key] + y[d - 1].detach() * value.detach()

    depths = torch.arange(1, k_max + 1, dtype=y.dtype, device=y.device)
    depth_factor = (y * depths).sum() / k_max
    edge_cost = (out.op_weights * op_costs.to(out.op_weights)).sum(dim=-1).mean()
    efficiency = depth_factor * edge_cost
    loss = total_task + beta * efficiency

    result = {"loss": loss, "efficiency": efficiency.detach(), "sampled_depth": (y * depths).sum().detach()}
    result.update({key: value for key, value in logged.items() if key != "task"})
    result.setdefault("kd_probe", y.new_zeros(()))
    result.setdefault("kd_final", y.new_zeros(()))
    return result
