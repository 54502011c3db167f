"""Probes stage: one linear probe per teacher layer, reproducible logits, probes that actually learn."""

from __future__ import annotations

import json

import pytest
import torch

from adabert import io
from adabert.probes import fit_probes, layer_features, probe_logits
from adabert.artifacts import read_data
from adabert.batching import PACKED_INPUTS

MINILM_LAYERS = 6


def test_probe_files_and_shapes(mrpc_small):
    probes_dir, meta = mrpc_small["probes_dir"], read_data(mrpc_small["data_dir"]).meta
    params = io.load_tensors(probes_dir / "probes.safetensors")
    assert tuple(params["weight"].shape) == (MINILM_LAYERS + 1, 2, 384)
    assert tuple(params["bias"].shape) == (MINILM_LAYERS + 1, 2)
    logits = io.load_tensors(probes_dir / "probe_logits.safetensors")
    assert sorted(logits) == sorted(["train", *meta["eval_splits"]])
    for split, tensor in logits.items():
        assert tensor.dtype == torch.float32 and torch.isfinite(tensor).all()
        assert tuple(tensor.shape) == (meta["splits"][split]["n"], MINILM_LAYERS + 1, 2), split
    info = json.loads((probes_dir / "probes.json").read_text())
    assert info["num_layers"] == MINILM_LAYERS
    assert [entry["layer"] for entry in info["layers"]] == list(range(MINILM_LAYERS + 1))
    assert [entry["input"] for entry in info["layers"]] == ["embedding_mean"] + ["cls"] * MINILM_LAYERS
    for entry in info["layers"]:
        assert set(entry["eval"]) == set(meta["eval_splits"])
        assert entry["main_value"] == entry["eval"][meta["main_split"]]["f1"]
        assert len(entry["train_loss"]) == mrpc_small["cfg"]["probes"]["epochs"]
    assert (probes_dir / "config.json").is_file()


def test_probe_logits_reproduce_from_saved_probes(mrpc_small):
    """Recompute the features independently (full padding, plain loops) and apply the saved probes."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(mrpc_small["teacher_dir"] / "model").eval()
    params = io.load_tensors(mrpc_small["probes_dir"] / "probes.safetensors")
    saved = io.load_tensors(mrpc_small["probes_dir"] / "probe_logits.safetensors")["dev"]
    dev = read_data(mrpc_small["data_dir"]).split("dev", PACKED_INPUTS)
    rows = slice(0, 16)
    with torch.no_grad():
        hidden = model(input_ids=dev["input_ids"][rows], attention_mask=dev["attention_mask"][rows],
                       token_type_ids=dev["token_type_ids"][rows], output_hidden_states=True).hidden_states
    assert len(hidden) == MINILM_LAYERS + 1
    for i in range(16):
        n_tokens = int(dev["attention_mask"][i].sum())
        feats = [hidden[0][i, :n_tokens].mean(dim=0)] + [hidden[layer][i, 0] for layer in range(1, MINILM_LAYERS + 1)]
        for layer, x in enumerate(feats):
            expected = params["weight"][layer].double() @ x.double() + params["bias"][layer].double()
            # the standardisation folded into the weights makes them large (up to ~1e3) on the low-variance
            # dimensions of the lower [CLS] states, so recomputed features (full padding instead of the stage's
            # trimmed batches, ~1e-6 apart) move those logits by up to ~1e-2; a wrong layer or pooling is off by >1
            torch.testing.assert_close(saved[i, layer], expected.float(), atol=3e-2, rtol=1e-2)


def test_top_layer_probe_learns_on_real_teacher(mrpc_small):
    info = json.loads((mrpc_small["probes_dir"] / "probes.json").read_text())
    top = info["layers"][-1]["train_loss"]
    assert top[-1] < top[0]


def test_layer_features_mask_aware_mean_and_cls():
    emb = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # last token is padding
    layer1 = torch.tensor([[[5.0, 6.0], [7.0, 8.0], [9.0, 9.0]]])
    feats = layer_features((emb, layer1), torch.tensor([[1, 1, 0]]))
    assert feats.shape == (1, 2, 2)
    assert torch.equal(feats[0, 0], torch.tensor([2.0, 3.0]))
    assert torch.equal(feats[0, 1], torch.tensor([5.0, 6.0]))


def _synthetic(n=256, layers=4, hidden=16, seed=0):
    """Only layer 2 carries the label (linearly); the other layers are noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    feats = torch.randn(n, layers, hidden, generator=g)
    feats[:, 2, 0] += 3.0 * (2 * labels - 1)
    return feats, labels


