"""Measurements of one model: every (engine, device, batch shape) asked for -> one JSON record each.

:func:`measure_many` sets the threads first, exports/verifies the ONNX graph and builds its int8 graphs
once (when an ONNX Runtime engine is asked for), then per shape computes the size report (parameters,
serialized bytes, FLOPs per sample) and times the engines of each device (:mod:`adabert.measure.timing`:
warm-up, then repeated rounds of at least ``min_batches`` batches and ``min_seconds`` of timed work;
median and spread), and validates each record against :data:`MEASUREMENT_SCHEMA`. :func:`measure` is one
engine, device and shape, written atomically to one JSON file.

References timed in the same job, interleaved with the engine under test (``references``), give
speedups whose drift cancels: the ONNX Runtime fp32 graph next to its int8 graphs, PyTorch next to
ONNX Runtime fp32, PyTorch fp32 next to fp16. When several engines are measured at one shape and
device, all of them and their references form one interleaved set, each runner timed once: every
record lists the other runners of its set as its references. Engine ``onnxruntime-int8`` builds the int8
graphs of ``int8_mode`` (:mod:`adabert.measure.quantize`): ``static`` (QDQ, calibrated on
``calibration`` batches: real training rows of the task, or synthetic rows for a model without one),
``dynamic``, or ``auto`` (both timed; the faster one is the measurement, and which it was is recorded).

GPU: engines ``torch`` (fp32), ``torch-fp16`` (fp16 autocast, cuda only) and ``onnxruntime`` (the CUDA
execution provider) run on ``device='cuda'``. A GPU measurement on a machine without CUDA (or an ONNX
Runtime without its CUDA provider) is an :class:`~adabert.errors.AdabertError`: no row is ever faked.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from adabert import io
from adabert.errors import AdabertError
from adabert.measure import machine, onnx_export, quantize, size, timing
from adabert.measure.reference import ModelUnderTest

SCHEMA_VERSION = 2
ENGINES = ("torch", "torch-fp16", "onnxruntime", "onnxruntime-int8")
DEVICES = ("cpu", "cuda")
PRECISION = {"torch": "fp32", "torch-fp16": "fp16", "onnxruntime": "fp32", "onnxruntime-int8": "int8"}
INT8 = "onnxruntime-int8"
RECORD_NAME = "{engine}.{device}.b{batch}.s{seq_len}.json"  # a measurement's file name in a model's folder
PROTOCOL_NOTE = (
    "timed a bounded number of batches instead of the paper's 50,000 samples: after warm-up batches, `repeats` "
    "rounds, each of at least min_batches batches and min_seconds of timed work (same input batch reused), the "
    "engine and its same-job references (with several engines at one shape and device: all of them) interleaved "
    "round by round; latency median = median of the rounds' "
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


def first_schema_error(record: Any, schema: dict[str, Any]) -> tuple[str, str] | None:
    """The first problem of ``record`` under JSON ``schema`` (by position in the record) as (path, message),
    or None when it conforms."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(record), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    return "/".join(str(p) for p in errors[0].absolute_path) or "(top level)", errors[0].message


def validate_measurement(record: dict[str, Any]) -> dict[str, Any]:
    """Check ``record`` against :data:`MEASUREMENT_SCHEMA`; an :class:`AdabertError` names the first problem."""
    error = first_schema_error(record, MEASUREMENT_SCHEMA)
    if error:
        raise AdabertError(f"measurement JSON invalid at {error[0]}: {error[1]}")
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
                 int8_mode: str = "auto", calibration: list | None = None, calibration_info: dict | None = None,
                 exported: dict | None = None) -> dict[str, Any]:
    """Export ``mut`` to ``onnx_dir/{name}.onnx`` (reusing a file that still verifies), verify it against
    PyTorch, and for int8 quantise it (``int8_mode``, :func:`adabert.measure.quantize.build_int8`; static
    graphs are calibrated on ``calibration``, described by ``calibration_info``). Returns where and how well;
    ``int8.graphs`` maps each int8 mode built to its file.

    ``exported`` (:func:`adabert.artifacts.read_export`): time the export stage's graphs instead, the very
    graphs whose dev metrics it reports; the fp32 graph is verified against PyTorch all the same, and each
    int8 mode of ``int8_mode`` must be among the exported ones."""
    check_inputs = mut.make_inputs(verify_batch, verify_seq_len)
    if exported is not None:
        fp32, reused = Path(exported["fp32"]), True
        diff = onnx_export.verify_onnx(mut.module, fp32, check_inputs, tolerance)
    else:
        onnx_dir.mkdir(parents=True, exist_ok=True)
        fp32, reused, diff = _own_fp32_graph(mut, onnx_dir, check_inputs, tolerance, verify_batch, verify_seq_len)
    info: dict[str, Any] = {
        "path": str(fp32), "opset": onnx_export.OPSET, "reused_existing_file": reused,
        "verify": {"batch": verify_batch, "seq_len": verify_seq_len, "max_abs_diff": diff, "tolerance": tolerance},
        "timed_path": str(fp32),
    }
    if exported is not None:
        info["source"] = f"export stage ({exported['dir']})"
    if engine == "onnxruntime-int8":
        if exported is not None:
            lacking = [m for m in quantize.modes_of(int8_mode) if m not in exported["int8"]]
            if lacking:
                raise AdabertError(f"{exported['dir']}: int8 mode {int8_mode!r} needs the {lacking} graph(s), "
                                   f"the export has {sorted(exported['int8'])}")
            built = {m: dict(exported["int8"][m]) for m in quantize.modes_of(int8_mode)}
            calibration_info = exported.get("calibration")
        else:
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


