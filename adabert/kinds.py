"""Model kinds: every kind of model the export and measure stages handle, one registry entry each.

A :class:`ModelKind` says

* what its folder is (``folder``: the ``--model`` a command needs, None where it is optional) and how
  to tell it from the files a folder holds (``recognise``: ``export`` without ``--kind``);
* which inputs it takes (``layout``, an :class:`InputLayout`): the student signature ``a_ids, a_mask,
  b_ids, b_mask`` (each sentence encoded alone) or the packed pair ``input_ids, attention_mask,
  token_type_ids`` of a BERT-like classifier, each read from a tensor of the Data contract;
* how to load it (``load(folder, num_labels)``): a :class:`~adabert.measure.ModelUnderTest`, the module
  with its input names and synthetic inputs. The export stage converts its ``module`` to ONNX
  (:mod:`adabert.export`, if ``exportable``); the measure stage measures it (:mod:`adabert.measure.models`).

The kinds: ``student`` (a retrained folder), ``teacher`` (a teacher-stage folder), ``bert-base`` (the
speed/size reference: ``BertConfig()`` with random weights, or a local bert-base-uncased folder),
``bilstm`` (the BiLSTM-SOFT baseline folder) and ``truncated`` (the truncated-teacher baseline, a
folder in the teacher layout whose ``metrics.json`` says ``"kind": "truncated"``). A new baseline saved
in the teacher layout (a BERT-family classifier taking the packed inputs, e.g. a TinyBERT-style one) is
one more entry of :data:`KINDS`::

    ModelKind("tinybert", PACKED, load=_hf_baseline("tinybert"), baseline=True,
              folder="a tinybert baseline (its baseline-stage folder)", recognise=_metrics_kind("tinybert"))

(a model without token type ids, such as DistilBERT, needs its own layout and a loader whose
ModelUnderTest leaves them out).

``python -m adabert`` reads the kind names when it builds its arguments, so this module imports only
the standard library at start-up; each loader imports the model's own code (and torch) when called.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adabert.errors import AdabertError

if TYPE_CHECKING:
    from adabert.measure.reference import ModelUnderTest

Folder = str | os.PathLike


@dataclass(frozen=True)
class InputLayout:
    """How a kind is fed: ``inputs`` = (forward / ONNX input name, Data-contract tensor) in argument
    order; ``mask_keys`` = the masks whose row sums are a row's length."""

    name: str
    inputs: tuple[tuple[str, str], ...]
    mask_keys: tuple[str, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.inputs)

    @property
    def data_keys(self) -> tuple[str, ...]:
        return tuple(key for _, key in self.inputs)


SENTENCES = InputLayout("sentences", (("a_ids", "a_input_ids"), ("a_mask", "a_attention_mask"),
                                      ("b_ids", "b_input_ids"), ("b_mask", "b_attention_mask")),
                        mask_keys=("a_attention_mask", "b_attention_mask"))
PACKED = InputLayout("packed", (("input_ids", "input_ids"), ("attention_mask", "attention_mask"),
                                ("token_type_ids", "token_type_ids")),
                     mask_keys=("attention_mask",))


@dataclass(frozen=True)
class ModelKind:
    """One kind of model: its inputs, its folder, how to recognise and load it (see the module docstring)."""

    name: str
    layout: InputLayout
    load: Callable[[Folder | None, int], ModelUnderTest]
    folder: str | None = None  # "a student (its retrained folder)": the --model it needs; None: optional
    recognise: Callable[[Path], bool] | None = None  # None: never guessed from a folder's files
    baseline: bool = False  # a baseline folder: recognised before the student and teacher layouts
    exportable: bool = True
    export_subject: bool = True  # export.json copies variant and seed from the folder's metrics.json

    def under_test(self, model: Folder | None, num_labels: int = 2) -> ModelUnderTest:
        """The model of folder ``model`` (``num_labels``: outputs of a model built without a folder)."""
        if model is None and self.folder is not None:
            raise AdabertError(f"--model is required for {self.folder}")
        return self.load(model, num_labels)


# -- loaders: each imports its model's code when called (see the module docstring) -------------------
def _student(model: Folder, num_labels: int) -> ModelUnderTest:
    from adabert.measure.reference import student_module_under_test  # lazy: torch, not at CLI start-up
    from adabert.predict import load_deployable  # lazy: torch, not at CLI start-up

    dep = load_deployable(model)
    genotype = dep.model.genotype
    label = f"AdaBERT student ({dep.task['name']}, depth {genotype.depth}, width {genotype.width})"
    return student_module_under_test(dep.model, name="student", label=label,
                                     info={"path": str(model), "task": dep.task["name"], "genotype": genotype.to_dict()},
                                     vocab_size=int(dep.metadata["vocab_size"]))


