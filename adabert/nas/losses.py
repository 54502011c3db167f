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

Single-path and all-ops execution only compute depths 1..d* (plus ``search.depth_lookahead`` more). The
straight-through gradient of y_d for a depth that was not computed would then see a task loss of 0 and
favour deeper networks for free; we impute the missing per-depth task losses with the value (detached)
of the deepest computed depth, i.e. "as good as the deepest depth computed". The forward value is
unchanged (y_d = 0 there) and with "mixed" execution nothing is imputed.
"""

from __future__ import annotations

import torch

from adabert.distill import SEARCH_KD_MODES, Objective, kd_loss, teacher_layer
from adabert.nas.supernet import SuperNetOutput

KD_MODES = SEARCH_KD_MODES
__all__ = ["KD_MODES", "efficiency_loss", "search_loss", "teacher_layer"]


def efficiency_loss(out: SuperNetOutput, op_costs: torch.Tensor) -> torch.Tensor:
    """L_E = (sum_d y_d d / k_max) * mean_e sum_o w[e, o] cost[o] of the sampled one-hots w, y."""
    y = out.depth_weights
    k_max = y.shape[0]
    depths = torch.arange(1, k_max + 1, dtype=y.dtype, device=y.device)
    depth_factor = (y * depths).sum() / k_max
    edge_cost = (out.op_weights * op_costs.to(out.op_weights)).sum(dim=-1).mean()
    return depth_factor * edge_cost


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
    objective = Objective(labels, teacher_logits.shape[-1] == 1, temperature)
    quality = objective.probe_quality(teacher_probe_logits, list(range(teacher_probe_logits.shape[1])))
    per_depth = {
        d: kd_loss(objective, logits, kd=kd, gamma=gamma, teacher_logits=teacher_logits,
                   layer_logits=out.layer_logits[: d + 1], teacher_probe_logits=teacher_probe_logits, quality=quality)
        for d, logits in out.depth_logits.items()
    }
    deepest = max(per_depth)
    y = out.depth_weights
    total_task = y.new_zeros(())
    logged = {key: y.new_zeros(()) for key in per_depth[deepest] if key != "loss"}
    for d in range(1, y.shape[0] + 1):
        parts = per_depth.get(d)
        if parts is None:  # not computed (single path, d > d*): impute, see module docstring
            parts = {key: value.detach() for key, value in per_depth[deepest].items()}
        total_task = total_task + y[d - 1] * parts["loss"]
        for key in logged:
            logged[key] = logged[key] + y[d - 1].detach() * parts[key].detach()

    efficiency = efficiency_loss(out, op_costs)
    depths = torch.arange(1, y.shape[0] + 1, dtype=y.dtype, device=y.device)
    result = {"loss": total_task + beta * efficiency, "efficiency": efficiency.detach(),
              "sampled_depth": (y * depths).sum().detach()}
    result.update(logged)
    return result
