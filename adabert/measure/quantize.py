"""int8 ONNX graphs: static QDQ quantisation calibrated on real rows, dynamic quantisation, and the choice.

Static int8 (:func:`quantize_static_int8`, the default) follows ONNX Runtime's CPU recipe:

1. ``onnxruntime.quantization.shape_inference.quant_pre_process``: symbolic shape inference (with
   ``auto_merge``, which the Hugging Face graphs need), ORT's basic graph optimisation and ONNX shape
   inference. If symbolic inference still fails, ONNX shape inference alone is used (recorded).
2. ``quantize_static`` in the QDQ format: the Conv, MatMul and Gemm nodes (the students' convolutions,
   every dense layer and the attention products of the BERT-family models) get QuantizeLinear /
   DequantizeLinear pairs that ONNX Runtime fuses into integer kernels (QLinearConv, QLinearMatMul).
   Weights are int8 per output channel with 7-bit range (``reduce_range``: ORT's advice for x86 CPUs
   without VNNI, where 8-bit u8*s8 products can saturate; it costs nothing with VNNI), activations
   uint8 asymmetric with MinMax ranges over the calibration batches. Embedding lookups, normalisation,
   pooling and the element-wise work stay fp32.

The calibration batches are real rows of the task: :func:`calibration_from_data` takes a seeded sample of
``n`` rows of the prepared training split (not the dev split the quantised model is evaluated on),
in batches of :data:`CALIBRATION_BATCH` trimmed to their longest row. :func:`synthetic_calibration`
(token ids uniform in the vocabulary, random lengths) serves a model without a task: BERT-base with
random weights, whose outputs mean nothing anyway.

Dynamic int8 (:func:`adabert.measure.onnx_export.quantize_int8`) quantises activations at run time
(``ConvInteger`` / ``MatMulInteger``); it needs no data but its integer convolution path is slow on CPU.
Mode ``auto`` builds both; the measure stage times both next to each other and keeps the faster
(:mod:`adabert.measure.run`), the export stage reports the dev metric of both (:mod:`adabert.export`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from adabert import artifacts
from adabert.batching import subsample_indices, trim
from adabert.errors import AdabertError
from adabert.io import atomic_path
from adabert.kinds import InputLayout
from adabert.measure.onnx_export import ort_session, quantize_int8

log = logging.getLogger(__name__)

INT8_MODES = ("static", "dynamic", "auto")
STATIC_OP_TYPES = ("Conv", "MatMul", "Gemm")
CALIBRATION_BATCH = 32
CALIBRATION_SEED = 0
STATIC_NOTE = (
    "onnxruntime static quantisation (QDQ; Conv/MatMul/Gemm; int8 weights per output channel, 7-bit range; "
    "uint8 activations with MinMax ranges calibrated on training rows); embeddings, normalisation and "
    "element-wise ops stay fp32"
)
DYNAMIC_NOTE = (
    "onnxruntime dynamic quantisation (QInt8 weights, activations quantised at run time) of MatMul/Gemm "
    "and Conv; embeddings stay fp32"
)
NOTES = {"static": STATIC_NOTE, "dynamic": DYNAMIC_NOTE}

Batch = dict[str, np.ndarray]


def modes_of(mode: str) -> tuple[str, ...]:
    """The int8 graphs a mode builds: static, dynamic, or both for ``auto`` (static first)."""
    if mode not in INT8_MODES:
        raise AdabertError(f"int8 mode must be one of {INT8_MODES}, got {mode!r}")
    return ("static", "dynamic") if mode == "auto" else (mode,)


def int8_path(out_dir: str | os.PathLike, stem: str, mode: str, requested: str) -> Path:
    """``{stem}.int8.onnx`` for the requested mode's main graph (static, unless only dynamic was asked for);
    ``{stem}.int8-dynamic.onnx`` for the dynamic graph built next to it in mode ``auto``."""
    main = "dynamic" if requested == "dynamic" else "static"
    return Path(out_dir) / (f"{stem}.int8.onnx" if mode == main else f"{stem}.int8-{mode}.onnx")


# -- calibration data ----------------------------------------------------------------------------------
def _batches(tensors: Mapping[str, torch.Tensor], layout: InputLayout, batch_size: int) -> list[Batch]:
    n = tensors[layout.data_keys[0]].shape[0]
    out = []
    for start in range(0, n, batch_size):
        b = trim({k: tensors[k][start:start + batch_size] for k in layout.data_keys})
        out.append({name: b[key].numpy() for name, key in layout.inputs})
    return out


def calibration_from_data(data_dir: str | os.PathLike, layout: InputLayout, n: int, split: str = "train",
                          batch_size: int = CALIBRATION_BATCH, seed: int = CALIBRATION_SEED
                          ) -> tuple[list[Batch], dict[str, Any]]:
    """A seeded sample of ``n`` rows (all of them if the split is smaller) of ``split`` of the Data folder
    ``data_dir``, as batches of the model's inputs (named as its graph inputs), each trimmed to its longest row."""
    if n < 1:
        raise AdabertError(f"calibration needs at least 1 example, got {n}")
    data = artifacts.read_data(data_dir)
    tensors = data.split(split, layout.data_keys)
    total = int(tensors["labels"].shape[0])
    if total == 0:
        raise AdabertError(f"{Path(data_dir) / split}: no rows to calibrate int8 ranges on")
    idx = subsample_indices(total, n, seed)
    chosen = {k: tensors[k][idx] for k in layout.data_keys}
    info = {"source": "data", "data_dir": str(data_dir), "split": split, "rows": int(idx.numel()), "of": total,
            "seed": seed, "batch_size": batch_size}
    return _batches(chosen, layout, batch_size), info


