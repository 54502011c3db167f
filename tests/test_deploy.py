"""Deployment: predict from the student folder alone, bad folders and inputs, ONNX export on real dev
batches, the measurement CLI and the efficiency table (tiny shapes; no assertion depends on a timing)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from adabert import config, io
from adabert.cli import main
from adabert.errors import AdabertError
from adabert.export import run_export
from adabert.kinds import KINDS, MODEL_KINDS, export_kind, kind_of_folder
from adabert.measure import measure_model, model_under_test, validate_measurement
from adabert.predict import predict_file
from adabert.retrain import run_retrain
from conftest import n_rows

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread_per_test(restore_threads):
    """Run every test here on one thread; the shared fixture restores the session's settings."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def student(mrpc_small, mrpc_searched, tmp_path_factory) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("deploy")
    cfg = mrpc_small["cfg"]
    derive = mrpc_searched["root"] / "derive"
    view = config.stage_config(cfg, "retrain", "MRPC", "main")
    view["retrain"].update({"epochs": 1, "batch_size": 32})
    run_retrain(view, "MRPC", "main", 0, mrpc_small["data_dir"], mrpc_small["teacher_dir"], mrpc_small["probes_dir"],
                derive, root / "student")
    torch.set_num_threads(threads)
    return {"root": root, "dir": root / "student", "derive": derive, **mrpc_small}


def _copy(student: dict, tmp_path: Path) -> Path:
    folder = tmp_path / "student"
    shutil.copytree(student["dir"], folder)
    return folder


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------------------------------- predict


def test_predict_real_glue_rows(student, glue_dir, tmp_path, capsys):
    lines = (glue_dir / "MRPC" / "dev.tsv").read_text(encoding="utf-8-sig").splitlines()[:8]
    src = tmp_path / "dev8.tsv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "pred.jsonl"
    assert main(["predict", "--model", str(student["dir"]), "--input", str(src), "--output", str(out)]) == 0
    assert "7 predictions written" in capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) == 7 and [r["row"] for r in rows] == list(range(7))
    assert all(r["prediction"] in ("0", "1") and 0.5 <= r["probability"] <= 1 for r in rows)
    tsv = tmp_path / "pred.tsv"
    assert predict_file(student["dir"], src, tsv) == 7
    table = pd.read_csv(tsv, sep="\t", dtype={"prediction": str})
    assert list(table["prediction"]) == [r["prediction"] for r in rows]


def test_predict_reproduces_the_retrain_predictions(student, tmp_path):
    """Texts re-encoded by predict give exactly the stage's dev predictions (same encoding as prepare)."""
    data = _rows(Path(student["data_dir"]) / "dev.jsonl")
    src = tmp_path / "dev.jsonl"
    src.write_text("".join(json.dumps({"#1 String": r["texts"][0], "#2 String": r["texts"][1]}) + "\n" for r in data))
    predict_file(student["dir"], src, tmp_path / "p.jsonl")
    got = [r["prediction"] for r in _rows(tmp_path / "p.jsonl")]
    assert got == [r["prediction"] for r in _rows(student["dir"] / "predictions_dev.jsonl")]


# ---------------------------------------------------------------------------------------------- bad input


def _error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err.strip()


def _predict_argv(model: Path, src: Path, tmp_path: Path) -> list[str]:
    return ["predict", "--model", str(model), "--input", str(src), "--output", str(tmp_path / "out.jsonl")]


@pytest.fixture
def one_row(tmp_path) -> Path:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"#1 String": "A man eats.", "#2 String": "A person is eating."}) + "\n")
    return src


