"""The one training loop: the teacher, retrain and the baselines train through :func:`fit`.

:func:`fit` runs AdamW over ``epochs`` (a fractional last epoch takes its share of batches; ``max_steps``
caps the total, spread evenly over the rounds, the batches running on across round boundaries) with a
learning-rate schedule (``cosine``: linear warm-up over ``warmup_ratio`` of the steps, then cosine decay
to 0; ``linear``: the same warm-up, then linear decay to 0, as transformers' fine-tuning recipe),
optional gradient-norm clipping, a seeded shuffle (the ``order`` hook replaces it, e.g. for
length-grouped batches) and optional mixed precision (``precision``: ``fp32`` or ``bf16`` autocast).
``select``: ``best`` evaluates the model on every eval split after every epoch and restores the best
epoch on the main split's main metric (ties keep the earlier); ``final`` evaluates once, after the last
epoch, and keeps the model the schedule ends with (no epoch is chosen on the eval split). A progress
bar, the wall time, examples/s and the peak resident memory are recorded.

The search loop (:mod:`adabert.nas.search`) keeps its own step (two optimisers, Gumbel samples) and
shares the batching (:mod:`adabert.batching`, the endless ``batch_stream`` included), :func:`peak_rss_mb`
and :func:`select_best`.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import math
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from adabert import metrics as metrics_mod
from adabert import tasks as tasks_mod
from adabert.batching import batch_stream, shuffled_batches
from adabert.errors import AdabertError

log = logging.getLogger(__name__)

Step = Callable[[nn.Module, dict[str, torch.Tensor]], dict[str, torch.Tensor]]
# The logits ``[N, C]`` of an eval split, or ``(logits, extra)`` where the evaluation also yields what a
# later pass would otherwise recompute (the teacher's probe inputs); the record keeps the best epoch's.
Predict = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor | tuple[torch.Tensor, torch.Tensor]]
Order = Callable[[int, int, torch.Generator, int], Iterator[torch.Tensor]]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class Recipe:
    """How to train: the optimiser, schedule and loop settings of one :func:`fit` call."""

    epochs: float
    batch_size: int
    learning_rate: float
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    schedule: str = "cosine"
    grad_clip: float | None = None
    seed: int = 0
    precision: str = "fp32"
    order: Order = field(default=shuffled_batches)
    max_steps: int | None = None
    select: str = "best"


SELECTIONS = ("best", "final")


def _student_no_decay(name: str, param: nn.Parameter) -> bool:
    return param.dim() < 2 or "embeddings" in name


def _transformer_no_decay(name: str, param: nn.Parameter) -> bool:
    return name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name or param.dim() == 1


def param_groups(modules: list[nn.Module], weight_decay: float, no_decay=_student_no_decay) -> list[dict]:
    """AdamW groups of the trainable parameters: weight decay except where ``no_decay(name, param)``
    (default: biases, norms, embedding tables and attention logits, i.e. dim < 2 or an embedding)."""
    decay, exempt = [], []
    for module in modules:
        for name, param in module.named_parameters():
            if param.requires_grad:
                (exempt if no_decay(name, param) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0.0}]


def fusable(params) -> bool:
    """Whether a fused optimiser kernel can update ``params``: float32 tensors on a CPU or a CUDA device."""
    params = list(params)
    return bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in params)


def adamw(groups: list[dict], lr: float) -> torch.optim.AdamW:
    """AdamW over ``groups``, with the fused kernel where :func:`fusable`: the same update in one pass over
    the parameters instead of a loop of small ops. On one CPU thread (QQP, benchmarks/optimizer_step.py,
    docs/results/optimizer_step.json) a step of the 22.7M-parameter teacher took 0.142 s with the loop and
    0.020 s fused, so its fine-tuning ran 1.19x the examples/s, and a student's retrain 1.24x."""
    return torch.optim.AdamW(groups, lr=lr, fused=fusable(p for g in groups for p in g["params"]))


def transformer_param_groups(modules: list[nn.Module], weight_decay: float) -> list[dict]:
    """AdamW groups of the usual transformer fine-tuning recipe: no decay on biases and LayerNorm weights."""
    return param_groups(modules, weight_decay, _transformer_no_decay)


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


