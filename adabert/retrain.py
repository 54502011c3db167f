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
* ``probe``: the probe KD alone; ``none``: CE only (gamma is ignored).
The objective is :mod:`adabert.distill`'s, the same as the search's.

The loop is :func:`adabert.training.fit`: AdamW (no decay on biases, norms, embeddings and attention
logits), cosine learning-rate decay to 0, batches trimmed to their longest sentence (``retrain.length_grouped``:
batches of rows of similar length), at most ``retrain.max_steps`` steps. ``retrain.select: final``
evaluates once, after the last epoch, and saves the student the schedule ends with; ``best`` evaluates
after every epoch and saves the best epoch on the main split (ties keep the earlier).

Outputs (``out_dir``, replaced atomically), a self-contained deployable folder:
``model.safetensors``, ``genotype.json``, ``student.json`` (see :func:`student_metadata`), the tokenizer
files (``tokenizer.save_pretrained`` of the teacher's tokenizer), ``metrics.json``,
``predictions_{split}.jsonl`` (``idx``, gold ``label``/``label_index``, ``prediction``/
``prediction_index`` and ``logits`` (classification) or ``score`` (regression)) and ``config.json``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
from torch import nn

from adabert import artifacts, io, training
from adabert.batching import STUDENT_INPUTS, batched_outputs, training_order, trim
from adabert.distill import Objective, kd_loss
from adabert.errors import AdabertError
from adabert.models import load_tokenizer
from adabert.nas.genotype import Genotype
from adabert.student import METADATA_FILE, MODEL_FILE, Student

log = logging.getLogger(__name__)

FORMAT = "adabert-student"
METADATA_VERSION = 1
RETRAIN_KD_MODES = ("probe+final", "probe", "final", "none")


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


def check_student(student: Student, data: artifacts.DataFolder, splits: list[dict], tokenizer, source: Path) -> None:
    """The student fits the task: its outputs, positions and vocabulary cover the data and tokenizer."""
    if student.classifier.out_features != data.num_labels:
        raise AdabertError(f"{source}: classifier has {student.classifier.out_features} outputs, "
                           f"the task {data.spec.name} has {data.num_labels} labels")
    max_len = max(t["a_input_ids"].shape[1] for t in splits)
    if max_len > student.max_positions:
        raise AdabertError(f"{data.path}: sequences of {max_len} tokens exceed the student's "
                           f"{student.max_positions} positions")
    if len(tokenizer) > student.word_embeddings.num_embeddings:
        raise AdabertError(f"{source}: tokenizer has {len(tokenizer)} tokens, the student's "
                           f"vocabulary {student.word_embeddings.num_embeddings}")


def retrain_step(kd: str, gamma: float, temperature: float, regression: bool, heads: nn.ModuleList):
    """The training step of :func:`adabert.training.fit`: student forward, (probe heads), the KD objective."""

    def step(student: Student, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        b = trim(b)
        inputs = (b["a_input_ids"], b["a_attention_mask"], b["b_input_ids"], b["b_attention_mask"])
        layer_logits = None
        if kd in ("probe+final", "probe"):
            logits, reps = student.forward_with_layers(*inputs)
            layer_logits = [heads[i](torch.tanh(r)) for i, r in enumerate(reps)]
        else:
            logits = student(*inputs)
        return kd_loss(Objective(b["labels"], regression, temperature), logits, kd=kd, gamma=gamma,
                       teacher_logits=b.get("teacher_logits"), layer_logits=layer_logits,
                       teacher_probe_logits=b.get("teacher_probe_logits"))

    return step


# -- evaluation ---------------------------------------------------------------------------------------
@torch.no_grad()
def predict_logits(student: nn.Module, split: dict[str, torch.Tensor], batch_size: int) -> torch.Tensor:
    """Logits [N, C] of a student-input model in eval mode (batches trimmed to their longest sentence)."""
    was_training = student.training
    student.eval()
    device = student.classifier.weight.device

    def forward(b):
        return student(b["a_input_ids"], b["a_attention_mask"], b["b_input_ids"], b["b_attention_mask"])

    out = batched_outputs(forward, split, batch_size, device, "student eval", STUDENT_INPUTS)
    student.train(was_training)
    return out


def student_metadata(student: Student, spec, meta: dict, dropout: float) -> dict:
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
        "encoding": artifacts.ENCODING_NOTE,
        "tokenizer_source": meta.get("tokenizer"),
        "task": artifacts.task_metadata(spec, meta),
    }


# -- the stage ----------------------------------------------------------------------------------------
def _summary(task: str, variant: str, seed: int, run_seed: int, data: artifacts.DataFolder, record: dict,
             rcfg: dict, kd: str, gamma: float, temperature: float, student: Student, n_train: int,
             evals: dict, derive_dir: Path, device: torch.device) -> dict:
    """``metrics.json`` of a retrained student (``total_time_s`` is filled in when the folder is written)."""
    train_time = record["train_time_s"]
    return {
        "task": task, "variant": variant, "seed": int(seed), "retrain_seed": run_seed,
        "eval": record["eval"], "main_split": data.main_split, "main_metric": data.spec.main_metric,
        "main_value": record["main_value"], "best_epoch": record["best_epoch"], "epochs": record["epochs"],
        "select": record["select"],
        "history": record["history"], "init": rcfg["init"], "kd": kd,
        "gamma": gamma if kd != "none" else 0.0, "temperature": temperature,
        "genotype": student.genotype.to_dict(), "depth": student.genotype.depth,
        "params": student.num_parameters(),
        "params_without_embeddings": student.num_parameters(include_embeddings=False),
        "n_train": n_train, "n_eval": {s: int(t["labels"].shape[0]) for s, t in evals.items()},
        "train_time_s": train_time,
        "train_examples_per_s": record["examples_seen"] / train_time if train_time > 0 else None,
        "steps": record["steps"], "max_steps": record["max_steps"], "passes": record["passes"],
        "length_grouped": bool(rcfg.get("length_grouped", False)),
        "total_time_s": None, "splits": data.provenance, "derive_dir": str(derive_dir),
        "threads": torch.get_num_threads(), "device": device.type, "precision": record["precision"],
    }


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
    teacher_dir, probes_dir, derive_dir = Path(teacher_dir), Path(probes_dir), Path(derive_dir)
    rcfg, lcfg = cfg["retrain"], cfg["loss"]
    dropout = float(cfg.get("search", {}).get("dropout", 0.1))
    kd, gamma, temperature = rcfg["kd"], float(lcfg["gamma"]), float(lcfg["temperature"])
    if kd not in RETRAIN_KD_MODES:
        raise AdabertError(f"retrain.kd must be one of {', '.join(RETRAIN_KD_MODES)}; got {kd!r}")
    start_time = time.perf_counter()
    run_seed = int(seed) + int(rcfg.get("seed", 0))
    io.set_seed(run_seed)

    data = artifacts.read_data(data_dir)
    probes = kd in ("probe+final", "probe")
    train = artifacts.distillation_set(data, teacher_dir if kd != "none" else None, probes_dir if probes else None,
                                       STUDENT_INPUTS)
    evals = {s: data.split(s, STUDENT_INPUTS) for s in data.eval_splits}
    genotype, inherited, weights_file = artifacts.read_derived(derive_dir)
    student = build_student(genotype, inherited, rcfg["init"], dropout, str(weights_file))
    del inherited
    tokenizer = load_tokenizer(str(artifacts.teacher_model_dir(teacher_dir)))
    check_student(student, data, [train, *evals.values()], tokenizer, weights_file)
    heads = nn.ModuleList(nn.Linear(genotype.width, data.num_labels) for _ in range(genotype.depth + 1)) \
        if probes else nn.ModuleList()

    device = io.device()
    student.to(device)
    heads.to(device)
    batch_size = int(rcfg["batch_size"])
    order = training_order(train, bool(rcfg.get("length_grouped")))
    recipe = training.Recipe(epochs=int(rcfg["epochs"]), batch_size=batch_size,
                             learning_rate=float(rcfg["learning_rate"]), weight_decay=float(rcfg["weight_decay"]),
                             seed=run_seed, order=order, max_steps=rcfg.get("max_steps"),
                             select=rcfg.get("select", "best"))
    record = training.fit(student, train=train, evals=evals, spec=data.spec, main_split=data.main_split,
                          step=retrain_step(kd, gamma, temperature, data.regression, heads),
                          predict=lambda m, split: predict_logits(m, split, 2 * batch_size), recipe=recipe,
                          label=f"retrain {task} {variant} seed {seed}", device=device, extra_modules=[heads])
    n_train = int(train["labels"].shape[0])
    summary = _summary(task, variant, seed, run_seed, data, record, rcfg, kd, gamma, temperature, student,
                       n_train, evals, derive_dir, device)

    def save_model(tmp: Path) -> None:
        genotype.save(tmp / artifacts.GENOTYPE_FILE)
        io.save_tensors(tmp / MODEL_FILE, student.state_dict(),
                        metadata={"format": FORMAT, "schema_version": str(METADATA_VERSION), "task": task})
        tokenizer.save_pretrained(str(tmp))
        io.write_json(tmp / METADATA_FILE, student_metadata(student, data.spec, data.meta, dropout))

    artifacts.write_trained(out_dir, cfg=cfg, summary=summary, data=data, logits=record["logits"],
                            labels={s: t["labels"] for s, t in evals.items()}, save_model=save_model,
                            start_time=start_time)
    log.info("retrain %s %s seed %d: kept epoch %d, %s %s %.2f -> %s", task, variant, seed, record["best_epoch"],
             data.main_split, data.spec.main_metric, record["main_value"], out_dir)
    return summary
