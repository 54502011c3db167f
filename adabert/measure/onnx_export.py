"""ONNX export, numerical verification against PyTorch, and int8 dynamic quantisation.

Export uses the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``, opset 17): it
handles Hugging Face BERT models (SDPA or eager attention) and conv students without extra packages
(the dynamo exporter needs ``onnxscript``, not a dependency here). If the export of a transformers
model fails with its current attention implementation, it is retried once with
``attn_implementation="eager"`` (then restored). Batch and sequence axes are dynamic, so one file
serves every batch size and length.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from adabert.errors import AdabertError
from adabert.io import atomic_path

log = logging.getLogger(__name__)

OPSET = 17
DEFAULT_TOLERANCE = 1e-4


def logits_of(output: Any) -> torch.Tensor:
    """The logits tensor of a forward output: a tensor, an HF ``ModelOutput`` (``.logits``) or a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, Mapping) and isinstance(output.get("logits"), torch.Tensor):
        return output["logits"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise AdabertError(f"cannot find the logits in a model output of type {type(output).__name__}")


class _Positional(nn.Module):
    """Calls ``module(**{name: arg})`` from positional args in ``input_names`` order; returns the logits."""

    def __init__(self, module: nn.Module, input_names: Sequence[str]) -> None:
        super().__init__()
        self.module = module
        self.input_names = list(input_names)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return logits_of(self.module(**dict(zip(self.input_names, args))))


def default_dynamic_axes(input_names: Sequence[str], output_names: Sequence[str], inputs: Mapping[str, torch.Tensor]) -> dict[str, dict[int, str]]:
    """Batch (axis 0) and sequence (axis 1 of 2-D inputs) dynamic for inputs; batch dynamic for outputs."""
    axes: dict[str, dict[int, str]] = {}
    for name in input_names:
        axes[name] = {0: "batch", 1: "seq"} if inputs[name].dim() >= 2 else {0: "batch"}
    for name in output_names:
        axes[name] = {0: "batch"}
    return axes


def _attn_implementation(module: nn.Module) -> str | None:
    config = getattr(module, "config", None)
    return getattr(config, "_attn_implementation", None) if config is not None else None


def _export(module: nn.Module, inputs: Mapping[str, torch.Tensor], path: Path, input_names: Sequence[str],
            output_names: Sequence[str], dynamic_axes: Mapping[str, Mapping[int, str]], opset: int) -> None:
    wrapper = _Positional(module, input_names).eval()
    args = tuple(inputs[name].cpu() for name in input_names)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about python control flow on shapes
        torch.onnx.export(
            wrapper, args, str(path), input_names=list(input_names), output_names=list(output_names),
            dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()}, opset_version=opset, dynamo=False,
            do_constant_folding=True,
        )


def export_onnx(module: nn.Module, inputs: Mapping[str, torch.Tensor], path: str | Path,
                input_names: Sequence[str] | None = None, output_names: Sequence[str] = ("logits",),
                dynamic_axes: Mapping[str, Mapping[int, str]] | None = None, opset: int = OPSET) -> Path:
    """Export ``module`` (called as ``module(**inputs)``, on CPU, eval) to ``path`` (written atomically).

    ``input_names`` default to the keys of ``inputs``; ``dynamic_axes`` default to dynamic batch and
    sequence (:func:`default_dynamic_axes`). The file is checked with ``onnx.checker``.
    """
    import onnx

    path = Path(path)
    input_names = list(input_names or inputs.keys())
    missing = [n for n in input_names if n not in inputs]
    if missing:
        raise AdabertError(f"export_onnx: example inputs lack {missing}")
    axes = dynamic_axes or default_dynamic_axes(input_names, output_names, inputs)
    module = module.cpu()
    was_training = module.training
    module.eval()
    try:
        with atomic_path(path) as tmp:
            try:
                _export(module, inputs, tmp, input_names, output_names, axes, opset)
            except Exception as exc:  # noqa: BLE001 - exporter raises many types
                attn = _attn_implementation(module)
                if attn in (None, "eager") or not hasattr(module, "set_attn_implementation"):
                    raise AdabertError(f"ONNX export to {path} failed ({type(exc).__name__}: {exc})") from exc
                log.info("ONNX export with attention %r failed (%s); retrying with eager attention", attn, exc)
                module.set_attn_implementation("eager")
                try:
                    _export(module, inputs, tmp, input_names, output_names, axes, opset)
                finally:
                    module.set_attn_implementation(attn)
            onnx.checker.check_model(str(tmp))
    finally:
        module.train(was_training)
    return path


