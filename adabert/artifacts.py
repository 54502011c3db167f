"""Readers and writers of the stage folders (docs/ARCHITECTURE.md): the one place that knows their formats.

Every stage reads its inputs and writes its outputs through this module, so a folder's format is
checked the same way wherever it is read, and an error names the file and what is wrong with it.

* Data (``results/data/{task}``): :func:`read_data` -> :class:`DataFolder` (``meta.json``, splits, row ids).
* Teacher (``results/teacher/{task}``): :func:`teacher_model_dir`, :func:`read_teacher_logits`,
  :func:`write_teacher`.
* Probes (``results/probes/{task}``): :func:`read_probe_logits`, :func:`write_probes`.
* The distillation set (Data + Teacher + Probes): :func:`distillation_set`.
* Search / Derive: :func:`write_search`, :func:`read_derived`, :func:`write_derived`.
* Trained models (retrain and baseline folders): :func:`prediction_rows`, :func:`write_jsonl`,
  :func:`write_trained`, :func:`task_metadata`.
* Export (``results/export/...``): :func:`read_export` (written by :mod:`adabert.export`).

The Augment folder (``results/augment/{task}``) is three sub-folders in exactly these formats.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from adabert import io
from adabert import tasks as tasks_mod
from adabert.errors import AdabertError
from adabert.nas.genotype import Genotype
from adabert.student import GENOTYPE_FILE, WEIGHTS_FILE, Student

META_FILE = "meta.json"
TEACHER_MODEL = "model"
LOGITS_FILE = "logits.safetensors"
FEATURES_FILE = "features.safetensors"
PROBES_FILE = "probes.json"
PROBE_WEIGHTS_FILE = "probes.safetensors"
PROBE_LOGITS_FILE = "probe_logits.safetensors"
SUPERNET_FILE = "supernet.safetensors"
HISTORY_FILE = "alpha_history.json"
ENCODING_NOTE = (
    "student inputs: each sentence tokenised alone as [CLS] s [SEP] (padding to max_seq_length, truncation); "
    "single-sentence tasks repeat sentence a as b"
)


# -- Data ---------------------------------------------------------------------------------------------
@dataclass
class DataFolder:
    """A checked Data folder: ``meta.json`` and the task it describes."""

    path: Path
    meta: dict
    spec: tasks_mod.TaskSpec

    @property
    def regression(self) -> bool:
        return self.meta["type"] == "regression"

    @property
    def num_labels(self) -> int:
        return int(self.meta["num_labels"])

    @property
    def main_split(self) -> str:
        return self.meta["main_split"]

    @property
    def eval_splits(self) -> list[str]:
        return list(self.meta["eval_splits"])

    @property
    def pair(self) -> bool:
        return len(self.meta.get("text_columns") or self.spec.text_columns) == 2

    @property
    def provenance(self) -> dict:
        """``splits`` of meta.json: size, source and whether each split is the official one."""
        return self.meta.get("splits", {})

    def split(self, name: str, inputs: Sequence[str]) -> dict[str, torch.Tensor]:
        """The ``inputs`` tensors and ``labels`` of one split (int64 classes / float32 scores), checked."""
        path = self.path / f"{name}.safetensors"
        tensors = io.load_tensors(path)
        missing = [k for k in (*inputs, "labels") if k not in tensors]
        if missing:
            raise AdabertError(f"{path}: missing tensor(s) {missing}")
        labels = tensors["labels"]
        out = {k: tensors[k].long() for k in inputs}
        out["labels"] = labels.float() if self.regression else labels.long()
        n = out["labels"].shape[0]
        for key in inputs:
            if out[key].dim() != 2 or out[key].shape[0] != n:
                raise AdabertError(f"{path}: tensor '{key}' has shape {list(out[key].shape)}, expected [{n}, L]")
        expected = self.provenance.get(name, {}).get("n")
        if expected is not None and expected != n:
            raise AdabertError(f"{path}: {n} rows, but meta.json says splits.{name}.n = {expected}")
        if not self.regression and n and (out["labels"].min() < 0 or out["labels"].max() >= self.num_labels):
            raise AdabertError(f"{path}: labels outside 0..{self.num_labels - 1}")
        return out

    def indices(self, split: str, n: int) -> list[int]:
        """The ``idx`` of every row of ``{split}.jsonl`` (the source row of each example)."""
        path = self.path / f"{split}.jsonl"
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

    def check_task(self, cfg: dict, task: str) -> tasks_mod.TaskSpec:
        """The config's TaskSpec of ``task``, checked against meta.json (type, number and names of labels)."""
        spec = tasks_mod.get_task(task, cfg.get("custom_tasks") or {})
        where = self.path / META_FILE
        if spec.type != self.meta["type"] or spec.num_labels != self.num_labels:
            raise AdabertError(f"{where}: type/num_labels ({self.meta['type']}, {self.num_labels}) do not match "
                               f"task {task!r} ({spec.type}, {spec.num_labels}); rerun the prepare stage")
        names = self.meta.get("label_names")
        if spec.label_names is not None and names is not None and list(names) != list(spec.label_names):
            raise AdabertError(f"{where}: label_names {names} differ from task {task!r} labels "
                               f"{list(spec.label_names)}; rerun the prepare stage")
        return spec


