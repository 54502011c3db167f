"""Search stage: joint single-level optimisation of supernet weights and architecture logits.

Loop (spec 2.1/2.2, the authors' PyTorch code, recipe 9.4): per training batch, draw hard
straight-through Gumbel samples of the op per edge and of the depth (tau = max(tau_init *
exp(-tau_decay * epoch), tau_min)), run one forward/backward of the total loss (losses.py), clip the
gradients of weights and alphas separately, then take an SGD step on the weights (momentum, weight
decay, cosine-annealed lr w_lr -> w_lr_min stepped once per epoch) and an Adam step on the alphas
(alpha_lr, alpha_betas, L2 weight decay alpha_weight_decay). No bilevel / unrolled step (neither
authors' code uses one; spec 8.3). Batches are trimmed to their longest sentence (dynamic padding).

After every epoch the current genotype is derived noise-free (derive_genotype) and the supernet is
evaluated on the main eval split with exactly that architecture's one-hot choices (kept edges, depth
K), i.e. the dev metric of the student the derive stage would cut out now. The best epoch (highest dev
metric; ties keep the earlier epoch, :func:`adabert.training.select_best`) decides the saved weights
and architecture (both authors' codes select on dev, spec 2.2). The PyTorch code's eval used a broken argmax (spec 7.1 item 3); fixed here.

The step (:func:`search_step`) is this module's own; batching, the objective (:mod:`adabert.distill`
via :mod:`adabert.nas.losses`), best-epoch selection and the folder formats (:mod:`adabert.artifacts`)
are shared with the other training stages.

Outputs (``out_dir``): ``supernet.safetensors`` (best-epoch weights incl. alphas, hyper-parameters in
the metadata), ``alpha_history.json``, ``metrics.json``, ``op_costs.json``, ``config.json``.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from adabert import artifacts, io
from adabert import metrics as metrics_mod
from adabert.batching import STUDENT_INPUTS, sequential_outputs, shuffled_batches, subsample_indices, trim
from adabert.errors import AdabertError
from adabert.measure.machine import cpu_model
from adabert.models import load_encoder
from adabert.nas.costs import cost_vector, op_costs
from adabert.nas.genotype import Genotype, cell_edges, derive_genotype
from adabert.nas.losses import search_loss
from adabert.nas.supernet import SuperNet
from adabert.training import peak_rss_mb, select_best

log = logging.getLogger(__name__)

LOSS_KEYS = ("loss", "ce", "kd", "kd_probe", "kd_final", "efficiency", "sampled_depth")


# -- inputs -----------------------------------------------------------------------------------------
def load_teacher_embeddings(model_dir: Path) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """The teacher's word table and (if it has one) absolute position table, plus a note.

    Rows 0..L-1 of the position table are used for every sentence (BERT-style absolute positions).
    Models that offset their position ids (RoBERTa starts at padding_idx + 1) are not special-cased;
    a model without an absolute table (rotary / relative positions) gets a random position table.
    """
    model = load_encoder(str(model_dir))
    word = model.get_input_embeddings().weight.detach().clone()
    position_module = getattr(getattr(model, "embeddings", None), "position_embeddings", None)
    if isinstance(position_module, torch.nn.Embedding):
        position, note = position_module.weight.detach().clone(), "teacher word and position tables"
    else:
        position, note = None, "teacher has no absolute position table: position table randomly initialised"
        log.warning("%s: %s", model_dir, note)
    del model
    return word, position, note


def search_inputs(cfg: dict, task: str, data: artifacts.DataFolder, teacher_dir: Path, probes_dir: Path
                  ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The distillation set (capped at ``search.max_train_examples``) and the main eval split."""
    train = artifacts.distillation_set(data, teacher_dir, probes_dir, STUDENT_INPUTS)
    dev = data.split(data.main_split, STUDENT_INPUTS)
    n_train, cap = int(train["labels"].shape[0]), cfg["search"].get("max_train_examples")
    if cap is not None and cap < n_train:  # the data seed, not the search seed: every seed sees the same rows
        keep = subsample_indices(n_train, cap, int(cfg["data"]["seed"]))
        train = {k: v[keep] for k, v in train.items()}
        log.info("search %s: %d of the %d training examples (search.max_train_examples)", task, cap, n_train)
    return train, dev