def ort_session(path: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",), threads: int | None = None):
    """An ONNX Runtime session: graph optimisation ALL, sequential execution, ``threads`` intra-op threads."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    absent = [p for p in providers if p not in available]
    if absent:
        raise AdabertError(f"ONNX Runtime providers {absent} are not available (available: {available})")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except Exception as exc:  # noqa: BLE001 - ORT raises its own types
        raise AdabertError(f"{path}: ONNX Runtime could not load it ({type(exc).__name__}: {exc})") from exc


def numpy_inputs(session, inputs: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The session's inputs as numpy arrays (names the graph does not use are dropped)."""
    names = [i.name for i in session.get_inputs()]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise AdabertError(f"ONNX graph needs inputs {missing} that were not given")
    return {n: inputs[n].detach().cpu().numpy() for n in names}


def torch_logits(module: nn.Module, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return logits_of(module(**inputs)).float().cpu()
    finally:
        module.train(was_training)


def onnx_max_abs_diff(module: nn.Module, path: str | Path, inputs: Mapping[str, torch.Tensor],
                      providers: Sequence[str] = ("CPUExecutionProvider",), session=None) -> float:
    """Max absolute difference between ONNX Runtime and PyTorch logits on ``inputs`` (no tolerance check)."""
    session = session or ort_session(path, providers)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    expected = torch_logits(module, {k: v.to(device) for k, v in inputs.items()}).numpy()
    got = session.run(None, numpy_inputs(session, inputs))[0]
    if got.shape != expected.shape:
        raise AdabertError(f"{path}: ONNX output shape {got.shape} != PyTorch {expected.shape}")
    return float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)))) if got.size else 0.0


def verify_onnx(module: nn.Module, path: str | Path, inputs: Mapping[str, torch.Tensor],
                tolerance: float = DEFAULT_TOLERANCE, providers: Sequence[str] = ("CPUExecutionProvider",)) -> float:
    """Run the exported graph on ``inputs`` and compare with PyTorch; return the max abs difference.

    Raises :class:`AdabertError` if it exceeds ``tolerance`` or the output is not finite.
    """
    diff = onnx_max_abs_diff(module, path, inputs, providers)
    if not np.isfinite(diff) or diff > tolerance:
        raise AdabertError(f"{path}: ONNX Runtime logits differ from PyTorch by {diff:.3g} (tolerance {tolerance:g})")
    return diff


def quantize_int8(path_in: str | Path, path_out: str | Path, include_conv: bool = True, per_channel: bool = False) -> Path:
    """Dynamic int8 quantisation (``onnxruntime.quantization.quantize_dynamic``, QInt8 weights).

    Dynamic quantisation rewrites MatMul/Gemm (all of BERT's dense layers) into integer kernels with
    activations quantised on the fly; with ``include_conv`` Conv nodes become ``ConvInteger`` as well
    (the students' convolutions), which the CPU execution provider runs. Embedding lookups (Gather)
    are left in fp32. The result is checked to load on ``CPUExecutionProvider``.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path_in, path_out = Path(path_in), Path(path_out)
    if not path_in.is_file():
        raise AdabertError(f"{path_in}: ONNX file not found")
    op_types = ["MatMul", "Gemm"] + (["Conv"] if include_conv else [])
    with atomic_path(path_out) as tmp:
        try:
            quantize_dynamic(str(path_in), str(tmp), op_types_to_quantize=op_types, per_channel=per_channel,
                             weight_type=QuantType.QInt8)
        except Exception as exc:  # noqa: BLE001
            raise AdabertError(f"int8 quantisation of {path_in} failed ({type(exc).__name__}: {exc})") from exc
        ort_session(tmp, ("CPUExecutionProvider",))  # loads, or AdabertError
    return path_out
