"""One measurement = one model, one engine, one device, one batch shape -> one JSON file.

``measure()`` sets the threads first, computes the size report (parameters, serialized bytes, FLOPs
per sample), exports/verifies/quantises the ONNX graph when an ONNX Runtime engine is asked for,
times the model (:mod:`adabert.measure.timing`) and writes the JSON atomically after validating it
against :data:`MEASUREMENT_SCHEMA`. A GPU measurement on a machine without CUDA (or an ONNX Runtime
without its CUDA provider) is an :class:`~adabert.errors.AdabertError`: no row is ever faked.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from adabert import io
from adabert.errors import AdabertError
from adabert.measure import machine, onnx_export, size, timing
from adabert.measure.reference import ModelUnderTest

SCHEMA_VERSION = 1
ENGINES = ("torch", "onnxruntime", "onnxruntime-int8")
DEVICES = ("cpu", "cuda")
PROTOCOL_NOTE = (
    "CPU: timed a bounded number of batches (until both >= min_seconds of timed work and >= min_batches "
    "batches, after warm-up batches, same input batch reused) instead of the paper's 50,000 samples; "
    "throughput = batch / median batch latency"
)
INT8_NOTE = (
    "onnxruntime dynamic quantisation (QInt8 weights, activations quantised at run time) of MatMul/Gemm "
    "and Conv; embeddings stay fp32"
)

ACHIEVED_NOTE = (
    "achieved_gflops = size.flops_per_sample * batch / latency.median_s / 1e9 (the model's fp32 FLOPs as "
    "counted in PyTorch, for every engine, int8 included); peak_gflops = measured fp32 GEMM throughput, so an "
    "int8 engine can exceed a fraction_of_peak of 1"
)

_num = {"type": "number", "minimum": 0}
_int = {"type": "integer", "minimum": 0}
_pos_int = {"type": "integer", "minimum": 1}

MEASUREMENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "adabert speed/size measurement",
    "type": "object",
    "required": [
        "schema_version", "model", "engine", "device", "batch", "seq_len", "threads", "latency",
        "throughput_samples_per_s", "size", "achieved_gflops", "machine", "versions", "settings", "protocol",
    ],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "model": {
            "type": "object",
            "required": ["name", "kind", "label"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "kind": {"enum": ["student", "teacher", "bert-base-arch"]},
                "label": {"type": "string"},
                "info": {"type": "object"},
            },
        },
        "engine": {"enum": list(ENGINES)},
        "device": {"enum": list(DEVICES)},
        "batch": _pos_int,
        "seq_len": _pos_int,
        "threads": _pos_int,
        "latency": {
            "type": "object",
            "required": ["median_s", "p90_s", "mean_s", "n_batches", "total_s"],
            "properties": {
                "median_s": {"type": "number", "exclusiveMinimum": 0},
                "p90_s": _num, "mean_s": _num, "min_s": _num, "std_s": _num,
                "n_batches": _pos_int, "total_s": _num, "warmup_batches": _int,
            },
        },
        "throughput_samples_per_s": {"type": "number", "exclusiveMinimum": 0},
        "size": {
            "type": "object",
            "required": ["params", "params_no_embeddings", "file_bytes", "flops_per_sample"],
            "properties": {
                "params": _int, "params_no_embeddings": _int, "embedding_params": _int,
                "file_bytes": _int, "flops_per_sample": _int, "onnx_file_bytes": _int,
            },
        },
        "achieved_gflops": _num,
        "peak_gflops": {"type": ["number", "null"], "minimum": 0},
        "fraction_of_peak": {"type": ["number", "null"], "minimum": 0},
        "onnx": {"type": ["object", "null"]},
        "machine": {
            "type": "object",
            "required": ["cpu_model", "logical_cores", "torch_num_threads", "threads_setting", "versions"],
            "properties": {"threads_setting": {"type": "object", "required": ["requested"]}},
        },
        "versions": {"type": "object", "required": ["python", "torch"]},
        "settings": {
            "type": "object",
            "required": ["min_seconds", "min_batches", "warmup_batches"],
            "properties": {"min_seconds": _num, "min_batches": _pos_int, "warmup_batches": _int},
        },
        "protocol": {"type": "string", "minLength": 1},
    },
}


def validate_measurement(record: dict[str, Any]) -> dict[str, Any]:
    """Check ``record`` against :data:`MEASUREMENT_SCHEMA`; an :class:`AdabertError` names the first problem."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(MEASUREMENT_SCHEMA)
    errors = sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise AdabertError(f"measurement JSON invalid at {where}: {err.message}")
    return record


