"""The export stage: a trained model folder to ONNX (fp32 and int8), checked on real dev batches.

:func:`run_export` exports a model of any exportable kind of :mod:`adabert.kinds` (a retrained student,
a teacher, a baseline folder of :mod:`adabert.baselines`; the kind comes from ``--kind`` or from the
folder's files) with dynamic batch and sequence axes, verifies ONNX Runtime against PyTorch on real dev
batches (max abs diff <= 1e-4, else an error), quantises it to int8 and evaluates torch, ONNX fp32 and
every ONNX int8 graph on the dev split: ``{kind}.onnx``, ``{kind}.int8.onnx``, ``export.json``,
``config.json``. A teacher trained in fp32 is not run through PyTorch again: its folder's dev logits (the
teacher stage's forward of the same weights) are the PyTorch reference (``torch_reference`` in
``export.json``).

int8 (``measure.int8``, :mod:`adabert.measure.quantize`): ``static`` = QDQ static quantisation calibrated
on ``measure.calibration_examples`` rows of the task's training split (never the dev rows it is evaluated
on); ``dynamic`` = dynamic quantisation; ``auto`` = both, ``{kind}.int8.onnx`` the static graph and
``{kind}.int8-dynamic.onnx`` the dynamic one, each with its own dev metric (the measure stage times both
and records which it kept). The int8 dev metrics are those of the quantised graphs themselves.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from adabert import artifacts, io
from adabert import metrics as metrics_mod
from adabert.batching import trim
from adabert.errors import AdabertError
from adabert.kinds import InputLayout, ModelKind, export_kind
from adabert.measure import machine, onnx_export, quantize

log = logging.getLogger(__name__)

ONNX_TOLERANCE = 1e-4


@dataclass
class Exported:
    """The ONNX graphs written, the logits of each engine on the check batches, and the fp32 difference."""

    fp32: Path
    int8: dict[str, dict]  # {mode: {"path": Path, "note": str, ...how it was made}}, the main mode first
    outputs: dict[str, np.ndarray]  # "torch", "onnx_fp32", "onnx_int8" (main mode), "onnx_int8_{mode}": [N, C]
    max_abs_diff_fp32: float

    @property
    def int8_mode(self) -> str:
        """The mode of ``{kind}.int8.onnx`` (static unless only dynamic was asked for)."""
        return next(iter(self.int8))


def dev_tensors(data: artifacts.DataFolder, layout: InputLayout
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The main dev split's ``layout`` tensors, rows sorted by length (stable), its labels, and the order
    (``order[i]`` = the file row of sorted row ``i``).

    Batches of similar length, each trimmed to its longest row, make the check cover many sequence
    lengths and batch sizes of the dynamic axes with real dev inputs.
    """
    path = data.path / f"{data.main_split}.safetensors"
    tensors = io.load_tensors(path)
    missing = [k for k in (*layout.data_keys, "labels") if k not in tensors]
    if missing:
        raise AdabertError(f"{path}: missing tensor(s) {missing}")
    lengths = tensors[layout.mask_keys[0]].sum(1)
    for key in layout.mask_keys[1:]:
        lengths = torch.maximum(lengths, tensors[key].sum(1))
    order = torch.argsort(lengths, stable=True)
    tensors = {k: v[order] for k, v in tensors.items() if v.dim() >= 1 and v.shape[0] == order.shape[0]}
    labels = tensors["labels"].float() if data.spec.is_regression else tensors["labels"].long()
    return tensors, labels, order


def dev_batches(layout: InputLayout, tensors: dict[str, torch.Tensor], batch_size: int) -> list[dict[str, torch.Tensor]]:
    """Consecutive batches of the model's inputs (named as its forward arguments), each trimmed to its longest row."""
    n = tensors[layout.data_keys[0]].shape[0]
    batches = []
    for start in range(0, n, batch_size):
        b = trim({k: tensors[k][start:start + batch_size] for k in layout.data_keys})
        batches.append({name: b[key] for name, key in layout.inputs})
    return batches


def _torch_logits(module, batches: list[dict[str, torch.Tensor]]) -> np.ndarray:
    return np.concatenate([onnx_export.torch_logits(module, b).numpy() for b in batches])


def _onnx_logits(session, batches: list[dict[str, torch.Tensor]]) -> np.ndarray:
    return np.concatenate([session.run(None, onnx_export.numpy_inputs(session, b))[0] for b in batches])


