"""Retrain stage: train the derived student (fixed architecture) with CE + KD and save it deployable.

Reads the Data (``data_dir``), Teacher (``teacher_dir``), Probes (``probes_dir``) and Derive
(``derive_dir``: ``genotype.json`` + ``weights.safetensors``) contracts. The student is built from the
genotype and, with ``retrain.init: inherit``, starts from the weights the derive stage cut out of the
supernet; with ``scratch`` every weight except the (teacher-derived) embedding tables is re-initialised.

Objective (no efficiency loss, the architecture is fixed): L = (1 - gamma) CE + gamma KD with gamma and
the temperature T from the ``loss`` section (so an ablation variant's loss settings reach its retrain):

* ``retrain.kd: final``: KD = T^2 KL(P^T || P^S) on the teacher's final logits (MSE for regression);
* ``probe+final``: KD = 0.5 probe KD + 0.5 final KD, the probe KD of the search (``adabert.nas.losses``):
  student layer i = 0..K (0 = embedding) matched to teacher probe ceil(i L_T / K), attentive weights
  softmax(-CE of the teacher probe on the batch). The student layers are read out by auxiliary linear
  heads (as the supernet's probes), trained along and discarded: the saved student is unchanged;
* ``none``: CE only (gamma is ignored).

AdamW (no decay on biases, norms, embeddings and attention logits), cosine learning-rate decay to 0,
batches trimmed to their longest sentence. After every epoch the student is evaluated on every eval
split; the best epoch on the main split (ties keep the earlier) is saved.

Outputs (``out_dir``, replaced atomically), a self-contained deployable folder:
``model.safetensors``, ``genotype.json``, ``student.json`` (see :func:`student_metadata`), the tokenizer
files (``tokenizer.save_pretrained`` of the teacher's tokenizer), ``metrics.json``,
``predictions_{split}.jsonl`` (``idx``, gold ``label``/``label_index``, ``prediction``/
``prediction_index`` and ``logits`` (classification) or ``score`` (regression)) and ``config.json``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from adabert import io
from adabert import metrics as metrics_mod
from adabert import tasks as tasks_mod
from adabert.errors import AdabertError
from adabert.nas.genotype import Genotype
from adabert.nas.losses import teacher_layer
from adabert.student import (
    GENOTYPE_FILE,
    METADATA_FILE,
    MODEL_FILE,
    WEIGHTS_FILE,
    Student,
)

log = logging.getLogger(__name__)

STUDENT_KEYS = ("a_input_ids", "a_attention_mask", "b_input_ids", "b_attention_mask")
FORMAT = "adabert-student"
METADATA_VERSION = 1
ENCODING_NOTE = (
    "student inputs: each sentence tokenised alone as [CLS] s [SEP] (padding to max_seq_length, truncation); "
    "single-sentence tasks repeat sentence a as b"
)


# -- data ---------------------------------------------------------------------------------------------
def load_student_split(data_dir: Path, split: str, regression: bool) -> dict[str, torch.Tensor]:
    path = data_dir / f"{split}.safetensors"
    tensors = io.load_tensors(path)
    missing = [k for k in (*STUDENT_KEYS, "labels") if k not in tensors]
    if missing:
        raise AdabertError(f"{path}: missing tensor(s) {missing}")
    n = tensors["labels"].shape[0]
    out = {k: tensors[k].long() for k in STUDENT_KEYS}
    for key, value in out.items():
        if value.dim() != 2 or value.shape[0] != n:
            raise AdabertError(f"{path}: tensor '{key}' has shape {list(value.shape)}, expected [{n}, L]")
    out["labels"] = tensors["labels"].float() if regression else tensors["labels"].long()
    return out


def trim(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut the padding columns no sentence of the batch uses (a and b keep one common length)."""
    length = int(torch.maximum(batch["a_attention_mask"].sum(1).max(), batch["b_attention_mask"].sum(1).max()))
    length = max(length, 1)
    return {k: (v[:, :length] if k in STUDENT_KEYS else v) for k, v in batch.items()}