def _bilstm(model: Folder, num_labels: int) -> ModelUnderTest:
    # lazy: torch, not at CLI start-up; importing the module also registers the LSTM kernels' FLOP formulas
    from adabert.baselines.bilstm import LABEL, load_folder
    from adabert.measure.reference import student_module_under_test  # lazy: torch, not at CLI start-up

    module, meta = load_folder(model)
    info = {"path": str(model), "task": meta["task"]["name"], "baseline": "bilstm",
            **{k: meta[k] for k in ("embedding_dim", "hidden", "mlp_hidden", "pair")}}
    return student_module_under_test(module, name="bilstm", label=f"{LABEL} ({meta['task']['name']})",
                                     info=info, vocab_size=int(meta["vocab_size"]))


def _hf_classifier(name: str) -> Callable[[Folder, int], ModelUnderTest]:
    """The loader of a fine-tuned Hugging Face classifier folder (the teacher layout), measured as ``name``."""

    def load(model: Folder, num_labels: int) -> ModelUnderTest:
        from adabert.measure.reference import load_teacher  # lazy: torch, not at CLI start-up

        return load_teacher(model, name=name)

    return load


def _hf_baseline(name: str) -> Callable[[Folder, int], ModelUnderTest]:
    """:func:`_hf_classifier` for a baseline folder in the teacher layout, labelled by its ``metrics.json``."""
    classifier = _hf_classifier(name)

    def load(model: Folder, num_labels: int) -> ModelUnderTest:
        mut = classifier(model, num_labels)
        mut.label = (_metrics(model) or {}).get("label") or mut.label
        return mut

    return load


def _bert_base(model: Folder | None, num_labels: int) -> ModelUnderTest:
    from adabert.measure.reference import bert_base_architecture  # lazy: torch, not at CLI start-up

    return bert_base_architecture(num_labels=num_labels, weights_dir=model)


# -- recognisers (export without --kind) --------------------------------------------------------------
def _metrics(folder: Folder) -> dict | None:
    """The folder's ``metrics.json``, None if it has none."""
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        return None
    from adabert.io import read_json  # lazy: adabert.io imports torch, not at CLI start-up

    return read_json(path)


def _has_file(*names: str) -> Callable[[Path], bool]:
    return lambda folder: any((Path(folder) / name).is_file() for name in names)


def _metrics_kind(kind: str) -> Callable[[Path], bool]:
    """A baseline folder in the teacher layout: its ``metrics.json`` names the kind."""
    return lambda folder: (_metrics(folder) or {}).get("kind") == kind


def _any_folder(folder: Path) -> bool:
    """The teacher layout is the fallback (loading names what a folder lacks)."""
    return True


KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (
    ModelKind("student", SENTENCES, load=_student, folder="a student (its retrained folder)",
              recognise=_has_file("student.json", "genotype.json")),
    ModelKind("teacher", PACKED, load=_hf_classifier("teacher"), folder="a teacher (its teacher-stage folder)",
              recognise=_any_folder, export_subject=False),
    ModelKind("bert-base", PACKED, load=_bert_base, exportable=False),
    ModelKind("bilstm", SENTENCES, load=_bilstm, folder="a bilstm baseline (its baseline-stage folder)",
              recognise=_has_file("bilstm.json"), baseline=True),
    ModelKind("truncated", PACKED, load=_hf_baseline("truncated"),
              folder="a truncated baseline (its baseline-stage folder)", recognise=_metrics_kind("truncated"),
              baseline=True),
)}
MODEL_KINDS = tuple(KINDS)
EXPORT_KINDS = tuple(name for name, kind in KINDS.items() if kind.exportable)


def get_kind(name: str) -> ModelKind:
    if name not in KINDS:
        raise AdabertError(f"model kind must be one of {MODEL_KINDS}, got {name!r}")
    return KINDS[name]


def kind_of_folder(folder: Folder) -> ModelKind:
    """The kind a model folder holds, from its files: the baselines' own layouts first, then the
    student's, and the teacher layout for any other folder."""
    ordered = [k for k in KINDS.values() if k.baseline] + [k for k in KINDS.values() if not k.baseline]
    for kind in ordered:
        if kind.exportable and kind.recognise is not None and kind.recognise(Path(folder)):
            return kind
    raise AdabertError(f"{folder}: cannot tell which kind of model it holds (one of {EXPORT_KINDS})")


def export_kind(name: str | None, folder: Folder) -> ModelKind:
    """The kind ``name`` (it must be exportable), or the kind of ``folder`` when ``name`` is None."""
    if name is None:
        return kind_of_folder(folder)
    kind = get_kind(name)
    if not kind.exportable:
        raise AdabertError(f"model kind {name!r} is not exported (exported kinds: {', '.join(EXPORT_KINDS)})")
    return kind
