"""Task registry: the nine GLUE tasks plus user-defined (custom) tasks.

A :class:`TaskSpec` says everything the pipeline needs to know about a task: its type, its label
names in model order, its metrics (the first one is the main metric), where its rows live in the
local ``glue_data`` layout, and how to read it from the Hugging Face Hub (``nyu-mll/glue``).

Label names are the strings of the GLUE TSV files (MNLI ``contradiction``/``entailment``/``neutral``,
QNLI/RTE ``entailment``/``not_entailment``, binary tasks ``"0"``/``"1"``); the model order is the one
of the GLUE processors in ``transformers``. Labels are always mapped **by name**, never by
position: ``hub_label_names[i]`` is the Hub's ClassLabel name of our label ``label_names[i]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from adabert.errors import AdabertError
from adabert.textfiles import TABLE_FORMATS, distinct_labels

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASK_TYPES = (CLASSIFICATION, REGRESSION)

CLASSIFICATION_METRICS = ("accuracy", "f1", "mcc")
REGRESSION_METRICS = ("pearson", "spearman")
ALL_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS

CUSTOM_FORMATS = TABLE_FORMATS  # the file formats of a custom task


@dataclass(frozen=True)
class TaskSpec:
    """One task. Frozen: the registry hands out shared instances.

    ``train_file`` and ``eval_files`` (eval split name -> file) are relative to ``<glue_dir>/<local_dir>``
    for GLUE tasks and absolute/relative-to-cwd paths for custom tasks. ``main_split`` is the eval split
    whose main metric is *the* score of the task (MNLI: ``dev_matched``).
    """

    name: str
    type: str
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    text_columns: tuple[str, ...]
    label_column: str
    train_file: str
    eval_files: tuple[tuple[str, str], ...]
    main_split: str
    local_dir: str | None = None
    has_header: bool = True
    file_format: str = "tsv"
    # Hugging Face Hub (GLUE tasks only)
    hub_path: str | None = None
    hub_config: str | None = None
    hub_train_split: str | None = None
    hub_eval_splits: tuple[tuple[str, str], ...] = ()
    hub_text_columns: tuple[str, ...] = ()
    hub_label_names: tuple[str, ...] | None = None
    # official sizes (labelled rows) of the full splits, to flag local subsets
    official_sizes: tuple[tuple[str, int], ...] = ()
    custom: bool = False

    def __post_init__(self) -> None:
        if self.type not in TASK_TYPES:
            raise AdabertError(f"task {self.name}: type must be one of {TASK_TYPES}, got {self.type!r}")
        if not self.metrics:
            raise AdabertError(f"task {self.name}: at least one metric is needed")
        allowed = CLASSIFICATION_METRICS if self.type == CLASSIFICATION else REGRESSION_METRICS
        bad = [m for m in self.metrics if m not in allowed]
        if bad:
            raise AdabertError(
                f"task {self.name}: metric(s) {bad} do not apply to a {self.type} task; "
                f"allowed: {list(allowed)}"
            )
        if self.type == CLASSIFICATION:
            if not self.label_names or len(self.label_names) < 2:
                raise AdabertError(f"task {self.name}: a classification task needs at least 2 labels, got {self.label_names}")
            if len(set(self.label_names)) != len(self.label_names):
                raise AdabertError(f"task {self.name}: duplicate label names {list(self.label_names)}")
        elif self.label_names is not None:
            raise AdabertError(f"task {self.name}: a regression task has no label names")
        if not 1 <= len(self.text_columns) <= 2:
            raise AdabertError(f"task {self.name}: one or two text columns expected, got {list(self.text_columns)}")
        if self.main_split not in dict(self.eval_files):
            raise AdabertError(f"task {self.name}: main split {self.main_split!r} is not an eval split")

    @property
    def num_labels(self) -> int:
        return 1 if self.type == REGRESSION else len(self.label_names or ())

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    @property
    def is_regression(self) -> bool:
        return self.type == REGRESSION

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    @property
    def eval_splits(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.eval_files)

    def official_size(self, split: str) -> int | None:
        return dict(self.official_sizes).get(split)

    def label_index(self, name: str) -> int:
        """Index of a label name; AdabertError if it is not a label of this task."""
        assert self.label_names is not None
        try:
            return self.label_names.index(name)
        except ValueError:
            raise AdabertError(f"task {self.name}: unknown label {name!r}; labels are {list(self.label_names)}") from None


def _glue(name: str, *, type: str = CLASSIFICATION, labels, metrics, text_columns, label_column,
          hub_config, hub_text_columns, hub_labels, sizes, eval_files=(("dev", "dev.tsv"),),
          hub_eval=(("dev", "validation"),), has_header=True) -> TaskSpec:
    return TaskSpec(
        name=name, type=type, label_names=labels, metrics=metrics, text_columns=text_columns,
        label_column=label_column, train_file="train.tsv", eval_files=eval_files,
        main_split=eval_files[0][0], local_dir=name, has_header=has_header, file_format="tsv",
        hub_path="nyu-mll/glue", hub_config=hub_config, hub_train_split="train", hub_eval_splits=hub_eval,
        hub_text_columns=hub_text_columns, hub_label_names=hub_labels, official_sizes=sizes,
    )


# Official numbers of labelled rows (GLUE v1 / the HF glue builder), to detect local subsets.
_REGISTRY: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        # CoLA files have no header: source, label, original_label (blank), sentence.
        _glue("CoLA", labels=("0", "1"), metrics=("mcc",), text_columns=("sentence",), label_column="label",
              hub_config="cola", hub_text_columns=("sentence",), hub_labels=("unacceptable", "acceptable"),
              sizes=(("train", 8551), ("dev", 1043)), has_header=False),
        _glue("SST-2", labels=("0", "1"), metrics=("accuracy",), text_columns=("sentence",), label_column="label",
              hub_config="sst2", hub_text_columns=("sentence",), hub_labels=("negative", "positive"),
              sizes=(("train", 67349), ("dev", 872))),
        _glue("MRPC", labels=("0", "1"), metrics=("f1", "accuracy"), text_columns=("#1 String", "#2 String"),
              label_column="Quality", hub_config="mrpc", hub_text_columns=("sentence1", "sentence2"),
              hub_labels=("not_equivalent", "equivalent"), sizes=(("train", 3668), ("dev", 408))),
        _glue("STS-B", type=REGRESSION, labels=None, metrics=("pearson", "spearman"),
              text_columns=("sentence1", "sentence2"), label_column="score", hub_config="stsb",
              hub_text_columns=("sentence1", "sentence2"), hub_labels=None, sizes=(("train", 5749), ("dev", 1500))),
        _glue("QQP", labels=("0", "1"), metrics=("f1", "accuracy"), text_columns=("question1", "question2"),
              label_column="is_duplicate", hub_config="qqp", hub_text_columns=("question1", "question2"),
              hub_labels=("not_duplicate", "duplicate"), sizes=(("train", 363846), ("dev", 40430))),
        _glue("MNLI", labels=("contradiction", "entailment", "neutral"), metrics=("accuracy",),
              text_columns=("sentence1", "sentence2"), label_column="gold_label", hub_config="mnli",
              hub_text_columns=("premise", "hypothesis"), hub_labels=("contradiction", "entailment", "neutral"),
              sizes=(("train", 392702), ("dev_matched", 9815), ("dev_mismatched", 9832)),
              eval_files=(("dev_matched", "dev_matched.tsv"), ("dev_mismatched", "dev_mismatched.tsv")),
              hub_eval=(("dev_matched", "validation_matched"), ("dev_mismatched", "validation_mismatched"))),
        _glue("QNLI", labels=("entailment", "not_entailment"), metrics=("accuracy",),
              text_columns=("question", "sentence"), label_column="label", hub_config="qnli",
              hub_text_columns=("question", "sentence"), hub_labels=("entailment", "not_entailment"),
              sizes=(("train", 104743), ("dev", 5463))),
        _glue("RTE", labels=("entailment", "not_entailment"), metrics=("accuracy",),
              text_columns=("sentence1", "sentence2"), label_column="label", hub_config="rte",
              hub_text_columns=("sentence1", "sentence2"), hub_labels=("entailment", "not_entailment"),
              sizes=(("train", 2490), ("dev", 277))),
        _glue("WNLI", labels=("0", "1"), metrics=("accuracy",), text_columns=("sentence1", "sentence2"),
              label_column="label", hub_config="wnli", hub_text_columns=("sentence1", "sentence2"),
              hub_labels=("not_entailment", "entailment"), sizes=(("train", 635), ("dev", 71))),
    )
}

GLUE_TASKS: tuple[str, ...] = tuple(_REGISTRY)

# CoLA has no header; these are the positions of its columns (source, label, original_label, sentence).
COLA_COLUMNS = ("source", "label", "original_label", "sentence")


def _format_of(path: str, fmt: str | None, task: str) -> str:
    if fmt:
        if fmt not in CUSTOM_FORMATS:
            raise AdabertError(f"custom task {task}: format must be one of {list(CUSTOM_FORMATS)}, got {fmt!r}")
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in CUSTOM_FORMATS:
        return suffix
    raise AdabertError(
        f"custom task {task}: cannot tell the format of {path} from its extension "
        f"(expected .tsv, .csv or .jsonl); set custom_tasks.{task}.format"
    )


def custom_task(name: str, entry: Mapping[str, Any]) -> TaskSpec:
    """Build the TaskSpec of a custom task from its config entry.

    With ``labels: null`` the labels are the sorted distinct (string) labels of the training file,
    which is read here for that purpose.
    """
    for key in ("train", "dev", "text_columns", "label_column", "type"):
        if key not in entry or entry[key] is None:
            raise AdabertError(f"custom_tasks.{name}: missing key {key!r}")
    train, dev = str(entry["train"]), str(entry["dev"])
    fmt_train = _format_of(train, entry.get("format"), name)
    fmt_dev = _format_of(dev, entry.get("format"), name)
    if fmt_train != fmt_dev:
        raise AdabertError(f"custom task {name}: train ({fmt_train}) and dev ({fmt_dev}) files must have the same format")
    ttype = entry["type"]
    if ttype not in TASK_TYPES:
        raise AdabertError(f"custom_tasks.{name}.type must be one of {list(TASK_TYPES)}, got {ttype!r}")
    metrics = tuple(entry.get("metrics") or ("accuracy",))
    if ttype == REGRESSION and metrics == ("accuracy",):
        # the schema default ([accuracy]) is meaningless for regression: use the STS-B metrics
        metrics = REGRESSION_METRICS
    labels = entry.get("labels")
    if ttype == REGRESSION:
        if labels:
            raise AdabertError(f"custom_tasks.{name}: a regression task takes no labels (got {labels})")
        label_names = None
    elif labels:
        label_names = tuple(str(x) for x in labels)
    else:
        label_names = tuple(sorted(distinct_labels(train, fmt_train, str(entry["label_column"]), name)))
        if len(label_names) < 2:
            raise AdabertError(
                f"custom task {name}: {train} has {len(label_names)} distinct label(s) {list(label_names)} in column "
                f"{entry['label_column']!r}; a classification task needs at least 2 (or set custom_tasks.{name}.labels)"
            )
    return TaskSpec(
        name=name, type=ttype, label_names=label_names, metrics=metrics,
        text_columns=tuple(str(c) for c in entry["text_columns"]), label_column=str(entry["label_column"]),
        train_file=train, eval_files=(("dev", dev),), main_split="dev", local_dir=None, has_header=True,
        file_format=fmt_train, custom=True,
    )


def get_task(name: str, custom_tasks: Mapping[str, Any] | None = None) -> TaskSpec:
    """The TaskSpec of a GLUE task or of an entry of ``custom_tasks`` (the config's ``custom_tasks``)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    custom_tasks = custom_tasks or {}
    if name in custom_tasks:
        return custom_task(name, custom_tasks[name])
    allowed = list(GLUE_TASKS) + sorted(custom_tasks)
    raise AdabertError(f"unknown task {name!r}; allowed: {', '.join(allowed)} (custom tasks go under custom_tasks)")


def spec_from_meta(meta: Mapping[str, Any]) -> TaskSpec:
    """Rebuild a TaskSpec from a data ``meta.json`` (later stages need no config or data files)."""
    name = meta["task"]
    if name in _REGISTRY:
        return _REGISTRY[name]
    eval_splits = list(meta.get("eval_splits") or ["dev"])
    labels = meta.get("label_names")
    return TaskSpec(
        name=name, type=meta["type"], label_names=tuple(labels) if labels is not None else None,
        metrics=tuple(meta.get("metrics") or (("pearson", "spearman") if meta["type"] == REGRESSION else ("accuracy",))),
        text_columns=tuple(meta["text_columns"]), label_column=meta.get("label_column", "label"),
        train_file="", eval_files=tuple((s, "") for s in eval_splits), main_split=meta.get("main_split", eval_splits[0]),
        custom=True,
    )