def saved_torch_logits(kind: ModelKind, model_dir: Path, data: artifacts.DataFolder,
                       order: torch.Tensor) -> np.ndarray | None:
    """The teacher stage's own dev logits of ``model_dir`` in ``order``, if it is a teacher folder trained
    and labelled in fp32 (the PyTorch forward of the very weights exported: a second pass would repeat
    it); None for any other kind or precision (the export then runs PyTorch itself)."""
    metrics_path = model_dir / "metrics.json"
    if kind.name != "teacher" or not (model_dir / artifacts.LOGITS_FILE).is_file() or not metrics_path.is_file():
        return None
    if io.read_json(metrics_path).get("precision") != "fp32":
        return None
    saved = artifacts.read_teacher_logits(model_dir, data.main_split, int(order.shape[0]), data.num_labels)
    return saved[order].numpy()


def export_and_check(module, kind: ModelKind, batches: list[dict[str, torch.Tensor]], out_dir: Path, threads: int,
                     where: str, int8_mode: str = "auto", calibration: list | None = None,
                     torch_reference: np.ndarray | None = None) -> Exported:
    """Write ``{kind}.onnx`` and its int8 graphs (``int8_mode``; static ones calibrated on ``calibration``)
    into ``out_dir``; the fp32 graph must reproduce the PyTorch logits of every batch within
    :data:`ONNX_TOLERANCE` (``where`` names the data in the error). ``torch_reference``: those logits
    already computed (rows in batch order); None runs ``module`` on every batch."""
    input_names = list(kind.layout.input_names)
    fp32 = onnx_export.export_onnx(module, batches[0], out_dir / f"{kind.name}.onnx", input_names=input_names)
    session = onnx_export.ort_session(fp32, threads=threads)
    torch_out = _torch_logits(module, batches) if torch_reference is None else torch_reference
    onnx_out = _onnx_logits(session, batches)
    diff = float(np.max(np.abs(torch_out.astype(np.float64) - onnx_out.astype(np.float64))))
    if not np.isfinite(diff) or diff > ONNX_TOLERANCE:
        raise AdabertError(f"{fp32.name}: ONNX Runtime logits differ from PyTorch by {diff:.3g} on {where} "
                           f"(tolerance {ONNX_TOLERANCE:g})")
    int8 = quantize.build_int8(fp32, out_dir, kind.name, int8_mode, calibration)
    outputs = {"torch": torch_out, "onnx_fp32": onnx_out}
    for mode, graph in int8.items():
        outputs[f"onnx_int8_{mode}"] = _onnx_logits(onnx_export.ort_session(graph["path"], threads=threads), batches)
    outputs["onnx_int8"] = outputs[f"onnx_int8_{next(iter(int8))}"]
    return Exported(fp32=fp32, int8=int8, outputs=outputs, max_abs_diff_fp32=diff)


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def export_summary(task: str, kind: ModelKind, model_dir: Path, data: artifacts.DataFolder, labels: torch.Tensor,
                   batches: list[dict[str, torch.Tensor]], batch_size: int, exported: Exported, threads: int,
                   start: float, int8_requested: str = "auto", calibration_info: dict | None = None) -> dict:
    """``export.json``: what was checked, the differences, and the dev metric of every engine."""
    results = {name: metrics_mod.compute(data.spec, torch.from_numpy(out), labels)
               for name, out in exported.outputs.items()}
    main = data.spec.main_metric
    subject = {}
    if kind.export_subject and (model_dir / "metrics.json").is_file():
        retrained = io.read_json(model_dir / "metrics.json")
        subject = {k: retrained.get(k) for k in ("variant", "seed")}
    torch_out = exported.outputs["torch"]
    int8 = {mode: {"file": Path(g["path"]).name, "metrics": results[f"onnx_int8_{mode}"],
                   "main": results[f"onnx_int8_{mode}"][main],
                   "drop_points": results["torch"][main] - results[f"onnx_int8_{mode}"][main],
                   "max_abs_diff": _max_abs_diff(torch_out, exported.outputs[f"onnx_int8_{mode}"]),
                   "file_bytes": Path(g["path"]).stat().st_size,
                   **{k: v for k, v in g.items() if k != "path"}}
            for mode, g in exported.int8.items()}
    first = int8[exported.int8_mode]
    return {
        "task": task,
        "kind": kind.name,
        **subject,
        "model_dir": str(model_dir),
        "split": data.main_split,
        "n": int(labels.shape[0]),
        "batch_size": batch_size,
        "seq_lens_checked": sorted({int(b[kind.layout.input_names[0]].shape[1]) for b in batches}),
        "opset": onnx_export.OPSET,
        "dynamic_axes": "batch and sequence axes of every input, batch axis of the logits",
        "max_abs_diff_fp32": exported.max_abs_diff_fp32,
        "tolerance": ONNX_TOLERANCE,
        "max_abs_diff_int8": first["max_abs_diff"],
        "metrics": results,
        "main_metric": main,
        "main": {name: results[name][main] for name in results},
        "int8_drop_points": first["drop_points"],
        "fp32_drop_points": results["torch"][main] - results["onnx_fp32"][main],
        "int8_mode": exported.int8_mode,
        "int8_requested": int8_requested,
        "int8_note": first["note"],
        "int8": int8,
        "calibration": calibration_info,
        "file_bytes": {"fp32": exported.fp32.stat().st_size, "int8": first["file_bytes"],
                       **{f"int8_{mode}": g["file_bytes"] for mode, g in int8.items()}},
        "threads": threads,
        "time_s": time.perf_counter() - start,
    }