def read_data(data_dir: str | os.PathLike) -> DataFolder:
    """The Data folder ``data_dir`` with its ``meta.json`` checked (missing keys, type, splits)."""
    data_dir = Path(data_dir)
    where = data_dir / META_FILE
    meta = io.read_json(where)
    for key in ("type", "num_labels", "eval_splits", "main_split", "splits", "max_seq_length"):
        if key not in meta:
            raise AdabertError(f"{where}: missing key {key!r}")
    if meta["type"] not in ("classification", "regression"):
        raise AdabertError(f"{where}: type must be classification or regression, got {meta['type']!r}")
    if meta["type"] == "regression" and meta["num_labels"] != 1:
        raise AdabertError(f"{where}: a regression task has num_labels 1, got {meta['num_labels']}")
    if meta["main_split"] not in meta["eval_splits"]:
        raise AdabertError(f"{where}: main_split {meta['main_split']!r} is not in eval_splits {meta['eval_splits']}")
    return DataFolder(path=data_dir, meta=meta, spec=tasks_mod.spec_from_meta(meta))


# -- Teacher and Probes ---------------------------------------------------------------------------------
def teacher_model_dir(teacher_dir: str | os.PathLike) -> Path:
    """The ``save_pretrained`` folder (weights and tokenizer) of a Teacher folder."""
    return Path(teacher_dir) / TEACHER_MODEL


def _split_tensor(path: Path, split: str, shape: Sequence[int | None], what: str) -> torch.Tensor:
    tensors = io.load_tensors(path)
    if split not in tensors:
        raise AdabertError(f"{path}: missing tensor {split!r}")
    out = tensors[split].float()
    if out.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, out.shape)):
        raise AdabertError(f"{path}: {split!r} has shape {list(out.shape)}, expected {what}")
    return out


def read_teacher_logits(teacher_dir: str | os.PathLike, split: str, n: int, num_labels: int) -> torch.Tensor:
    """The teacher's logits ``[n, C]`` on ``split`` (``logits.safetensors``)."""
    return _split_tensor(Path(teacher_dir) / LOGITS_FILE, split, (n, num_labels), f"[{n}, {num_labels}]")


def read_probe_logits(probes_dir: str | os.PathLike, split: str, n: int, num_labels: int) -> torch.Tensor:
    """The teacher's probe logits ``[n, L + 1, C]`` on ``split`` (L = ``num_layers`` of probes.json)."""
    probes_dir = Path(probes_dir)
    info = io.read_json(probes_dir / PROBES_FILE)
    if "num_layers" not in info:
        raise AdabertError(f"{probes_dir / PROBES_FILE}: missing key 'num_layers'")
    layers = int(info["num_layers"]) + 1
    return _split_tensor(probes_dir / PROBE_LOGITS_FILE, split, (n, layers, num_labels),
                         f"[{n}, {layers}, {num_labels}] (num_layers from probes.json)")


def read_teacher_features(teacher_dir: str | os.PathLike, splits: Sequence[str], rows: dict[str, int]
                          ) -> dict[str, torch.Tensor] | None:
    """The probe inputs ``[N, L + 1, H]`` (float32) of every split from the teacher's labelling pass
    (``features.safetensors``), or None for a teacher folder without them."""
    path = Path(teacher_dir) / FEATURES_FILE
    if not path.is_file():
        return None
    tensors = io.load_tensors(path)
    out = {}
    for split in splits:
        if split not in tensors or tensors[split].dim() != 3 or tensors[split].shape[0] != rows[split]:
            got = list(tensors[split].shape) if split in tensors else "missing"
            raise AdabertError(f"{path}: {split!r} is {got}, expected [{rows[split]}, L+1, H]")
        out[split] = tensors[split].float()
    return out


