"""Reading UTF-8 text tables: TSV, CSV and JSONL files of rows, with errors that name file and line.

Shared by the task registry (:mod:`adabert.tasks`: the labels of a custom task), the data loader
(:mod:`adabert.data`: local GLUE TSVs, custom task files) and prediction (:mod:`adabert.predict`: the
rows to predict). TSV is read with ``quoting=csv.QUOTE_NONE`` (quotes are literal text, as the GLUE
processors read it), CSV with the standard quoting; files are UTF-8 with an optional BOM.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Iterable

from adabert.errors import AdabertError

TABLE_FORMATS = ("tsv", "csv", "jsonl")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def decode_file(path: Path) -> tuple[str, bool]:
    """File text (UTF-8, optional BOM) and whether it ends with a newline; errors name file:line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AdabertError(f"{path} not found") from None
    except OSError as exc:
        raise AdabertError(f"{path}: cannot read ({exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise AdabertError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {col}); the file must be UTF-8"
        ) from None
    return text, raw.endswith(b"\n") or raw.endswith(b"\r")


def delimited_rows(path: Path, text: str, quoting: int = csv.QUOTE_NONE, delimiter: str = "\t") -> Iterable[tuple[int, list[str]]]:
    """(line number, fields) of every row; csv errors (e.g. NUL bytes) become AdabertError with file:line."""
    reader = csv.reader(io.StringIO(text, newline=None), delimiter=delimiter, quoting=quoting)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise AdabertError(f"{path}:{reader.line_num}: unreadable row ({exc})") from None
        yield reader.line_num, fields


def label_text(value: Any) -> str | None:
    """String form of a label value: strings stripped, integral numbers without '.0', JSON booleans."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_table(path: str | Path, fmt: str, required: Iterable[str]) -> list[tuple[int, dict[str, Any]]]:
    """Rows of a custom TSV/CSV/JSONL file as (line number, {column: value}); checks required columns."""
    path = Path(path)
    if fmt not in TABLE_FORMATS:
        raise AdabertError(f"{path}: unknown format {fmt!r}; expected one of {list(TABLE_FORMATS)}")
    if not path.is_file():
        raise AdabertError(f"{path} not found (custom task file; paths are relative to the working directory {Path.cwd()})")
    required = list(required)
    text, ends_with_newline = decode_file(path)
    out: list[tuple[int, dict[str, Any]]] = []
    if fmt == "jsonl":
        for line_no, line in enumerate(io.StringIO(text, newline=None), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AdabertError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise AdabertError(f"{path}:{line_no}: a JSONL row must be an object, got {type(obj).__name__}")
            missing = [c for c in required if c not in obj]
            if missing:
                raise AdabertError(f"{path}:{line_no}: missing column(s) {missing}; columns present: {sorted(obj)}")
            out.append((line_no, obj))
        return out
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    rows = list(delimited_rows(path, text, quoting=quoting, delimiter="\t" if fmt == "tsv" else ","))
    if not rows:
        raise AdabertError(f"{path}: empty file (a header row naming the columns is required)")
    header = rows[0][1]
    missing = [c for c in required if c not in header]
    if missing:
        raise AdabertError(f"{path}: missing column(s) {missing}; columns present: {header}")
    for i, (line_no, fields) in enumerate(rows[1:]):
        if not fields:  # blank line
            continue
        if len(fields) != len(header):
            what = "truncated file: the last row" if i == len(rows) - 2 and not ends_with_newline else "row"
            raise AdabertError(f"{path}:{line_no}: {what} has {len(fields)} fields, the header has {len(header)}")
        out.append((line_no, dict(zip(header, fields))))
    return out


def distinct_labels(path: str | Path, fmt: str, label_column: str, task: str) -> set[str]:
    """The distinct labels (:func:`label_text`) of ``label_column``; an empty one is an error naming file:line."""
    labels: set[str] = set()
    for line_no, row in read_table(path, fmt, [label_column]):
        value = label_text(row[label_column])
        if not value:
            raise AdabertError(f"{path}:{line_no}: empty label in column {label_column!r} (task {task})")
        labels.add(value)
    return labels
