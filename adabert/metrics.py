"""Task metrics in percent points (scikit-learn and scipy).

``compute(spec, outputs, labels)``: ``outputs`` are ``[N, C]`` logits (the prediction is the argmax)
for classification, or ``[N]`` / ``[N, 1]`` scores for regression; ``labels`` are ``[N]`` class
indices or float targets. Returns ``{metric: value}`` for ``spec.metrics``, each value * 100.

Conventions:
- ``f1`` is the F1 of class index 1 (the ``"1"`` label of MRPC/QQP, as GLUE reports it) for binary
  tasks, and the macro F1 over all classes for tasks with more than two classes (custom tasks only).
  With no positive prediction and no positive label, F1 is 0 (``zero_division=0``).
- ``mcc`` of a constant prediction is 0 (scikit-learn's convention: the denominator is zero).
- ``pearson`` / ``spearman`` are undefined when the predictions or the labels are constant (zero
  variance; scipy returns nan). We report **0.0** then, the same convention as MCC: a constant
  predictor carries no information about the ranking, and a number keeps tables, means and the
  search's model selection well defined. A warning is logged so the case stays visible.
- Non-finite outputs (a diverged model) are an AdabertError, not a silent nan.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from adabert.errors import AdabertError
from adabert.tasks import TaskSpec

log = logging.getLogger(__name__)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu()
        if x.dtype.is_floating_point:
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def predictions(spec: TaskSpec, outputs: Any) -> np.ndarray:
    """Class indices (argmax of ``[N, C]`` logits) or float scores (``[N]`` or ``[N, 1]``)."""
    out = _to_numpy(outputs)
    if spec.is_regression:
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim != 1:
            raise AdabertError(f"{spec.name}: regression outputs must be [N] or [N, 1], got shape {list(out.shape)}")
        out = out.astype(np.float64)
    else:
        if out.ndim != 2 or out.shape[1] != spec.num_labels:
            raise AdabertError(
                f"{spec.name}: classification outputs must be [N, {spec.num_labels}] logits, got shape {list(out.shape)}"
            )
    bad = int((~np.isfinite(out.astype(np.float64))).sum())
    if bad:
        raise AdabertError(f"{spec.name}: {bad} non-finite output value(s) (nan/inf); the model diverged")
    return out if spec.is_regression else out.argmax(axis=1)


def _correlation(fn, pred: np.ndarray, gold: np.ndarray, name: str, task: str) -> float:
    if np.ptp(pred) == 0 or np.ptp(gold) == 0:
        log.warning("%s: %s undefined for constant predictions or labels; reporting 0.0", task, name)
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(fn(pred, gold)[0])
    return 0.0 if np.isnan(value) else value


def compute(spec: TaskSpec, outputs: Any, labels: Any) -> dict[str, float]:
    """Metrics of ``spec.metrics`` in percent points (first = main metric)."""
    pred = predictions(spec, outputs)
    gold = _to_numpy(labels)
    if gold.ndim == 2 and gold.shape[1] == 1:
        gold = gold[:, 0]
    if gold.ndim != 1 or gold.shape[0] != pred.shape[0]:
        raise AdabertError(f"{spec.name}: {pred.shape[0]} predictions but labels of shape {list(gold.shape)}")
    if gold.shape[0] == 0:
        raise AdabertError(f"{spec.name}: cannot compute metrics on an empty split")
    result: dict[str, float] = {}
    if spec.is_regression:
        gold = gold.astype(np.float64)
        for m in spec.metrics:
            if m == "pearson":
                result[m] = 100.0 * _correlation(stats.pearsonr, pred, gold, m, spec.name)
            elif m == "spearman":
                result[m] = 100.0 * _correlation(stats.spearmanr, pred, gold, m, spec.name)
            else:
                raise AdabertError(f"{spec.name}: metric {m!r} does not apply to regression")
        return result
    gold = gold.astype(np.int64)
    if gold.min() < 0 or gold.max() >= spec.num_labels:
        raise AdabertError(f"{spec.name}: labels outside 0..{spec.num_labels - 1}")
    all_labels = list(range(spec.num_labels))
    for m in spec.metrics:
        if m == "accuracy":
            value = accuracy_score(gold, pred)
        elif m == "f1":
            if spec.num_labels == 2:
                value = f1_score(gold, pred, pos_label=1, average="binary", zero_division=0.0)
            else:
                value = f1_score(gold, pred, labels=all_labels, average="macro", zero_division=0.0)
        elif m == "mcc":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = matthews_corrcoef(gold, pred)
        else:
            raise AdabertError(f"{spec.name}: metric {m!r} does not apply to classification")
        result[m] = 100.0 * float(value)
    return result


def main_value(spec: TaskSpec, metrics: dict[str, float]) -> float:
    return float(metrics[spec.main_metric])
