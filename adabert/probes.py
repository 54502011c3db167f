"""Probes stage: one linear probe classifier per layer of the frozen fine-tuned teacher.

AdaBERT's task-oriented KD (method spec section 3.2) decomposes the teacher's task knowledge layer by
layer with probe classifiers trained on the *frozen* teacher with the gold labels:

* probe 0 reads the mask-aware mean over tokens of the embedding output (``hidden_states[0]``);
* probe l >= 1 reads the raw [CLS] (first-token) state of hidden layer l (no pooler),

so a teacher with L hidden layers gets L + 1 probes (7 for MiniLM-L6). Probes are trained with CE
(MSE for regression) and Adam; the probe logits on every split are the KD targets of the search.

The teacher runs once over each split (eval mode, no grad) and its per-layer features ``[N, L+1, H]``
are cached **in memory** for the rest of the stage (float32: N * (L+1) * H * 4 bytes, e.g. 21 MB for
2000 MiniLM examples, 80 MB for 2000 BERT-base examples); the cache is not written to disk.
All L + 1 probes are trained at once as one batched tensor op (``einsum`` over a ``[L+1, C, H]`` weight);
the per-layer losses are summed, and as Adam is elementwise this is the same as training each probe alone.
The probes are trained on standardised features (per layer and dimension, train statistics) and the
standardisation is folded into the saved weight and bias, so ``probes.safetensors`` applies to the raw
features (see :func:`fit_probes` for why: without it the lower-layer [CLS] probes stay at chance).

Outputs (Probes contract, docs/ARCHITECTURE.md): ``probes.safetensors`` (``weight [L+1, C, H]``,
``bias [L+1, C]``), ``probe_logits.safetensors`` (``[N, L+1, C]`` per split), ``probes.json``, ``config.json``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from adabert import artifacts, io, metrics, models
from adabert.errors import AdabertError
from adabert.batching import PACKED_INPUTS, batched_outputs

log = logging.getLogger(__name__)

INIT_STD = 0.02  # dense init of the authors' TF probes


def load_teacher(teacher_dir: str | os.PathLike, meta: dict):
    """The fine-tuned teacher of ``teacher_dir/model``, frozen (eval mode, no grad)."""
    folder = artifacts.teacher_model_dir(teacher_dir)
    if not (folder / "config.json").is_file():
        raise AdabertError(f"{folder}: no fine-tuned teacher here (config.json missing); run the teacher stage first")
    regression = meta["type"] == "regression"
    model = models.load_classifier(str(folder), meta["num_labels"], "regression" if regression else "single_label_classification")
    model.eval()
    model.requires_grad_(False)
    return model


def layer_features(hidden_states, attention_mask: torch.Tensor) -> torch.Tensor:
    """``[B, L+1, H]`` probe inputs: masked mean of the embedding output, then [CLS] of layers 1..L."""
    mask = attention_mask.to(hidden_states[0].dtype).unsqueeze(-1)
    emb = (hidden_states[0] * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return torch.stack([emb, *(h[:, 0] for h in hidden_states[1:])], dim=1).float()


def extract_features(model, data: dict[str, torch.Tensor], batch_size: int, device: torch.device,
                     desc: str = "features") -> torch.Tensor:
    """Per-layer features ``[N, L+1, H]`` (float32, CPU, original row order) of the frozen teacher."""
    model.eval()

    def forward(batch):
        return layer_features(model(**batch, output_hidden_states=True).hidden_states, batch["attention_mask"])

    return batched_outputs(forward, data, batch_size, device, desc)


def probe_logits(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``[N, L+1, C]`` logits of every probe on its own layer's features ``[N, L+1, H]``."""
    return torch.einsum("nlh,lch->nlc", features, weight) + bias


