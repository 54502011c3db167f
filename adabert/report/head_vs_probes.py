"""Is a probe really better than the teacher's fine-tuned head? A paired bootstrap over evaluation rows.

A linear probe on an intermediate layer that beats the fine-tuned head is the sign of an under-trained
teacher (the teacher table's ``head_beats_probes``). On GLUE's small dev sets a point difference is
often within sampling noise (RTE: 277 rows, one row = 0.36 points), and the best of L + 1 probes is
chosen on the same rows, which favours the probe. So the table also gives the difference of the main
metric, best probe minus head, with a paired percentile bootstrap confidence interval: the same resampled
rows score both models (``scipy.stats.bootstrap`` over row indices, seeded). A probe is better beyond
noise only where the whole interval is above zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from adabert import artifacts, metrics
from adabert.errors import AdabertError
from adabert.tasks import TaskSpec

N_RESAMPLES = 1000
CONFIDENCE = 0.95
SEED = 0


def difference_ci(spec: TaskSpec, labels, outputs_a, outputs_b, *, n_resamples: int = N_RESAMPLES,
                  confidence: float = CONFIDENCE, seed: int = SEED) -> dict[str, float]:
    """Main metric of ``outputs_b`` minus that of ``outputs_a`` on the same rows, and its paired bootstrap CI.

    Returns ``difference`` (on all rows), ``ci_low``, ``ci_high`` (percentile interval at ``confidence``)
    and ``share_not_above_zero`` (the share of resamples in which b does not beat a).
    """
    labels = np.asarray(labels)
    a, b = np.asarray(outputs_a), np.asarray(outputs_b)
    if not (len(labels) == len(a) == len(b)) or len(labels) < 2:
        raise AdabertError(f"{spec.name}: paired bootstrap needs the same rows (at least 2) for both models and the "
                           f"labels, got {len(a)}, {len(b)} and {len(labels)}")

    def diff(idx):
        idx = np.asarray(idx, dtype=np.int64)
        score_a = metrics.main_value(spec, metrics.compute(spec, a[idx], labels[idx]))
        return metrics.main_value(spec, metrics.compute(spec, b[idx], labels[idx])) - score_a

    res = stats.bootstrap((np.arange(len(labels)),), diff, n_resamples=n_resamples, vectorized=False,
                          confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    return {"difference": float(diff(np.arange(len(labels)))),
            "ci_low": float(res.confidence_interval.low), "ci_high": float(res.confidence_interval.high),
            "share_not_above_zero": float(np.mean(res.bootstrap_distribution <= 0))}


def best_probe_vs_head(data_dir: Path, teacher_dir: Path, probes_dir: Path, split: str, layer: int,
                       head_value: float) -> dict[str, float]:
    """Probe ``layer`` minus the head on ``split``, from the saved logits; checks that the logits give
    the head's reported ``head_value``."""
    data = artifacts.read_data(data_dir)
    labels = data.split(split, ())["labels"]
    n, c = len(labels), data.num_labels
    head = artifacts.read_teacher_logits(teacher_dir, split, n, c)
    probe = artifacts.read_probe_logits(probes_dir, split, n, c)
    if not 0 <= layer < probe.shape[1]:
        raise AdabertError(f"{probes_dir}: no probe of layer {layer} (layers 0..{probe.shape[1] - 1})")
    spec = data.spec
    recomputed = metrics.main_value(spec, metrics.compute(spec, head, labels))
    if abs(recomputed - head_value) > 1e-6 * max(1.0, abs(head_value)):
        raise AdabertError(f"{teacher_dir}: the saved '{split}' logits give {spec.main_metric} {recomputed:.4f}, "
                           f"metrics.json says {head_value:.4f}; the folder mixes two runs")
    return difference_ci(spec, labels.numpy(), head.numpy(), probe[:, layer].numpy())