def _own_fp32_graph(mut: ModelUnderTest, onnx_dir: Path, check_inputs: dict, tolerance: float, verify_batch: int,
                    verify_seq_len: int) -> tuple[Path, bool, float]:
    """``onnx_dir/{name}.onnx``, reused when it is there and still verifies, else exported, and verified
    once: (path, reused, max abs difference from PyTorch)."""
    fp32 = onnx_dir / f"{mut.name}.onnx"
    if fp32.is_file():
        try:
            return fp32, True, onnx_export.verify_onnx(mut.module, fp32, check_inputs, tolerance)
        except AdabertError:
            pass
    onnx_export.export_onnx(mut.module, mut.make_inputs(verify_batch, verify_seq_len), fp32,
                            input_names=mut.input_names, output_names=mut.output_names, dynamic_axes=mut.dynamic_axes)
    return fp32, False, onnx_export.verify_onnx(mut.module, fp32, check_inputs, tolerance)


def _runner_names(engine: str, references: bool, int8_modes: Sequence[str]) -> list[str]:
    """The runners an engine needs: its own (``int8-{mode}`` for each int8 graph) and, with ``references``,
    its same-job reference (ONNX Runtime fp32 next to int8, PyTorch next to ONNX Runtime fp32, PyTorch fp32
    next to fp16)."""
    own = [f"int8-{m}" for m in int8_modes] if engine == INT8 else [engine]
    ref = {INT8: ["onnxruntime"], "onnxruntime": ["torch"], "torch-fp16": ["torch"]}.get(engine, [])
    return own + (ref if references else [])


def _runners(mut: ModelUnderTest, engines: Sequence[str], device: str, inputs: dict, threads: int,
             onnx_info: dict | None, references: bool, warmup_inputs: dict | None = None
             ) -> tuple[dict[str, Callable[[], float]], dict]:
    """The runners to time together on ``device``: every runner of every engine in ``engines``
    (:func:`_runner_names`), each built once (warming up on ``warmup_inputs``, if given). Also returns
    what each ONNX session ran on."""
    modes = list(((onnx_info or {}).get("int8") or {}).get("graphs", {}))
    names = list(dict.fromkeys(n for e in engines for n in _runner_names(e, references, modes)))
    steps: dict[str, Callable[[], float]] = {}
    sessions: dict[str, list[str]] = {}
    for name in names:
        if name.startswith("torch"):
            steps[name] = timing.torch_step(mut.module, inputs, device, PRECISION[name], warmup_inputs)
        elif name == "onnxruntime":
            providers = check_engine_device("onnxruntime", device)
            steps[name], sessions[name] = timing.ort_step(onnx_info["path"], inputs, providers, threads,
                                                          warmup_inputs)
        else:  # int8-{mode}: CPU only
            graph = onnx_info["int8"]["graphs"][name.removeprefix("int8-")]
            steps[name], sessions[name] = timing.ort_step(graph["path"], inputs, ["CPUExecutionProvider"], threads,
                                                          warmup_inputs)
    return steps, sessions


def _engine_onnx_info(onnx_info: dict | None, engine: str) -> dict | None:
    """The ONNX part of one engine's record (None for the PyTorch engines): a copy of the job's graphs,
    without the int8 graphs for the fp32 engine."""
    if onnx_info is None or engine.startswith("torch"):
        return None
    info = copy.deepcopy(onnx_info)
    if engine != INT8:
        info.pop("int8", None)
        info["timed_path"] = info["path"]
        info["file_bytes"] = Path(info["path"]).stat().st_size
    return info


