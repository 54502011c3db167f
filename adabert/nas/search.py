"""Search stage: joint single-level optimisation of supernet weights and architecture logits.

Loop (spec 2.1/2.2, the authors' PyTorch code, recipe 9.4): per training batch, draw hard
straight-through Gumbel samples of the op per edge and of the depth at temperature tau, run one
forward/backward of the total loss (losses.py), clip the gradients of weights and alphas separately,
then take an SGD step on the weights (momentum, weight decay, cosine-annealed lr w_lr -> w_lr_min) and
an Adam step on the alphas (L2 weight decay alpha_weight_decay). No bilevel / unrolled step (neither
authors' code uses one; spec 8.3). Batches are trimmed to their longest sentence (dynamic padding) and, with
``search.length_grouped``, grouped by length.
The budget is counted in steps; the weight-only warm-up, the architecture learning rate and the
temperature follow the step count (:mod:`adabert.nas.schedule`).

After every round the current genotype is derived noise-free (derive_genotype) and the supernet is
evaluated on the main eval split (``search.max_eval_examples`` rows of it) with exactly that
architecture's one-hot choices (kept edges, depth K), i.e. the student the derive stage would cut out
now. The best round decides the saved weights and architecture (both authors' codes select on dev,
spec 2.2): by default the lowest dev loss of the derived architecture, a continuous criterion that does
not tie when the metric sits at chance; the dev metric is reported alongside. The PyTorch code's eval
used a broken argmax (spec 7.1 item 3); fixed here. Every round also records the per-term gradient
balance on the architecture logits (task/KD vs efficiency, :class:`GradientBalance`) and how committed
the distribution is (:func:`architecture_confidence`).

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
from typing import Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from adabert import artifacts, io
from adabert import metrics as metrics_mod
from adabert.batching import STUDENT_INPUTS, batch_stream, batched_outputs, subsample_indices, training_order, trim
from adabert.errors import AdabertError
from adabert.measure.machine import cpu_model
from adabert.models import load_encoder
from adabert.nas.costs import cost_vector, op_costs
from adabert.nas.genotype import Genotype, cell_edges, derive_genotype
from adabert.nas.head import head_for
from adabert.nas.losses import efficiency_loss, search_loss
from adabert.nas.schedule import SearchSchedule, make_schedule
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
    n_dev, dev_cap = int(dev["labels"].shape[0]), cfg["search"].get("max_eval_examples")
    if dev_cap is not None and dev_cap < n_dev:  # selection only; the retrained students see the whole split
        keep = subsample_indices(n_dev, dev_cap, int(cfg["data"]["seed"]))
        dev = {k: v[keep] for k, v in dev.items()}
        log.info("search %s: selecting on %d of the %d %s rows (search.max_eval_examples)", task, dev_cap, n_dev,
                 data.main_split)
    return train, dev


# -- model and step -----------------------------------------------------------------------------------
def build_supernet(scfg: dict, num_labels: int, word: torch.Tensor, position: torch.Tensor | None,
                   max_positions: int, pair: bool = False) -> SuperNet:
    """The supernet of ``scfg``; a sentence-pair task (``pair``) gets the ``search.pair_head`` read-out."""
    return SuperNet(
        vocab_size=word.shape[0], max_positions=max_positions, teacher_dim=word.shape[1], num_labels=num_labels,
        width=scfg["width"], k_max=scfg["k_max"], nodes=scfg["nodes"], ops=list(scfg["ops"]),
        dropout=scfg["dropout"], word_embeddings=word, position_embeddings=position,
        fixed_depth=scfg.get("fixed_depth"), head=head_for(scfg.get("pair_head", "mean"), pair),
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
    def create(cls, net: SuperNet, scfg: dict, schedule: SearchSchedule) -> Optimisers:
        weights, arch = net.weight_parameters(), net.arch_parameters()
        w_opt = torch.optim.SGD(weights, lr=scfg["w_lr"], momentum=scfg["w_momentum"],
                                weight_decay=scfg["w_weight_decay"])
        w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=schedule.total_steps,
                                                             eta_min=scfg["w_lr_min"])
        a_opt = torch.optim.Adam(arch, lr=schedule.alpha_lr, betas=tuple(scfg["alpha_betas"]),
                                 weight_decay=scfg["alpha_weight_decay"])
        return cls(weights, arch, w_opt, a_opt, w_sched, scfg["grad_clip"])


class GradientBalance:
    """Per-round statistics of the two forces on the architecture logits (alpha_ops, alpha_depth):
    the task/KD term and the efficiency term (beta L_E), separated with one extra autograd call.

    ``*_norm`` is the mean per-step gradient norm; ``*_signal`` the norm of the round's mean gradient,
    which is what Adam integrates: a small but constant-sign force (the efficiency term) can outrun a
    larger noisy one whose steps cancel. ``*_coherence`` = signal / norm: 1 for a force that points the
    same way every step, about 1 / sqrt(grad_steps) for zero-mean noise (the steps of the round)."""

    def __init__(self, names: list[str]):
        self.names = names
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.sums: dict[str, torch.Tensor] = {}
        self.norms: dict[str, float] = {}

    def add_step(self, task: dict[str, torch.Tensor | None], efficiency: dict[str, torch.Tensor | None]) -> None:
        """One step's gradients of the task and efficiency terms on each architecture parameter."""
        self.add("task", task)
        self.add("efficiency", efficiency)
        self.count += 1

    def add(self, term: str, grads: dict[str, torch.Tensor | None]) -> None:
        for name, g in grads.items():
            if g is None:
                continue
            key = f"{term}_{name}"
            self.sums[key] = self.sums.get(key, torch.zeros_like(g)) + g
            self.norms[key] = self.norms.get(key, 0.0) + float(g.norm())

    def summary(self) -> dict[str, float]:
        n = max(self.count, 1)
        out = {}
        out = {"grad_steps": self.count} if self.count else {}
        for key in sorted(self.sums):
            out[f"grad_{key}_norm"] = self.norms[key] / n
            out[f"grad_{key}_signal"] = float((self.sums[key] / n).norm())
            out[f"grad_{key}_coherence"] = out[f"grad_{key}_signal"] / out[f"grad_{key}_norm"] if self.norms[key] else 0.0
        return out


