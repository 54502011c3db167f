"""Task registry: GLUE specs, custom tasks, errors."""

from __future__ import annotations

import pytest

from adabert.errors import AdabertError
from adabert.tasks import GLUE_TASKS, get_task, spec_from_meta


def test_nine_glue_tasks_with_their_metrics():
    assert GLUE_TASKS == ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI")
    expected = {
        "CoLA": ("mcc",), "SST-2": ("accuracy",), "MRPC": ("f1", "accuracy"), "STS-B": ("pearson", "spearman"),
        "QQP": ("f1", "accuracy"), "MNLI": ("accuracy",), "QNLI": ("accuracy",), "RTE": ("accuracy",),
        "WNLI": ("accuracy",),
    }
    for name, metrics in expected.items():
        spec = get_task(name)
        assert spec.metrics == metrics and spec.main_metric == metrics[0]


def test_label_names_and_num_labels():
    assert get_task("STS-B").type == "regression"
    assert get_task("STS-B").num_labels == 1 and get_task("STS-B").label_names is None
    assert get_task("MNLI").label_names == ("contradiction", "entailment", "neutral")
    assert get_task("QNLI").label_names == get_task("RTE").label_names == ("entailment", "not_entailment")
    for name in ("CoLA", "SST-2", "MRPC", "QQP", "WNLI"):
        assert get_task(name).label_names == ("0", "1")
        assert get_task(name).num_labels == 2
    assert get_task("MNLI").num_labels == 3


def test_mnli_eval_splits_and_hub_info():
    mnli = get_task("MNLI")
    assert mnli.eval_splits == ("dev_matched", "dev_mismatched")
    assert mnli.main_split == "dev_matched"
    assert dict(mnli.eval_files) == {"dev_matched": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv"}
    assert dict(mnli.hub_eval_splits) == {"dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched"}
    assert get_task("QQP").eval_splits == ("dev",)
    for name in GLUE_TASKS:
        spec = get_task(name)
        assert spec.hub_path == "nyu-mll/glue" and spec.hub_config
        if spec.label_names is not None:  # one Hub name per label, in OUR order
            assert len(spec.hub_label_names) == len(spec.label_names) == len(set(spec.hub_label_names))


def test_unknown_task_lists_allowed_names():
    with pytest.raises(AdabertError) as err:
        get_task("MNLI-m", {"mytask": {}})
    msg = str(err.value)
    assert "MNLI-m" in msg and "CoLA" in msg and "WNLI" in msg and "mytask" in msg


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_custom_task_spec(tmp_path):
    train = _write(tmp_path / "train.tsv", "text\tlab\nx\tpos\ny\tneg\nz\tneu\n")
    dev = _write(tmp_path / "dev.tsv", "text\tlab\nx\tpos\n")
    entry = {"train": train, "dev": dev, "text_columns": ["text"], "label_column": "lab", "type": "classification",
             "labels": None, "metrics": ["f1", "accuracy"], "format": None}
    spec = get_task("mine", {"mine": entry})
    assert spec.label_names == ("neg", "neu", "pos")  # sorted distinct train labels
    assert spec.main_metric == "f1" and spec.file_format == "tsv" and spec.eval_splits == ("dev",)
    spec2 = get_task("mine", {"mine": {**entry, "labels": ["pos", "neg", "neu"]}})
    assert spec2.label_names == ("pos", "neg", "neu")  # config order is model order


def test_custom_regression_and_bad_metric(tmp_path):
    train = _write(tmp_path / "t.csv", "a,b,y\nx,y,1.5\n")
    entry = {"train": train, "dev": train, "text_columns": ["a", "b"], "label_column": "y", "type": "regression",
             "metrics": ["accuracy"]}
    spec = get_task("reg", {"reg": entry})  # schema default [accuracy] -> the regression metrics
    assert spec.metrics == ("pearson", "spearman") and spec.num_labels == 1 and spec.is_pair
    with pytest.raises(AdabertError, match="mcc"):
        get_task("reg", {"reg": {**entry, "metrics": ["pearson", "mcc"]}})


def test_custom_format_from_extension(tmp_path):
    entry = {"train": str(tmp_path / "a.txt"), "dev": str(tmp_path / "b.txt"), "text_columns": ["t"],
             "label_column": "l", "type": "classification", "labels": ["0", "1"]}
    with pytest.raises(AdabertError, match="format"):
        get_task("c", {"c": entry})
    assert get_task("c", {"c": {**entry, "format": "jsonl"}}).file_format == "jsonl"


def test_spec_from_meta_round_trip():
    meta = {"task": "mine", "type": "classification", "label_names": ["b", "a"], "text_columns": ["t"],
            "metrics": ["accuracy"], "eval_splits": ["dev"], "main_split": "dev"}
    spec = spec_from_meta(meta)
    assert spec.label_names == ("b", "a") and spec.num_labels == 2 and spec.main_metric == "accuracy"
    assert spec_from_meta({"task": "MNLI"}) is get_task("MNLI")
