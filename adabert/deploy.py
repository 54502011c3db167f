"""Deployment: load a retrained student from its folder alone, predict on files, export to ONNX.

* :func:`load_deployable` loads a retrained student folder (``genotype.json``, ``model.safetensors``,
  ``student.json``, tokenizer files; see :mod:`adabert.retrain`) without search code or the teacher.
  A folder that is not a student, a missing or corrupted ``model.safetensors``, or weights that do not
  match the genotype are :class:`~adabert.errors.AdabertError` naming the file (never a silent
  re-initialisation).
* :func:`predict_file` (``python -m adabert predict``) reads a TSV/CSV/JSONL file with the task's text
  columns and writes one prediction per row (label names, or scores for regression) as JSONL or TSV.
* :func:`run_export` (the export stage) exports a retrained student (or a teacher, or a baseline folder of
  :mod:`adabert.baselines`: ``bilstm``, or ``truncated`` in the teacher layout) to ONNX with dynamic
  batch and sequence axes, verifies ONNX Runtime against PyTorch on real dev batches (max abs diff
  <= 1e-4, else an error), quantises it to int8 (dynamic) and evaluates torch, ONNX fp32 and ONNX int8 on
  the dev split: ``{kind}.onnx``, ``{kind}.int8.onnx``, ``export.json``, ``config.json``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from adabert import io
from adabert.errors import AdabertError
from adabert.student import GENOTYPE_FILE, METADATA_FILE, MODEL_FILE

log = logging.getLogger(__name__)

STUDENT_INPUT_NAMES = ("a_ids", "a_mask", "b_ids", "b_mask")
TEACHER_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
TOKENIZER_FILES = ("tokenizer_config.json",)
ONNX_TOLERANCE = 1e-4
OUTPUT_FORMATS = ("jsonl", "tsv")


@dataclass
class Deployable:
    """A loaded student: the module (eval mode), its ``student.json`` and its tokenizer."""

    folder: Path
    model: Any
    metadata: dict
    tokenizer: Any

    @property
    def task(self) -> dict:
        return self.metadata["task"]

    @property
    def text_columns(self) -> list[str]:
        return list(self.task["text_columns"])

    @property
    def is_regression(self) -> bool:
        return self.task["type"] == "regression"


def check_student_folder(folder: str | os.PathLike) -> Path:
    """``folder`` must be a retrained student folder; the error names the first missing file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AdabertError(f"{folder}: not a folder (expected a retrained student folder)")
    for name in (METADATA_FILE, GENOTYPE_FILE):
        if not (folder / name).is_file():
            hint = ""
            if name == METADATA_FILE and (folder / "weights.safetensors").is_file():
                hint = " (this looks like a derive folder; run the retrain stage to get a deployable student)"
            raise AdabertError(f"{folder}: not a student folder: missing {name}{hint}")
    if not (folder / MODEL_FILE).is_file():
        raise AdabertError(f"{folder / MODEL_FILE}: file not found (the student's trained weights); "
                           "the student folder is incomplete")
    for name in TOKENIZER_FILES:
        if not (folder / name).is_file():
            raise AdabertError(f"{folder}: student folder without its tokenizer: missing {name}")
    return folder


def load_deployable(folder: str | os.PathLike) -> Deployable:
    """Load a retrained student folder (no search code, no teacher)."""
    from adabert.student import Student, load_tokenizer, read_metadata

    folder = check_student_folder(folder)
    metadata = read_metadata(folder)
    model = Student.from_folder(folder, dropout=float(metadata.get("dropout", 0.1))).eval()
    for key, actual in (("vocab_size", model.word_embeddings.num_embeddings), ("max_positions", model.max_positions),
                        ("num_labels", model.classifier.out_features)):
        if int(metadata[key]) != int(actual):
            raise AdabertError(f"{folder / METADATA_FILE}: {key} {metadata[key]} does not match "
                               f"{folder / MODEL_FILE} ({actual})")
    tokenizer = load_tokenizer(folder)
    return Deployable(folder=folder, model=model, metadata=metadata, tokenizer=tokenizer)