def synthetic_calibration(make_inputs: Callable[[int, int], Mapping[str, torch.Tensor]], n: int, seq_len: int,
                          batch_size: int = CALIBRATION_BATCH, seed: int = CALIBRATION_SEED
                          ) -> tuple[list[Batch], dict[str, Any]]:
    """``n`` rows of synthetic inputs (``make_inputs``: token ids uniform in the vocabulary) with seeded random
    lengths in [1, seq_len] (masks zero and ids 0 past a row's length), for a model without a task."""
    if n < 1:
        raise AdabertError(f"calibration needs at least 1 example, got {n}")
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        inputs = make_inputs(size, seq_len)
        lengths = torch.randint(1, seq_len + 1, (size,), generator=gen)
        keep = (torch.arange(seq_len)[None] < lengths[:, None]).long()
        batch = {k: (v * keep if v.dim() == 2 and v.shape[1] == seq_len else v) for k, v in inputs.items()}
        batches.append({k: v.numpy() for k, v in batch.items()})
    info = {"source": "synthetic", "rows": n, "seq_len": seq_len, "seed": seed, "batch_size": batch_size,
            "note": "token ids uniform in the vocabulary, random lengths (a model without a task)"}
    return batches, info


# -- quantisation ----------------------------------------------------------------------------------------
def preprocess(path_in: str | os.PathLike, path_out: str | os.PathLike) -> dict[str, Any]:
    """``quant_pre_process`` (see the module docstring); returns whether symbolic shape inference ran."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    path_in, path_out = Path(path_in).resolve(), Path(path_out).resolve()
    # a failed symbolic inference dumps its partial model into the working directory: run it in a scratch one
    with tempfile.TemporaryDirectory(prefix="adabert-shapes-") as scratch, contextlib.chdir(scratch):
        try:
            quant_pre_process(str(path_in), str(path_out), auto_merge=True)
            return {"symbolic_shape_inference": True}
        except Exception as exc:  # noqa: BLE001 - the shape inference raises plain Exception
            log.info("symbolic shape inference failed on %s (%s); ONNX shape inference only", path_in, exc)
        try:
            quant_pre_process(str(path_in), str(path_out), skip_symbolic_shape=True)
        except Exception as exc:  # noqa: BLE001
            raise AdabertError(f"int8 pre-processing of {path_in} failed ({type(exc).__name__}: {exc})") from exc
    return {"symbolic_shape_inference": False}


def _reader(batches: Sequence[Batch]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self) -> Batch | None:
            return next(self.batches, None)

    return Reader()


def quantize_static_int8(path_in: str | os.PathLike, path_out: str | os.PathLike, calibration: Sequence[Batch],
                         op_types: Sequence[str] = STATIC_OP_TYPES) -> dict[str, Any]:
    """Static QDQ int8 of the fp32 graph ``path_in`` calibrated on ``calibration`` (batches of graph inputs),
    written to ``path_out`` (atomically) and checked to load; returns how it was made."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    path_in, path_out = Path(path_in), Path(path_out)
    if not path_in.is_file():
        raise AdabertError(f"{path_in}: ONNX file not found")
    if not calibration:
        raise AdabertError(f"static int8 of {path_in}: no calibration batches")
    names = {i.name for i in ort_session(path_in).get_inputs()}
    feeds = [{k: v for k, v in b.items() if k in names} for b in calibration]
    with tempfile.TemporaryDirectory(prefix="adabert-int8-") as tmp, atomic_path(path_out) as out:
        pre = Path(tmp) / "preprocessed.onnx"
        info = preprocess(path_in, pre)
        try:
            quantize_static(str(pre), str(out), _reader(feeds), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(op_types), per_channel=True, reduce_range=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        except Exception as exc:  # noqa: BLE001
            raise AdabertError(f"static int8 quantisation of {path_in} failed ({type(exc).__name__}: {exc})") from exc
        ort_session(out)  # loads, or AdabertError
    return {**info, "format": "QDQ", "op_types": list(op_types), "per_channel": True, "reduce_range": True,
            "activation_type": "uint8", "weight_type": "int8", "calibrate_method": "MinMax",
            "calibration_batches": len(feeds), "calibration_rows": int(sum(len(next(iter(b.values()))) for b in feeds))}


def build_int8(fp32: str | os.PathLike, out_dir: str | os.PathLike, stem: str, mode: str,
               calibration: Sequence[Batch] | None) -> dict[str, dict[str, Any]]:
    """The int8 graphs of ``mode`` (:func:`modes_of`) of the fp32 graph ``fp32``, written into ``out_dir``
    (:func:`int8_path`): ``{mode: {"path": Path, "note": str, ...how it was made}}``."""
    built: dict[str, dict[str, Any]] = {}
    for m in modes_of(mode):
        path = int8_path(out_dir, stem, m, mode)
        if m == "static":
            if calibration is None:
                raise AdabertError("static int8 needs calibration batches (the task's data folder)")
            info = quantize_static_int8(fp32, path, calibration)
        else:
            quantize_int8(fp32, path)
            info = {"op_types": ["MatMul", "Gemm", "Conv"], "weight_type": "int8", "per_channel": False}
        built[m] = {"path": path, "note": NOTES[m], **info}
    return built
