"""Loading task rows: local GLUE (glue_data TSV layout), the Hugging Face Hub, or custom files.

``load_splits(cfg, task)`` returns ``(spec, {split: [Example, ...]}, provenance)``; the ``prepare``
stage (:mod:`adabert.encode`) tokenises them. Splits are ``train`` plus the task's eval splits
(``dev``; MNLI ``dev_matched`` and ``dev_mismatched``), in that order.

Local GLUE files are read as the GLUE processors of ``transformers`` read them: ``csv.reader`` with
tab delimiter and ``quoting=csv.QUOTE_NONE`` (quotes are literal text; QQP and MNLI have unbalanced
quotes), UTF-8 with an optional BOM (MRPC). Columns are found by header name (MNLI: ``sentence1``,
``sentence2`` and ``gold_label``, the last of its 12/16 columns); CoLA has no header and is read by
position (source, label, original_label, sentence).

Malformed rows:
- A row whose number of fields differs from the header's is a known defect of the official files
  (QQP: question2 and the label joined by a space; the GLUE QqpProcessor skips such rows). It is
  skipped, counted, logged with file and line numbers, and recorded in the provenance
  (``skipped``/``skipped_lines``). If more than max(10, 1%) of a file's rows are malformed the file
  is not a glue_data TSV: AdabertError.
- A last row with too few fields in a file that does not end in a newline is a truncated file:
  AdabertError with file and line.
- Any other bad row (a label outside the label set, a non-numeric STS-B score, a missing header
  column, non-UTF-8 bytes, a NUL byte): AdabertError with file and line.

Provenance of every split: ``n`` (rows used), ``source``, ``official`` (false when the source is only
a subset of the official split, or carved out of train), ``note``, ``n_available`` (rows before the
cap), ``capped``, ``skipped``, ``skipped_lines``. Caps (``data.max_train_examples`` /
``max_eval_examples``, overridden by ``data.per_task[task]``) are deterministic seeded subsamples that
keep the original row order; a capped split keeps its ``official`` flag (the flag describes the
source) and its note says it is a subsample.
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from adabert.errors import AdabertError
from adabert.tasks import COLA_COLUMNS, TaskSpec, get_task
from adabert.textfiles import decode_file, delimited_rows, label_text, read_table

log = logging.getLogger(__name__)

GLUE_LAYOUT = (
    "expected the glue_data layout <glue_dir>/<Task>/{train,dev}.tsv (MNLI: train.tsv, dev_matched.tsv, "
    "dev_mismatched.tsv), as written by download_glue_data.py; set glue_dir (or ADABERT_GLUE_DIR) to that folder"
)
CARVE_NOTE = "held-out split, not official dev (carved from {file})"
MAX_SKIPPED_LINES_RECORDED = 100


@dataclass(frozen=True)
class Example:
    idx: int  # row index in the source (0-based data row of the file; the Hub's idx)
    texts: tuple[str, ...]
    label: int | float

    def to_json(self) -> dict[str, Any]:
        return {"idx": self.idx, "texts": list(self.texts), "label": self.label}


@dataclass
class Split:
    """Rows of one split and where they came from."""

    examples: list[Example]
    source: str
    official: bool = True
    note: str = ""
    skipped: int = 0
    skipped_lines: list[int] = field(default_factory=list)
    n_available: int | None = None
    capped: bool = False

    def provenance(self) -> dict[str, Any]:
        return {
            "n": len(self.examples),
            "source": self.source,
            "official": self.official,
            "note": self.note,
            "n_available": self.n_available if self.n_available is not None else len(self.examples),
            "capped": self.capped,
            "skipped": self.skipped,
            "skipped_lines": self.skipped_lines[:MAX_SKIPPED_LINES_RECORDED],
        }


# --------------------------------------------------------------------------------------------
# config helpers


def resolve_glue_dir(cfg: Mapping[str, Any]) -> Path | None:
    """``cfg['glue_dir']``, else the environment variable ADABERT_GLUE_DIR, else None (= the Hub)."""
    value = cfg.get("glue_dir")
    if not value:
        value = os.environ.get("ADABERT_GLUE_DIR") or None
    return Path(value).expanduser() if value else None


def _data_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(cfg.get("data") or {})
    data.setdefault("max_train_examples", None)
    data.setdefault("max_eval_examples", None)
    data.setdefault("per_task", {})
    data.setdefault("missing_dev", "carve")
    data.setdefault("carve_examples", 2000)
    data.setdefault("seed", 0)
    return data


def caps_for(cfg: Mapping[str, Any], task: str) -> tuple[int | None, int | None]:
    """(max_train_examples, max_eval_examples) of a task: data.per_task[task] overrides the defaults."""
    data = _data_cfg(cfg)
    train_cap, eval_cap = data["max_train_examples"], data["max_eval_examples"]
    override = (data.get("per_task") or {}).get(task) or {}
    if "max_train_examples" in override:
        train_cap = override["max_train_examples"]
    if "max_eval_examples" in override:
        eval_cap = override["max_eval_examples"]
    return train_cap, eval_cap


def _rng(seed: int, *tag: str) -> np.random.Generator:
    """A numpy Generator seeded by data.seed and a stable tag (task/split/purpose)."""
    return np.random.Generator(np.random.PCG64([int(seed), zlib.crc32("/".join(tag).encode("utf-8"))]))


def subsample(examples: list[Example], cap: int | None, seed: int, *tag: str) -> list[Example]:
    """Deterministic seeded subsample of at most ``cap`` rows, in the original order."""
    if cap is None or len(examples) <= cap:
        return list(examples)
    chosen = np.sort(_rng(seed, *tag, "cap").choice(len(examples), size=cap, replace=False))
    return [examples[i] for i in chosen]


# --------------------------------------------------------------------------------------------
# local GLUE TSV files (the file reading itself: adabert.textfiles)


def _check_skips(path: Path, skipped: list[int], total: int) -> None:
    if not skipped:
        return
    if len(skipped) > max(10, 0.01 * total):
        raise AdabertError(
            f"{path}: {len(skipped)} of {total} rows have the wrong number of fields (first at line(s) "
            f"{skipped[:5]}); this is not a glue_data TSV (tab-separated, unquoted)"
        )
    shown = ", ".join(map(str, skipped[:20])) + (" ..." if len(skipped) > 20 else "")
    log.warning("%s: skipped %d malformed row(s) with the wrong number of fields at line(s) %s", path, len(skipped), shown)


def _parse_label(spec: TaskSpec, value: str, where: str) -> int | float:
    if spec.is_regression:
        try:
            x = float(value)
        except ValueError:
            raise AdabertError(f"{where}: {spec.label_column} {value!r} is not a number") from None
        if not math.isfinite(x):
            raise AdabertError(f"{where}: {spec.label_column} {value!r} is not a finite number")
        return x
    assert spec.label_names is not None
    try:
        return spec.label_names.index(value)
    except ValueError:
        raise AdabertError(
            f"{where}: label {value!r} (column {spec.label_column!r}) is not one of {list(spec.label_names)}"
        ) from None


def read_glue_tsv(spec: TaskSpec, path: Path) -> tuple[list[Example], list[int]]:
    """Labelled rows of one local GLUE TSV and the line numbers of skipped malformed rows."""
    text, ends_with_newline = decode_file(path)
    rows = list(delimited_rows(path, text))
    if spec.has_header:
        if not rows:
            raise AdabertError(f"{path}: empty file (no header); {GLUE_LAYOUT}")
        header = rows[0][1]
        missing = [c for c in (*spec.text_columns, spec.label_column) if c not in header]
        if missing:
            raise AdabertError(
                f"{path}:1: header lacks column(s) {missing}; columns present: {header}. This is not the {spec.name} "
                f"file of the glue_data layout"
            )
        columns, data_rows = header, rows[1:]
    else:
        columns, data_rows = list(COLA_COLUMNS), rows
    n_fields = len(columns)
    text_pos = [columns.index(c) for c in spec.text_columns]
    # MNLI: gold_label is the last column (the GLUE MnliProcessor reads line[-1])
    label_pos = columns.index(spec.label_column)
    examples: list[Example] = []
    skipped: list[int] = []
    for i, (line, fields) in enumerate(data_rows):
        if len(fields) != n_fields:
            if i == len(data_rows) - 1 and not ends_with_newline and len(fields) < n_fields:
                raise AdabertError(
                    f"{path}:{line}: truncated file: the last row has {len(fields)} of {n_fields} fields and no line end"
                )
            skipped.append(line)
            continue
        label = _parse_label(spec, fields[label_pos], f"{path}:{line}")
        examples.append(Example(idx=i, texts=tuple(fields[p] for p in text_pos), label=label))
    _check_skips(path, skipped, len(data_rows))
    return examples, skipped


# --------------------------------------------------------------------------------------------
# custom files (TSV, CSV, JSONL)


def read_custom(spec: TaskSpec, path: str | Path) -> list[Example]:
    examples = []
    for i, (line_no, row) in enumerate(read_table(path, spec.file_format, [*spec.text_columns, spec.label_column])):
        where = f"{path}:{line_no}"
        texts = []
        for c in spec.text_columns:
            if row[c] is None:
                raise AdabertError(f"{where}: column {c!r} is null")
            texts.append(str(row[c]))
        raw = row[spec.label_column]
        if spec.is_regression:
            if isinstance(raw, bool) or raw is None:
                raise AdabertError(f"{where}: {spec.label_column} {raw!r} is not a number")
            label = _parse_label(spec, str(raw).strip(), where)
        else:
            value = label_text(raw)
            if not value:
                raise AdabertError(f"{where}: empty label in column {spec.label_column!r}")
            label = _parse_label(spec, value, where)
        examples.append(Example(idx=i, texts=tuple(texts), label=label))
    return examples


# --------------------------------------------------------------------------------------------
# Hugging Face Hub


def hub_examples(spec: TaskSpec, dataset: Any, split: str = "?") -> list[Example]:
    """Examples of one ``datasets.Dataset`` split of nyu-mll/glue; labels mapped BY NAME.

    The Hub's ClassLabel order differs from ours for some tasks (MNLI: entailment, neutral,
    contradiction); ``spec.hub_label_names[i]`` names our label i, so a Hub label id j becomes
    ``hub_label_names.index(names[j])``.
    """
    columns = list(dataset.column_names)
    missing = [c for c in (*spec.hub_text_columns, "label") if c not in columns]
    if missing:
        raise AdabertError(f"{spec.hub_path}/{spec.hub_config}/{split}: missing column(s) {missing}; columns present: {columns}")
    labels = list(dataset["label"])
    if spec.is_regression:
        mapped: list[int | float] = [float(x) for x in labels]
    else:
        assert spec.hub_label_names is not None
        feature = dataset.features["label"]
        names = getattr(feature, "names", None)
        if not names:
            raise AdabertError(f"{spec.hub_path}/{spec.hub_config}/{split}: the label column is not a ClassLabel")
        ours = {hub_name: i for i, hub_name in enumerate(spec.hub_label_names)}
        unknown = [n for n in names if n not in ours]
        if unknown:
            raise AdabertError(
                f"{spec.hub_path}/{spec.hub_config}: Hub label name(s) {unknown} unknown; expected {list(spec.hub_label_names)}"
            )
        to_ours = [ours[n] for n in names]
        if any(x < 0 for x in labels):
            raise AdabertError(f"{spec.hub_path}/{spec.hub_config}/{split}: unlabelled rows (label -1); not a labelled split")
        mapped = [to_ours[x] for x in labels]
    idxs = list(dataset["idx"]) if "idx" in columns else list(range(len(labels)))
    text_cols = [list(dataset[c]) for c in spec.hub_text_columns]
    return [Example(idx=int(idxs[i]), texts=tuple(col[i] for col in text_cols), label=mapped[i]) for i in range(len(labels))]


def _load_hub(spec: TaskSpec) -> dict[str, Split]:
    if spec.hub_config is None:
        raise AdabertError(f"task {spec.name} has no Hugging Face Hub source")
    try:
        import datasets

        ds = datasets.load_dataset(spec.hub_path, spec.hub_config)
    except Exception as exc:  # network, missing cache, ...: all mean "not available"
        raise AdabertError(
            f"could not load {spec.hub_path}/{spec.hub_config} from the Hugging Face Hub (offline?); "
            f"set glue_dir or ADABERT_GLUE_DIR to a local glue_data folder ({type(exc).__name__}: {exc})"
        ) from exc
    out: dict[str, Split] = {}
    for ours, theirs in (("train", spec.hub_train_split), *spec.hub_eval_splits):
        if theirs not in ds:
            raise AdabertError(f"{spec.hub_path}/{spec.hub_config}: no split {theirs!r} (has {list(ds)})")
        examples = hub_examples(spec, ds[theirs], theirs)
        out[ours] = Split(examples, source=f"hf://{spec.hub_path}/{spec.hub_config}/{theirs}")
    return out


# --------------------------------------------------------------------------------------------
# assembling the splits


def _mark_subset(spec: TaskSpec, name: str, split: Split) -> None:
    official = spec.official_size(name)
    n = len(split.examples)
    if official is None:
        return
    if n < official:
        split.official = False
        split.note = f"subset of official {name} ({n:,}/{official:,} labelled rows)"
    elif n > official:
        split.official = False
        split.note = f"more rows than the official {name} ({n:,} > {official:,} labelled rows): not the GLUE file?"
        log.warning("%s %s: %s", spec.name, name, split.note)
    else:
        split.note = "complete official split"


def _load_local(spec: TaskSpec, glue_dir: Path, data: Mapping[str, Any]) -> dict[str, Split]:
    if not glue_dir.is_dir():
        raise AdabertError(f"glue_dir {glue_dir} not found; {GLUE_LAYOUT}")
    task_dir = glue_dir / (spec.local_dir or spec.name)
    if not task_dir.is_dir():
        raise AdabertError(f"{task_dir} not found; {GLUE_LAYOUT}")

    def read(name: str, file: str) -> Split:
        path = task_dir / file
        examples, skipped = read_glue_tsv(spec, path)
        split = Split(examples, source=str(path), skipped=len(skipped), skipped_lines=skipped)
        _mark_subset(spec, name, split)
        return split

    train_path = task_dir / spec.train_file
    if not train_path.is_file():
        raise AdabertError(f"{train_path} not found; {GLUE_LAYOUT}")
    missing = [(name, task_dir / file) for name, file in spec.eval_files if not (task_dir / file).is_file()]
    for name, path in missing:  # fail before reading anything
        if data["missing_dev"] != "carve":
            raise AdabertError(
                f"{path} not found: the local {spec.name} copy has no labelled {name} file. Set data.missing_dev: carve "
                f"to hold out data.carve_examples labelled training rows as a (non-official) dev split, or provide the file "
                f"({GLUE_LAYOUT})"
            )
        if len(spec.eval_files) != 1:
            raise AdabertError(
                f"{path} not found; carving a dev split out of train applies only to tasks with a single dev split, "
                f"{spec.name} has {list(spec.eval_splits)}. Provide the file ({GLUE_LAYOUT})"
            )
    out = {"train": read("train", spec.train_file)}
    for name, file in spec.eval_files:
        if (task_dir / file).is_file():
            out[name] = read(name, file)
        else:
            out["train"], out[name] = _carve(spec, name, out["train"], data)
    return out


def _carve(spec: TaskSpec, name: str, train: Split, data: Mapping[str, Any]) -> tuple[Split, Split]:
    k = int(data["carve_examples"])
    n = len(train.examples)
    if k >= n:
        raise AdabertError(
            f"{spec.name}: cannot carve {k} dev rows out of {n} training rows ({train.source}); lower data.carve_examples"
        )
    held = np.zeros(n, dtype=bool)
    held[_rng(data["seed"], spec.name, name, "carve").choice(n, size=k, replace=False)] = True
    file = Path(train.source).name
    dev = Split([e for e, h in zip(train.examples, held) if h], source=train.source, official=False,
                note=CARVE_NOTE.format(file=file))
    rest = Split([e for e, h in zip(train.examples, held) if not h], source=train.source, official=train.official,
                 note="; ".join(x for x in (train.note, f"{k:,} rows held out as the carved {name} split") if x),
                 skipped=train.skipped, skipped_lines=train.skipped_lines)
    log.warning("%s: no labelled %s file; carved %d training rows out of %s as a held-out %s split (not official dev)",
                spec.name, name, k, train.source, name)
    return rest, dev


def _load_custom(spec: TaskSpec) -> dict[str, Split]:
    out = {"train": Split(read_custom(spec, spec.train_file), source=str(spec.train_file), note="custom task file")}
    for name, file in spec.eval_files:
        out[name] = Split(read_custom(spec, file), source=str(file), note="custom task file")
    return out


def load_splits(cfg: Mapping[str, Any], task: str) -> tuple[TaskSpec, dict[str, list[Example]], dict[str, Any]]:
    """Rows of every split of ``task`` after caps, and their provenance.

    Returns ``(spec, {"train": [...], <eval split>: [...], ...}, provenance)`` where provenance holds
    ``task``, ``origin`` ("glue_dir" | "hub" | "custom"), ``glue_dir``, ``eval_splits``, ``main_split``
    and ``splits`` ({split: {n, source, official, note, n_available, capped, skipped, skipped_lines}}).
    """
    spec = get_task(task, cfg.get("custom_tasks") or {})
    data = _data_cfg(cfg)
    glue_dir = None
    if spec.custom:
        origin, splits = "custom", _load_custom(spec)
    else:
        glue_dir = resolve_glue_dir(cfg)
        if glue_dir is not None:
            origin, splits = "glue_dir", _load_local(spec, glue_dir, data)
        else:
            origin, splits = "hub", _load_hub(spec)
            for name, split in splits.items():
                _mark_subset(spec, name, split)

    train_cap, eval_cap = caps_for(cfg, task)
    for name, split in splits.items():
        if not split.examples:
            raise AdabertError(f"task {task}: split {name} is empty after filtering ({split.source})")
        cap = train_cap if name == "train" else eval_cap
        split.n_available = len(split.examples)
        split.examples = subsample(split.examples, cap, data["seed"], task, name)
        if len(split.examples) < split.n_available:
            split.capped = True
            if name != "train":  # a capped evaluation split is not the official one, whatever it was cut from
                split.official = False
            sub = f"seeded subsample of {len(split.examples):,} of {split.n_available:,} rows"
            split.note = f"{split.note}; {sub}" if split.note else sub
        if split.skipped:
            lines = split.skipped_lines
            log.info("%s %s: %d malformed row(s) skipped (lines %s)", task, name, split.skipped, lines[:20])
        log.info("%s %s: %d examples (of %d available) from %s%s", task, name, len(split.examples), split.n_available,
                 split.source, "" if split.official else f" [not official: {split.note}]")
    provenance = {
        "task": task,
        "origin": origin,
        "glue_dir": str(glue_dir) if glue_dir is not None else None,
        "eval_splits": list(spec.eval_splits),
        "main_split": spec.main_split,
        "splits": {name: split.provenance() for name, split in splits.items()},
    }
    return spec, {name: split.examples for name, split in splits.items()}, provenance