def test_batched_probes_learn_only_the_informative_layer():
    feats, labels = _synthetic()
    weight, bias, history = fit_probes(feats, labels, 2, False, epochs=15, batch_size=32, learning_rate=5e-2, seed=0)
    assert weight.shape == (4, 2, 16) and bias.shape == (4, 2) and len(history) == 15
    acc = (probe_logits(feats, weight, bias).argmax(-1) == labels[:, None]).float().mean(dim=0)
    assert acc[2] > 0.95
    assert history[-1][2] < 0.5 * history[0][2]
    test_feats, test_labels = _synthetic(seed=1)
    test_acc = (probe_logits(test_feats, weight, bias).argmax(-1) == test_labels[:, None]).float().mean(dim=0)
    assert test_acc[2] > 0.9
    assert max(test_acc[i] for i in (0, 1, 3)) < 0.7  # noise layers stay near chance on new data


def test_batched_probes_equal_separate_training():
    """Training all probes at once equals training each one alone (the losses are independent)."""
    feats, labels = _synthetic(n=64)
    g = torch.Generator().manual_seed(7)
    init = (torch.randn(4, 2, 16, generator=g), torch.randn(4, 2, generator=g))
    kwargs = dict(epochs=2, batch_size=16, learning_rate=1e-2, seed=3)
    weight, bias, history = fit_probes(feats, labels, 2, False, init=init, **kwargs)
    for layer in (0, 2):
        w, b, h = fit_probes(feats[:, layer:layer + 1], labels, 2, False,
                             init=(init[0][layer:layer + 1], init[1][layer:layer + 1]), **kwargs)
        torch.testing.assert_close(w[0], weight[layer], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b[0], bias[layer], atol=1e-5, rtol=1e-5)
        assert h[-1][0] == pytest.approx(history[-1][layer], abs=1e-5)
    assert not torch.allclose(weight, init[0])


def test_probe_training_is_seeded():
    feats, labels = _synthetic(n=64)
    a = fit_probes(feats, labels, 2, False, epochs=2, batch_size=16, learning_rate=1e-2, seed=5)
    b = fit_probes(feats, labels, 2, False, epochs=2, batch_size=16, learning_rate=1e-2, seed=5)
    c = fit_probes(feats, labels, 2, False, epochs=2, batch_size=16, learning_rate=1e-2, seed=6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_regression_probes_one_output_and_mse_decreases():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(128, 3, 8, generator=g)
    target = 2.5 + feats[:, 1, 0] - 0.5 * feats[:, 1, 3]
    weight, bias, history = fit_probes(feats, target, 1, True, epochs=20, batch_size=32, learning_rate=5e-2, seed=0)
    assert weight.shape == (3, 1, 8) and bias.shape == (3, 1)
    assert history[-1][1] < 0.1 * history[0][1]
    assert history[-1][1] < min(history[-1][0], history[-1][2])


def test_missing_teacher_is_an_error(mrpc_small, tmp_path):
    from adabert import config as config_mod
    from adabert.errors import AdabertError
    from adabert.probes import train_probes

    cfg = config_mod.stage_config(mrpc_small["cfg"], "probes", "MRPC")
    with pytest.raises(AdabertError, match="run the teacher stage first"):
        train_probes(cfg, "MRPC", mrpc_small["data_dir"], tmp_path / "no_teacher", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_standardised_training_finds_tiny_variance_signal_and_folds_exactly():
    """Like the lower [CLS] states: a large constant vector plus a tiny label signal."""
    from adabert.probes import feature_stats, fold_standardisation

    feats, labels = _synthetic(n=256, layers=3, hidden=16)
    feats = 8.0 + 1e-3 * feats  # layer 2 still separates the labels, on a 1e-3 scale
    kwargs = dict(epochs=10, batch_size=32, learning_rate=5e-3, seed=0)
    raw_w, raw_b, _ = fit_probes(feats, labels, 2, False, standardise=False, **kwargs)
    weight, bias, _ = fit_probes(feats, labels, 2, False, standardise=True, **kwargs)

    def acc(w, b):
        return (probe_logits(feats.double(), w.double(), b.double()).argmax(-1)[:, 2] == labels).float().mean()

    assert acc(raw_w, raw_b) < 0.7 < 0.95 < acc(weight, bias)
    mean, inv_std = feature_stats(feats)
    w0, b0 = torch.randn(3, 2, 16), torch.randn(3, 2)
    fw, fb = fold_standardisation(w0, b0, mean, inv_std)
    x = feats[:8].double()
    torch.testing.assert_close(probe_logits(x, fw.double(), fb.double()),
                               probe_logits((x - mean.double()) * inv_std.double(), w0.double(), b0.double()),
                               atol=1e-2, rtol=1e-3)  # float32 folded weights of ~1e3 on inputs ~8
