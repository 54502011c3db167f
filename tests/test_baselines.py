"""Baseline students (BiLSTM-SOFT, truncated teacher + KD) on the small real MRPC subset: their folders,
metrics that recompute from their predictions, determinism, ONNX export and measurement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adabert import config, io
from adabert.baselines import run_baseline
from adabert.baselines.train import TIME_KEYS
from adabert.cli import main
from adabert.errors import AdabertError

from conftest import check_predictions

RETRAIN_KEYS = ("task", "variant", "seed", "eval", "main_split", "main_metric", "main_value", "best_epoch", "history",
                "params", "params_without_embeddings", "n_train", "n_eval", "train_time_s", "train_examples_per_s",
                "total_time_s", "splits", "threads", "device", "kind")
SMALL = {"bilstm": {"hidden": 32, "mlp_hidden": 32, "epochs": 2, "batch_size": 32},
         "truncated": {"layers": 2, "epochs": 1, "batch_size": 32, "patient_beta": 1.0}}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def baseline_cfg(cfg: dict, kind: str, **settings) -> dict:
    view = config.stage_config(cfg, "baseline", "MRPC")
    view["baselines"][kind].update({**SMALL[kind], **settings})
    return view


def _run(mrpc_small, kind, out, **settings) -> dict:
    return run_baseline(baseline_cfg(mrpc_small["cfg"], kind, **settings), kind, "MRPC", 0, mrpc_small["data_dir"],
                        mrpc_small["teacher_dir"], out)


@pytest.fixture(scope="module")
def bilstm(mrpc_small, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("baselines") / "bilstm"
    return out, _run(mrpc_small, "bilstm", out)


@pytest.fixture(scope="module")
def truncated(mrpc_small, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("baselines") / "truncated"
    return out, _run(mrpc_small, "truncated", out)


def _check_metrics(out: Path, summary: dict, kind: str, data_dir: Path, epochs: int) -> dict:
    m = io.read_json(out / "metrics.json")
    assert m == json.loads(io.dumps(summary))
    assert all(k in m for k in RETRAIN_KEYS), [k for k in RETRAIN_KEYS if k not in m]
    assert (m["task"], m["variant"], m["kind"], m["seed"]) == ("MRPC", kind, kind, 0)
    assert m["main_split"] == "dev" and m["main_metric"] == "f1" and 0 <= m["best_epoch"] < epochs
    assert len(m["history"]) == epochs and m["n_train"] == 128 and m["n_eval"] == {"dev": 64}
    assert m["main_value"] == max(e["main_value"] for e in m["history"]) == m["eval"]["dev"]["f1"]
    assert m["params"] > m["params_without_embeddings"] > 0 and m["train_time_s"] > 0
    assert m["total_time_s"] >= m["train_time_s"] and m["threads"] == 1 and m["device"] in ("cpu", "cuda")
    # every metric recomputes from the predictions file, whose rows are those of the data folder
    check_predictions(out, data_dir, "MRPC", m["eval"]["dev"])
    assert io.read_json(out / "config.json")["baselines"][kind]["epochs"] == epochs
    return m


def test_bilstm_folder_and_metrics_recompute(bilstm, mrpc_small):
    out, summary = bilstm
    for name in ("model.safetensors", "bilstm.json", "tokenizer_config.json", "metrics.json", "config.json",
                 "predictions_dev.jsonl"):
        assert (out / name).is_file(), name
    m = _check_metrics(out, summary, "bilstm", Path(mrpc_small["data_dir"]), epochs=2)
    assert m["gamma"] == 0.8 and m["pair"] is True and m["hyperparameters"]["hidden"] == 32
    from adabert.baselines.bilstm import load_folder
    from adabert.measure.reference import load_teacher

    model, meta = load_folder(out)
    assert meta["task"]["label_names"] == ["0", "1"] and meta["task"]["max_seq_length"] == 32
    assert sum(p.numel() for p in model.parameters()) == m["params"]
    teacher = load_teacher(mrpc_small["teacher_dir"]).module
    assert model.word_embeddings.weight.shape == teacher.get_input_embeddings().weight.shape  # vocab x 384


def test_bilstm_ignores_padding(bilstm):
    """Masking, not packing: the logits of a row do not depend on how much padding follows it."""
    from adabert.baselines.bilstm import load_folder

    model, _ = load_folder(bilstm[0])
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([3, 7, 12])
    ids = torch.randint(1000, 2000, (3, 12), generator=gen)
    mask = (torch.arange(12)[None] < lengths[:, None]).long()
    with torch.no_grad():
        base = model(ids * mask, mask, ids.flip(0) * mask.flip(0), mask.flip(0))
        padded = model(torch.nn.functional.pad(ids * mask, (0, 9)), torch.nn.functional.pad(mask, (0, 9)),
                       torch.nn.functional.pad(ids.flip(0) * mask.flip(0), (0, 9)), torch.nn.functional.pad(mask.flip(0), (0, 9)))
        one = model(ids[:1, :3], mask[:1, :3], ids[2:, :12], mask[2:, :12])
    assert torch.allclose(base, padded, atol=1e-6)
    assert torch.allclose(base[0], one[0], atol=1e-6)


def test_truncated_folder_and_metrics_recompute(truncated, mrpc_small):
    out, summary = truncated
    for name in ("model/config.json", "model/model.safetensors", "model/tokenizer_config.json", "metrics.json",
                 "config.json", "predictions_dev.jsonl"):
        assert (out / name).is_file(), name
    m = _check_metrics(out, summary, "truncated", Path(mrpc_small["data_dir"]), epochs=1)
    assert (m["layers"], m["teacher_layers"], m["patient_layers"]) == (2, 6, [[1, 3]])
    assert "patient" in m["history"][0] and m["history"][0]["patient"] > 0
    from adabert.measure.reference import load_teacher

    mut = load_teacher(out)
    assert mut.module.config.num_hidden_layers == 2 and len(mut.module.bert.encoder.layer) == 2
    assert sum(p.numel() for p in mut.module.parameters()) == m["params"]


def test_truncated_starts_from_the_teachers_first_layers(mrpc_small):
    from adabert.baselines.truncated import truncate
    from adabert.measure.reference import load_teacher

    teacher = load_teacher(mrpc_small["teacher_dir"]).module
    student = truncate(load_teacher(mrpc_small["teacher_dir"]).module, 3)
    t_state, s_state = teacher.state_dict(), student.state_dict()
    assert len(student.bert.encoder.layer) == 3 and student.config.num_hidden_layers == 3
    assert set(s_state) == {k for k in t_state if not any(f"encoder.layer.{i}." in k for i in range(3, 6))}
    assert all(torch.equal(s_state[k], t_state[k]) for k in s_state)  # layers 0-2, embeddings, pooler, classifier


def _without_times(m: dict) -> dict:
    m = {k: v for k, v in m.items() if k not in TIME_KEYS}
    m["history"] = [{k: v for k, v in e.items() if k != "train_time_s"} for e in m["history"]]
    return m


def test_same_seed_same_metrics(bilstm, truncated, mrpc_small, tmp_path):
    again = _run(mrpc_small, "bilstm", tmp_path / "bilstm")
    assert _without_times(json.loads(io.dumps(again))) == _without_times(io.read_json(bilstm[0] / "metrics.json"))
    assert (tmp_path / "bilstm" / "predictions_dev.jsonl").read_text() == (bilstm[0] / "predictions_dev.jsonl").read_text()
    again = _run(mrpc_small, "truncated", tmp_path / "truncated")
    assert _without_times(json.loads(io.dumps(again))) == _without_times(io.read_json(truncated[0] / "metrics.json"))


def test_bilstm_export_and_measure(bilstm, mrpc_small, tmp_path, restore_threads):
    from adabert.export import run_export
    from adabert.measure import validate_measurement

    out, summary = bilstm
    export = run_export({"measure": {"threads": 1}}, "MRPC", out, mrpc_small["data_dir"], tmp_path / "export",
                        batch_size=16)
    assert export["kind"] == "bilstm" and (export["variant"], export["seed"]) == ("bilstm", 0)
    assert export["max_abs_diff_fp32"] <= 1e-4 and len(export["seq_lens_checked"]) >= 2
    assert export["main"]["torch"] == pytest.approx(summary["main_value"])
    assert (tmp_path / "export" / "bilstm.onnx").is_file() and (tmp_path / "export" / "bilstm.int8.onnx").is_file()

    record_path = tmp_path / "m.json"
    argv = ["measure", "--model-kind", "bilstm", "--model", str(out), "--engine", "onnxruntime", "--batch", "2",
            "--seq-len", "8", "--threads", "1", "--out", str(record_path), "--task", "MRPC", "--variant", "bilstm",
            "--seed", "0", "--min-seconds", "0.01", "--min-batches", "1", "--warmup", "1", "--peak-seconds", "0"]
    assert main(argv) == 0
    record = validate_measurement(io.read_json(record_path))
    assert record["model"]["kind"] == "student" and record["model"]["name"] == "bilstm"
    assert record["subject"] == {"model_kind": "bilstm", "task": "MRPC", "variant": "bilstm", "seed": 0}
    assert record["onnx"]["verify"]["max_abs_diff"] <= 1e-4
    assert record["size"]["params"] == summary["params"]
    # the fused LSTM kernels are counted: 2 directions x 2 sentences x 8 steps x 4 gates x 32 x (384 + 32) MACs
    assert record["size"]["flops_per_sample"] >= 2 * (2 * 2 * 8 * 4 * 32 * (384 + 32))


def test_truncated_export_and_measure(truncated, mrpc_small, tmp_path, restore_threads):
    from adabert.export import run_export
    from adabert.measure import measure_model

    out, summary = truncated
    export = run_export({"measure": {"threads": 1}}, "MRPC", out, mrpc_small["data_dir"], tmp_path / "export")
    assert export["kind"] == "truncated" and export["variant"] == "truncated"
    assert export["max_abs_diff_fp32"] <= 1e-4 and (tmp_path / "export" / "truncated.onnx").is_file()
    assert export["main"]["torch"] == pytest.approx(summary["main_value"])
    record = measure_model("truncated", out, "torch", "cpu", 2, 8, 1, tmp_path / "m.json", min_seconds=0.01,
                           min_batches=1, peak_seconds=0.0, subject={"task": "MRPC", "variant": "truncated", "seed": 0})
    assert record["model"]["kind"] == "teacher" and record["subject"]["model_kind"] == "truncated"
    assert record["size"]["params"] == summary["params"] and "2 of 6 layers" in record["model"]["label"]


def test_bad_layer_count_names_the_key(mrpc_small, tmp_path, capsys):
    with pytest.raises(AdabertError, match=r"baselines\.truncated\.layers.*6 encoder layers"):
        _run(mrpc_small, "truncated", tmp_path / "t", layers=6)
    assert not (tmp_path / "t").exists()
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("baselines: {truncated: {layers: 9}}\n")
    argv = ["baseline", "--kind", "truncated", "--task", "MRPC", "--seed", "0", "--config", str(cfg_file),
            "--data", str(mrpc_small["data_dir"]), "--teacher", str(mrpc_small["teacher_dir"]), "--out", str(tmp_path / "t")]
    assert main(argv) == 2
    assert "baselines.truncated.layers" in capsys.readouterr().err
    with pytest.raises(AdabertError, match=r"baselines\.bilstm\.hidden"):
        _run(mrpc_small, "bilstm", tmp_path / "b", hidden=0)


def test_config_defaults():
    cfg = config.resolve({})
    assert cfg["baselines"]["bilstm"]["hidden"] == 300 and cfg["baselines"]["bilstm"]["enabled"] is True
    assert cfg["baselines"]["truncated"]["layers"] == 3 and cfg["baselines"]["truncated"]["patient_beta"] == 0.0
    view = config.stage_config(cfg, "baseline", "MRPC")
    assert {"data", "teacher", "loss", "baselines"} <= set(view)
    with pytest.raises(AdabertError, match="allowed keys"):
        config.resolve({"baselines": {"bilstm": {"hiden": 3}}})