def run_export(cfg: dict, task: str, model_dir: str | os.PathLike, data_dir: str | os.PathLike,
               out_dir: str | os.PathLike, batch_size: int = 32, kind: str | None = None,
               threads: int | None = None) -> dict:
    """Export the model folder ``model_dir`` (of ``kind``; None: told from its files) to ONNX fp32 + int8
    and check both on dev.

    The fp32 graph must reproduce PyTorch within 1e-4 (max abs logit difference over every batch of
    the main dev split, each trimmed to its longest row, so several sequence lengths are exercised);
    otherwise AdabertError. The int8 graphs (``cfg["measure"]["int8"]``, default auto; static ones
    calibrated on ``calibration_examples`` training rows) are evaluated on the same split and their metric
    drop reported. ``threads``: torch and ONNX Runtime threads (None: ``measure.threads``, else every core);
    the export times nothing, so the workflow runs it on a training job's threads.
    """
    model_dir, data_dir, out_dir = Path(model_dir), Path(data_dir), Path(out_dir)
    measure_cfg = cfg.get("measure") or {}
    threads = int(threads or measure_cfg.get("threads") or torch.get_num_threads())
    int8_mode = measure_cfg.get("int8") or "auto"
    quantize.modes_of(int8_mode)  # a bad mode fails before any work
    machine.set_threads(threads)
    start = time.perf_counter()
    data = artifacts.read_data(data_dir)
    model_kind = export_kind(kind, model_dir)
    tensors, labels, order = dev_tensors(data, model_kind.layout)
    calibration = calibration_info = None
    if "static" in quantize.modes_of(int8_mode):
        calibration, calibration_info = quantize.calibration_from_data(
            data_dir, model_kind.layout, int(measure_cfg.get("calibration_examples") or 256))
    module = model_kind.under_test(model_dir).module.cpu().eval()
    batches = dev_batches(model_kind.layout, tensors, batch_size)
    reference = saved_torch_logits(model_kind, model_dir, data, order)
    with io.atomic_dir(out_dir) as tmp:
        exported = export_and_check(module, model_kind, batches, tmp, threads,
                                    where=f"the {data.main_split} split of {data_dir}", int8_mode=int8_mode,
                                    calibration=calibration, torch_reference=reference)
        summary = export_summary(task, model_kind, model_dir, data, labels, batches, batch_size, exported, threads,
                                 start, int8_requested=int8_mode, calibration_info=calibration_info)
        summary["torch_reference"] = ("the teacher stage's saved fp32 dev logits" if reference is not None
                                      else "a PyTorch pass of the export")
        io.write_json(tmp / "export.json", summary)
        io.write_json(tmp / "config.json", cfg)
    main = summary["main_metric"]
    log.info("export %s %s: max |onnx - torch| %.2g; %s torch %.2f, onnx %.2f, %s", task, model_kind.name,
             exported.max_abs_diff_fp32, main, summary["main"]["torch"], summary["main"]["onnx_fp32"],
             ", ".join(f"int8 {m} {g['main']:.2f}" for m, g in summary["int8"].items()))
    return summary