def write_teacher(out_dir: str | os.PathLike, *, model, tokenizer, logits: dict[str, torch.Tensor], metrics: dict,
                  cfg: dict, features: dict[str, torch.Tensor] | None = None) -> None:
    """The Teacher folder, atomically: ``model/`` (safetensors + tokenizer), logits, metrics, config, and
    the labelling pass's probe inputs (``features.safetensors``, float32: the probes' folded standardisation
    makes some weights large, so rounding the inputs to 16 bits would move the probe logits) when given."""
    from adabert.models import quiet_transformers  # models pulls in transformers' logging lazily

    with io.atomic_dir(out_dir) as tmp:
        with quiet_transformers():
            model.cpu().save_pretrained(tmp / TEACHER_MODEL, safe_serialization=True)
            tokenizer.save_pretrained(tmp / TEACHER_MODEL)
        io.save_tensors(tmp / LOGITS_FILE, logits, metadata={"task": metrics["task"], "splits": ",".join(logits)})
        if features is not None:
            io.save_tensors(tmp / FEATURES_FILE, {s: f.float() for s, f in features.items()},
                            metadata={"task": metrics["task"], "what": "probe inputs [N, L+1, H]"})
        io.write_json(tmp / "metrics.json", metrics)
        io.write_json(tmp / "config.json", cfg)


def write_probes(out_dir: str | os.PathLike, *, weight: torch.Tensor, bias: torch.Tensor,
                 logits: dict[str, torch.Tensor], result: dict, cfg: dict) -> None:
    """The Probes folder, atomically: probe weights, probe logits per split, ``probes.json``, config."""
    task, layers = result["task"], str(result["num_layers"])
    with io.atomic_dir(out_dir) as tmp:
        io.save_tensors(tmp / PROBE_WEIGHTS_FILE, {"weight": weight, "bias": bias},
                        metadata={"task": task, "num_layers": layers})
        io.save_tensors(tmp / PROBE_LOGITS_FILE, logits, metadata={"task": task, "splits": ",".join(logits)})
        io.write_json(tmp / PROBES_FILE, result)
        io.write_json(tmp / "config.json", cfg)


def distillation_set(data: DataFolder, teacher_dir: str | os.PathLike | None, probes_dir: str | os.PathLike | None,
                     inputs: Sequence[str]) -> dict[str, torch.Tensor]:
    """The training rows with the teacher's targets: ``teacher_logits`` (if ``teacher_dir``) and
    ``teacher_probe_logits`` (if ``probes_dir``), row-aligned with the inputs and labels."""
    train = data.split("train", inputs)
    n = int(train["labels"].shape[0])
    if n == 0:
        raise AdabertError(f"{data.path / 'train.safetensors'}: no training examples")
    if teacher_dir is not None:
        train["teacher_logits"] = read_teacher_logits(teacher_dir, "train", n, data.num_labels)
    if probes_dir is not None:
        train["teacher_probe_logits"] = read_probe_logits(probes_dir, "train", n, data.num_labels)
    return train


# -- Search and Derive ----------------------------------------------------------------------------------
def write_search(out_dir: str | os.PathLike, *, state: dict[str, torch.Tensor], hparams: dict, history: dict,
                 summary: dict, op_costs: dict, cfg: dict) -> None:
    """The Search folder, atomically: best-epoch supernet weights, alpha history, metrics, op costs."""
    with io.atomic_dir(out_dir) as tmp:
        io.save_tensors(tmp / SUPERNET_FILE, state, metadata={
            "hparams": json.dumps(hparams), "best_epoch": str(history["best_epoch"]), "format": "adabert-supernet"})
        io.write_json(tmp / HISTORY_FILE, history)
        io.write_json(tmp / "metrics.json", summary)
        io.write_json(tmp / "op_costs.json", op_costs)
        io.write_json(tmp / "config.json", cfg)


