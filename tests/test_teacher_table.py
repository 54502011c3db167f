"""The teacher table's probe columns on hand-written metrics and logits (known answers)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adabert.errors import AdabertError
from adabert.report.teacher_table import teacher_rows


def write(path, payload):
    path.mkdir(parents=True, exist_ok=True)
    (path / ("metrics.json" if "main_metric" in payload else "probes.json")).write_text(json.dumps(payload))


@pytest.mark.parametrize("head, probes, best_layer, beats_all, beats_intermediate", [
    (80.0, [50.0, 70.0, 79.0], 2, True, True),    # the head above every probe
    (80.0, [50.0, 70.0, 81.0], 2, False, True),   # only the last layer's probe (a re-fitted head) is above
    (80.0, [50.0, 82.0, 81.0], 1, False, False),  # an intermediate layer above the head: under-trained
])
def test_probe_columns(tmp_path, head, probes, best_layer, beats_all, beats_intermediate):
    write(tmp_path / "teacher/RTE", {
        "task": "RTE", "model": "m", "main_metric": "accuracy", "main_split": "dev",
        "eval": {"dev": {"accuracy": head}},
        "params": 2_000_000, "n_train": 100, "train_time_s": 10.0, "train_examples_per_s": 10.0, "splits": {}})
    write(tmp_path / "probes/RTE", {"layers": [{"layer": i, "eval": {"dev": {"accuracy": v}}}
                                               for i, v in enumerate(probes)]})
    row = teacher_rows([tmp_path / "teacher/RTE"], [tmp_path / "probes/RTE"]).iloc[0]
    assert row["best_probe_value"] == max(probes) and row["best_probe_layer"] == best_layer and row["main_split"]
    assert bool(row["head_beats_probes"]) is beats_all
    assert bool(row["head_beats_intermediate_probes"]) is beats_intermediate


# -- The best probe minus the head, with a paired bootstrap interval ---------------------------------------
def test_difference_ci_known_answers():
    from adabert.report.head_vs_probes import difference_ci
    from adabert.tasks import get_task

    spec = get_task("RTE")
    labels = np.array([0, 1] * 200)
    right = np.eye(2)[labels] * 3.0      # logits of the gold class
    wrong = np.eye(2)[1 - labels] * 3.0  # logits of the other class
    same = difference_ci(spec, labels, right, right, n_resamples=300)
    assert same["difference"] == 0.0 and same["ci_low"] == 0.0 and same["ci_high"] == 0.0
    assert same["share_not_above_zero"] == 1.0
    flipped = difference_ci(spec, labels, wrong, right, n_resamples=300)
    assert flipped["difference"] == pytest.approx(100.0) and flipped["ci_low"] == pytest.approx(100.0)
    # b is right on 2 more rows of 400 (0.5 points): within noise, the interval straddles zero
    b = right.copy()
    a = right.copy()
    a[:2] = wrong[:2]
    close = difference_ci(spec, labels, a, b, n_resamples=300)
    assert close["difference"] == pytest.approx(0.5) and close["ci_low"] <= 0.0 < close["ci_high"]
    # b is right on 60 more rows of 400 (15 points): beyond noise, the interval is above zero
    a[:60] = wrong[:60]
    far = difference_ci(spec, labels, a, b, n_resamples=300)
    assert far["difference"] == pytest.approx(15.0) and 8.0 < far["ci_low"] < 15.0 < far["ci_high"] < 22.0
    assert far["share_not_above_zero"] == 0.0
    # seeded: the same interval twice
    assert difference_ci(spec, labels, a, b, n_resamples=300) == far


def _task_folders(tmp_path, head_logits, probe_logits, labels, head_value):
    from adabert.io import save_tensors

    data = tmp_path / "data/RTE"
    data.mkdir(parents=True)
    (data / "meta.json").write_text(json.dumps({
        "task": "RTE", "type": "classification", "num_labels": 2, "eval_splits": ["dev"], "main_split": "dev",
        "splits": {"dev": {"n": len(labels)}}, "max_seq_length": 8, "text_columns": ["sentence1", "sentence2"]}))
    save_tensors(data / "dev.safetensors", {"labels": torch.tensor(labels)})
    write(tmp_path / "teacher/RTE", {
        "task": "RTE", "model": "m", "main_metric": "accuracy", "main_split": "dev",
        "eval": {"dev": {"accuracy": head_value}},
        "params": 2_000_000, "n_train": 100, "train_time_s": 10.0, "train_examples_per_s": 10.0, "splits": {}})
    save_tensors(tmp_path / "teacher/RTE/logits.safetensors", {"dev": torch.tensor(head_logits, dtype=torch.float32)})
    layers = probe_logits.shape[1]
    write(tmp_path / "probes/RTE", {"num_layers": layers - 1, "layers": [
        {"layer": i, "eval": {"dev": {"accuracy": float((probe_logits[:, i].argmax(-1) == labels).mean() * 100)}}}
        for i in range(layers)]})
    save_tensors(tmp_path / "probes/RTE/probe_logits.safetensors",
                 {"dev": torch.tensor(probe_logits, dtype=torch.float32)})
    return [tmp_path / "teacher/RTE"], [tmp_path / "probes/RTE"], [data]


def test_teacher_rows_bootstrap_from_saved_logits(tmp_path):
    labels = np.array([0, 1] * 100)
    gold, other = np.eye(2)[labels], np.eye(2)[1 - labels]
    head = gold.copy()
    head[:40] = other[:40]                       # head: 80% right
    probes = np.stack([other, gold, gold], 1)    # layer 0 always wrong, layers 1 and 2 always right
    probes[:10, 2] = other[:10]                  # layer 2: 95%
    teachers, probe_dirs, data = _task_folders(tmp_path, head, probes, labels, 80.0)
    row = teacher_rows(teachers, probe_dirs, data).iloc[0]
    assert row["best_probe_layer"] == 1 and row["best_probe_minus_head"] == pytest.approx(20.0)
    assert 0 < row["best_probe_minus_head_ci_low"] < 20.0 < row["best_probe_minus_head_ci_high"]
    assert bool(row["probe_better_beyond_noise"]) and not bool(row["head_beats_probes"])
    # without Data folders the table has no bootstrap columns
    assert "best_probe_minus_head" not in teacher_rows(teachers, probe_dirs).columns


def test_teacher_rows_refuses_logits_of_another_run(tmp_path):
    labels = np.array([0, 1] * 10)
    gold = np.eye(2)[labels]
    teachers, probe_dirs, data = _task_folders(tmp_path, gold, np.stack([gold, gold], 1), labels, 75.0)
    with pytest.raises(AdabertError, match="metrics.json says 75.0000; the folder mixes two runs"):
        teacher_rows(teachers, probe_dirs, data)
