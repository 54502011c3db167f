"""The search budget in steps: rounds, warm-up, the architecture learning-rate rule and the temperature."""

from __future__ import annotations

import math

import pytest

from adabert.errors import AdabertError
from adabert.nas.schedule import make_schedule

BASE = {"epochs": 4, "batch_size": 64, "steps": None, "arch_warmup": 0.0, "alpha_lr": None, "alpha_travel": 12.6,
        "tau_init": 1.0, "tau_min": 0.2, "tau_anneal": 1.0}


def test_epochs_are_passes_unless_steps_are_given():
    s = make_schedule(BASE, n_train=1000)  # 16 batches per pass
    assert s.total_steps == 64 and s.round_ends() == [16, 32, 48, 64]
    s = make_schedule({**BASE, "steps": 600}, n_train=1000)
    assert s.total_steps == 600 and s.round_ends() == [150, 300, 450, 600]
    s = make_schedule({**BASE, "steps": 10, "epochs": 3}, n_train=1000)
    assert s.round_ends() == [3, 7, 10]
    with pytest.raises(AdabertError, match="search.steps"):
        make_schedule({**BASE, "steps": 2}, n_train=1000)


def test_max_passes_caps_the_steps_of_a_small_set():
    capped = {**BASE, "steps": 300, "max_passes": 8, "arch_warmup": 0.3}
    s = make_schedule(capped, n_train=635)  # WNLI: 10 batches per pass -> 80 steps, not 300
    assert s.total_steps == 80 and s.warmup_steps == 24 and s.alpha_lr == pytest.approx(12.6 / 56)
    assert make_schedule(capped, n_train=20000).total_steps == 300  # a large set: the step budget holds
    assert make_schedule({**capped, "max_passes": 0.01}, n_train=635).total_steps == 4  # one step per round


def test_alpha_lr_rule_keeps_the_papers_travel():
    s = make_schedule({**BASE, "steps": 600, "arch_warmup": 0.25}, n_train=1000)
    assert s.warmup_steps == 150 and s.arch_steps == 450
    assert s.alpha_lr == pytest.approx(12.6 / 450)
    # the paper: 3e-4 over ~42,000 steps is the same travel
    paper = make_schedule({**BASE, "epochs": 80, "batch_size": 128}, n_train=67_349)
    assert paper.total_steps == 80 * 527 and paper.alpha_lr == pytest.approx(12.6 / 42_160)
    assert make_schedule({**BASE, "alpha_lr": 3e-4}, n_train=1000).alpha_lr == 3e-4
    with pytest.raises(AdabertError, match="arch_warmup"):
        make_schedule({**BASE, "arch_warmup": 0.999, "steps": 100}, n_train=1000)


def test_warmup_freezes_the_architecture_and_the_temperature():
    s = make_schedule({**BASE, "steps": 100, "arch_warmup": 0.2}, n_train=1000)
    assert [s.updates_arch(t) for t in (0, 19, 20, 99)] == [False, False, True, True]
    assert s.tau(0) == s.tau(20) == 1.0


def test_tau_anneals_exponentially_to_the_floor_over_the_given_fraction():
    s = make_schedule({**BASE, "steps": 100}, n_train=1000)
    assert s.tau(50) == pytest.approx(0.2 ** 0.5) and s.tau(100) == pytest.approx(0.2)
    taus = [s.tau(t) for t in range(101)]
    assert all(a >= b for a, b in zip(taus, taus[1:]))
    half = make_schedule({**BASE, "steps": 100, "tau_anneal": 0.5}, n_train=1000)
    assert half.tau(50) == pytest.approx(0.2) and half.tau(90) == pytest.approx(0.2)
    # tau_anneal 1.0 over 80 epochs matches the authors' max(exp(-0.02 epoch), 0.2) within 2%
    paper = make_schedule({**BASE, "epochs": 80, "steps": 80}, n_train=80 * 64)
    for epoch in (10, 40, 70):
        assert paper.tau(epoch) == pytest.approx(max(math.exp(-0.02 * epoch), 0.2), rel=0.02)