# -- encoding and prediction ----------------------------------------------------------------------
def encode_texts(dep: Deployable, texts: Sequence[Sequence[str]]) -> dict[str, torch.Tensor]:
    """Student inputs for rows of texts (each sentence alone, ``[CLS] s [SEP]``, as the prepare stage)."""
    max_len = int(dep.task["max_seq_length"])
    pair = len(dep.text_columns) == 2

    def tok(sentences: list[str]) -> dict[str, torch.Tensor]:
        enc = dep.tokenizer(sentences, max_length=max_len, truncation=True, padding="max_length",
                            return_attention_mask=True, return_tensors="pt")
        return {"ids": enc["input_ids"].to(torch.int64), "mask": enc["attention_mask"].to(torch.int64)}

    a = tok([str(t[0]) for t in texts])
    b = tok([str(t[1]) for t in texts]) if pair else a
    return {"a_input_ids": a["ids"], "a_attention_mask": a["mask"], "b_input_ids": b["ids"],
            "b_attention_mask": b["mask"]}


def infer_format(path: Path, fmt: str | None, what: str, allowed: Sequence[str]) -> str:
    if fmt:
        if fmt not in allowed:
            raise AdabertError(f"{what} format must be one of {list(allowed)}, got {fmt!r}")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in allowed:
        return suffix
    raise AdabertError(f"{path}: cannot tell the {what} format from the extension (expected "
                       f"{', '.join('.' + a for a in allowed)}); pass --{what}-format")


def read_rows(path: Path, fmt: str, text_columns: Sequence[str]) -> list[tuple[int, dict]]:
    """(line number, row) of every row of the input; the task's text columns must be present."""
    from adabert.data import read_table

    if fmt != "jsonl":  # the header decides, even for a file without data rows
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t" if fmt == "tsv" else ",",
                                quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
            header = next(reader, [])
        missing = [c for c in text_columns if c not in header]
        if missing:
            raise AdabertError(f"{path}: missing the task's text column(s) {missing}; columns found: {header}")
    rows = read_table(path, fmt, [])
    for line_no, row in rows:
        missing = [c for c in text_columns if c not in row]
        if missing:
            raise AdabertError(f"{path}:{line_no}: missing the task's text column(s) {missing}; "
                               f"columns found: {sorted(row)}")
        for c in text_columns:
            if row[c] is None or isinstance(row[c], (dict, list, bool)):
                raise AdabertError(f"{path}:{line_no}: column {c!r} must hold text, got {row[c]!r}")
    return rows


@torch.no_grad()
def predict_inputs(model, inputs: dict[str, torch.Tensor], batch_size: int = 128) -> torch.Tensor:
    from adabert.retrain import predict_logits

    return predict_logits(model, inputs, batch_size)