def _losses(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    """Mean loss of each probe over the batch: ``[L+1]``."""
    if regression:
        return ((logits[..., 0] - labels[:, None]) ** 2).mean(dim=0)
    n, layers, c = logits.shape
    ce = F.cross_entropy(logits.reshape(n * layers, c), labels.repeat_interleave(layers), reduction="none")
    return ce.view(n, layers).mean(dim=0)


def fit_probes(features: torch.Tensor, labels: torch.Tensor, num_labels: int, regression: bool, *,
               epochs: int, batch_size: int, learning_rate: float, seed: int,
               device: torch.device | None = None, standardise: bool = True,
               init: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, list[list[float]]]:
    """Train L + 1 linear probes at once on cached features ``[N, L+1, H]``.

    With ``standardise`` the probes are trained on features standardised per layer and dimension with
    the statistics of ``features``, and the standardisation is then folded into the returned weight and
    bias, so they apply to the *raw* features (the contract) and each probe is still a linear classifier
    of its raw layer state. Only the optimisation changes: the [CLS] states of the lower layers of a
    fine-tuned encoder are a large constant vector plus tiny example-specific variations (MiniLM: mean
    magnitude up to ~10, std ~1e-3), which Adam at lr 5e-3 cannot use on the raw scale, so those probes
    stayed at chance (SST-2: 51% raw, 64-70% standardised).

    The weights start from N(0, 0.02^2) and zero biases (drawn from the seeded generator), or from ``init``
    (in the space the probes are trained in). Returns ``weight [L+1, C, H]``, ``bias [L+1, C]`` (CPU) and the
    mean train loss of every epoch per probe (``[epochs][L+1]``).
    """
    device = device or torch.device("cpu")
    n, layers, hidden = features.shape
    if standardise:
        mean, inv_std = feature_stats(features)
        features = (features - mean) * inv_std
    generator = torch.Generator().manual_seed(seed)
    if init is None:
        init = (torch.randn(layers, num_labels, hidden, generator=generator) * INIT_STD, torch.zeros(layers, num_labels))
    if tuple(init[0].shape) != (layers, num_labels, hidden) or tuple(init[1].shape) != (layers, num_labels):
        raise AdabertError(f"probe init shapes {list(init[0].shape)}, {list(init[1].shape)} do not match "
                           f"{layers} layers, {num_labels} outputs, {hidden} features")
    weight = init[0].detach().clone().float().to(device).requires_grad_(True)
    bias = init[1].detach().clone().float().to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([weight, bias], lr=learning_rate)
    feats = features.to(device)
    targets = labels.to(device).float() if regression else labels.to(device).long()
    history: list[list[float]] = []
    for _ in range(epochs):
        total = torch.zeros(layers, device=device)
        for idx in torch.randperm(n, generator=generator).split(batch_size):
            idx = idx.to(device)
            per_layer = _losses(probe_logits(feats[idx], weight, bias), targets[idx], regression)
            optimizer.zero_grad(set_to_none=True)
            per_layer.sum().backward()
            optimizer.step()
            total += per_layer.detach() * idx.numel()
        history.append([float(v) for v in (total / n).cpu()])
    weight, bias = weight.detach().cpu(), bias.detach().cpu()
    if standardise:
        weight, bias = fold_standardisation(weight, bias, mean, inv_std)
    return weight, bias, history


def feature_stats(features: torch.Tensor, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Per layer and dimension mean ``[L+1, H]`` and 1/std (0 for a constant dimension, which is then unused)."""
    x = features.double()
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False) if x.shape[0] > 1 else torch.zeros_like(mean)
    inv_std = torch.where(std > eps * mean.abs().clamp(min=1.0), 1.0 / std.clamp(min=1e-30), torch.zeros_like(std))
    return mean.float(), inv_std.float()


def fold_standardisation(weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor,
                         inv_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias on raw features equal to ``weight``/``bias`` applied to ``(x - mean) * inv_std``."""
    w = weight.double() * inv_std.double()[:, None, :]
    b = bias.double() - torch.einsum("lch,lh->lc", w, mean.double())
    return w.float(), b.float()


def train_probes(cfg: dict, task: str, data_dir: str | os.PathLike, teacher_dir: str | os.PathLike,
                 out_dir: str | os.PathLike) -> dict:
    """Train one linear probe per layer of the frozen teacher and write the Probes contract into ``out_dir``.

    Returns the ``probes.json`` dict.
    """
    pcfg = cfg["probes"]
    teacher_dir = Path(teacher_dir)
    folder = artifacts.read_data(data_dir)
    spec = folder.check_task(cfg, task)
    meta, regression, num_labels = folder.meta, folder.regression, folder.num_labels
    splits = ["train", *folder.eval_splits]
    data = {s: folder.split(s, PACKED_INPUTS) for s in splits}

    io.set_seed(int(pcfg["seed"]))
    device = io.device()
    t0 = time.perf_counter()
    features = artifacts.read_teacher_features(teacher_dir, splits, {s: data[s]["labels"].shape[0] for s in splits})
    if features is None:  # a teacher folder without the labelling pass's features: run the teacher here
        eval_bs = int(cfg.get("teacher", {}).get("eval_batch_size", 128))
        model = load_teacher(teacher_dir, meta).to(device)
        features = {s: extract_features(model, data[s], eval_bs, device, desc=f"features {s}") for s in splits}
        del model
    num_layers = int(io.read_json(artifacts.teacher_model_dir(teacher_dir) / "config.json")["num_hidden_layers"])
    if features["train"].shape[1] != num_layers + 1:
        raise AdabertError(f"{teacher_dir / 'model'}: {features['train'].shape[1]} hidden states for "
                           f"{num_layers} layers (expected embedding + one per layer)")
    t_features = time.perf_counter() - t0

    weight, bias, history = fit_probes(
        features["train"], data["train"]["labels"], num_labels, regression,
        epochs=int(pcfg["epochs"]), batch_size=int(pcfg["batch_size"]),
        learning_rate=float(pcfg["learning_rate"]), seed=int(pcfg["seed"]), device=device)
    with torch.no_grad():
        # float64: the folded weights of low-variance dimensions are large, so float32 would lose ~1e-3
        logits = {s: probe_logits(features[s].double(), weight.double(), bias.double()).float() for s in splits}

    layers = []
    for layer in range(num_layers + 1):
        ev = {s: metrics.compute(spec, logits[s][:, layer], data[s]["labels"]) for s in meta["eval_splits"]}
        layers.append({
            "layer": layer,
            "input": "embedding_mean" if layer == 0 else "cls",
            "eval": ev,
            "main_value": ev[meta["main_split"]][spec.main_metric],
            "train_loss": [epoch[layer] for epoch in history],
        })
    result = {
        "task": task,
        "num_layers": num_layers,
        "hidden_size": int(weight.shape[-1]),
        "num_labels": num_labels,
        "main_metric": spec.main_metric,
        "main_split": meta["main_split"],
        "layers": layers,
        "standardised_training": True,
        "feature_time_s": round(t_features, 3),
        "time_s": round(time.perf_counter() - t0, 3),
    }
    artifacts.write_probes(out_dir, weight=weight, bias=bias, logits=logits, result=result, cfg=cfg)
    log.info("probes %s: %s per layer = %s", task, spec.main_metric,
             ", ".join(f"{entry['main_value']:.1f}" for entry in layers))
    return result