def test_not_a_student_folder(student, tmp_path, one_row, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _error(_predict_argv(empty, one_row, tmp_path), capsys) == \
        f"error: {empty}: not a student folder: missing student.json"
    derive = student["derive"]
    assert _error(_predict_argv(derive, one_row, tmp_path), capsys) == (
        f"error: {derive}: not a student folder: missing student.json (this looks like a derive folder; "
        "run the retrain stage to get a deployable student)"
    )
    assert not (tmp_path / "out.jsonl").exists()


def test_input_without_the_text_columns(student, tmp_path, capsys):
    src = tmp_path / "in.tsv"
    src.write_text("id\tsentence1\t#2 String\n1\tA man eats.\tA person is eating.\n")
    assert _error(_predict_argv(student["dir"], src, tmp_path), capsys) == (
        f"error: {src}: missing the task's text column(s) ['#1 String']; columns found: ['id', 'sentence1', '#2 String']"
    )
    js = tmp_path / "in.jsonl"
    js.write_text(json.dumps({"text": "x"}) + "\n")
    assert _error(_predict_argv(student["dir"], js, tmp_path), capsys) == (
        f"error: {js}:1: missing the task's text column(s) ['#1 String', '#2 String']; columns found: ['text']"
    )


def test_missing_or_corrupted_weights(student, tmp_path, one_row, capsys):
    folder = _copy(student, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\x00garbage, not a safetensors file")
    err = _error(_predict_argv(folder, one_row, tmp_path), capsys)
    assert err.startswith(f"error: {weights}: not a readable safetensors file (")
    weights.unlink()
    assert _error(_predict_argv(folder, one_row, tmp_path), capsys) == (
        f"error: {weights}: file not found (the student's trained weights); the student folder is incomplete"
    )


def test_genotype_and_weights_that_do_not_match(student, tmp_path, one_row, capsys):
    folder = _copy(student, tmp_path)
    genotype = io.read_json(folder / "genotype.json")
    node = genotype["nodes"][0]
    old_op = node[0]["op"]
    new_op = next(op for op in ("std_conv_3", "dil_conv_5", "std_conv_7") if op != old_op and op in genotype["ops"])
    node[0]["op"] = new_op
    io.write_json(folder / "genotype.json", genotype)
    err = _error(_predict_argv(folder, one_row, tmp_path), capsys)
    row = node[0]["input"]  # alpha row of node 2's first edge = its input index
    assert err.startswith(f"error: {folder / 'model.safetensors'}: does not match the genotype: missing tensors [")
    assert f"'cells.0.edges.{row}.{new_op}." in err
    if old_op not in ("none", "skip_connect", "max_pool_3", "avg_pool_3"):  # ops with weights
        assert f"unexpected tensors ['cells.0.edges.{row}.{old_op}." in err


# ---------------------------------------------------------------------------------------------- ONNX


def test_onnx_export_matches_torch_on_real_dev_batches(student, tmp_path):
    out = tmp_path / "export"
    summary = run_export({"measure": {"threads": 2}}, "MRPC", student["dir"], student["data_dir"], out, batch_size=16,
                         threads=1)
    assert summary["threads"] == 1  # the workflow's --threads (a training job's) wins over measure.threads
    for name in ("student.onnx", "student.int8.onnx", "export.json", "config.json"):
        assert (out / name).is_file(), name
    assert io.read_json(out / "export.json") == json.loads(io.dumps(summary))
    assert summary["kind"] == "student" and summary["variant"] == "main" and summary["seed"] == 0
    assert summary["max_abs_diff_fp32"] <= 1e-4 and summary["n"] == 64
    assert len(summary["seq_lens_checked"]) >= 2  # length-sorted batches: the dynamic axis is exercised
    assert summary["metrics"]["onnx_fp32"] == summary["metrics"]["torch"]
    retrained = io.read_json(student["dir"] / "metrics.json")
    assert summary["main"]["torch"] == pytest.approx(retrained["main_value"])
    assert summary["int8_drop_points"] == pytest.approx(summary["main"]["torch"] - summary["main"]["onnx_int8"])
    # int8 auto: the static graph (calibrated on training rows) is student.int8.onnx, the dynamic one next to it,
    # each with the dev metric of the quantised graph itself
    assert summary["int8_requested"] == "auto" and summary["int8_mode"] == "static"
    assert set(summary["int8"]) == {"static", "dynamic"} and (out / "student.int8-dynamic.onnx").is_file()
    assert summary["int8"]["static"]["file"] == "student.int8.onnx"
    assert summary["main"]["onnx_int8"] == summary["main"]["onnx_int8_static"] == summary["int8"]["static"]["main"]
    for mode, graph in summary["int8"].items():
        assert graph["drop_points"] == pytest.approx(summary["main"]["torch"] - summary["main"][f"onnx_int8_{mode}"])
        assert 0 < graph["max_abs_diff"] < 1.0 and graph["file_bytes"] > 0
    calibration = summary["calibration"]
    assert calibration["split"] == "train" and calibration["rows"] == min(256, calibration["of"])
    assert summary["int8"]["static"]["calibration_rows"] == calibration["rows"]
    assert summary["int8"]["static"]["per_channel"] and summary["int8"]["static"]["format"] == "QDQ"
    # the ONNX graph runs other batch sizes and lengths than it was exported with
    from adabert.measure.onnx_export import ort_session

    session = ort_session(out / "student.onnx")
    ids = torch.randint(0, 1000, (3, 11))
    mask = torch.ones(3, 11, dtype=torch.int64)
    got = session.run(None, {"a_ids": ids.numpy(), "a_mask": mask.numpy(), "b_ids": ids.numpy(), "b_mask": mask.numpy()})
    assert got[0].shape == (3, 2)


def test_teacher_export(student, tmp_path):
    cfg = {"measure": {"threads": 1, "int8": "static", "calibration_examples": 40}}
    summary = run_export(cfg, "MRPC", student["teacher_dir"], student["data_dir"], tmp_path / "t", batch_size=32)
    assert summary["kind"] == "teacher" and (tmp_path / "t" / "teacher.int8.onnx").is_file()
    assert set(summary["int8"]) == {"static"} and not (tmp_path / "t" / "teacher.int8-dynamic.onnx").exists()
    assert summary["calibration"]["rows"] == 40 and summary["int8"]["static"]["calibration_rows"] == 40
    dynamic = run_export({"measure": {"threads": 1, "int8": "dynamic"}}, "MRPC", student["teacher_dir"],
                         student["data_dir"], tmp_path / "d", batch_size=32)
    assert set(dynamic["int8"]) == {"dynamic"} and dynamic["calibration"] is None
    assert dynamic["int8"]["dynamic"]["file"] == "teacher.int8.onnx"  # the one int8 graph asked for
    assert summary["max_abs_diff_fp32"] <= 1e-4
    teacher = io.read_json(Path(student["teacher_dir"]) / "metrics.json")
    assert summary["main"]["torch"] == pytest.approx(teacher["eval"]["dev"]["f1"], abs=1e-6)
    assert summary["torch_reference"] == "the teacher stage's saved fp32 dev logits"


def test_teacher_export_checks_onnx_against_the_saved_logits(student, tmp_path):
    """The fp32 teacher's saved dev logits stand in for the PyTorch pass and are checked: logits moved by
    0.01 fail the 1e-4 check; a teacher not trained in fp32 gets its own PyTorch pass (same metric)."""
    from safetensors.torch import load_file, save_file

    src = Path(student["teacher_dir"])

    def teacher_copy(name: str, precision: str, shift: float) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model").symlink_to(src / "model", target_is_directory=True)
        metrics = io.read_json(src / "metrics.json")
        io.write_json(folder / "metrics.json", metrics | {"precision": precision})
        logits = load_file(src / "logits.safetensors")
        save_file({k: v + shift if k == "dev" else v for k, v in logits.items()}, folder / "logits.safetensors")
        return folder

    cfg = {"measure": {"threads": 1, "int8": "dynamic"}}
    with pytest.raises(AdabertError, match="differ from PyTorch"):
        run_export(cfg, "MRPC", teacher_copy("moved", "fp32", 0.01), student["data_dir"], tmp_path / "m", 32)
    assert not (tmp_path / "m").exists()
    bf16 = run_export(cfg, "MRPC", teacher_copy("bf16", "bf16", 0.01), student["data_dir"], tmp_path / "b", 32)
    assert bf16["torch_reference"] == "a PyTorch pass of the export" and bf16["max_abs_diff_fp32"] <= 1e-4
    teacher = io.read_json(src / "metrics.json")
    assert bf16["main"]["torch"] == pytest.approx(teacher["eval"]["dev"]["f1"], abs=1e-6)



# ---------------------------------------------------------------------------------------------- model kinds


def test_kind_of_a_folder_from_its_files(tmp_path):
    def folder(name: str, files: dict[str, str]) -> Path:
        path = tmp_path / name
        path.mkdir()
        for file, text in files.items():
            (path / file).write_text(text)
        return path

    assert kind_of_folder(folder("s", {"student.json": "{}", "genotype.json": "{}"})).name == "student"
    assert kind_of_folder(folder("d", {"genotype.json": "{}"})).name == "student"  # the loader names what is missing
    assert kind_of_folder(folder("b", {"bilstm.json": "{}", "metrics.json": '{"kind": "bilstm"}'})).name == "bilstm"
    assert kind_of_folder(folder("b2", {"bilstm.json": "{}", "genotype.json": "{}"})).name == "bilstm"  # baselines first
    assert kind_of_folder(folder("k", {"metrics.json": '{"kind": "truncated"}'})).name == "truncated"
    assert kind_of_folder(folder("t", {"metrics.json": '{"model": "bert"}'})).name == "teacher"
    assert kind_of_folder(folder("e", {})).name == "teacher"
    assert export_kind("teacher", tmp_path / "k").name == "teacher"  # --kind wins over the files
    with pytest.raises(AdabertError, match="model kind 'bert-base' is not exported"):
        export_kind("bert-base", tmp_path / "e")
    with pytest.raises(AdabertError, match="model kind must be one of"):
        export_kind("distilbert", tmp_path / "e")


def test_every_kind_needs_its_folder_but_bert_base():
    assert MODEL_KINDS == ("student", "teacher", "bert-base", "bilstm", "truncated")
    for name, kind in KINDS.items():
        assert kind.layout.input_names == (("a_ids", "a_mask", "b_ids", "b_mask") if name in ("student", "bilstm")
                                           else ("input_ids", "attention_mask", "token_type_ids"))
        if name == "bert-base":
            assert kind.folder is None and not kind.exportable
            continue
        with pytest.raises(AdabertError, match=f"^--model is required for a {name}"):
            model_under_test(name, None)



def test_export_cli_kind_argument(student, tmp_path, capsys):
    """``--kind`` overrides what the folder's files say: a student folder exported as a BiLSTM has no bilstm.json."""
    argv = ["export", "--task", "MRPC", "--config", json.dumps({"measure": {"threads": 1}}), "--model",
            str(student["dir"]), "--data", str(student["data_dir"]), "--out", str(tmp_path / "x"), "--kind", "bilstm"]
    assert _error(argv, capsys) == f"error: {student['dir'] / 'bilstm.json'}: file not found"
    assert _error([*argv[:-2], "--threads", "0"], capsys) == "error: --threads must be >= 1, got 0"
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------- measure


FAST = ["--min-seconds", "0.01", "--min-batches", "1", "--warmup", "1", "--peak-seconds", "0.01"]


def test_measure_cli_writes_a_valid_measurement(student, tmp_path):
    out = tmp_path / "m.json"
    cmd = [sys.executable, "-m", "adabert", "measure", "--model-kind", "student", "--model", str(student["dir"]),
           "--engine", "onnxruntime", "--batch", "2", "--seq-len", "8", "--threads", "1", "--out", str(out),
           "--task", "MRPC", "--variant", "main", "--seed", "0", *FAST]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    record = validate_measurement(io.read_json(out))
    assert record["model"]["kind"] == "student" and record["engine"] == "onnxruntime"
    assert (record["batch"], record["seq_len"], record["threads"]) == (2, 8, 1)
    assert record["subject"] == {"model_kind": "student", "task": "MRPC", "variant": "main", "seed": 0}
    assert record["machine"]["threads_setting"]["requested"] == 1
    assert record["machine"]["env_threads"] == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert record["onnx"]["verify"]["max_abs_diff"] <= 1e-4
    retrained = io.read_json(student["dir"] / "metrics.json")
    assert record["size"]["params"] == retrained["params"]
    assert record["size"]["flops_per_sample"] > 0 and record["latency"]["median_s"] > 0
    assert set(record["references"]) == {"torch"} and record["settings"]["repeats"] == 3


def test_measure_int8_calibrates_on_the_tasks_training_rows(student, tmp_path):
    out = tmp_path / "m.json"
    argv = ["measure", "--model-kind", "student", "--model", str(student["dir"]), "--engine", "onnxruntime-int8",
            "--batch", "2", "--seq-len", "8", "--threads", "1", "--out", str(out), "--task", "MRPC", "--int8", "static",
            "--data", str(student["data_dir"]), "--calibration-examples", "48", "--repeats", "2", *FAST]
    assert main(argv) == 0
    record = validate_measurement(io.read_json(out))
    int8 = record["onnx"]["int8"]
    assert int8["mode"] == "static" and int8["calibration"]["source"] == "data"
    assert int8["calibration"]["split"] == "train" and int8["calibration"]["rows"] == 48
    assert int8["graphs"]["static"]["calibration_rows"] == 48
    assert set(record["references"]) == {"onnxruntime"} and record["latency"]["repeats"] == 2


def test_measure_times_the_export_stages_graphs(student, tmp_path, capsys):
    """--export-dir: the ONNX Runtime engines time the export stage's own graphs (the int8 graph whose dev
    metric the export reports), verified against PyTorch, with nothing exported or quantised again and the
    export folder left as it was; an int8 mode the export did not build is refused, naming what it has."""
    export = tmp_path / "export"
    run_export({"measure": {"threads": 1, "int8": "static"}}, "MRPC", student["dir"], student["data_dir"], export)
    before = {p.name: p.stat().st_mtime_ns for p in export.iterdir()}
    out = tmp_path / "m"
    argv = ["measure", "--model-kind", "student", "--model", str(student["dir"]), "--engines", "onnxruntime",
            "onnxruntime-int8", "--shapes", "2x8", "--threads", "1", "--out-dir", str(out), "--task", "MRPC",
            "--int8", "static", "--export-dir", str(export), "--repeats", "2", *FAST]
    assert main(argv) == 0
    fp32 = validate_measurement(io.read_json(out / "onnxruntime.cpu.b2.s8.json"))
    int8 = validate_measurement(io.read_json(out / "onnxruntime-int8.cpu.b2.s8.json"))
    assert fp32["onnx"]["timed_path"] == str(export / "student.onnx") and fp32["onnx"]["verify"]["max_abs_diff"] <= 1e-4
    assert fp32["onnx"]["source"] == f"export stage ({export})"
    graph = int8["onnx"]["int8"]["graphs"]["static"]
    assert int8["onnx"]["timed_path"] == graph["path"] == str(export / "student.int8.onnx")
    summary = io.read_json(export / "export.json")
    assert int8["onnx"]["int8"]["calibration"] == summary["calibration"]
    assert graph["calibration_rows"] == summary["int8"]["static"]["calibration_rows"]
    assert {p.name: p.stat().st_mtime_ns for p in export.iterdir()} == before  # read, never written
    auto = [*argv[:argv.index("--int8") + 1], "auto", *argv[argv.index("--int8") + 2:]]
    assert _error(auto, capsys) == (f"error: {export}: int8 mode 'auto' needs the ['dynamic'] graph(s), the export "
                                    "has ['static']")
    assert _error([*argv, "--onnx-dir", str(tmp_path / "o")], capsys) == (
        "error: measure: --export-dir times the export stage's graphs; --onnx-dir would not be used")


def test_measure_cli_measures_every_engine_and_shape_in_one_process(student, tmp_path):
    """``--engines`` and ``--shapes``: one process, one JSON per engine and shape in ``--out-dir``, named as the
    workflow's outputs; the engines of a shape are timed in one interleaved set."""
    out = tmp_path / "m"
    argv = ["measure", "--model-kind", "student", "--model", str(student["dir"]), "--engines", "torch",
            "onnxruntime@cpu", "--shapes", "2x8", "1x16", "--threads", "1", "--out-dir", str(out), "--task", "MRPC",
            "--variant", "main", "--seed", "0", "--repeats", "2", *FAST]
    assert main(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{e}.cpu.b{b}.s{n}.json" for e in ("torch", "onnxruntime") for b, n in ((2, 8), (1, 16)))
    for name in names:
        record = validate_measurement(io.read_json(out / name))
        assert record["subject"] == {"model_kind": "student", "task": "MRPC", "variant": "main", "seed": 0}
        other = "onnxruntime" if record["engine"] == "torch" else "torch"
        assert set(record["references"]) == {other}


def test_measure_cli_measures_several_models_in_one_process(student, tmp_path, capsys):
    """Several ``--model`` folders (a task's random architectures): one ``--out-dir`` and ``--seed`` each, the
    GEMM peak measured once and shared by every record."""
    outs = [tmp_path / "seed0", tmp_path / "seed3"]
    argv = ["measure", "--model-kind", "student", "--model", str(student["dir"]), str(student["dir"]), "--engines",
            "torch", "--shapes", "2x8", "--threads", "1", "--out-dir", *map(str, outs), "--task", "MRPC",
            "--variant", "random", "--seed", "0", "3", "--repeats", "2", *FAST]
    assert main(argv) == 0
    records = [validate_measurement(io.read_json(out / "torch.cpu.b2.s8.json")) for out in outs]
    assert [r["subject"]["seed"] for r in records] == [0, 3]
    assert {r["subject"]["variant"] for r in records} == {"random"}
    assert records[0]["peak"] == records[1]["peak"] and records[0]["peak"]["gflops"] > 0
    assert records[0]["latency"] != records[1]["latency"]  # each model timed on its own
    bad = [*argv[:argv.index("--out-dir") + 2], *argv[argv.index("--task"):]]  # one --out-dir for two models
    assert _error(bad, capsys) == ("error: measure: 2 --model folders need as many --out-dir and --seed values, "
                                   "as many --export-dir values or none, and no --onnx-dir (--out-dir has 1)")
    assert _error([*argv, "--export-dir", str(tmp_path / "e")], capsys) == (
        "error: measure: 2 --model folders need as many --out-dir and --seed values, as many --export-dir values "
        "or none, and no --onnx-dir (--export-dir has 1)")
    one = ["measure", "--model-kind", "student", "--model", str(student["dir"]), "--engines", "torch", "--shapes",
           "2x8", "--threads", "1", "--out-dir", str(tmp_path / "a"), str(tmp_path / "b")]
    assert _error(one, capsys) == "error: measure: one --model takes one --out-dir, one --seed and one --export-dir"


def test_measure_cli_times_each_model_on_its_own_export(student, tmp_path):
    """Several ``--model`` folders with one ``--export-dir`` each (the searched students of a task in one job):
    each model's ONNX Runtime record times the graph of its own export folder."""
    first = tmp_path / "export0"
    run_export({"measure": {"threads": 1, "int8": "static"}}, "MRPC", student["dir"], student["data_dir"], first)
    second = tmp_path / "export1"
    shutil.copytree(first, second)
    outs = [tmp_path / "seed0", tmp_path / "seed1"]
    argv = ["measure", "--model-kind", "student", "--model", str(student["dir"]), str(student["dir"]), "--engines",
            "onnxruntime", "--shapes", "2x8", "--threads", "1", "--out-dir", *map(str, outs), "--task", "MRPC",
            "--variant", "main", "--seed", "0", "1", "--export-dir", str(first), str(second), "--repeats", "2", *FAST]
    assert main(argv) == 0
    records = [validate_measurement(io.read_json(out / "onnxruntime.cpu.b2.s8.json")) for out in outs]
    assert [r["onnx"]["timed_path"] for r in records] == [str(first / "student.onnx"), str(second / "student.onnx")]
    assert [r["subject"]["seed"] for r in records] == [0, 1]


def test_measure_cli_refuses_ambiguous_requests(tmp_path, capsys):
    base = ["measure", "--model-kind", "bert-base", "--threads", "1"]
    out_dir, out = str(tmp_path / "m"), str(tmp_path / "m.json")
    assert _error([*base, "--engine", "torch", "--batch", "1", "--seq-len", "8"], capsys) == (
        "error: measure: give --out FILE (one measurement) or --out-dir DIR")
    assert _error([*base, "--engines", "torch", "onnxruntime", "--shapes", "1x8", "--out", out], capsys) == (
        "error: measure: --out names one file, but 2 measurements were asked for; use --out-dir")
    assert _error([*base, "--engines", "torch", "--shapes", "1-8", "--out-dir", out_dir], capsys) == (
        "error: --shapes: '1-8' is not BATCHxSEQ_LEN (e.g. 128x128)")
    assert _error([*base, "--engines", "torch@tpu", "--shapes", "1x8", "--out-dir", out_dir], capsys).startswith(
        "error: --engines: 'torch@tpu' is not ENGINE or ENGINE@DEVICE")
    both = ["--engine", "torch", "--engines", "torch"]
    assert _error([*base, *both, "--shapes", "1x8", "--out-dir", out_dir], capsys) == (
        "error: measure: give --engine ENGINE or --engines ENGINE[@DEVICE] ...")
    assert _error([*base, "--engine", "torch", "--batch", "1", "--shapes", "1x8", "--out-dir", out_dir], capsys) == (
        "error: measure: give --batch and --seq-len, or --shapes, not both")
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.json").exists()


def test_measure_refuses_bad_requests(student, tmp_path, capsys):
    argv = ["measure", "--model-kind", "student", "--engine", "torch", "--batch", "1", "--seq-len", "8",
            "--threads", "1", "--out", str(tmp_path / "m.json")]
    assert _error(argv, capsys) == "error: --model is required for a student (its retrained folder)"
    if not torch.cuda.is_available():
        argv = argv[:3] + ["--model", str(student["dir"]), "--device", "cuda"] + argv[3:]
        assert _error(argv, capsys) == "error: device 'cuda' requested, but torch sees no CUDA GPU on this machine"
    assert not (tmp_path / "m.json").exists()


def test_efficiency_table(student, tmp_path):
    from adabert.report.efficiency_table import write_efficiency_table

    common = dict(engine="torch", device="cpu", batch=2, seq_len=8, threads=1, min_seconds=0.01, min_batches=1,
                  warmup=1, peak_seconds=0.01)
    s_json, t_json, b_json = tmp_path / "s.json", tmp_path / "t.json", tmp_path / "b.json"
    s = measure_model("student", student["dir"], out_json=s_json, subject={"task": "MRPC", "variant": "main", "seed": 0},
                      **common)
    t = measure_model("teacher", student["teacher_dir"], out_json=t_json, subject={"task": "MRPC"}, **common)
    # A BERT-base stand-in: the teacher's record relabelled, 4x slower (the table's arithmetic is under test).
    b = copy.deepcopy(t)
    b["model"]["kind"], b["subject"] = "bert-base-arch", {"model_kind": "bert-base"}
    b["latency"]["median_s"] *= 4
    io.write_json(b_json, b)
    # a reference from another machine is never compared with
    other = copy.deepcopy(b)
    other["machine"]["cpu_model"] = "another CPU"
    other["latency"]["median_s"] = 1e-9
    io.write_json(tmp_path / "other.json", other)
    export = run_export({"measure": {"threads": 1}}, "MRPC", student["dir"], student["data_dir"], tmp_path / "e")
    md, csv = tmp_path / "eff.md", tmp_path / "eff.csv"
    df = write_efficiency_table([s_json, t_json, b_json, tmp_path / "other.json"], [student["dir"] / "metrics.json"],
                                [Path(student["teacher_dir"]) / "metrics.json"], [tmp_path / "e" / "export.json"], md, csv)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["speedup_vs_teacher"] == pytest.approx(t["latency"]["median_s"] / s["latency"]["median_s"])
    assert row["speedup_vs_bert"] == pytest.approx(4 * t["latency"]["median_s"] / s["latency"]["median_s"])
    assert row["compression_vs_teacher"] == pytest.approx(t["size"]["params"] / s["size"]["params"])
    assert row["params_M"] == pytest.approx(s["size"]["params"] / 1e6)
    retrained = io.read_json(student["dir"] / "metrics.json")
    teacher = io.read_json(Path(student["teacher_dir"]) / "metrics.json")
    assert row["student_dev"] == pytest.approx(retrained["main_value"])
    assert row["teacher_dev"] == pytest.approx(teacher["main_value"])
    assert row["int8_drop"] == pytest.approx(export["int8_drop_points"])
    assert row["gflops"] == pytest.approx(s["achieved_gflops"])
    assert md.read_text().startswith("# Student efficiency") and pd.read_csv(csv).shape[0] == 1
    refs = pd.read_csv(tmp_path / "eff_references.csv")
    assert set(refs["model"]) == {"teacher", "bert-base"}
    n_dev = n_rows(Path(student["cfg"]["glue_dir"]) / "MRPC" / "dev.tsv")  # the full copy: 408
    assert row["split_kind"] == f"dev subset (64 of {n_dev:,})"  # the small config caps MRPC dev at 64 rows

    # The main comparison table from the same real outputs: its numbers equal the result JSONs.
    from adabert.report.main_table import write_main_table

    main = write_main_table(REPO / "paper/reported.yaml", [Path(student["teacher_dir"]) / "metrics.json"],
                            [student["dir"] / "metrics.json"], csv, tmp_path / "tables" / "main")
    ours = main[main["method"] == "AdaBERT student (this run)"].iloc[0]
    assert ours["MRPC_value"] == pytest.approx(retrained["main_value"]) and ours["split"] == "dev"
    assert ours["params_M"] == f"{retrained['params'] / 1e6:.1f}"  # one student: one number, not a range
    assert ours["speedup_vs_bert"] == f"{row['speedup_vs_bert']:.1f}"
    mine = main[main["source"] == "this run"].iloc[0]
    assert mine["MRPC_value"] == pytest.approx(teacher["main_value"])
    assert mine["speedup_vs_bert"] == "4.0"  # the stand-in BERT-base is 4x the teacher
    assert mine["params_M"] == f"{teacher['params'] / 1e6:.1f}"  # one teacher size: one number
    assert ours["MRPC_split"] == row["split_kind"] and ours["MRPC"].endswith(" ‡")  # the capped dev split
    paper = main[main["method"] == "AdaBERT"].iloc[0]
    assert paper["split"] == "test" and paper["MRPC_value"] == 85.1 and paper["speedup_vs_bert"] == "12.7-29.3"
    assert paper["status"] == "paper text: speedup; secondary source: params, scores, average"
    for suffix in (".md", ".tex", ".csv"):
        assert (tmp_path / "tables" / f"main{suffix}").is_file()
    md = (tmp_path / "tables" / "main.md").read_text()
    assert "(unverified)" not in md and "‡ dev subset (n of N): MRPC" in md

    # and the efficiency figures
    from adabert.report.figures import pareto_figure, speedup_figure

    speed = speedup_figure(pd.read_csv(csv), tmp_path / "fig" / "speedup", batch=2, seq_len=8)
    assert speed["speedup_vs_bert"].tolist() == pytest.approx([row["speedup_vs_bert"]])
    plotted = pareto_figure(pd.read_csv(csv), refs, {"MRPC": teacher["main_value"]}, tmp_path / "fig" / "pareto")
    assert plotted["MRPC"]["students"] == [(pytest.approx(row["latency_ms"]), pytest.approx(row["student_dev"]))]
    assert plotted["MRPC"]["teacher"][1] == teacher["main_value"]
