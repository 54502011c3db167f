"""The folder formats (adabert.artifacts): readers check what they read and name the file that is wrong."""

from __future__ import annotations

import shutil

import pytest
import torch

from adabert import artifacts, io
from adabert.batching import PACKED_INPUTS, STUDENT_INPUTS
from adabert.errors import AdabertError


@pytest.fixture
def copy(mrpc_small, tmp_path):
    """Writable copies of the small MRPC data, teacher and probes folders."""
    out = {}
    for name in ("data_dir", "teacher_dir", "probes_dir"):
        out[name] = tmp_path / name
        shutil.copytree(mrpc_small[name], out[name])
    return out


def test_data_folder_reads_both_layouts(mrpc_small):
    data = artifacts.read_data(mrpc_small["data_dir"])
    assert (data.num_labels, data.main_split, data.regression, data.pair) == (2, "dev", False, True)
    packed = data.split("dev", PACKED_INPUTS)
    student = data.split("dev", STUDENT_INPUTS)
    n = data.provenance["dev"]["n"]
    assert packed["input_ids"].shape[0] == student["a_input_ids"].shape[0] == n
    assert packed["labels"].dtype == torch.int64 and torch.equal(packed["labels"], student["labels"])
    assert len(data.indices("dev", n)) == n


def test_distillation_set_aligns_the_teacher_targets(mrpc_small):
    data = artifacts.read_data(mrpc_small["data_dir"])
    train = artifacts.distillation_set(data, mrpc_small["teacher_dir"], mrpc_small["probes_dir"], STUDENT_INPUTS)
    n = train["labels"].shape[0]
    logits = io.load_tensors(mrpc_small["teacher_dir"] / "logits.safetensors")["train"]
    assert torch.equal(train["teacher_logits"], logits) and train["teacher_logits"].shape == (n, 2)
    assert train["teacher_probe_logits"].shape[:1] == (n,) and train["teacher_probe_logits"].shape[2] == 2


@pytest.mark.parametrize("edit, message", [
    (lambda meta: meta.pop("main_split"), "missing key 'main_split'"),
    (lambda meta: meta.update(type="ranking"), "type must be classification or regression"),
    (lambda meta: meta.update(main_split="test"), "main_split 'test' is not in eval_splits"),
    (lambda meta: meta["splits"]["dev"].update(n=3), "meta.json says splits.dev.n = 3"),
])
def test_bad_meta_is_an_error_naming_the_file(copy, edit, message):
    meta = io.read_json(copy["data_dir"] / "meta.json")
    edit(meta)
    io.write_json(copy["data_dir"] / "meta.json", meta)
    with pytest.raises(AdabertError, match=message) as err:
        artifacts.read_data(copy["data_dir"]).split("dev", STUDENT_INPUTS)
    assert str(copy["data_dir"]) in str(err.value)


def test_teacher_and_probe_targets_of_the_wrong_shape_are_named(copy):
    data = artifacts.read_data(copy["data_dir"])
    logits = io.load_tensors(copy["teacher_dir"] / "logits.safetensors")
    logits["train"] = logits["train"][:5]
    io.save_tensors(copy["teacher_dir"] / "logits.safetensors", logits)
    with pytest.raises(AdabertError, match=r"logits.safetensors: 'train' has shape \[5, 2\]"):
        artifacts.distillation_set(data, copy["teacher_dir"], None, STUDENT_INPUTS)
    probes = io.read_json(copy["probes_dir"] / "probes.json")
    probes["num_layers"] += 1
    io.write_json(copy["probes_dir"] / "probes.json", probes)
    with pytest.raises(AdabertError, match=r"probe_logits.safetensors: 'train' has shape .*num_layers"):
        artifacts.distillation_set(data, None, copy["probes_dir"], STUDENT_INPUTS)


def test_labels_outside_the_task_are_named(copy):
    tensors = io.load_tensors(copy["data_dir"] / "dev.safetensors")
    tensors["labels"][0] = 7
    io.save_tensors(copy["data_dir"] / "dev.safetensors", tensors)
    with pytest.raises(AdabertError, match=r"dev.safetensors: labels outside 0..1"):
        artifacts.read_data(copy["data_dir"]).split("dev", PACKED_INPUTS)