def check_engine_device(engine: str, device: str) -> list[str] | None:
    """Refuse impossible combinations; return the ONNX Runtime providers for ORT engines (None for torch)."""
    if engine not in ENGINES:
        raise AdabertError(f"engine must be one of {ENGINES}, got {engine!r}")
    if device not in DEVICES:
        raise AdabertError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise AdabertError("device 'cuda' requested, but torch sees no CUDA GPU on this machine")
    if engine == "torch":
        return None
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if engine == "onnxruntime-int8":
        raise AdabertError("engine 'onnxruntime-int8' is CPU only (dynamic int8 kernels run on the CPU provider)")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise AdabertError(f"device 'cuda' with onnxruntime needs CUDAExecutionProvider; available: {ort.get_available_providers()}")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def prepare_onnx(mut: ModelUnderTest, engine: str, onnx_dir: Path, providers: list[str],
                 verify_batch: int = 2, verify_seq_len: int = 16, tolerance: float = onnx_export.DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Export ``mut`` to ``onnx_dir/{name}.onnx`` (reusing a file that still verifies), verify it against
    PyTorch, and for int8 quantise it to ``{name}.int8.onnx``. Returns where and how well."""
    onnx_dir.mkdir(parents=True, exist_ok=True)
    fp32 = onnx_dir / f"{mut.name}.onnx"
    check_inputs = mut.make_inputs(verify_batch, verify_seq_len)
    reused = False
    if fp32.is_file():
        try:
            diff = onnx_export.verify_onnx(mut.module, fp32, check_inputs, tolerance)
            reused = True
        except AdabertError:
            reused = False
    if not reused:
        onnx_export.export_onnx(mut.module, mut.make_inputs(verify_batch, verify_seq_len), fp32,
                                input_names=mut.input_names, output_names=mut.output_names, dynamic_axes=mut.dynamic_axes)
        diff = onnx_export.verify_onnx(mut.module, fp32, check_inputs, tolerance)
    info: dict[str, Any] = {
        "path": str(fp32), "opset": onnx_export.OPSET, "reused_existing_file": reused,
        "verify": {"batch": verify_batch, "seq_len": verify_seq_len, "max_abs_diff": diff, "tolerance": tolerance},
        "timed_path": str(fp32),
    }
    if engine == "onnxruntime-int8":
        int8 = onnx_export.quantize_int8(fp32, onnx_dir / f"{mut.name}.int8.onnx")
        info["timed_path"] = str(int8)
        info["int8"] = {
            "note": INT8_NOTE,
            # int8 is not expected to match fp32 to 1e-4: recorded, not checked
            "max_abs_diff_vs_torch": onnx_export.onnx_max_abs_diff(mut.module, int8, check_inputs, ["CPUExecutionProvider"]),
        }
    info["file_bytes"] = Path(info["timed_path"]).stat().st_size
    return info


def measure(mut: ModelUnderTest, engine: str = "torch", device: str = "cpu", batch: int = 128, seq_len: int = 128,
            threads: int = 1, out_json: str | Path | None = None, min_seconds: float = 10.0, min_batches: int = 5,
            onnx_dir: str | Path | None = None, warmup: int = 2, max_batches: int | None = None,
            peak_seconds: float = 1.0) -> dict[str, Any]:
    """Measure ``mut`` once and return (and write to ``out_json``, if given) the measurement record.

    ``threads`` is applied first (:func:`machine.set_threads`). ``onnx_dir`` holds the exported graphs
    (a temporary folder if None). ``peak_seconds`` > 0 also measures the fp32 GEMM peak of the device
    for ``fraction_of_peak``; 0 skips it (null in the JSON).
    """
    providers = check_engine_device(engine, device)
    if batch < 1 or seq_len < 1:
        raise AdabertError(f"batch and seq_len must be >= 1, got {batch}, {seq_len}")
    machine.set_threads(int(threads))

    mut.module.cpu().eval()
    size_info = size.size_report(mut.module, mut.make_inputs, seq_len)
    inputs = mut.make_inputs(batch, seq_len)

    onnx_info = None
    if engine == "torch":
        lat = timing.time_torch(mut.module, inputs, device, min_seconds, min_batches, warmup, max_batches)
    else:
        with tempfile.TemporaryDirectory(prefix="adabert-onnx-") as tmp:
            folder = Path(onnx_dir) if onnx_dir is not None else Path(tmp)
            onnx_info = prepare_onnx(mut, engine, folder, providers)
            lat = timing.time_ort(onnx_info["timed_path"], inputs, providers, threads, min_seconds, min_batches,
                                  warmup, max_batches)
            if onnx_dir is None:
                onnx_info["path"] = onnx_info["timed_path"] = None  # temporary, deleted
        size_info["onnx_file_bytes"] = onnx_info["file_bytes"]
        onnx_info["providers"] = lat.pop("providers")
    mut.module.cpu()

    latency = {k: lat[k] for k in ("median_s", "p90_s", "mean_s", "min_s", "std_s", "n_batches", "total_s", "warmup_batches")}
    achieved = size_info["flops_per_sample"] * batch / latency["median_s"] / 1e9
    peak = machine.matmul_peak_gflops(device, peak_seconds)["gflops"] if peak_seconds > 0 else None
    info = machine.machine_info()
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": {"name": mut.name, "kind": mut.kind, "label": mut.label, "info": mut.info},
        "engine": engine,
        "device": device,
        "batch": int(batch),
        "seq_len": int(seq_len),
        "threads": int(threads),
        "latency": latency,
        "throughput_samples_per_s": lat["throughput_samples_per_s"],
        "size": size_info,
        "achieved_gflops": achieved,
        "peak_gflops": peak,
        "fraction_of_peak": (achieved / peak) if peak else None,
        "onnx": onnx_info,
        "machine": info,
        "versions": info["versions"],
        "settings": {"min_seconds": min_seconds, "min_batches": min_batches, "warmup_batches": warmup,
                     "max_batches": max_batches, "peak_seconds": peak_seconds, "timer": lat["timer"],
                     "inputs": "synthetic token ids uniform in the vocabulary, masks all ones",
                     "achieved_gflops": ACHIEVED_NOTE},
        "protocol": PROTOCOL_NOTE,
    }
    validate_measurement(record)
    if out_json is not None:
        io.write_json(out_json, record)
    return record
