"""Metrics against hand-computed values (percent points)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adabert.errors import AdabertError
from adabert.metrics import compute
from adabert.tasks import get_task


def logits_for(pred, num_labels=2):
    out = np.zeros((len(pred), num_labels), dtype=np.float32)
    out[np.arange(len(pred)), pred] = 1.0
    return out


def test_mcc_hand_computed():
    gold = [1, 1, 0, 0, 1]
    pred = [1, 0, 0, 1, 1]  # TP 2, FN 1, TN 1, FP 1 -> (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    res = compute(get_task("CoLA"), logits_for(pred), gold)
    assert res == {"mcc": pytest.approx(100 / 6)}


def test_f1_and_accuracy_hand_computed():
    gold = [1, 1, 0, 0, 1]
    pred = [1, 0, 0, 1, 1]  # precision 2/3, recall 2/3 -> F1 2/3; accuracy 3/5
    res = compute(get_task("MRPC"), torch.tensor(logits_for(pred)), torch.tensor(gold))
    assert list(res) == ["f1", "accuracy"]
    assert res["f1"] == pytest.approx(200 / 3) and res["accuracy"] == pytest.approx(60.0)


def test_f1_positive_class_is_label_1():
    # all gold negative, one predicted positive: F1 of class 1 is 0 (accuracy 75)
    res = compute(get_task("QQP"), logits_for([0, 0, 0, 1]), [0, 0, 0, 0])
    assert res["f1"] == 0.0 and res["accuracy"] == pytest.approx(75.0)


def test_argmax_three_classes():
    logits = np.array([[0.1, 2.0, 0.3], [5.0, 0.0, 0.0], [0.0, 0.0, 0.1], [1.0, 0.0, 2.0]])
    assert compute(get_task("MNLI"), logits, [1, 0, 2, 0]) == {"accuracy": pytest.approx(75.0)}


def test_pearson_spearman_hand_computed():
    # x deviations (-1, 0, 1), y deviations (-1, 1, 0): r = 1 / sqrt(2 * 2) = 0.5; same ranks -> spearman 0.5
    res = compute(get_task("STS-B"), np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0]))
    assert res == {"pearson": pytest.approx(50.0), "spearman": pytest.approx(50.0)}
    # monotone but not linear: spearman 100, pearson below 100; [N, 1] outputs accepted
    res = compute(get_task("STS-B"), np.array([[1.0], [2.0], [3.0], [4.0]]), [1.0, 2.0, 3.0, 100.0])
    assert res["spearman"] == pytest.approx(100.0)
    x, y = np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 3, 100])
    r = ((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert res["pearson"] == pytest.approx(100 * r)


def test_constant_predictions_do_not_crash():
    assert compute(get_task("CoLA"), logits_for([1, 1, 1, 1]), [0, 1, 0, 1]) == {"mcc": 0.0}
    res = compute(get_task("MRPC"), logits_for([0, 0, 0]), [0, 1, 1])
    assert res["f1"] == 0.0 and res["accuracy"] == pytest.approx(100 / 3)
    res = compute(get_task("STS-B"), np.full(5, 2.5), [0.0, 1.0, 2.0, 3.0, 4.0])
    assert res == {"pearson": 0.0, "spearman": 0.0}  # undefined correlation reported as 0.0


def test_bad_inputs_are_errors():
    with pytest.raises(AdabertError, match="shape"):
        compute(get_task("MNLI"), np.zeros((3, 2)), [0, 1, 2])
    with pytest.raises(AdabertError, match="predictions"):
        compute(get_task("SST-2"), np.zeros((3, 2)), [0, 1])
    with pytest.raises(AdabertError, match="non-finite"):
        compute(get_task("STS-B"), np.array([1.0, np.nan]), [1.0, 2.0])
    with pytest.raises(AdabertError, match="empty"):
        compute(get_task("SST-2"), np.zeros((0, 2)), [])