def read_export(export_dir: str | os.PathLike) -> dict:
    """An Export folder: ``export.json`` plus the paths of its graphs, checked to exist: ``fp32`` (the
    ``{kind}.onnx``), ``int8`` ({mode: {"path", ...how it was made}}) and ``calibration``."""
    export_dir = Path(export_dir)
    summary = io.read_json(export_dir / "export.json")
    missing = [k for k in ("kind", "int8") if k not in summary]
    if missing:
        raise AdabertError(f"{export_dir / 'export.json'}: missing {missing} (not an export stage summary)")
    graphs = {"fp32": export_dir / f"{summary['kind']}.onnx",
              **{mode: export_dir / g["file"] for mode, g in summary["int8"].items()}}
    absent = [str(p) for p in graphs.values() if not p.is_file()]
    if absent:
        raise AdabertError(f"{export_dir}: export.json lists graphs that are not there: {absent}")
    int8 = {mode: {**{k: v for k, v in g.items() if k not in ("file", "metrics", "main", "drop_points",
                                                             "max_abs_diff", "file_bytes")},
                   "path": graphs[mode]}
            for mode, g in summary["int8"].items()}
    return {"dir": str(export_dir), "fp32": graphs["fp32"], "int8": int8,
            "calibration": summary.get("calibration")}


def read_derived(derive_dir: str | os.PathLike) -> tuple[Genotype, dict[str, torch.Tensor], Path]:
    """A Derive folder (searched, random or transferred): its genotype, weights and the weights' path."""
    derive_dir = Path(derive_dir)
    weights = derive_dir / WEIGHTS_FILE
    return Genotype.load(derive_dir / GENOTYPE_FILE), io.load_tensors(weights), weights


def write_derived(out_dir: str | os.PathLike, *, genotype: Genotype, tensors: dict[str, torch.Tensor],
                  info: dict, cfg: dict) -> dict:
    """A Derive folder, atomically: ``genotype.json``, ``weights.safetensors`` (checked by building the
    student), ``derive.json`` (``info`` plus the architecture and its size) and config; returns derive.json."""
    student = Student.from_tensors(genotype, tensors, source=f"{out_dir}: derived weights")
    summary = {**info, "genotype": genotype.to_dict(), "depth": genotype.depth, "params": student.num_parameters(),
               "params_without_embeddings": student.num_parameters(include_embeddings=False),
               "gflops_seq128": student.flops_per_sample(128) / 1e9, "has_conv": genotype.has_conv}
    with io.atomic_dir(out_dir) as tmp:
        genotype.save(tmp / GENOTYPE_FILE)
        io.save_tensors(tmp / WEIGHTS_FILE, tensors, metadata={"format": "adabert-student", "schema_version": "1"})
        io.write_json(tmp / "derive.json", summary)
        io.write_json(tmp / "config.json", cfg)
    return summary


# -- trained models (retrain and baseline folders) -------------------------------------------------------
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


def prediction_rows(spec: tasks_mod.TaskSpec, idx: list[int], logits: torch.Tensor,
                    labels: torch.Tensor | None) -> list[dict]:
    """One JSON row per example: idx, gold label, prediction and the raw outputs."""
    out = []
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
        out.append(row)
    return out


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def write_trained(out_dir: str | os.PathLike, *, cfg: dict, summary: dict, data: DataFolder,
                  logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
                  save_model: Callable[[Path], None], start_time: float) -> None:
    """A trained model's folder, atomically: the model (``save_model(tmp)``), ``predictions_{split}.jsonl``,
    ``metrics.json`` (``summary`` with ``total_time_s`` filled in) and ``config.json``."""
    with io.atomic_dir(out_dir) as tmp:
        save_model(tmp)
        for split, split_logits in logits.items():
            rows = prediction_rows(data.spec, data.indices(split, split_logits.shape[0]), split_logits, labels[split])
            write_jsonl(tmp / f"predictions_{split}.jsonl", rows)
        summary["total_time_s"] = time.perf_counter() - start_time
        io.write_json(tmp / "metrics.json", summary)
        io.write_json(tmp / "config.json", cfg)


# -- Augment -------------------------------------------------------------------------------------------
AUGMENT_ROW_KEYS = ("idx", "texts", "label", "augmented_from", "replaced")