def _time_engines(mut: ModelUnderTest, engines: Sequence[str], device: str, inputs: dict, threads: int,
                  onnx_info: dict | None, references: bool, protocol: dict, warmup_inputs: dict | None = None
                  ) -> dict[str, tuple[dict, dict, dict | None]]:
    """Time the engines of one device and shape, and their references, interleaved round by round in one
    set (with ``references`` false: each engine alone). Per engine: (its latency, every other runner of the
    set with its speedup, its ONNX record); for int8 ``auto`` the faster int8 graph is the engine's."""
    if not references and len(engines) > 1:
        return {e: v for engine in engines
                for e, v in _time_engines(mut, [engine], device, inputs, threads, onnx_info, False, protocol,
                                          warmup_inputs).items()}
    steps, sessions = _runners(mut, engines, device, inputs, threads, onnx_info, references, warmup_inputs)
    results = timing.time_interleaved(steps, int(next(iter(inputs.values())).shape[0]), **protocol)
    out = {}
    for engine in engines:
        own = [n for n in steps if (n.startswith("int8-") if engine == INT8 else n == engine)]
        chosen = min(own, key=lambda n: results[n]["median_s"])
        median = results[chosen]["median_s"]
        refs = {name: {"latency": lat, "speedup": lat["median_s"] / median} for name, lat in results.items()
                if name != chosen}
        info = _engine_onnx_info(onnx_info, engine)
        if info is not None:
            info["providers"] = sessions[chosen]
        if engine == INT8:
            mode = chosen.removeprefix("int8-")
            info["int8"].update({"mode": mode, "note": quantize.NOTES[mode],
                                 "medians_s": {n.removeprefix("int8-"): results[n]["median_s"] for n in own}})
            info["timed_path"] = info["int8"]["graphs"][mode]["path"]
            info["file_bytes"] = info["int8"]["graphs"][mode]["file_bytes"]
        out[engine] = (results[chosen], refs, info)
    return out


def gemm_peak(device: str, peak_seconds: float, repeats: int) -> dict[str, Any] | None:
    """The device's fp32 GEMM peak (:func:`machine.matmul_peak_gflops`), None when ``peak_seconds`` is 0."""
    return machine.matmul_peak_gflops(device, peak_seconds, repeats=repeats) if peak_seconds > 0 else None


def measure(mut: ModelUnderTest, engine: str = "torch", device: str = "cpu", batch: int = 128, seq_len: int = 128,
            threads: int = 1, out_json: str | Path | None = None, min_seconds: float = 2.0, min_batches: int = 3,
            onnx_dir: str | Path | None = None, warmup: int = 1, max_batches: int | None = None,
            peak_seconds: float = 1.0, repeats: int = 3, int8_mode: str = "auto", calibration: list | None = None,
            calibration_info: dict | None = None, calibration_examples: int = 256,
            references: bool = True, warmup_rows: int | None = None) -> dict[str, Any]:
    """Measure ``mut`` once and return (and write to ``out_json``, if given) the measurement record:
    :func:`measure_many` with one engine, device and shape."""
    record = measure_many(mut, [(engine, device)], [(batch, seq_len)], threads, min_seconds=min_seconds,
                          min_batches=min_batches, onnx_dir=onnx_dir, warmup=warmup, max_batches=max_batches,
                          peak_seconds=peak_seconds, repeats=repeats, int8_mode=int8_mode, calibration=calibration,
                          calibration_info=calibration_info, calibration_examples=calibration_examples,
                          references=references, warmup_rows=warmup_rows)[0]
    if out_json is not None:
        io.write_json(out_json, record)
    return record


def _check_request(runs: Sequence[tuple[str, str]], shapes: Sequence[tuple[int, int]], int8_mode: str) -> None:
    """Refuse an impossible request before anything is loaded, exported or timed."""
    if not runs or not shapes:
        raise AdabertError("measure: need at least one engine and one (batch, seq_len) shape")
    for engine, device in runs:
        check_engine_device(engine, device)
    quantize.modes_of(int8_mode)
    for batch, seq_len in shapes:
        if batch < 1 or seq_len < 1:
            raise AdabertError(f"batch and seq_len must be >= 1, got {batch}, {seq_len}")