def predict_file(model_dir: str | os.PathLike, input_path: str | os.PathLike, output_path: str | os.PathLike,
                 input_format: str | None = None, output_format: str | None = None, batch_size: int = 128) -> int:
    """Predict every row of ``input_path``; write one prediction per row to ``output_path``. Returns rows."""
    input_path, output_path = Path(input_path), Path(output_path)
    dep = load_deployable(model_dir)
    if not input_path.is_file():
        raise AdabertError(f"{input_path}: input file not found")
    in_fmt = infer_format(input_path, input_format, "input", ("tsv", "csv", "jsonl"))
    out_fmt = infer_format(output_path, output_format, "output", OUTPUT_FORMATS)
    rows = read_rows(input_path, in_fmt, dep.text_columns)
    if not rows:
        raise AdabertError(f"{input_path}: no data rows")
    texts = [[str(row[c]) for c in dep.text_columns] for _, row in rows]
    logits = predict_inputs(dep.model, encode_texts(dep, texts), batch_size)
    records = []
    for i, (line_no, _) in enumerate(rows):
        rec: dict[str, Any] = {"row": i, "line": line_no}
        if dep.is_regression:
            rec["prediction"] = float(logits[i, 0])
        else:
            pred = int(torch.argmax(logits[i]))
            rec["prediction"] = dep.task["label_names"][pred]
            probs = torch.softmax(logits[i], -1)
            rec["probability"] = float(probs[pred])
        records.append(rec)
    with io.atomic_path(output_path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            if out_fmt == "jsonl":
                for rec in records:
                    fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
            else:
                columns = list(records[0])
                writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
                writer.writerow(columns)
                for rec in records:
                    writer.writerow([rec[c] for c in columns])
    log.info("predict: %d rows of %s -> %s", len(records), input_path, output_path)
    return len(records)


# -- ONNX export stage ----------------------------------------------------------------------------
def _student_batches(split: dict[str, torch.Tensor], batch_size: int) -> list[dict[str, torch.Tensor]]:
    from adabert.retrain import trim

    n = split["a_input_ids"].shape[0]
    out = []
    for start in range(0, n, batch_size):
        b = trim({k: split[k][start:start + batch_size] for k in ("a_input_ids", "a_attention_mask",
                                                                   "b_input_ids", "b_attention_mask")})
        out.append({"a_ids": b["a_input_ids"], "a_mask": b["a_attention_mask"], "b_ids": b["b_input_ids"],
                    "b_mask": b["b_attention_mask"]})
    return out


def _teacher_batches(split: dict[str, torch.Tensor], batch_size: int) -> list[dict[str, torch.Tensor]]:
    from adabert.teacher import trim_batch

    n = split["input_ids"].shape[0]
    return [{k: v for k, v in trim_batch({k: split[k][s:s + batch_size] for k in TEACHER_INPUT_NAMES}).items()}
            for s in range(0, n, batch_size)]


def _onnx_logits(session, batches: list[dict[str, torch.Tensor]]) -> np.ndarray:
    from adabert.measure.onnx_export import numpy_inputs

    return np.concatenate([session.run(None, numpy_inputs(session, b))[0] for b in batches])


def _torch_logits(module, batches: list[dict[str, torch.Tensor]]) -> np.ndarray:
    from adabert.measure.onnx_export import torch_logits

    return np.concatenate([torch_logits(module, b).numpy() for b in batches])


def run_export(cfg: dict, task: str, model_dir: str | os.PathLike, data_dir: str | os.PathLike,
               out_dir: str | os.PathLike, batch_size: int = 32) -> dict:
    """Export a retrained student folder (or a teacher folder) to ONNX fp32 + int8 and check both on dev.

    The fp32 graph must reproduce PyTorch within 1e-4 (max abs logit difference over every batch of
    the main dev split, each trimmed to its longest row, so several sequence lengths are exercised);
    otherwise AdabertError. The int8 graph is evaluated on the same split and its metric drop reported.
    """
    from adabert import metrics as metrics_mod
    from adabert import tasks as tasks_mod
    from adabert.measure import machine, onnx_export
    from adabert.measure.run import INT8_NOTE
    from adabert.teacher import load_meta

    model_dir, data_dir, out_dir = Path(model_dir), Path(data_dir), Path(out_dir)
    threads = int((cfg.get("measure") or {}).get("threads") or torch.get_num_threads())
    machine.set_threads(threads)
    start = time.perf_counter()
    meta = load_meta(data_dir)
    spec = tasks_mod.spec_from_meta(meta)
    split = meta["main_split"]
    tensors = io.load_tensors(data_dir / f"{split}.safetensors")
    from adabert.baselines.bilstm import is_folder as is_bilstm

    is_bilstm_folder = is_bilstm(model_dir)
    is_student = (model_dir / METADATA_FILE).is_file() or (model_dir / GENOTYPE_FILE).is_file() or is_bilstm_folder
    needed = ("a_attention_mask", "b_attention_mask", "a_input_ids", "b_input_ids") if is_student else TEACHER_INPUT_NAMES
    missing = [k for k in (*needed, "labels") if k not in tensors]
    if missing:
        raise AdabertError(f"{data_dir / (split + '.safetensors')}: missing tensor(s) {missing}")
    # Batches of similar length (sorted by length), each trimmed to its longest row: the check covers
    # many sequence lengths and batch sizes of the dynamic axes with real dev inputs.
    if is_student:
        lengths = torch.maximum(tensors["a_attention_mask"].sum(1), tensors["b_attention_mask"].sum(1))
    else:
        lengths = tensors["attention_mask"].sum(1)
    order = torch.argsort(lengths, stable=True)
    tensors = {k: v[order] for k, v in tensors.items() if v.dim() >= 1 and v.shape[0] == order.shape[0]}
    labels = tensors["labels"].float() if spec.is_regression else tensors["labels"].long()

    if is_bilstm_folder:
        from adabert.baselines.bilstm import load_folder

        kind = "bilstm"
        module = load_folder(model_dir)[0]
        input_names = STUDENT_INPUT_NAMES
        batches = _student_batches(tensors, batch_size)
    elif is_student:
        kind = "student"
        module = load_deployable(model_dir).model
        input_names = STUDENT_INPUT_NAMES
        batches = _student_batches(tensors, batch_size)
    else:
        from adabert.measure.reference import load_teacher

        # a truncated-teacher baseline folder has the teacher layout; its metrics.json says its kind
        baseline = io.read_json(model_dir / "metrics.json").get("kind") if (model_dir / "metrics.json").is_file() else None
        kind = "truncated" if baseline == "truncated" else "teacher"
        module = load_teacher(model_dir).module
        input_names = TEACHER_INPUT_NAMES
        batches = _teacher_batches(tensors, batch_size)
    module = module.cpu().eval()
    with io.atomic_dir(out_dir) as tmp:
        fp32 = onnx_export.export_onnx(module, batches[0], tmp / f"{kind}.onnx", input_names=list(input_names))
        session = onnx_export.ort_session(fp32, threads=threads)
        torch_out = _torch_logits(module, batches)
        onnx_out = _onnx_logits(session, batches)
        diff = float(np.max(np.abs(torch_out.astype(np.float64) - onnx_out.astype(np.float64))))
        if not np.isfinite(diff) or diff > ONNX_TOLERANCE:
            raise AdabertError(f"{fp32.name}: ONNX Runtime logits differ from PyTorch by {diff:.3g} on the {split} split "
                               f"of {data_dir} (tolerance {ONNX_TOLERANCE:g})")
        int8 = onnx_export.quantize_int8(fp32, tmp / f"{kind}.int8.onnx")
        int8_out = _onnx_logits(onnx_export.ort_session(int8, threads=threads), batches)
        results = {name: metrics_mod.compute(spec, torch.from_numpy(out), labels)
                   for name, out in (("torch", torch_out), ("onnx_fp32", onnx_out), ("onnx_int8", int8_out))}
        main = spec.main_metric
        subject = {}
        if kind != "teacher" and (model_dir / "metrics.json").is_file():
            retrained = io.read_json(model_dir / "metrics.json")
            subject = {k: retrained.get(k) for k in ("variant", "seed")}
        summary = {
            "task": task,
            "kind": kind,
            **subject,
            "model_dir": str(model_dir),
            "split": split,
            "n": int(labels.shape[0]),
            "batch_size": batch_size,
            "seq_lens_checked": sorted({int(b[input_names[0]].shape[1]) for b in batches}),
            "opset": onnx_export.OPSET,
            "dynamic_axes": "batch and sequence axes of every input, batch axis of the logits",
            "max_abs_diff_fp32": diff,
            "tolerance": ONNX_TOLERANCE,
            "max_abs_diff_int8": float(np.max(np.abs(torch_out.astype(np.float64) - int8_out.astype(np.float64)))),
            "metrics": results,
            "main_metric": main,
            "main": {name: results[name][main] for name in results},
            "int8_drop_points": results["torch"][main] - results["onnx_int8"][main],
            "fp32_drop_points": results["torch"][main] - results["onnx_fp32"][main],
            "int8_note": INT8_NOTE,
            "file_bytes": {"fp32": fp32.stat().st_size, "int8": int8.stat().st_size},
            "threads": threads,
            "time_s": time.perf_counter() - start,
        }
        io.write_json(tmp / "export.json", summary)
        io.write_json(tmp / "config.json", cfg)
    log.info("export %s %s: max |onnx - torch| %.2g; %s torch %.2f, onnx %.2f, int8 %.2f", task, kind, diff, main,
             summary["main"]["torch"], summary["main"]["onnx_fp32"], summary["main"]["onnx_int8"])
    return summary


# -- measurement -----------------------------------------------------------------------------------
MODEL_KINDS = ("student", "teacher", "bert-base", "bilstm", "truncated")


def model_under_test(kind: str, model: str | os.PathLike | None, num_labels: int = 2):
    """The :class:`~adabert.measure.ModelUnderTest` of a retrained student folder, a teacher folder,
    BERT-base (``model`` = a local bert-base-uncased folder, or None for the architecture only), or a
    baseline folder (``bilstm``; ``truncated``: loaded as a teacher, recorded under its own kind)."""
    from adabert.measure import bert_base_architecture, load_teacher, student_module_under_test

    if kind in ("bilstm", "truncated") and model is None:
        raise AdabertError(f"--model is required for a {kind} baseline (its baseline-stage folder)")
    if kind == "bilstm":
        from adabert.measure.reference import bilstm_under_test

        return bilstm_under_test(model)
    if kind == "truncated":
        mut = load_teacher(model, name="truncated")
        metrics_path = Path(model) / "metrics.json"
        if metrics_path.is_file():
            mut.label = io.read_json(metrics_path).get("label") or mut.label
        return mut

    if kind == "student":
        if model is None:
            raise AdabertError("--model is required for a student (its retrained folder)")
        dep = load_deployable(model)
        label = f"AdaBERT student ({dep.task['name']}, depth {dep.model.genotype.depth}, width {dep.model.genotype.width})"
        return student_module_under_test(dep.model, name="student", label=label,
                                         info={"path": str(model), "task": dep.task["name"],
                                               "genotype": dep.model.genotype.to_dict()},
                                         vocab_size=int(dep.metadata["vocab_size"]))
    if kind == "teacher":
        if model is None:
            raise AdabertError("--model is required for a teacher (its teacher-stage folder)")
        return load_teacher(model)
    if kind == "bert-base":
        return bert_base_architecture(num_labels=num_labels, weights_dir=model)
    raise AdabertError(f"model kind must be one of {MODEL_KINDS}, got {kind!r}")


def measure_model(kind: str, model: str | os.PathLike | None, engine: str, device: str, batch: int, seq_len: int,
                  threads: int, out_json: str | os.PathLike, *, num_labels: int = 2, min_seconds: float = 1.0,
                  min_batches: int = 3, warmup: int = 1, max_batches: int | None = None, peak_seconds: float = 0.5,
                  onnx_dir: str | os.PathLike | None = None, subject: dict | None = None) -> dict:
    """One measurement (:func:`adabert.measure.measure`) written to ``out_json``, with ``subject``
    (task / variant / seed the model belongs to) recorded for the efficiency table."""
    from adabert.measure import measure, validate_measurement

    mut = model_under_test(kind, model, num_labels)
    record = measure(mut, engine=engine, device=device, batch=batch, seq_len=seq_len, threads=threads,
                     out_json=None, min_seconds=min_seconds, min_batches=min_batches, onnx_dir=onnx_dir,
                     warmup=warmup, max_batches=max_batches, peak_seconds=peak_seconds)
    record["subject"] = {"model_kind": kind, **{k: v for k, v in (subject or {}).items() if v is not None}}
    validate_measurement(record)
    io.write_json(out_json, record)
    log.info("measure %s %s %s batch %d seq %d: median %.4g s, %.1f samples/s", kind, engine, device, batch, seq_len,
             record["latency"]["median_s"], record["throughput_samples_per_s"])
    return record
