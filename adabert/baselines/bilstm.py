"""BiLSTM-SOFT baseline (Tang et al. 2019, "Distilling task-specific knowledge from BERT into simple
neural networks"): a one-layer BiLSTM student distilled from the teacher's logits.

Model (:class:`BiLSTMSoft`): word embeddings initialised from the teacher's input word embeddings
(vocab x teacher hidden, trainable), dropout, one bidirectional LSTM layer (``hidden`` units per
direction), max-pooling over the real tokens. Sentence pairs share the encoder and classify
``[h_a, h_b, h_a * h_b, |h_a - h_b|]``; single-sentence tasks encode sentence a only. Then dropout, a
ReLU layer of ``mlp_hidden`` units, dropout and the output layer.

Padding is handled by masking, not ``pack_padded_sequence`` (so the graph exports to ONNX with dynamic
batch and length): the forward LSTM reads the right-padded sentence as is (its states at real tokens
never see the padding), the backward LSTM reads every sentence reversed within its own length (a
per-row gather), so both directions equal those of a packed sequence exactly; the pooling ignores the
padded positions (LSTM outputs lie in (-1, 1), padded positions are set to -2).

Loss (Tang et al.): L = (1 - gamma) CE(gold) + gamma MSE(student logits, teacher logits), gamma =
``loss.gamma``; regression: MSE to the gold score and to the teacher's score.

Folder (``out_dir``): ``model.safetensors``, ``bilstm.json`` (:func:`metadata`: hyper-parameters and
the task, enough to rebuild the module with :func:`load_folder`), the tokenizer files, ``metrics.json``,
``config.json``, ``predictions_{split}.jsonl``.

Importing this module registers FLOP formulas for PyTorch's fused LSTM kernels (oneDNN on CPU,
cuDNN on GPU) with :mod:`torch.utils.flop_counter`, which otherwise counts 0 FLOPs for them, so the
measurement code (:mod:`adabert.measure.size`) counts the recurrent matrix products.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from adabert import artifacts, io
from adabert.baselines import train as train_mod
from adabert.batching import STUDENT_INPUTS, trim
from adabert.distill import Objective, kd_loss
from adabert.measure.reference import load_teacher
from adabert.measure.size import count_params
from adabert.models import load_tokenizer
from adabert.retrain import predict_logits
from adabert.errors import AdabertError

log = logging.getLogger(__name__)

KIND = "bilstm"
FORMAT = "adabert-bilstm"
METADATA_VERSION = 1
METADATA_FILE = "bilstm.json"
MODEL_FILE = "model.safetensors"
GRAD_CLIP = 5.0
PAD_FILL = -2.0  # below every LSTM output (they lie in (-1, 1)), so the max-pool ignores padded positions
LABEL = "BiLSTM-SOFT (Tang et al. 2019)"


# -- FLOPs of the fused LSTM kernels ------------------------------------------------------------------
def _rnn_flops(input_shape, weights, batch_first: bool) -> int:
    """2 FLOPs per multiply-add of every gate matrix (input and recurrent) at every step and row."""
    steps, rows = (input_shape[1], input_shape[0]) if batch_first else (input_shape[0], input_shape[1])
    if len(input_shape) == 2:  # unbatched
        steps, rows = input_shape[0], 1
    macs = sum(int(w[0]) * int(w[1]) for w in weights if w is not None and len(w) == 2)
    return 2 * int(steps) * int(rows) * macs


def _register_flop_formulas() -> None:
    from torch.utils.flop_counter import flop_registry, register_flop_formula

    aten = torch.ops.aten
    targets = []
    if hasattr(aten, "mkldnn_rnn_layer") and aten.mkldnn_rnn_layer not in flop_registry:
        def mkldnn_lstm(input, w0, w1, w2, w3, hx, cx, reverse, batch_sizes, mode, hidden_size, num_layers,
                        has_biases, bidirectional, batch_first, train, out_shape=None, **kwargs) -> int:
            return _rnn_flops(input, [w0, w1], bool(batch_first))

        targets.append((aten.mkldnn_rnn_layer, mkldnn_lstm))
    if hasattr(aten, "_cudnn_rnn") and aten._cudnn_rnn not in flop_registry:
        def cudnn_rnn(input, weight, weight_stride0, weight_buf, hx, cx, mode, hidden_size, proj_size, num_layers,
                      batch_first, *args, out_shape=None, **kwargs) -> int:
            return _rnn_flops(input, list(weight), bool(batch_first))

        targets.append((aten._cudnn_rnn, cudnn_rnn))
    for op, formula in targets:
        register_flop_formula(op)(formula)


try:
    _register_flop_formulas()
except Exception as exc:  # noqa: BLE001 - an older torch: FLOPs of the LSTM stay uncounted
    log.debug("LSTM FLOP formulas not registered (%s)", exc)


# -- model --------------------------------------------------------------------------------------------
def reverse_index(mask: torch.Tensor) -> torch.Tensor:
    """Per-row time index that reverses each row's first ``len`` positions and keeps the padding in place
    (an involution: applying the gather twice restores the order). ``mask`` [B, L] -> [B, L] int64."""
    lengths = mask.to(torch.int64).sum(1, keepdim=True)
    positions = torch.arange(mask.shape[1], device=mask.device, dtype=torch.int64).unsqueeze(0)
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class BiLSTMSoft(nn.Module):
    """``forward(a_ids, a_mask, b_ids, b_mask) -> logits [B, num_labels]`` (the student signature)."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden: int, mlp_hidden: int, num_labels: int,
                 pair: bool, dropout: float = 0.1) -> None:
        super().__init__()
        self.pair = bool(pair)
        self.hidden = int(hidden)
        self.word_embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.lstm_forward = nn.LSTM(embedding_dim, hidden, batch_first=True)
        self.lstm_backward = nn.LSTM(embedding_dim, hidden, batch_first=True)
        features = 2 * hidden * (4 if self.pair else 1)
        self.dropout = nn.Dropout(dropout)
        self.mlp = nn.Linear(features, mlp_hidden)
        self.classifier = nn.Linear(mlp_hidden, num_labels)

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Max-pooled BiLSTM states [B, 2 hidden] of the real tokens of each row."""
        x = self.dropout(self.word_embeddings(ids))
        forward_states, _ = self.lstm_forward(x)
        index = reverse_index(mask)
        backward_states, _ = self.lstm_backward(_gather_time(x, index))
        states = torch.cat([forward_states, _gather_time(backward_states, index)], dim=-1)
        real = mask.unsqueeze(-1) > 0
        return torch.where(real, states, torch.full_like(states, PAD_FILL)).max(dim=1).values

    def forward(self, a_ids: torch.Tensor, a_mask: torch.Tensor, b_ids: torch.Tensor, b_mask: torch.Tensor) -> torch.Tensor:
        h_a = self.encode(a_ids, a_mask)
        if self.pair:
            h_b = self.encode(b_ids, b_mask)
            features = torch.cat([h_a, h_b, h_a * h_b, (h_a - h_b).abs()], dim=-1)
        else:
            features = h_a
        hidden = F.relu(self.mlp(self.dropout(features)))
        return self.classifier(self.dropout(hidden))


def bilstm_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor, gamma: float) -> dict[str, torch.Tensor]:
    """Tang et al.: ``loss`` = (1 - gamma) CE + gamma MSE(logits, teacher logits) (regression: MSE to gold)."""
    parts = kd_loss(Objective(labels, logits.shape[-1] == 1, 1.0), logits, kd="mse_logits", gamma=gamma,
                    teacher_logits=teacher_logits)
    return {k: parts[k] for k in ("loss", "ce", "kd")}


# -- folder -------------------------------------------------------------------------------------------
def metadata(model: BiLSTMSoft, spec, meta: dict, dropout: float, teacher_dir: Path) -> dict:
    return {
        "format": FORMAT,
        "schema_version": METADATA_VERSION,
        "vocab_size": int(model.word_embeddings.num_embeddings),
        "embedding_dim": int(model.word_embeddings.embedding_dim),
        "hidden": int(model.hidden),
        "mlp_hidden": int(model.mlp.out_features),
        "num_labels": int(model.classifier.out_features),
        "pair": bool(model.pair),
        "dropout": float(dropout),
        "inputs": ["a_ids", "a_mask", "b_ids", "b_mask"],
        "encoding": artifacts.ENCODING_NOTE,
        "embeddings_from": str(teacher_dir / "model"),
        "tokenizer_source": meta.get("tokenizer"),
        "task": artifacts.task_metadata(spec, meta),
    }


def load_folder(folder: str | os.PathLike) -> tuple[BiLSTMSoft, dict]:
    """The trained BiLSTM (eval mode) and its ``bilstm.json`` from a baseline folder; strict weights."""
    folder = Path(folder)
    meta_path = folder / METADATA_FILE
    meta = io.read_json(meta_path)
    keys = ("format", "vocab_size", "embedding_dim", "hidden", "mlp_hidden", "num_labels", "pair", "dropout", "task")
    missing = [k for k in keys if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise AdabertError(f"{meta_path}: missing field(s) {missing}")
    if meta["format"] != FORMAT:
        raise AdabertError(f"{meta_path}: format {meta['format']!r}, expected {FORMAT!r}")
    model = BiLSTMSoft(int(meta["vocab_size"]), int(meta["embedding_dim"]), int(meta["hidden"]),
                       int(meta["mlp_hidden"]), int(meta["num_labels"]), bool(meta["pair"]), float(meta["dropout"]))
    path = folder / MODEL_FILE
    tensors = io.load_tensors(path)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise AdabertError(f"{path}: does not match {meta_path} ({exc})") from None
    return model.eval(), meta


# -- the stage ----------------------------------------------------------------------------------------
def teacher_word_embeddings(teacher_dir: Path) -> torch.Tensor:
    teacher = load_teacher(teacher_dir).module
    weight = teacher.get_input_embeddings().weight.detach().clone()
    del teacher
    return weight


def run_bilstm(cfg: dict, task: str, seed: int, data_dir: str | os.PathLike, teacher_dir: str | os.PathLike,
               out_dir: str | os.PathLike) -> dict:
    """Train BiLSTM-SOFT on one task / seed (settings: ``baselines.bilstm``, ``loss.gamma``); returns metrics."""
    bcfg, lcfg, start_time = train_mod.start(cfg, KIND, seed)
    teacher_dir, gamma = Path(teacher_dir), float(lcfg["gamma"])

    data = artifacts.read_data(data_dir)
    train = artifacts.distillation_set(data, teacher_dir, None, STUDENT_INPUTS)
    evals = {s: data.split(s, STUDENT_INPUTS) for s in data.eval_splits}
    embeddings = teacher_word_embeddings(teacher_dir)
    tokenizer = load_tokenizer(str(artifacts.teacher_model_dir(teacher_dir)))
    max_id = max(int(t[k].max()) for t in (train, *evals.values()) for k in ("a_input_ids", "b_input_ids"))
    if max_id >= embeddings.shape[0]:
        raise AdabertError(f"{data.path}: token id {max_id} beyond the teacher's vocabulary of {embeddings.shape[0]}")
    dropout = float(bcfg["dropout"])
    model = BiLSTMSoft(embeddings.shape[0], embeddings.shape[1], int(bcfg["hidden"]), int(bcfg["mlp_hidden"]),
                       data.num_labels, data.pair, dropout)
    with torch.no_grad():
        model.word_embeddings.weight.copy_(embeddings)
    del embeddings
    device = io.device()
    model.to(device)
    batch_size = int(bcfg["batch_size"])
    meta = metadata(model, data.spec, data.meta, dropout, teacher_dir)

    def step(m: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        b = trim(batch)
        logits = m(b["a_input_ids"], b["a_attention_mask"], b["b_input_ids"], b["b_attention_mask"])
        return bilstm_loss(logits, b["labels"], b["teacher_logits"], gamma)

    def save_model(tmp: Path) -> None:
        io.save_tensors(tmp / MODEL_FILE, model.state_dict(),
                        metadata={"format": FORMAT, "schema_version": str(METADATA_VERSION), "task": task})
        io.write_json(tmp / METADATA_FILE, meta)
        tokenizer.save_pretrained(str(tmp))

    return train_mod.train_and_write(
        model, kind=KIND, task=task, seed=seed, cfg=cfg, data=data, train=train, evals=evals, step=step,
        predict=lambda m, split: predict_logits(m, split, 2 * batch_size),
        recipe=train_mod.recipe(bcfg, seed, GRAD_CLIP), device=device, params=count_params, save_model=save_model,
        out_dir=out_dir, start_time=start_time,
        label=LABEL, depth=1, gamma=gamma, kd="mse_logits", loss="(1 - gamma) CE + gamma MSE(student logits, teacher logits)",
        hyperparameters={k: bcfg[k] for k in sorted(bcfg) if k != "enabled"}, embedding_dim=meta["embedding_dim"],
        pair=data.pair, data_dir=str(data.path), teacher_dir=str(teacher_dir))