def tau_at(epoch: int, scfg: dict) -> float:
    return max(scfg["tau_init"] * math.exp(-scfg["tau_decay"] * epoch), scfg["tau_min"])


# -- model and step -----------------------------------------------------------------------------------
def build_supernet(scfg: dict, num_labels: int, word: torch.Tensor, position: torch.Tensor | None,
                   max_positions: int) -> SuperNet:
    return SuperNet(
        vocab_size=word.shape[0], max_positions=max_positions, teacher_dim=word.shape[1], num_labels=num_labels,
        width=scfg["width"], k_max=scfg["k_max"], nodes=scfg["nodes"], ops=list(scfg["ops"]),
        dropout=scfg["dropout"], word_embeddings=word, position_embeddings=position,
        fixed_depth=scfg.get("fixed_depth"),
    )


@dataclass
class Optimisers:
    """Single-level optimisation: SGD on the supernet weights, Adam on the architecture logits."""

    weights: list[torch.nn.Parameter]
    arch: list[torch.nn.Parameter]
    w_opt: torch.optim.Optimizer
    a_opt: torch.optim.Optimizer
    w_sched: torch.optim.lr_scheduler.LRScheduler
    grad_clip: float

    @classmethod
    def create(cls, net: SuperNet, scfg: dict) -> Optimisers:
        weights, arch = net.weight_parameters(), net.arch_parameters()
        w_opt = torch.optim.SGD(weights, lr=scfg["w_lr"], momentum=scfg["w_momentum"],
                                weight_decay=scfg["w_weight_decay"])
        w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=scfg["epochs"], eta_min=scfg["w_lr_min"])
        a_opt = torch.optim.Adam(arch, lr=scfg["alpha_lr"], betas=tuple(scfg["alpha_betas"]),
                                 weight_decay=scfg["alpha_weight_decay"])
        return cls(weights, arch, w_opt, a_opt, w_sched, scfg["grad_clip"])


def search_step(net: SuperNet, batch: dict[str, torch.Tensor], tau: float, costs: torch.Tensor, lcfg: dict,
                opt: Optimisers, execution: str) -> dict[str, float]:
    """One search step: Gumbel samples, forward, the search loss, backward, clipping, both optimiser steps."""
    op_w, depth_w = net.sample_arch(tau)
    out = net(batch["a_input_ids"], batch["a_attention_mask"], batch["b_input_ids"], batch["b_attention_mask"],
              op_w, depth_w, execution)
    parts = search_loss(out, batch["labels"], batch["teacher_logits"], batch["teacher_probe_logits"], costs,
                        gamma=lcfg["gamma"], beta=lcfg["beta"], temperature=lcfg["temperature"], kd=lcfg["kd"])
    opt.w_opt.zero_grad(set_to_none=True)
    opt.a_opt.zero_grad(set_to_none=True)
    parts["loss"].backward()
    torch.nn.utils.clip_grad_norm_(opt.weights, opt.grad_clip)
    torch.nn.utils.clip_grad_norm_(opt.arch, opt.grad_clip)
    opt.w_opt.step()
    opt.a_opt.step()
    return {k: float(parts[k].detach()) for k in LOSS_KEYS}


# -- evaluation ---------------------------------------------------------------------------------------
@torch.no_grad()
def predict(net: SuperNet, split: dict[str, torch.Tensor], op_weights: torch.Tensor, depth_weights: torch.Tensor,
            batch_size: int) -> torch.Tensor:
    """Depth-K logits of the supernet (eval mode) for fixed one-hot choices, [N, C]."""
    was_training = net.training
    net.eval()
    depth = int(torch.argmax(depth_weights)) + 1

    def forward(b):
        out = net(b["a_input_ids"], b["a_attention_mask"], b["b_input_ids"], b["b_attention_mask"],
                  op_weights, depth_weights, "single_path")
        return out.depth_logits[depth]

    logits = sequential_outputs(forward, split, batch_size, split["labels"].device, net.num_labels)
    net.train(was_training)
    return logits


