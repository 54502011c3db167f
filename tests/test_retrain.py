"""Retrain stage on a small real MRPC subset: the deployable folder, its metrics and its round trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from adabert import config, io
from adabert.errors import AdabertError
from adabert.distill import Objective, kd_loss
from adabert.retrain import predict_logits, run_retrain
from adabert.student import Student

from conftest import check_predictions

FILES = ("model.safetensors", "genotype.json", "student.json", "metrics.json", "predictions_dev.jsonl",
         "config.json", "tokenizer_config.json")


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def retrain_cfg(cfg: dict, **retrain) -> dict:
    view = config.stage_config(cfg, "retrain", "MRPC", "main")
    view["retrain"].update({"epochs": 2, "batch_size": 32, **retrain})
    return view


@pytest.fixture(scope="module")
def derived(mrpc_searched) -> Path:
    return mrpc_searched["root"] / "derive"


def _retrain(mrpc_small, derive_dir, out, **retrain):
    return run_retrain(retrain_cfg(mrpc_small["cfg"], **retrain), "MRPC", "main", 0, mrpc_small["data_dir"],
                       mrpc_small["teacher_dir"], mrpc_small["probes_dir"], derive_dir, out)


@pytest.fixture(scope="module")
def retrained(mrpc_small, derived, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("retrain") / "student"
    return out, _retrain(mrpc_small, derived, out)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_retrain_writes_every_file_and_metrics_recompute(retrained, derived, mrpc_small):
    out, summary = retrained
    for name in FILES:
        assert (out / name).is_file(), name
    m = io.read_json(out / "metrics.json")
    assert m == json.loads(io.dumps(summary))
    assert m["task"] == "MRPC" and m["variant"] == "main" and m["seed"] == 0
    assert m["main_metric"] == "f1" and m["main_split"] == "dev" and 0 <= m["best_epoch"] < 2
    assert m["main_value"] == max(e["main_value"] for e in m["history"]) == m["eval"]["dev"]["f1"]
    assert m["params"] > m["params_without_embeddings"] > 0
    assert m["train_time_s"] > 0 and m["epochs"] == 2 and m["kd"] == "final" and m["init"] == "inherit"
    # every metric recomputes from the predictions file
    check_predictions(out, Path(mrpc_small["data_dir"]), "MRPC", m["eval"]["dev"])
    # the folder says what deployment needs
    meta = io.read_json(out / "student.json")
    assert meta["task"]["text_columns"] == ["#1 String", "#2 String"]
    assert meta["task"]["label_names"] == ["0", "1"] and meta["num_labels"] == 2
    assert meta["task"]["max_seq_length"] == 32 and meta["vocab_size"] == 30522
    assert io.read_json(out / "genotype.json") == io.read_json(derived / "genotype.json")
    assert io.read_json(out / "config.json")["retrain"]["epochs"] == 2


def test_save_load_round_trip_gives_identical_logits(retrained, mrpc_small):
    out, _ = retrained
    student = Student.from_folder(out).eval()  # reads model.safetensors in a retrained folder
    dev = {k: v for k, v in io.load_tensors(Path(mrpc_small["data_dir"]) / "dev.safetensors").items()}
    logits = predict_logits(student, dev, batch_size=64)
    stored = torch.tensor([r["logits"] for r in _rows(out / "predictions_dev.jsonl")], dtype=torch.float32)
    assert torch.equal(logits, stored)
    # and save() -> from_folder() again (derive format) is exact too
    copy = out.parent / "resaved"
    student.save(copy)
    again = Student.from_folder(copy).eval()
    assert torch.equal(predict_logits(again, dev, batch_size=64), logits)


def test_forward_with_layers_matches_forward(retrained, mrpc_small):
    student = Student.from_folder(retrained[0]).eval()
    dev = io.load_tensors(Path(mrpc_small["data_dir"]) / "dev.safetensors")
    args = [dev[k][:8] for k in ("a_input_ids", "a_attention_mask", "b_input_ids", "b_attention_mask")]
    with torch.no_grad():
        logits, reps = student.forward_with_layers(*args)
        assert torch.equal(logits, student(*args))
    assert len(reps) == student.genotype.depth + 1


def test_probe_kd_scratch_and_ce_only(mrpc_small, derived, tmp_path, one_thread):
    s1 = _retrain(mrpc_small, derived, tmp_path / "probe", kd="probe+final", init="scratch", epochs=1)
    assert s1["history"][0]["kd_probe"] > 0 and s1["history"][0]["kd_final"] > 0
    s2 = _retrain(mrpc_small, derived, tmp_path / "ce", kd="none", epochs=1)
    assert s2["history"][0]["kd"] == 0 and s2["gamma"] == 0.0
    assert s2["history"][0]["loss"] == pytest.approx(s2["history"][0]["ce"])
    s3 = _retrain(mrpc_small, derived, tmp_path / "probe_only", kd="probe", epochs=1)  # the search's probe mode
    h = s3["history"][0]
    assert h["kd_final"] == 0 and h["kd_probe"] > 0 and h["kd"] == pytest.approx(h["kd_probe"])
    # the auxiliary probe heads are not part of the saved student
    saved = io.load_tensors(tmp_path / "probe" / "model.safetensors")
    assert set(saved) == set(Student.from_folder(tmp_path / "probe").state_dict())


def test_max_steps_and_length_grouped_batches(mrpc_small, derived, tmp_path, one_thread):
    # 128 training rows at batch 32: 2 epochs are 8 steps; the cap leaves 3 (rounds of 2 and 1)
    s = _retrain(mrpc_small, derived, tmp_path / "capped", epochs=2, max_steps=3, length_grouped=True)
    assert s["n_train"] == 128 and s["steps"] == 3 and s["max_steps"] == 3 and s["length_grouped"] is True
    assert len(s["history"]) == 2 and s["passes"] == pytest.approx(96 / 128)
    assert s["train_examples_per_s"] > 0


def test_retrain_loss_weights():
    logits = torch.tensor([[1.0, -1.0], [0.5, 0.2]])
    labels = torch.tensor([0, 1])
    objective = Objective(labels, regression=False, temperature=1.0)
    same = kd_loss(objective, logits, kd="final", gamma=0.8, teacher_logits=logits.clone())
    assert float(same["kd"]) == pytest.approx(0.0, abs=1e-7)
    assert float(same["loss"]) == pytest.approx(0.2 * float(same["ce"]))
    none = kd_loss(objective, logits, kd="none", gamma=0.8)
    assert float(none["loss"]) == float(none["ce"])
    scores = torch.tensor([[0.5], [2.0]])
    reg = kd_loss(Objective(torch.tensor([1.0, 2.0]), regression=True, temperature=1.0), scores, kd="final",
                  gamma=0.5, teacher_logits=torch.tensor([[0.5], [1.0]]))
    assert float(reg["ce"]) == pytest.approx(0.125) and float(reg["kd"]) == pytest.approx(0.5)


def test_mismatching_derive_weights_are_named(mrpc_small, derived, tmp_path):
    broken = tmp_path / "derive"
    shutil.copytree(derived, broken)
    tensors = io.load_tensors(broken / "weights.safetensors")
    del tensors["classifier.bias"]
    tensors["classifier.weight"] = torch.zeros(2, 7)
    io.save_tensors(broken / "weights.safetensors", tensors)
    with pytest.raises(AdabertError) as err:
        _retrain(mrpc_small, broken, tmp_path / "out")
    assert str(err.value) == (
        f"{broken / 'weights.safetensors'}: does not match the genotype: missing tensors ['classifier.bias']; "
        f"mismatched shapes ['classifier.weight (file [2, 7], model [2, {io.read_json(broken / 'genotype.json')['width']}])']"
    )
    assert not (tmp_path / "out").exists()
