"""The teacher table's probe columns on hand-written metrics (known answers)."""

from __future__ import annotations

import json

import pytest

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
        "task": "RTE", "model": "m", "main_metric": "accuracy", "eval": {"dev": {"accuracy": head}},
        "params": 2_000_000, "n_train": 100, "train_time_s": 10.0, "train_examples_per_s": 10.0, "splits": {}})
    write(tmp_path / "probes/RTE", {"layers": [{"layer": i, "eval": {"dev": {"accuracy": v}}}
                                               for i, v in enumerate(probes)]})
    row = teacher_rows([tmp_path / "teacher/RTE"], [tmp_path / "probes/RTE"]).iloc[0]
    assert row["best_probe_value"] == max(probes) and row["best_probe_layer"] == best_layer
    assert bool(row["head_beats_probes"]) is beats_all
    assert bool(row["head_beats_intermediate_probes"]) is beats_intermediate