def warmup_linear(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over ``warmup_steps``, then linear decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return float(step) / float(max(1, warmup_steps))
        return max(0.0, float(total_steps - step) / float(max(1, total_steps - warmup_steps)))

    return factor


SCHEDULES = {"cosine": warmup_cosine, "linear": warmup_linear}


def epoch_steps(n: int, batch_size: int, epochs: float) -> list[int]:
    """Optimiser steps of each (possibly fractional last) epoch; a fractional epoch takes its share of batches."""
    if epochs <= 0:
        raise AdabertError(f"epochs must be > 0, got {epochs}")
    per_epoch = math.ceil(n / batch_size)
    full = int(math.floor(epochs))
    steps = [per_epoch] * full
    frac = epochs - full
    if frac > 1e-9:
        steps.append(max(1, int(round(frac * per_epoch))))
    return steps


def round_steps(n: int, batch_size: int, epochs: float, max_steps: int | None = None) -> list[int]:
    """Optimiser steps of each round: :func:`epoch_steps`, or, when their total exceeds ``max_steps``,
    ``max_steps`` spread evenly over as many rounds (the earlier rounds take the remainder)."""
    steps = epoch_steps(n, batch_size, epochs)
    if max_steps is None or sum(steps) <= max_steps:
        return steps
    if max_steps < 1:
        raise AdabertError(f"max_steps must be >= 1, got {max_steps}")
    rounds = min(len(steps), max_steps)
    base, extra = divmod(max_steps, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo's flags)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on a CPU with native bf16 or a CUDA GPU with bf16, else ``fp32``; the others
    are checked (``fp16`` needs a CUDA device)."""
    if precision not in PRECISIONS:
        raise AdabertError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise AdabertError("precision fp16 needs a CUDA device (use bf16 or auto on a CPU)")
    return precision


def autocast(precision: str, device: torch.device):
    """The autocast context of a resolved ``precision`` (``fp32``: none; ``bf16``/``fp16``: autocast)."""
    if precision not in PRECISIONS or precision == "auto":
        raise AdabertError(f"precision must be one of fp32, bf16, fp16 (resolved), got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def select_best(best: dict | None, epoch: int, value: float, **payload) -> dict:
    """The better of ``best`` and this epoch on the main value (ties keep the earlier epoch)."""
    if best is None or value > best["value"]:
        return {"epoch": epoch, "value": value, **payload}
    return best


def _logits(outputs: dict) -> dict[str, torch.Tensor]:
    """The logits of each split's ``predict`` output (the output itself, or the first of ``(logits, extra)``)."""
    return {s: out[0] if isinstance(out, tuple) else out for s, out in outputs.items()}


def _evaluate(model: nn.Module, evals: dict, spec: tasks_mod.TaskSpec, predict: Predict) -> tuple[dict, dict]:
    """``predict``'s output per eval split and the metrics of its logits."""
    outputs = {s: predict(model, t) for s, t in evals.items()}
    logits = _logits(outputs)
    return outputs, {s: metrics_mod.compute(spec, logits[s], evals[s]["labels"]) for s in evals}


def _train_epoch(model: nn.Module, modules: list[nn.Module], train: dict, step: Step, batches: Iterator[torch.Tensor],
                 opt, sched, recipe: Recipe, device: torch.device, bar, label: str,
                 epoch: int, precision: str, scaler) -> tuple[dict[str, float], int]:
    """One round of optimiser steps (the ``batches`` given); the summed loss components (weighted by batch
    size) and rows seen. ``scaler``: a gradient scaler (enabled for fp16 only; a disabled one passes every
    call through)."""
    for m in modules:
        m.train()
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    sums: dict[str, float] = {}
    seen = 0
    for idx in batches:
        batch = {k: v[idx].to(device) for k, v in train.items()}
        with autocast(precision, device):
            parts = step(model, batch)
        opt.zero_grad(set_to_none=True)
        scaler.scale(parts["loss"]).backward()
        if recipe.grad_clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        value = float(parts["loss"].detach())
        if not math.isfinite(value):
            raise AdabertError(f"{label}: non-finite loss at epoch {epoch} (diverged)")
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * idx.numel()
        seen += int(idx.numel())
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}", refresh=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return sums, seen


def fit(model: nn.Module, *, train: dict[str, torch.Tensor], evals: dict[str, dict[str, torch.Tensor]],
        spec: tasks_mod.TaskSpec, main_split: str, step: Step, predict: Predict, recipe: Recipe, label: str,
        device: torch.device, groups: list[dict] | None = None, extra_modules: list[nn.Module] = ()) -> dict:
    """Train ``model`` and restore its best epoch on ``main_split``; returns the training record.

    ``train`` holds row-aligned tensors (``labels`` included); each step sees ``{key: rows of the batch}``
    on ``device`` and ``step(model, batch)`` returns the loss components (``loss`` is minimised, every
    component is averaged into the history). ``predict(model, split)`` gives the logits ``[N, C]`` (CPU,
    row order) of an eval split in eval mode, or ``(logits, extra)``. ``groups``: the optimiser's
    parameter groups (default :func:`param_groups` of the model and ``extra_modules``, e.g. auxiliary
    heads trained along). The record: ``best_epoch``, ``main_value``, ``eval`` (metrics of the best
    epoch), ``logits`` (its eval logits), ``outputs`` (what ``predict`` returned for it), ``history``,
    ``train_time_s``, ``epochs``, ``examples_seen``, ``steps``, ``max_steps``, ``passes`` (examples seen /
    training rows), ``peak_rss_mb``.
    """
    n_train = int(train["labels"].shape[0])
    if n_train == 0:
        raise AdabertError(f"{label}: no training examples")
    if recipe.schedule not in SCHEDULES:
        raise AdabertError(f"{label}: schedule must be one of {sorted(SCHEDULES)}, got {recipe.schedule!r}")
    if recipe.select not in SELECTIONS:
        raise AdabertError(f"{label}: select must be one of {SELECTIONS}, got {recipe.select!r}")
    steps = round_steps(n_train, recipe.batch_size, float(recipe.epochs), recipe.max_steps)
    total = sum(steps)
    modules = [model, *extra_modules]
    opt = adamw(groups or param_groups(modules, recipe.weight_decay), lr=recipe.learning_rate)
    factor = SCHEDULES[recipe.schedule](max(1, total), round(recipe.warmup_ratio * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    stream = batch_stream(n_train, recipe.batch_size, torch.Generator().manual_seed(int(recipe.seed)), recipe.order)
    precision = resolve_precision(recipe.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    best, history, train_time, seen = None, [], 0.0, 0
    with tqdm(total=total, desc=label, mininterval=2.0, disable=None) as bar:
        for epoch, n_steps in enumerate(steps):
            t0 = time.perf_counter()
            sums, count = _train_epoch(model, modules, train, step, itertools.islice(stream, n_steps), opt, sched,
                                       recipe, device, bar, label, epoch, precision, scaler)
            epoch_time = time.perf_counter() - t0
            train_time, seen = train_time + epoch_time, seen + count
            stats = {"epoch": epoch, **{k: v / count for k, v in sums.items()}, "train_time_s": epoch_time,
                     "lr_end": opt.param_groups[0]["lr"]}
            if recipe.select == "final" and epoch < len(steps) - 1:
                history.append(stats)
                log.info("%s epoch %d: loss %.4f (%.1f s)", label, epoch, stats["loss"], epoch_time)
                continue
            outputs, eval_metrics = _evaluate(model, evals, spec, predict)
            main = float(eval_metrics[main_split][spec.main_metric])
            history.append(stats | {"eval": eval_metrics, "main_value": main})
            log.info("%s epoch %d: loss %.4f, %s %s %.2f (%.1f s)", label, epoch, history[-1]["loss"], main_split,
                     spec.main_metric, main, epoch_time)
            best = select_best(best, epoch, main, state=copy.deepcopy(model.state_dict()), outputs=outputs,
                               eval=eval_metrics)
    model.load_state_dict(best["state"])
    model.cpu().eval()
    return {"best_epoch": best["epoch"], "main_value": best["value"], "eval": best["eval"],
            "logits": _logits(best["outputs"]),
            "outputs": best["outputs"],
            "history": history, "train_time_s": train_time, "epochs": recipe.epochs, "examples_seen": seen,
            "steps": total, "max_steps": recipe.max_steps, "passes": seen / n_train, "peak_rss_mb": peak_rss_mb(), "precision": precision,
            "select": recipe.select}