def read_indices(data_dir: Path, split: str, n: int) -> list[int]:
    """The ``idx`` of every row of ``{split}.jsonl`` (the source row of each example)."""
    path = data_dir / f"{split}.jsonl"
    if not path.is_file():
        raise AdabertError(f"{path}: file not found")
    idx = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                idx.append(int(json.loads(line)["idx"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise AdabertError(f"{path}:{line_no}: not an example row with an 'idx' ({exc})") from None
    if len(idx) != n:
        raise AdabertError(f"{path}: {len(idx)} rows, but {split}.safetensors has {n}")
    return idx


# -- model --------------------------------------------------------------------------------------------
def build_student(genotype: Genotype, inherited: dict[str, torch.Tensor], init: str, dropout: float,
                  source: str) -> Student:
    """The student of ``genotype``: inherited weights, or fresh weights with the inherited embedding tables."""
    student = Student.from_tensors(genotype, inherited, dropout=dropout, source=source)
    if init == "inherit":
        return student
    if init != "scratch":
        raise AdabertError(f"retrain.init must be 'inherit' or 'scratch', got {init!r}")
    fresh = Student(genotype, student.word_embeddings.num_embeddings, student.max_positions,
                    student.classifier.out_features, dropout=dropout)
    with torch.no_grad():
        fresh.word_embeddings.weight.copy_(student.word_embeddings.weight)
        fresh.position_embeddings.weight.copy_(student.position_embeddings.weight)
    return fresh


def param_groups(modules: list[nn.Module], weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for module in modules:
        for name, p in module.named_parameters():
            if p.dim() < 2 or "embeddings" in name:
                no_decay.append(p)
            else:
                decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# -- loss ---------------------------------------------------------------------------------------------
def _kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), log_target=True,
                    reduction="batchmean") * (t * t)


def retrain_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None, *,
                 gamma: float, temperature: float, kd: str, layer_logits: list[torch.Tensor] | None = None,
                 teacher_probe_logits: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``loss`` = (1 - gamma) CE + gamma KD (CE only for kd 'none'); components for logging."""
    regression = logits.shape[-1] == 1
    if regression:
        gold = labels.to(logits.dtype)
        ce = F.mse_loss(logits.squeeze(-1), gold)

        def distill(s, t):
            return F.mse_loss(s, t)
    else:
        ce = F.cross_entropy(logits, labels)

        def distill(s, t):
            return _kl(s, t, temperature)

    zero = logits.new_zeros(())
    parts = {"ce": ce, "kd_final": zero, "kd_probe": zero, "kd": zero}
    if kd == "none":
        parts["loss"] = ce
        return parts
    if kd not in ("final", "probe+final"):
        raise AdabertError(f"retrain.kd must be one of final, probe+final, none; got {kd!r}")
    parts["kd_final"] = distill(logits, teacher_logits)
    if kd == "probe+final":
        teacher_layers = teacher_probe_logits.shape[1] - 1
        depth = len(layer_logits) - 1
        matched = [teacher_layer(i, depth, teacher_layers) for i in range(depth + 1)]
        if regression:
            quality = torch.stack([F.mse_loss(teacher_probe_logits[:, m, 0], gold) for m in matched])
        else:
            quality = torch.stack([F.cross_entropy(teacher_probe_logits[:, m], labels) for m in matched])
        attention = torch.softmax(-quality, dim=0)
        terms = torch.stack([distill(layer_logits[i], teacher_probe_logits[:, m]) for i, m in enumerate(matched)])
        parts["kd_probe"] = (attention * terms).sum()
        parts["kd"] = 0.5 * parts["kd_probe"] + 0.5 * parts["kd_final"]
    else:
        parts["kd"] = parts["kd_final"]
    parts["loss"] = (1.0 - gamma) * ce + gamma * parts["kd"]
    return parts


# -- evaluation ---------------------------------------------------------------------------------------
@torch.no_grad()
def predict_logits(student: Student, split: dict[str, torch.Tensor], batch_size: int) -> torch.Tensor:
    """Logits [N, C] of the student in eval mode (batches trimmed to their longest sentence)."""
    was_training = student.training
    student.eval()
    dev = student.classifier.weight.device
    out = []
    n = split["a_input_ids"].shape[0]
    for start in range(0, n, batch_size):
        b = trim({k: split[k][start:start + batch_size].to(dev) for k in STUDENT_KEYS})
        out.append(student(b["a_input_ids"], b["a_attention_mask"], b["b_input_ids"], b["b_attention_mask"]).cpu())
    student.train(was_training)
    return torch.cat(out).float() if out else torch.zeros(0, student.classifier.out_features)


def prediction_rows(spec: tasks_mod.TaskSpec, idx: list[int], logits: torch.Tensor,
                    labels: torch.Tensor | None) -> list[dict]:
    """One JSON row per example: idx, gold label, prediction and the raw outputs."""
    rows = []
    for i in range(logits.shape[0]):
        row: dict = {"idx": int(idx[i])}
        if spec.is_regression:
            score = float(logits[i, 0])
            if labels is not None:
                row["label"] = float(labels[i])
            row["prediction"] = score
            row["score"] = score
        else:
            pred = int(torch.argmax(logits[i]))
            if labels is not None:
                row["label"] = spec.label_names[int(labels[i])]
                row["label_index"] = int(labels[i])
            row["prediction"] = spec.label_names[pred]
            row["prediction_index"] = pred
            row["logits"] = [float(x) for x in logits[i]]
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def student_metadata(student: Student, spec: tasks_mod.TaskSpec, meta: dict, dropout: float) -> dict:
    """``student.json``: what loading and using the student needs beyond its genotype and weights."""
    return {
        "format": FORMAT,
        "schema_version": METADATA_VERSION,
        "vocab_size": int(student.word_embeddings.num_embeddings),
        "max_positions": int(student.max_positions),
        "num_labels": int(student.classifier.out_features),
        "width": int(student.genotype.width),
        "depth": int(student.genotype.depth),
        "dropout": float(dropout),
        "inputs": ["a_ids", "a_mask", "b_ids", "b_mask"],
        "encoding": ENCODING_NOTE,
        "tokenizer_source": meta.get("tokenizer"),
        "task": task_metadata(spec, meta),
    }


def task_metadata(spec: tasks_mod.TaskSpec, meta: dict) -> dict:
    """The ``task`` block of a deployable folder's metadata: what predicting with it needs."""
    return {
        "name": spec.name,
        "type": spec.type,
        "label_names": list(spec.label_names) if spec.label_names is not None else None,
        "text_columns": list(meta.get("text_columns") or spec.text_columns),
        "max_seq_length": int(meta["max_seq_length"]),
        "metrics": list(spec.metrics),
        "main_metric": spec.main_metric,
    }


# -- the stage ----------------------------------------------------------------------------------------
def run_retrain(
    cfg: dict,
    task: str,
    variant: str,
    seed: int,
    data_dir: str | os.PathLike,
    teacher_dir: str | os.PathLike,
    probes_dir: str | os.PathLike,
    derive_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
) -> dict:
    """Retrain the derived student of one task / variant / seed; returns the metrics summary."""
    from adabert.models import load_tokenizer
    from adabert.teacher import load_meta

    data_dir, teacher_dir, probes_dir, derive_dir, out_dir = map(
        Path, (data_dir, teacher_dir, probes_dir, derive_dir, out_dir))
    rcfg, lcfg = cfg["retrain"], cfg["loss"]
    dropout = float(cfg.get("search", {}).get("dropout", 0.1))
    kd, gamma, temperature = rcfg["kd"], float(lcfg["gamma"]), float(lcfg["temperature"])
    start_time = time.perf_counter()
    run_seed = int(seed) + int(rcfg.get("seed", 0))
    io.set_seed(run_seed)

    # Inputs ------------------------------------------------------------------------------------
    meta = load_meta(data_dir)
    if "max_seq_length" not in meta:
        raise AdabertError(f"{data_dir / 'meta.json'}: missing key 'max_seq_length'")
    spec = tasks_mod.spec_from_meta(meta)
    regression = spec.is_regression
    num_labels = int(meta["num_labels"])
    train = load_student_split(data_dir, "train", regression)
    evals = {s: load_student_split(data_dir, s, regression) for s in meta["eval_splits"]}
    main_split = meta["main_split"]
    n_train = int(train["labels"].shape[0])

    logits_path = teacher_dir / "logits.safetensors"
    if kd != "none":
        teacher_logits = io.load_tensors(logits_path)
        if "train" not in teacher_logits:
            raise AdabertError(f"{logits_path}: missing tensor 'train'")
        train["teacher_logits"] = teacher_logits["train"].float()
        if tuple(train["teacher_logits"].shape) != (n_train, num_labels):
            raise AdabertError(f"{logits_path}: 'train' has shape {list(train['teacher_logits'].shape)}, "
                               f"expected [{n_train}, {num_labels}]")
    if kd == "probe+final":
        probe_path = probes_dir / "probe_logits.safetensors"
        probe_logits = io.load_tensors(probe_path)
        if "train" not in probe_logits:
            raise AdabertError(f"{probe_path}: missing tensor 'train'")
        train["teacher_probe_logits"] = probe_logits["train"].float()
        if train["teacher_probe_logits"].dim() != 3 or train["teacher_probe_logits"].shape[0] != n_train \
                or train["teacher_probe_logits"].shape[2] != num_labels:
            raise AdabertError(f"{probe_path}: 'train' has shape {list(train['teacher_probe_logits'].shape)}, "
                               f"expected [{n_train}, L+1, {num_labels}]")

    genotype = Genotype.load(derive_dir / GENOTYPE_FILE)
    weights_file = derive_dir / WEIGHTS_FILE
    inherited = io.load_tensors(weights_file)
    student = build_student(genotype, inherited, rcfg["init"], dropout, str(weights_file))
    del inherited
    if student.classifier.out_features != num_labels:
        raise AdabertError(f"{weights_file}: classifier has {student.classifier.out_features} outputs, "
                           f"the task {task} has {num_labels} labels")
    max_len = max(t["a_input_ids"].shape[1] for t in (train, *evals.values()))
    if max_len > student.max_positions:
        raise AdabertError(f"{data_dir}: sequences of {max_len} tokens exceed the student's {student.max_positions} positions")
    tokenizer = load_tokenizer(str(teacher_dir / "model"))
    if len(tokenizer) > student.word_embeddings.num_embeddings:
        raise AdabertError(f"{teacher_dir / 'model'}: tokenizer has {len(tokenizer)} tokens, the student's "
                           f"vocabulary {student.word_embeddings.num_embeddings}")

    heads = nn.ModuleList()
    if kd == "probe+final":
        heads = nn.ModuleList(nn.Linear(genotype.width, num_labels) for _ in range(genotype.depth + 1))

    # Optimisation ------------------------------------------------------------------------------
    dev = io.device()
    student.to(dev)
    heads.to(dev)
    epochs, batch_size = int(rcfg["epochs"]), int(rcfg["batch_size"])
    steps_per_epoch = math.ceil(n_train / batch_size)
    total_steps = max(1, epochs * steps_per_epoch)
    opt = torch.optim.AdamW(param_groups([student, heads], float(rcfg["weight_decay"])), lr=float(rcfg["learning_rate"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    shuffle = torch.Generator().manual_seed(run_seed)
    keys = ("loss", "ce", "kd", "kd_final", "kd_probe")

    best = {"epoch": None, "value": -math.inf, "state": None, "logits": None, "eval": None}
    history = []
    train_time = 0.0
    for epoch in range(epochs):
        student.train()
        heads.train()
        t0 = time.perf_counter()
        sums = {k: 0.0 for k in keys}
        order = torch.randperm(n_train, generator=shuffle)
        for begin in range(0, n_train, batch_size):
            idx = order[begin:begin + batch_size]
            b = trim({k: v[idx].to(dev) for k, v in train.items()})
            if kd == "probe+final":
                logits, reps = student.forward_with_layers(b["a_input_ids"], b["a_attention_mask"],
                                                   b["b_input_ids"], b["b_attention_mask"])
                layer_logits = [heads[i](torch.tanh(r)) for i, r in enumerate(reps)]
            else:
                logits = student(b["a_input_ids"], b["a_attention_mask"], b["b_input_ids"], b["b_attention_mask"])
                layer_logits = None
            parts = retrain_loss(logits, b["labels"], b.get("teacher_logits"), gamma=gamma, temperature=temperature,
                                 kd=kd, layer_logits=layer_logits, teacher_probe_logits=b.get("teacher_probe_logits"))
            opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            opt.step()
            sched.step()
            value = float(parts["loss"].detach())
            if not math.isfinite(value):
                raise AdabertError(f"retrain {task} seed {seed}: non-finite loss at epoch {epoch} (diverged)")
            for k in keys:
                sums[k] += float(parts[k].detach()) * idx.numel()
        epoch_train = time.perf_counter() - t0
        train_time += epoch_train
        logits_by_split = {s: predict_logits(student, t, 2 * batch_size) for s, t in evals.items()}
        eval_metrics = {s: metrics_mod.compute(spec, logits_by_split[s], evals[s]["labels"]) for s in evals}
        main = float(eval_metrics[main_split][spec.main_metric])
        history.append({"epoch": epoch, **{k: sums[k] / n_train for k in keys}, "eval": eval_metrics,
                        "main_value": main, "train_time_s": epoch_train, "lr_end": opt.param_groups[0]["lr"]})
        log.info("retrain %s %s seed %d epoch %d: loss %.4f, %s %s %.2f", task, variant, seed, epoch,
                 history[-1]["loss"], main_split, spec.main_metric, main)
        if main > best["value"]:
            best = {"epoch": epoch, "value": main, "state": copy.deepcopy(student.state_dict()),
                    "logits": logits_by_split, "eval": eval_metrics}

    student.load_state_dict(best["state"])
    student.cpu().eval()
    summary = {
        "task": task,
        "variant": variant,
        "seed": int(seed),
        "retrain_seed": run_seed,
        "eval": best["eval"],
        "main_split": main_split,
        "main_metric": spec.main_metric,
        "main_value": best["value"],
        "best_epoch": best["epoch"],
        "epochs": epochs,
        "history": history,
        "init": rcfg["init"],
        "kd": kd,
        "gamma": gamma if kd != "none" else 0.0,
        "temperature": temperature,
        "genotype": genotype.to_dict(),
        "depth": genotype.depth,
        "params": student.num_parameters(),
        "params_without_embeddings": student.num_parameters(include_embeddings=False),
        "n_train": n_train,
        "n_eval": {s: int(t["labels"].shape[0]) for s, t in evals.items()},
        "train_time_s": train_time,
        "train_examples_per_s": n_train * epochs / train_time if train_time > 0 else None,
        "total_time_s": None,
        "splits": meta.get("splits", {}),
        "derive_dir": str(derive_dir),
        "threads": torch.get_num_threads(),
        "device": dev.type,
    }

    # Outputs -----------------------------------------------------------------------------------
    with io.atomic_dir(out_dir) as tmp:
        genotype.save(tmp / GENOTYPE_FILE)
        io.save_tensors(tmp / MODEL_FILE, student.state_dict(),
                        metadata={"format": FORMAT, "schema_version": str(METADATA_VERSION), "task": task})
        tokenizer.save_pretrained(str(tmp))
        io.write_json(tmp / METADATA_FILE, student_metadata(student, spec, meta, dropout))
        for split, logits in best["logits"].items():
            rows = prediction_rows(spec, read_indices(data_dir, split, logits.shape[0]), logits, evals[split]["labels"])
            write_jsonl(tmp / f"predictions_{split}.jsonl", rows)
        summary["total_time_s"] = time.perf_counter() - start_time
        io.write_json(tmp / "metrics.json", summary)
        io.write_json(tmp / "config.json", cfg)
    log.info("retrain %s %s seed %d: best epoch %d, %s %s %.2f -> %s", task, variant, seed, best["epoch"],
             main_split, spec.main_metric, best["value"], out_dir)
    return summary
