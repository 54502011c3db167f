"""Prediction with a retrained student folder alone (``python -m adabert predict``).

* :func:`load_deployable` loads a retrained student folder (``genotype.json``, ``model.safetensors``,
  ``student.json``, tokenizer files; see :mod:`adabert.retrain`) without search code or the teacher.
  A folder that is not a student, a missing or corrupted ``model.safetensors``, or weights that do not
  match the genotype are :class:`~adabert.errors.AdabertError` naming the file (never a silent
  re-initialisation).
* :func:`encode_texts` tokenises rows of texts as the prepare stage does for the student.
* :func:`predict_file` reads a TSV/CSV/JSONL file with the task's text columns (:func:`read_rows`) and
  writes one prediction per row (label names, or scores for regression) as JSONL or TSV.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import torch

from adabert import io
from adabert.errors import AdabertError
from adabert.student import GENOTYPE_FILE, METADATA_FILE, MODEL_FILE, Student, load_tokenizer, read_metadata
from adabert.textfiles import TABLE_FORMATS, read_table

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer_config.json",)
OUTPUT_FORMATS = ("jsonl", "tsv")


@dataclass
class Deployable:
    """A loaded student: the module (eval mode), its ``student.json`` and its tokenizer."""

    folder: Path
    model: Any
    metadata: dict

    @cached_property
    def tokenizer(self) -> Any:
        """The student's tokenizer, loaded on first use: timing and export need only the module, and loading
        it imports transformers (~2 s per process)."""
        return load_tokenizer(self.folder)

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
    folder = check_student_folder(folder)
    metadata = read_metadata(folder)
    model = Student.from_folder(folder, dropout=float(metadata.get("dropout", 0.1))).eval()
    for key, actual in (("vocab_size", model.word_embeddings.num_embeddings), ("max_positions", model.max_positions),
                        ("num_labels", model.classifier.out_features)):
        if int(metadata[key]) != int(actual):
            raise AdabertError(f"{folder / METADATA_FILE}: {key} {metadata[key]} does not match "
                               f"{folder / MODEL_FILE} ({actual})")
    return Deployable(folder=folder, model=model, metadata=metadata)


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
    # lazy: the retrain stage pulls in scipy and sklearn, which loading a student to measure it never needs
    from adabert.retrain import predict_logits

    return predict_logits(model, inputs, batch_size)


def prediction_records(dep: Deployable, rows: list[tuple[int, dict]], logits: torch.Tensor) -> list[dict[str, Any]]:
    """One record per input row: its position and line, the prediction (label name and its probability,
    or the score of a regression task)."""
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
    return records


def write_predictions(path: Path, fmt: str, records: list[dict[str, Any]]) -> None:
    """``records`` as JSONL (sorted keys) or as a TSV with a header row, written atomically."""
    with io.atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            if fmt == "jsonl":
                for rec in records:
                    fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
            else:
                columns = list(records[0])
                writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
                writer.writerow(columns)
                for rec in records:
                    writer.writerow([rec[c] for c in columns])


def predict_file(model_dir: str | os.PathLike, input_path: str | os.PathLike, output_path: str | os.PathLike,
                 input_format: str | None = None, output_format: str | None = None, batch_size: int = 128) -> int:
    """Predict every row of ``input_path``; write one prediction per row to ``output_path``. Returns rows."""
    input_path, output_path = Path(input_path), Path(output_path)
    dep = load_deployable(model_dir)
    if not input_path.is_file():
        raise AdabertError(f"{input_path}: input file not found")
    in_fmt = infer_format(input_path, input_format, "input", TABLE_FORMATS)
    out_fmt = infer_format(output_path, output_format, "output", OUTPUT_FORMATS)
    rows = read_rows(input_path, in_fmt, dep.text_columns)
    if not rows:
        raise AdabertError(f"{input_path}: no data rows")
    texts = [[str(row[c]) for c in dep.text_columns] for _, row in rows]
    logits = predict_inputs(dep.model, encode_texts(dep, texts), batch_size)
    records = prediction_records(dep, rows, logits)
    write_predictions(output_path, out_fmt, records)
    log.info("predict: %d rows of %s -> %s", len(records), input_path, output_path)
    return len(records)
