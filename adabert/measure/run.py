"""One measurement = one model, one engine, one device, one batch shape -> one JSON file.

``measure()`` sets the threads first, computes the size report (parameters, serialized bytes, FLOPs
per sample), exports/verifies/quantises the ONNX graph when an ONNX Runtime engine is asked for,
times the model (:mod:`adabert.measure.timing`: warm-up, then repeated rounds of at least
``min_batches`` batches and ``min_seconds`` of timed work; median and spread) and writes the JSON
atomically after validating it against :data:`MEASUREMENT_SCHEMA`.

References timed in the same job, interleaved with the engine under test (``references``), give
speedups whose drift cancels: the ONNX Runtime fp32 graph next to its int8 graphs, PyTorch next to
ONNX Runtime fp32, PyTorch fp32 next to fp16. Engine ``onnxruntime-int8`` builds the int8 graphs of
``int8_mode`` (:mod:`adabert.measure.quantize`): ``static`` (QDQ, calibrated on ``calibration``
batches: real training rows of the task, or synthetic rows for a model without one), ``dynamic``, or
``auto`` (both timed; the faster one is the measurement, and which it was is recorded).

GPU: engines ``torch`` (fp32), ``torch-fp16`` (fp16 autocast, cuda only) and ``onnxruntime`` (the CUDA
execution provider) run on ``device='cuda'``. A GPU measurement on a machine without CUDA (or an ONNX
Runtime without its CUDA provider) is an :class:`~adabert.errors.AdabertError`: no row is ever faked.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from adabert import io
from adabert.errors import AdabertError
from adabert.measure import machine, onnx_export, quantize, size, timing
from adabert.measure.reference import ModelUnderTest

SCHEMA_VERSION = 2
ENGINES = ("torch", "torch-fp16", "onnxruntime", "onnxruntime-int8")
DEVICES = ("cpu", "cuda")
PRECISION = {"torch": "fp32", "torch-fp16": "fp16", "onnxruntime": "fp32", "onnxruntime-int8": "int8"}
PROTOCOL_NOTE = (
    "timed a bounded number of batches instead of the paper's 50,000 samples: after warm-up batches, `repeats` "
    "rounds, each of at least min_batches batches and min_seconds of timed work (same input batch reused), the "
    "engine and its same-job references interleaved round by round; latency median = median of the rounds' "
    "medians, spread = min/max of the round medians and the IQR of all batches; throughput = batch / median; "
    "speedups in `references` = the reference's median / this engine's median, both from the same job"
)
INT8_NOTE = quantize.DYNAMIC_NOTE  # the note of the dynamic graphs (kept for readers of older records)

ACHIEVED_NOTE = (
    "achieved_gflops = size.flops_per_sample * batch / latency.median_s / 1e9 (the model's fp32 FLOPs as "
    "counted in PyTorch, for every engine, int8 and fp16 included); peak_gflops = measured fp32 GEMM throughput "
    "(median of repeats, the faster of torch and ONNX Runtime), so an int8 or fp16 engine can exceed a "
    "fraction_of_peak of 1"
)

_num = {"type": "number", "minimum": 0}
_int = {"type": "integer", "minimum": 0}
_pos_int = {"type": "integer", "minimum": 1}

_LATENCY: dict[str, Any] = {
    "type": "object",
    "required": ["median_s", "p90_s", "mean_s", "n_batches", "total_s", "repeats", "repeat_min_s", "repeat_max_s",
                 "p25_s", "p75_s"],
    "properties": {
        "median_s": {"type": "number", "exclusiveMinimum": 0},
        "p25_s": _num, "p75_s": _num, "iqr_s": _num, "p90_s": _num, "mean_s": _num, "min_s": _num, "max_s": _num,
        "std_s": _num, "n_batches": _pos_int, "total_s": _num, "warmup_batches": _int, "repeats": _pos_int,
        "repeat_medians_s": {"type": "array", "items": _num, "minItems": 1},
        "repeat_min_s": _num, "repeat_max_s": _num, "repeat_spread": _num,
    },
}

MEASUREMENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "adabert speed/size measurement",
    "type": "object",
    "required": [
        "schema_version", "model", "engine", "device", "batch", "seq_len", "threads", "latency",
        "throughput_samples_per_s", "size", "achieved_gflops", "machine", "versions", "settings", "protocol",
        "precision",
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
        "latency": _LATENCY,
        "precision": {"enum": sorted(set(PRECISION.values()))},
        "references": {
            "type": "object",
            "description": "same-job runners timed interleaved with the engine: {name: {latency, speedup}}",
            "additionalProperties": {
                "type": "object",
                "required": ["latency", "speedup"],
                "properties": {"latency": _LATENCY, "speedup": {"type": "number", "exclusiveMinimum": 0}},
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
        "peak": {"type": ["object", "null"]},
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
            "required": ["min_seconds", "min_batches", "warmup_batches", "repeats"],
            "properties": {"min_seconds": _num, "min_batches": _pos_int, "warmup_batches": _int, "repeats": _pos_int},
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
    if engine == "torch-fp16" and device != "cuda":
        raise AdabertError("engine 'torch-fp16' runs on cuda only (fp16 autocast; use engine 'torch' on the CPU)")
    if engine.startswith("torch"):
        return None
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if engine == "onnxruntime-int8":
        raise AdabertError("engine 'onnxruntime-int8' is CPU only (its int8 kernels run on the CPU provider)")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise AdabertError(f"device 'cuda' with onnxruntime needs CUDAExecutionProvider; available: {ort.get_available_providers()}")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def prepare_onnx(mut: ModelUnderTest, engine: str, onnx_dir: Path, providers: list[str],
                 verify_batch: int = 2, verify_seq_len: int = 16, tolerance: float = onnx_export.DEFAULT_TOLERANCE,
                 int8_mode: str = "auto", calibration: list | None = None, calibration_info: dict | None = None
                 ) -> dict[str, Any]:
    """Export ``mut`` to ``onnx_dir/{name}.onnx`` (reusing a file that still verifies), verify it against
    PyTorch, and for int8 quantise it (``int8_mode``, :func:`adabert.measure.quantize.build_int8`; static
    graphs are calibrated on ``calibration``, described by ``calibration_info``). Returns where and how well;
    ``int8.graphs`` maps each int8 mode built to its file."""
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
        built = quantize.build_int8(fp32, onnx_dir, mut.name, int8_mode, calibration)
        graphs = {}
        for mode, graph in built.items():
            # int8 is not expected to match fp32 to 1e-4: recorded, not checked
            graph["max_abs_diff_vs_torch"] = onnx_export.onnx_max_abs_diff(
                mut.module, graph["path"], check_inputs, ["CPUExecutionProvider"])
            graph["file_bytes"] = Path(graph["path"]).stat().st_size
            graphs[mode] = {k: (str(v) if isinstance(v, Path) else v) for k, v in graph.items()}
        info["int8"] = {"requested": int8_mode, "graphs": graphs, "calibration": calibration_info}
        info["timed_path"] = graphs[next(iter(graphs))]["path"]
    info["file_bytes"] = Path(info["timed_path"]).stat().st_size
    return info


def _runners(mut: ModelUnderTest, engine: str, device: str, inputs: dict, providers: list[str] | None,
             threads: int, onnx_info: dict | None, references: bool) -> tuple[dict[str, Callable[[], float]], dict]:
    """The runners to time: the engine's own (``int8-{mode}`` for each int8 graph) and, with ``references``,
    the same-job references (see the module docstring). Also returns what each ONNX session ran on."""
    steps: dict[str, Callable[[], float]] = {}
    sessions: dict[str, list[str]] = {}
    if engine in ("torch", "torch-fp16"):
        steps[engine] = timing.torch_step(mut.module, inputs, device, PRECISION[engine])
        if references and engine == "torch-fp16":
            steps["torch"] = timing.torch_step(mut.module, inputs, device, "fp32")
        return steps, sessions
    if engine == "onnxruntime-int8":
        for mode, graph in onnx_info["int8"]["graphs"].items():
            steps[f"int8-{mode}"], sessions[f"int8-{mode}"] = timing.ort_step(graph["path"], inputs, providers, threads)
        if not references:
            return steps, sessions
    steps["onnxruntime"], sessions["onnxruntime"] = timing.ort_step(onnx_info["path"], inputs, providers, threads)
    if references and engine == "onnxruntime":
        steps["torch"] = timing.torch_step(mut.module, inputs, device, "fp32")
    return steps, sessions


def _time_engine(mut: ModelUnderTest, engine: str, device: str, inputs: dict, providers: list[str] | None,
                 threads: int, onnx_info: dict | None, references: bool, protocol: dict) -> tuple[dict, dict, str]:
    """Time the engine and its references interleaved; returns (the engine's latency, the references with
    their speedups, the runner measured: for int8 ``auto`` the faster int8 graph)."""
    steps, sessions = _runners(mut, engine, device, inputs, providers, threads, onnx_info, references)
    results = timing.time_interleaved(steps, int(next(iter(inputs.values())).shape[0]), **protocol)
    own = [n for n in steps if n == engine or n.startswith("int8-")]
    chosen = min(own, key=lambda n: results[n]["median_s"])
    median = results[chosen]["median_s"]
    refs = {name: {"latency": lat, "speedup": lat["median_s"] / median} for name, lat in results.items()
            if name != chosen}
    if onnx_info is not None:
        onnx_info["providers"] = sessions[chosen]
        if engine == "onnxruntime-int8":
            mode = chosen.removeprefix("int8-")
            onnx_info["int8"].update({"mode": mode, "note": quantize.NOTES[mode],
                                      "medians_s": {n.removeprefix("int8-"): results[n]["median_s"] for n in own}})
            onnx_info["timed_path"] = onnx_info["int8"]["graphs"][mode]["path"]
            onnx_info["file_bytes"] = onnx_info["int8"]["graphs"][mode]["file_bytes"]
    return results[chosen], refs, chosen


def _peak(device: str, peak_seconds: float, repeats: int) -> dict[str, Any] | None:
    return machine.matmul_peak_gflops(device, peak_seconds, repeats=repeats) if peak_seconds > 0 else None


def measure(mut: ModelUnderTest, engine: str = "torch", device: str = "cpu", batch: int = 128, seq_len: int = 128,
            threads: int = 1, out_json: str | Path | None = None, min_seconds: float = 2.0, min_batches: int = 3,
            onnx_dir: str | Path | None = None, warmup: int = 1, max_batches: int | None = None,
            peak_seconds: float = 1.0, repeats: int = 3, int8_mode: str = "auto", calibration: list | None = None,
            calibration_info: dict | None = None, calibration_examples: int = 256,
            references: bool = True) -> dict[str, Any]:
    """Measure ``mut`` once and return (and write to ``out_json``, if given) the measurement record.

    ``threads`` is applied first (:func:`machine.set_threads`). ``onnx_dir`` holds the exported graphs
    (a temporary folder if None). ``peak_seconds`` > 0 also measures the fp32 GEMM peak of the device
    (``repeats`` times) for ``fraction_of_peak``; 0 skips it (null in the JSON). Static int8 is calibrated
    on ``calibration`` (batches of graph inputs); None: ``calibration_examples`` synthetic rows.
    """
    providers = check_engine_device(engine, device)
    quantize.modes_of(int8_mode)
    if batch < 1 or seq_len < 1:
        raise AdabertError(f"batch and seq_len must be >= 1, got {batch}, {seq_len}")
    machine.set_threads(int(threads))
    protocol = {"min_seconds": min_seconds, "min_batches": min_batches, "warmup": warmup, "repeats": repeats,
                "max_batches": max_batches}
    timing.check_rule(min_seconds, min_batches, max_batches, warmup, repeats)

    mut.module.cpu().eval()
    size_info = size.size_report(mut.module, mut.make_inputs, seq_len)
    inputs = mut.make_inputs(batch, seq_len)
    if engine == "onnxruntime-int8" and calibration is None and "static" in quantize.modes_of(int8_mode):
        calibration, calibration_info = quantize.synthetic_calibration(mut.make_inputs, calibration_examples, seq_len)

    onnx_info = None
    with tempfile.TemporaryDirectory(prefix="adabert-onnx-") as tmp:
        if not engine.startswith("torch"):
            folder = Path(onnx_dir) if onnx_dir is not None else Path(tmp)
            onnx_info = prepare_onnx(mut, engine, folder, providers, int8_mode=int8_mode, calibration=calibration,
                                     calibration_info=calibration_info)
        lat, refs, _ = _time_engine(mut, engine, device, inputs, providers, threads, onnx_info, references, protocol)
        if onnx_info is not None:
            size_info["onnx_file_bytes"] = onnx_info["file_bytes"]
            if onnx_dir is None:
                _forget_paths(onnx_info)  # temporary, deleted
    mut.module.cpu()
    record = _record(mut, engine, device, batch, seq_len, threads, lat, refs, size_info, onnx_info,
                     _peak(device, peak_seconds, repeats),
                     {"min_seconds": min_seconds, "min_batches": min_batches, "warmup_batches": warmup,
                      "repeats": repeats, "max_batches": max_batches, "peak_seconds": peak_seconds,
                      "references": references, "int8_mode": int8_mode if engine == "onnxruntime-int8" else None})
    validate_measurement(record)
    if out_json is not None:
        io.write_json(out_json, record)
    return record


def _forget_paths(onnx_info: dict) -> None:
    onnx_info["path"] = onnx_info["timed_path"] = None
    for graph in (onnx_info.get("int8") or {}).get("graphs", {}).values():
        graph["path"] = None


def _record(mut: ModelUnderTest, engine: str, device: str, batch: int, seq_len: int, threads: int, lat: dict,
            refs: dict, size_info: dict, onnx_info: dict | None, peak: dict | None, settings: dict) -> dict[str, Any]:
    latency = {k: v for k, v in lat.items() if k in _LATENCY["properties"]}
    achieved = size_info["flops_per_sample"] * batch / latency["median_s"] / 1e9
    peak_gflops = peak["gflops"] if peak else None
    info = machine.machine_info()
    timer = timing.TORCH_TIMER if engine.startswith("torch") else timing.ORT_TIMER
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {"name": mut.name, "kind": mut.kind, "label": mut.label, "info": mut.info},
        "engine": engine,
        "device": device,
        "precision": PRECISION[engine],
        "batch": int(batch),
        "seq_len": int(seq_len),
        "threads": int(threads),
        "latency": latency,
        "throughput_samples_per_s": lat["throughput_samples_per_s"],
        "references": {name: {"latency": {k: v for k, v in ref["latency"].items() if k in _LATENCY["properties"]},
                              "speedup": ref["speedup"]} for name, ref in refs.items()},
        "size": size_info,
        "achieved_gflops": achieved,
        "peak_gflops": peak_gflops,
        "peak": peak,
        "fraction_of_peak": (achieved / peak_gflops) if peak_gflops else None,
        "onnx": onnx_info,
        "machine": info,
        "versions": info["versions"],
        "settings": {**settings, "timer": timer,
                     "inputs": "synthetic token ids uniform in the vocabulary, masks all ones",
                     "achieved_gflops": ACHIEVED_NOTE},
        "protocol": PROTOCOL_NOTE,
    }