def write_augment(out_dir: str | os.PathLike, *, data: DataFolder, teacher_dir: str | os.PathLike,
                  probes_dir: str | os.PathLike, record: dict, train_jsonl: str, new_rows: Sequence[dict],
                  train: dict[str, torch.Tensor], logits: dict[str, torch.Tensor],
                  probe_logits: dict[str, torch.Tensor], cfg: dict, summary: dict) -> None:
    """The Augment folder, atomically: three sub-folders in the Data, Teacher and Probes formats, so the
    stages that read those read them unchanged.

    * ``data/``: ``train.jsonl`` = ``train_jsonl`` (the original rows, verbatim) followed by ``new_rows``
      (one JSON object each: ``idx``, ``texts``, ``label``, ``augmented_from``, ``replaced``);
      ``train.safetensors`` = ``train`` (original rows first), with the original file's metadata plus
      ``augmented`` and ``n_original``; the eval splits (jsonl and safetensors) and ``config.json`` of
      ``data`` copied; ``meta.json`` = ``data.meta`` with ``splits.train`` counting the augmented rows
      (``n``, ``n_original``, ``n_augmented``, ``note``) and ``record`` under ``augment``.
    * ``teacher/``: ``logits.safetensors`` = ``logits`` (metadata of ``teacher_dir``'s file plus
      ``augmented``); ``metrics.json`` and ``config.json`` copied; ``model`` a relative symlink to
      ``teacher_dir/model``.
    * ``probes/``: ``probe_logits.safetensors`` = ``probe_logits`` (metadata as for the logits);
      ``probes.safetensors``, ``probes.json`` and ``config.json`` copied.
    * ``config.json`` (``cfg``) and ``summary.json`` (``summary``).

    ``record`` holds ``n_original`` and ``n_augmented``, the row counts of ``train`` before and after.
    """
    import shutil

    data_dir, teacher_dir, probes_dir = data.path, Path(teacher_dir), Path(probes_dir)
    n_train, n_aug = int(record["n_original"]), int(record["n_augmented"])
    meta = json.loads(json.dumps(data.meta))
    train_meta = meta["splits"].setdefault("train", {})
    train_meta["n"] = n_train + n_aug
    train_meta["n_original"] = n_train
    train_meta["n_augmented"] = n_aug
    train_meta["note"] = (train_meta.get("note", "") + f"; plus {n_aug} augmented rows (augment stage)").lstrip("; ")
    meta["augment"] = record
    augmented = {"augmented": str(n_aug)}
    model_link = os.path.relpath(os.path.abspath(teacher_model_dir(teacher_dir)),
                                 os.path.abspath(Path(out_dir) / "teacher"))
    with io.atomic_dir(out_dir) as tmp:
        data_out, teacher_out, probes_out = tmp / "data", tmp / "teacher", tmp / "probes"
        for folder in (data_out, teacher_out, probes_out):
            folder.mkdir()
        for split in data.eval_splits:
            for ext in ("jsonl", "safetensors"):
                shutil.copyfile(data_dir / f"{split}.{ext}", data_out / f"{split}.{ext}")
        _copy_present(data_dir, data_out, ("config.json",))
        with open(data_out / "train.jsonl", "w", encoding="utf-8") as fh:
            fh.write(train_jsonl)
            for row in new_rows:
                fh.write(json.dumps({k: row[k] for k in AUGMENT_ROW_KEYS}, ensure_ascii=False) + "\n")
        io.save_tensors(data_out / "train.safetensors", train, metadata={
            **_tensor_metadata(data_dir / "train.safetensors"), **augmented, "n_original": str(n_train)})
        io.write_json(data_out / META_FILE, meta)
        io.save_tensors(teacher_out / LOGITS_FILE, logits,
                        metadata={**_tensor_metadata(teacher_dir / LOGITS_FILE), **augmented})
        _copy_present(teacher_dir, teacher_out, ("metrics.json", "config.json"))
        os.symlink(model_link, teacher_out / TEACHER_MODEL, target_is_directory=True)
        _copy_present(probes_dir, probes_out, (PROBE_WEIGHTS_FILE, PROBES_FILE, "config.json"))
        io.save_tensors(probes_out / PROBE_LOGITS_FILE, probe_logits,
                        metadata={**_tensor_metadata(probes_dir / PROBE_LOGITS_FILE), **augmented})
        io.write_json(tmp / "config.json", cfg)
        io.write_json(tmp / "summary.json", summary)


def _tensor_metadata(path: Path) -> dict[str, str]:
    """The metadata header of a safetensors file (without loading its tensors)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def _copy_present(src: Path, dst: Path, names: Sequence[str]) -> None:
    """Copy each of ``names`` that exists in ``src`` into ``dst``."""
    import shutil

    for name in names:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
