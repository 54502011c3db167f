"""The search budget in optimiser steps and the schedules that follow it.

A search runs ``total_steps`` joint steps (weights + architecture), split into ``rounds`` equal rounds;
after each round the derived architecture is evaluated and checkpointed (``search.epochs`` rounds; a
round is one pass over the search set unless ``search.steps`` fixes the total).

The rules that tie the architecture's optimisation to that step count (documented in config/README.md):

* **Weight-only warm-up** (``search.arch_warmup``, a fraction of the steps): the first
  ``warmup_steps`` steps train the supernet weights on ops sampled from the initial (uniform)
  architecture distribution; the architecture logits start moving afterwards (DARTS-family practice:
  judging ops by untrained weights mostly rewards the parameter-free ones).
* **Architecture learning rate** (``search.alpha_lr``; null = the rule): Adam moves a logit by at most
  about ``alpha_lr`` per step whatever the gradient's scale, so the distance an architecture logit can
  travel is ``alpha_lr x arch_steps``. The paper's setting (3e-4 over ~42,000 steps of SST-2: 80 epochs
  of 67k rows at batch 128) allows ~12.6; the rule keeps that travel, ``alpha_lr = alpha_travel /
  arch_steps``, so a 600-step CPU search can commit as far as the paper's.
* **Temperature** (``search.tau_anneal``): tau decays exponentially from ``tau_init`` to ``tau_min``
  over that fraction of the architecture steps and stays at the floor afterwards. With 1.0 this is the
  authors' per-epoch schedule max(exp(-0.02 epoch), 0.2) over 80 epochs (0.2 is reached at epoch 80.5).
* **Weights**: SGD with the learning rate cosine-annealed from ``w_lr`` to ``w_lr_min`` over all steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from adabert.errors import AdabertError


@dataclass(frozen=True)
class SearchSchedule:
    total_steps: int
    rounds: int
    warmup_steps: int
    alpha_lr: float
    tau_init: float
    tau_min: float
    tau_anneal: float

    @property
    def arch_steps(self) -> int:
        """Steps in which the architecture logits are updated."""
        return self.total_steps - self.warmup_steps

    def round_ends(self) -> list[int]:
        """The step count after each round (evenly spread; the last is ``total_steps``)."""
        return [round(self.total_steps * (r + 1) / self.rounds) for r in range(self.rounds)]

    def updates_arch(self, step: int) -> bool:
        """Whether step ``step`` (0-based) updates the architecture logits."""
        return step >= self.warmup_steps

    def tau(self, step: int) -> float:
        """Gumbel-softmax temperature at step ``step`` (``tau_init`` during the warm-up)."""
        arch_step = step - self.warmup_steps
        if arch_step <= 0:
            return self.tau_init
        span = self.tau_anneal * self.arch_steps
        fraction = 1.0 if span <= 0 else min(arch_step / span, 1.0)
        return self.tau_init * (self.tau_min / self.tau_init) ** fraction

    def to_dict(self) -> dict:
        return {**asdict(self), "arch_steps": self.arch_steps}


def make_schedule(scfg: dict, n_train: int) -> SearchSchedule:
    """The schedule of a search over ``n_train`` rows with the ``search`` config section ``scfg``."""
    if n_train < 1:
        raise AdabertError("search: the search set is empty")
    rounds = int(scfg["epochs"])
    steps_per_pass = math.ceil(n_train / int(scfg["batch_size"]))
    total = int(scfg["steps"]) if scfg.get("steps") is not None else rounds * steps_per_pass
    if scfg.get("max_passes") is not None:
        total = min(total, max(rounds, math.ceil(float(scfg["max_passes"]) * steps_per_pass)))
    if total < rounds:
        raise AdabertError(f"search.steps ({total}) must be at least search.epochs ({rounds}): one step per round")
    warmup = int(round(float(scfg.get("arch_warmup", 0.0)) * total))
    if warmup >= total:
        raise AdabertError(f"search.arch_warmup {scfg.get('arch_warmup')} leaves no architecture steps")
    alpha_lr = scfg.get("alpha_lr")
    if alpha_lr is None:
        alpha_lr = float(scfg["alpha_travel"]) / (total - warmup)
    return SearchSchedule(total_steps=total, rounds=rounds, warmup_steps=warmup, alpha_lr=float(alpha_lr),
                          tau_init=float(scfg["tau_init"]), tau_min=float(scfg["tau_min"]),
                          tau_anneal=float(scfg.get("tau_anneal", 1.0)))