def current_genotype(net: SuperNet, scfg: dict) -> Genotype:
    """The noise-free architecture of the current alphas (the one the derive stage would cut out now)."""
    return derive_genotype(net.alpha_ops, net.alpha_depth, list(scfg["ops"]), k=2, width=scfg["width"],
                           fixed_depth=net.fixed_depth)


def history_entry(net: SuperNet, epoch: int, tau: float, genotype: Genotype, dev_metrics: dict,
                  dev_main: float) -> dict:
    """One epoch of ``alpha_history.json``: the alphas, their softmax and the derived architecture."""
    return {
        "epoch": epoch, "tau": tau,
        "alpha_ops": net.alpha_ops.detach().tolist(), "alpha_depth": net.alpha_depth.detach().tolist(),
        "softmax_ops": torch.softmax(net.alpha_ops.detach(), -1).tolist(),
        "softmax_depth": torch.softmax(net.alpha_depth.detach(), -1).tolist(),
        "genotype": genotype.to_dict(), "dev": dev_metrics, "dev_main": dev_main,
    }


# -- the loop -----------------------------------------------------------------------------------------
def search_epoch(net: SuperNet, train: dict[str, torch.Tensor], epoch: int, tau: float, costs: torch.Tensor,
                 lcfg: dict, opt: Optimisers, scfg: dict, generator: torch.Generator, label: str) -> dict[str, float]:
    """One epoch of search steps over the shuffled training rows; the mean of every loss component."""
    net.train()
    n_train = int(train["labels"].shape[0])
    sums = {k: 0.0 for k in LOSS_KEYS}
    batches = shuffled_batches(n_train, scfg["batch_size"], generator)
    bar = tqdm(batches, total=math.ceil(n_train / scfg["batch_size"]), desc=f"{label} e{epoch}", leave=False,
               disable=None)
    for idx in bar:
        values = search_step(net, trim({k: v[idx] for k, v in train.items()}), tau, costs, lcfg, opt,
                             scfg["execution"])
        if not math.isfinite(values["loss"]):
            raise AdabertError(f"{label}: non-finite loss at epoch {epoch} (diverged)")
        for k in LOSS_KEYS:
            sums[k] += values[k] * idx.numel()
        bar.set_postfix(loss=f"{values['loss']:.3f}", K=int(values["sampled_depth"]))
    return {k: sums[k] / n_train for k in LOSS_KEYS}


def run_epochs(net: SuperNet, train: dict, dev: dict, spec, costs: torch.Tensor, cfg: dict, seed: int,
               label: str) -> tuple[list[dict], list[dict], dict]:
    """Search for ``search.epochs`` epochs; the alpha history, per-epoch metrics and the best epoch
    (``epoch``, ``value``, ``state``: the supernet weights of the best epoch)."""
    scfg, lcfg = cfg["search"], cfg["loss"]
    opt = Optimisers.create(net, scfg)
    generator = torch.Generator().manual_seed(seed)
    n_train = int(train["labels"].shape[0])
    history, epoch_metrics, best = [], [], None
    for epoch in range(scfg["epochs"]):
        tau, lr = tau_at(epoch, scfg), opt.w_opt.param_groups[0]["lr"]
        epoch_start = time.perf_counter()
        losses = search_epoch(net, train, epoch, tau, costs, lcfg, opt, scfg, generator, label)
        opt.w_sched.step()
        train_time = time.perf_counter() - epoch_start

        genotype = current_genotype(net, scfg)
        logits = predict(net, dev, genotype.op_weights(list(scfg["ops"])), genotype.depth_weights(),
                         2 * scfg["batch_size"])
        dev_metrics = metrics_mod.compute(spec, logits, dev["labels"])
        dev_main = float(dev_metrics[spec.main_metric])
        history.append(history_entry(net, epoch, tau, genotype, dev_metrics, dev_main))
        epoch_metrics.append({
            "epoch": epoch, "tau": tau, "w_lr": lr, **losses, "dev": dev_metrics, "dev_main": dev_main,
            "depth_derived": genotype.depth, "train_time_s": train_time,
            "epoch_time_s": time.perf_counter() - epoch_start,
            "train_examples_per_s": n_train / train_time if train_time > 0 else None,
        })
        log.info("%s epoch %d: loss %.4f, dev %s %.2f, K=%d", label, epoch, losses["loss"], spec.main_metric,
                 dev_main, genotype.depth)
        best = select_best(best, epoch, dev_main, state=copy.deepcopy(net.state_dict()))
    return history, epoch_metrics, best