def search_step(net: SuperNet, batch: dict[str, torch.Tensor], tau: float, costs: torch.Tensor, lcfg: dict,
                opt: Optimisers, execution: str, update_arch: bool = True,
                balance: GradientBalance | None = None, lookahead: int = 0) -> dict[str, float]:
    """One search step: Gumbel samples, forward, the search loss, backward, clipping, the weight step and
    (unless in the weight-only warm-up) the architecture step."""
    op_w, depth_w = net.sample_arch(tau)
    out = net(batch["a_input_ids"], batch["a_attention_mask"], batch["b_input_ids"], batch["b_attention_mask"],
              op_w, depth_w, execution, lookahead)
    parts = search_loss(out, batch["labels"], batch["teacher_logits"], batch["teacher_probe_logits"], costs,
                        gamma=lcfg["gamma"], beta=lcfg["beta"], temperature=lcfg["temperature"], kd=lcfg["kd"])
    opt.w_opt.zero_grad(set_to_none=True)
    opt.a_opt.zero_grad(set_to_none=True)
    arch_named = {"ops": net.alpha_ops, "depth": net.alpha_depth}
    arch_named = {k: p for k, p in arch_named.items() if p.requires_grad and any(p is q for q in opt.arch)}
    efficiency_grads = None
    if balance is not None and lcfg["beta"] > 0:
        term = lcfg["beta"] * efficiency_loss(out, costs)
        grads = torch.autograd.grad(term, list(arch_named.values()), retain_graph=True, allow_unused=True)
        efficiency_grads = dict(zip(arch_named, grads))
    parts["loss"].backward()
    if balance is not None:
        total = {k: (p.grad.detach().clone() if p.grad is not None else None) for k, p in arch_named.items()}
        eff = efficiency_grads or {}
        balance.add_step({k: g - eff[k] if g is not None and eff.get(k) is not None else g for k, g in total.items()},
                         eff)
    torch.nn.utils.clip_grad_norm_(opt.weights, opt.grad_clip)
    torch.nn.utils.clip_grad_norm_(opt.arch, opt.grad_clip)
    opt.w_opt.step()
    opt.w_sched.step()
    if update_arch:
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

    logits = batched_outputs(forward, split, batch_size, split["labels"].device, "search eval", STUDENT_INPUTS)
    net.train(was_training)
    return logits


def current_genotype(net: SuperNet, scfg: dict) -> Genotype:
    """The noise-free architecture of the current alphas (the one the derive stage would cut out now)."""
    return derive_genotype(net.alpha_ops, net.alpha_depth, list(scfg["ops"]), k=2, width=scfg["width"],
                           fixed_depth=net.fixed_depth, head=net.head,
                           max_parameter_free=scfg.get("max_parameter_free"))


def architecture_confidence(net: SuperNet) -> dict[str, float]:
    """How committed the architecture distribution is: the mean over edges of the strongest op's
    probability (1/|O| when uniform) and the largest depth probability (1/K_max when uniform)."""
    ops = torch.softmax(net.alpha_ops.detach(), -1)
    depth = torch.softmax(net.alpha_depth.detach(), -1)
    return {"max_op_prob_mean": float(ops.max(-1).values.mean()), "depth_max_prob": float(depth.max())}