def measure_many(mut: ModelUnderTest, runs: Sequence[tuple[str, str]], shapes: Sequence[tuple[int, int]],
                 threads: int = 1, *, min_seconds: float = 2.0, min_batches: int = 3,
                 onnx_dir: str | Path | None = None, warmup: int = 1, max_batches: int | None = None,
                 peak_seconds: float = 1.0, repeats: int = 3, int8_mode: str = "auto",
                 calibration: list | None = None, calibration_info: dict | None = None,
                 calibration_examples: int = 256, references: bool = True,
                 peaks: dict[str, Any] | None = None, exported: dict | None = None,
                 warmup_rows: int | None = None) -> list[dict[str, Any]]:
    """Every (engine, device) of ``runs`` at every (batch, seq_len) of ``shapes``, in one process: one
    record per combination (in the order shape, then run).

    ``threads`` is applied first (:func:`machine.set_threads`). The ONNX graph is exported and verified
    once, and the int8 graphs built once (static ones calibrated on ``calibration``; None:
    ``calibration_examples`` synthetic rows as long as the longest shape), into ``onnx_dir`` (a temporary
    folder if None). Per shape and device, the engines and their references are timed interleaved in one
    set (:func:`_time_engines`); the fp32 GEMM peak of a device (``peak_seconds`` > 0, ``repeats`` times;
    0 skips it, null in the JSON) is measured once and shared by its records; ``peaks`` (device -> peak,
    filled in place) shares it with the other models a process measures. ``exported``
    (:func:`adabert.artifacts.read_export`): the ONNX engines time the export stage's graphs
    (:func:`prepare_onnx`), nothing is exported or quantised here. ``warmup_rows``: the warm-up batches
    hold the timed batch's first ``warmup_rows`` rows (None: the whole batch).
    """
    runs, shapes = list(dict.fromkeys(runs)), list(dict.fromkeys(shapes))
    _check_request(runs, shapes, int8_mode)
    machine.set_threads(int(threads))
    protocol = {"min_seconds": min_seconds, "min_batches": min_batches, "warmup": warmup, "repeats": repeats,
                "max_batches": max_batches}
    timing.check_rule(min_seconds, min_batches, max_batches, warmup, repeats)
    if warmup_rows is not None and warmup_rows < 1:
        raise AdabertError(f"timing: warmup_rows must be >= 1 or None (the whole batch), got {warmup_rows}")
    settings = {"min_seconds": min_seconds, "min_batches": min_batches, "warmup_batches": warmup,
                "warmup_rows": warmup_rows, "repeats": repeats, "max_batches": max_batches,
                "peak_seconds": peak_seconds, "references": references}
    engines = [engine for engine, _ in runs]
    mut.module.cpu().eval()
    if INT8 in engines and exported is None and calibration is None and "static" in quantize.modes_of(int8_mode):
        calibration, calibration_info = quantize.synthetic_calibration(
            mut.make_inputs, calibration_examples, max(n for _, n in shapes))
    records, sizes = [], {}
    peaks = {} if peaks is None else peaks
    with tempfile.TemporaryDirectory(prefix="adabert-onnx-") as tmp:
        onnx_info = None
        if any(not e.startswith("torch") for e in engines):
            onnx_info = prepare_onnx(mut, INT8 if INT8 in engines else "onnxruntime",
                                     Path(onnx_dir) if onnx_dir is not None else Path(tmp), ["CPUExecutionProvider"],
                                     int8_mode=int8_mode, calibration=calibration, calibration_info=calibration_info,
                                     exported=exported)
        for batch, seq_len in shapes:
            mut.module.cpu()
            if seq_len not in sizes:  # FLOPs per sample depend on the sequence length only
                sizes[seq_len] = size.size_report(mut.module, mut.make_inputs, seq_len)
            size_info = sizes[seq_len]
            inputs = mut.make_inputs(batch, seq_len)
            warm = ({k: v[:warmup_rows] for k, v in inputs.items()}
                    if warmup_rows is not None and warmup_rows < batch else None)
            for device in dict.fromkeys(d for _, d in runs):
                on_device = [e for e, d in runs if d == device]
                timed = _time_engines(mut, on_device, device, inputs, threads, onnx_info, references, protocol, warm)
                if device not in peaks:
                    peaks[device] = gemm_peak(device, peak_seconds, repeats)
                for engine in on_device:
                    lat, refs, info = timed[engine]
                    sized = {**size_info, "onnx_file_bytes": info["file_bytes"]} if info else dict(size_info)
                    used = {**settings, "int8_mode": int8_mode if engine == INT8 else None}
                    records.append(build_record(mut, engine, device, batch, seq_len, threads, lat, refs, sized, info,
                                           peaks[device], used))
        for record in records:
            if onnx_dir is None and exported is None and record["onnx"] is not None:
                _forget_paths(record["onnx"])  # temporary, deleted
    mut.module.cpu()
    for record in records:
        validate_measurement(record)
    return records


def _forget_paths(onnx_info: dict) -> None:
    onnx_info["path"] = onnx_info["timed_path"] = None
    for graph in (onnx_info.get("int8") or {}).get("graphs", {}).values():
        graph["path"] = None


def build_record(mut: ModelUnderTest, engine: str, device: str, batch: int, seq_len: int, threads: int, lat: dict,
                 refs: dict, size_info: dict, onnx_info: dict | None, peak: dict | None, settings: dict
                 ) -> dict[str, Any]:
    """The measurement record (:data:`MEASUREMENT_SCHEMA`) of one engine at one shape: its latency summary
    ``lat`` (:func:`adabert.measure.timing.summarize`), the runners timed beside it ``refs`` ({name: {latency,
    speedup}}), its size report, ONNX graphs, the device's GEMM peak and the timing ``settings``."""
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