def search_summary(task: str, seed: int, variant: str, data: artifacts.DataFolder, net: SuperNet, history: list,
                   epoch_metrics: list, best: dict, n_train: int, n_dev: int, embedding_note: str, scfg: dict,
                   start_time: float) -> dict:
    """``metrics.json`` of a search."""
    train_time = sum(e["train_time_s"] for e in epoch_metrics)
    return {
        "task": task, "seed": seed, "variant": variant, "execution": scfg["execution"],
        "main_split": data.main_split,
        "splits": data.provenance,  # provenance: official dev, partial copy, or held-out carve-out
        "main_metric": data.spec.main_metric, "best_epoch": best["epoch"], "best_dev_main": best["value"],
        "best_genotype": history[best["epoch"]]["genotype"], "epochs": epoch_metrics,
        "n_train": n_train, "n_dev": n_dev,
        "supernet_params": int(sum(p.numel() for p in net.weight_parameters())),
        "embedding_init": embedding_note, "total_time_s": time.perf_counter() - start_time,
        "train_examples_per_s": n_train * scfg["epochs"] / max(train_time, 1e-9),
        "peak_rss_mb": peak_rss_mb(), "precision": "fp32",
        "machine": {"platform": platform.platform(), "cpu": cpu_model(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
    }


def run_search(cfg: dict, task: str, seed: int, variant: str, data_dir: str | os.PathLike,
               teacher_dir: str | os.PathLike, probes_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Run the architecture search for one task / seed / variant; returns the metrics summary."""
    teacher_dir, probes_dir = Path(teacher_dir), Path(probes_dir)
    scfg = cfg["search"]
    start_time = time.perf_counter()
    io.set_seed(seed)

    data = artifacts.read_data(data_dir)
    train, dev = search_inputs(cfg, task, data, teacher_dir, probes_dir)
    model_dir = artifacts.teacher_model_dir(teacher_dir)
    word, position, embedding_note = load_teacher_embeddings(model_dir)
    seq_len = int(cfg["data"]["max_seq_length"])
    max_len = max(seq_len, train["a_input_ids"].shape[1], dev["a_input_ids"].shape[1])
    if position is not None and position.shape[0] < max_len:
        raise AdabertError(f"{model_dir}: {position.shape[0]} positions < max_seq_length {max_len}")
    net = build_supernet(scfg, data.num_labels, word, position, position.shape[0] if position is not None else max_len)
    del word, position
    ops = list(scfg["ops"])
    costs = op_costs(ops, scfg["width"], seq_len, scfg["cost_normalisation"])

    history, epoch_metrics, best = run_epochs(net, train, dev, data.spec, cost_vector(costs, ops), cfg, seed,
                                              f"search {task} seed {seed}")
    summary = search_summary(task, seed, variant, data, net, history, epoch_metrics, best,
                             int(train["labels"].shape[0]), int(dev["labels"].shape[0]), embedding_note, scfg,
                             start_time)
    alpha_history = {
        "task": task, "seed": seed, "variant": variant, "ops": ops,
        "edges": [{"node": j + 2, "input": i} for j, i in cell_edges(scfg["nodes"])],
        "k_max": scfg["k_max"], "main_metric": data.spec.main_metric, "best_epoch": best["epoch"], "epochs": history,
    }
    artifacts.write_search(out_dir, state=best["state"], hparams=net.hparams(), history=alpha_history,
                           summary=summary, cfg=cfg,
                           op_costs={"width": scfg["width"], "seq_len": seq_len,
                                     "normalisation": scfg["cost_normalisation"], "ops": costs})
    return summary