def eval_loss(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cross-entropy (classification) or squared error (regression) against the gold labels: the
    continuous selection criterion (a metric at chance ties; a loss does not)."""
    if logits.shape[-1] == 1:
        return float(torch.nn.functional.mse_loss(logits[:, 0].float(), labels.float()))
    return float(torch.nn.functional.cross_entropy(logits.float(), labels.long()))


def history_entry(net: SuperNet, epoch: int, step: int, tau: float, genotype: Genotype, dev_metrics: dict,
                  dev_main: float, dev_loss: float) -> dict:
    """One round of ``alpha_history.json``: the alphas, their softmax and the derived architecture."""
    return {
        "epoch": epoch, "step": step, "tau": tau,
        "alpha_ops": net.alpha_ops.detach().tolist(), "alpha_depth": net.alpha_depth.detach().tolist(),
        "softmax_ops": torch.softmax(net.alpha_ops.detach(), -1).tolist(),
        "softmax_depth": torch.softmax(net.alpha_depth.detach(), -1).tolist(),
        "genotype": genotype.to_dict(), "dev": dev_metrics, "dev_main": dev_main, "dev_loss": dev_loss,
        **architecture_confidence(net),
    }


# -- the loop -----------------------------------------------------------------------------------------
def search_round(net: SuperNet, train: dict[str, torch.Tensor], batches: Iterator[torch.Tensor], steps: range,
                 schedule: SearchSchedule, costs: torch.Tensor, lcfg: dict, opt: Optimisers, scfg: dict,
                 balance: GradientBalance, label: str) -> dict[str, float]:
    """The steps of one round; the mean of every loss component (weighted by batch rows)."""
    net.train()
    sums, rows = {k: 0.0 for k in LOSS_KEYS}, 0
    bar = tqdm(steps, desc=label, leave=False, disable=None)
    for step in bar:
        idx = next(batches)
        values = search_step(net, trim({k: v[idx] for k, v in train.items()}), schedule.tau(step), costs, lcfg,
                             opt, scfg["execution"], update_arch=schedule.updates_arch(step), balance=balance,
                             lookahead=scfg["depth_lookahead"])
        if not math.isfinite(values["loss"]):
            raise AdabertError(f"{label}: non-finite loss at step {step} (diverged)")
        for k in LOSS_KEYS:
            sums[k] += values[k] * idx.numel()
        rows += idx.numel()
        bar.set_postfix(loss=f"{values['loss']:.3f}", K=int(values["sampled_depth"]))
    return {k: sums[k] / max(rows, 1) for k in LOSS_KEYS} | {"rows": rows}


def evaluate_round(net: SuperNet, dev: dict, spec, scfg: dict) -> tuple[Genotype, dict, float, float]:
    """The derived architecture of the current alphas on the evaluation rows: genotype, metrics, main
    metric, loss."""
    genotype = current_genotype(net, scfg)
    logits = predict(net, dev, genotype.op_weights(list(scfg["ops"])), genotype.depth_weights(),
                     2 * scfg["batch_size"])
    dev_metrics = metrics_mod.compute(spec, logits, dev["labels"])
    return genotype, dev_metrics, float(dev_metrics[spec.main_metric]), eval_loss(logits, dev["labels"])


def run_epochs(net: SuperNet, train: dict, dev: dict, spec, costs: torch.Tensor, cfg: dict, seed: int,
               label: str, schedule: SearchSchedule) -> tuple[list[dict], list[dict], dict]:
    """Search for ``schedule.total_steps`` steps in ``schedule.rounds`` rounds; the alpha history, per-round
    metrics and the best round (``epoch``, ``value`` = the selection criterion, ``dev_main``, ``state``).

    Selection (``search.selection``): the lowest dev loss of the derived architecture ("dev_loss") or
    the highest dev metric ("dev_metric", ties keep the earlier round); rounds that end inside the
    weight-only warm-up (the architecture has not moved) are not eligible."""
    scfg, lcfg = cfg["search"], cfg["loss"]
    opt = Optimisers.create(net, scfg, schedule)
    batches = batch_stream(int(train["labels"].shape[0]), scfg["batch_size"], torch.Generator().manual_seed(seed),
                           training_order(train, bool(scfg.get("length_grouped"))))
    balance = GradientBalance(["ops", "depth"])
    history, round_metrics, best, start = [], [], None, 0
    for epoch, end in enumerate(schedule.round_ends()):
        lr, balance_start = opt.w_opt.param_groups[0]["lr"], time.perf_counter()
        balance.reset()
        losses = search_round(net, train, batches, range(start, end), schedule, costs, lcfg, opt, scfg, balance,
                              f"{label} r{epoch}")
        train_time = time.perf_counter() - balance_start
        genotype, dev_metrics, dev_main, dev_loss = evaluate_round(net, dev, spec, scfg)
        tau = schedule.tau(end - 1)
        history.append(history_entry(net, epoch, end, tau, genotype, dev_metrics, dev_main, dev_loss))
        rows = losses.pop("rows")
        round_metrics.append({
            "epoch": epoch, "step": end, "tau": tau, "w_lr": lr, "alpha_lr": schedule.alpha_lr,
            "arch_updates": schedule.updates_arch(end - 1), **losses, **balance.summary(),
            "dev": dev_metrics, "dev_main": dev_main, "dev_loss": dev_loss, "depth_derived": genotype.depth,
            **architecture_confidence(net), "train_time_s": train_time,
            "epoch_time_s": time.perf_counter() - balance_start, "rows": rows,
            "train_examples_per_s": rows / train_time if train_time > 0 else None,
        })
        log.info("%s round %d (step %d): loss %.4f, dev %s %.2f, dev loss %.4f, K=%d", label, epoch, end,
                 losses["loss"], spec.main_metric, dev_main, dev_loss, genotype.depth)
        if end > schedule.warmup_steps:
            criterion = -dev_loss if scfg["selection"] == "dev_loss" else dev_main
            best = select_best(best, epoch, criterion, dev_main=dev_main, dev_loss=dev_loss,
                               state=copy.deepcopy(net.state_dict()))
        start = end
    return history, round_metrics, best


def search_provenance(data: artifacts.DataFolder, n_dev: int) -> dict:
    """The data folder's split provenance, with the main split marked as a subset when the search
    evaluated only ``search.max_eval_examples`` rows of it."""
    provenance = copy.deepcopy(data.provenance)
    info = provenance.get(data.main_split)
    if info is not None and info.get("n") is not None and n_dev < int(info["n"]):
        available = info.get("n_available") or info["n"]
        info.update({"capped": True, "n": n_dev, "n_available": available,
                     "note": f"{info.get('note', '')}; {n_dev} rows used by the search (search.max_eval_examples)"})
    return provenance


def search_summary(task: str, seed: int, variant: str, data: artifacts.DataFolder, net: SuperNet, history: list,
                   epoch_metrics: list, best: dict, n_train: int, n_dev: int, embedding_note: str, scfg: dict,
                   schedule: SearchSchedule, start_time: float) -> dict:
    """``metrics.json`` of a search."""
    train_time = sum(e["train_time_s"] for e in epoch_metrics)
    final = history[-1]
    return {
        "task": task, "seed": seed, "variant": variant, "execution": scfg["execution"],
        "length_grouped": bool(scfg.get("length_grouped", False)), "main_split": data.main_split,
        "splits": search_provenance(data, n_dev),  # official dev, subset, or held-out carve-out
        "main_metric": data.spec.main_metric, "selection": scfg["selection"], "best_epoch": best["epoch"],
        "best_dev_main": best["dev_main"], "best_dev_loss": best["dev_loss"],
        "best_genotype": history[best["epoch"]]["genotype"], "epochs": epoch_metrics,
        "schedule": schedule.to_dict(),
        "final": {key: final[key] for key in ("max_op_prob_mean", "depth_max_prob", "dev_main", "dev_loss")}
        | {"depth": final["genotype"]["depth"]},
        "n_train": n_train, "n_dev": n_dev,
        "supernet_params": int(sum(p.numel() for p in net.weight_parameters())),
        "embedding_init": embedding_note, "total_time_s": time.perf_counter() - start_time,
        "train_examples_per_s": sum(e["rows"] for e in epoch_metrics) / max(train_time, 1e-9),
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
    net = build_supernet(scfg, data.num_labels, word, position, position.shape[0] if position is not None else max_len,
                         pair=data.pair)
    del word, position
    ops = list(scfg["ops"])
    costs = op_costs(ops, scfg["width"], seq_len, scfg["cost_normalisation"])

    schedule = make_schedule(scfg, int(train["labels"].shape[0]))
    history, epoch_metrics, best = run_epochs(net, train, dev, data.spec, cost_vector(costs, ops), cfg, seed,
                                              f"search {task} seed {seed}", schedule)
    summary = search_summary(task, seed, variant, data, net, history, epoch_metrics, best,
                             int(train["labels"].shape[0]), int(dev["labels"].shape[0]), embedding_note, scfg,
                             schedule, start_time)
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
