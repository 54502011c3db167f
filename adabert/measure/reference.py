"""Models under test: a small adapter any model goes through, and the reference models.

:class:`ModelUnderTest` wraps a module with what the measurement needs: its input names, how to make
a batch of synthetic inputs (token ids uniform in the vocabulary, seeded; masks all ones; token type
ids 0 for the first half of the sequence and 1 for the second, like a sentence pair) and how the ONNX
graph's axes are dynamic. Constructors:

* :func:`hf_classifier_under_test` / :func:`load_teacher`: a Hugging Face sequence classifier taking
  ``input_ids, attention_mask, token_type_ids`` (the teacher: ``teacher_dir/model``);
* :func:`bert_base_architecture`: BERT-base (``BertConfig()`` defaults: hidden 768, 12 layers, 12
  heads, intermediate 3072, vocab 30522) with seeded random weights, labelled "architecture only
  (random weights; speed/size only)", or real weights from a local ``bert-base-uncased`` folder;
* :func:`student_under_test` / :func:`student_module_under_test`: an AdaBERT student
  (``adabert.student.Student.from_folder``), or any module with its signature (the BiLSTM-SOFT
  baseline: kind ``student``, the measurement schema's kinds are input signatures), taking
  ``a_ids, a_mask, b_ids, b_mask``.

Which constructor loads which model folder is the registry of model kinds, :mod:`adabert.kinds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from adabert.errors import AdabertError
from adabert.io import read_json
from adabert.models import quiet_transformers
from adabert.student import Student

KINDS = ("student", "teacher", "bert-base-arch")
HF_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
STUDENT_INPUT_NAMES = ("a_ids", "a_mask", "b_ids", "b_mask")
BERT_BASE_ARCH_LABEL = "architecture only (random weights; speed/size only)"


@dataclass
class ModelUnderTest:
    """A model and how to feed it. ``make_inputs(batch, seq_len) -> {name: int64 tensor}``."""

    name: str
    kind: str
    module: nn.Module
    make_inputs: Callable[[int, int], dict[str, torch.Tensor]]
    input_names: Sequence[str]
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None  # None: batch and seq of every input
    output_names: Sequence[str] = ("logits",)
    label: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AdabertError(f"model {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        self.input_names = tuple(self.input_names)
        self.output_names = tuple(self.output_names)
        self.module.eval()


def vocab_size_of(module: nn.Module) -> int:
    """``config.vocab_size`` if the module has one, else the largest ``nn.Embedding`` table."""
    config = getattr(module, "config", None)
    if config is not None and getattr(config, "vocab_size", None):
        return int(config.vocab_size)
    sizes = [m.num_embeddings for m in module.modules() if isinstance(m, nn.Embedding)]
    if not sizes:
        raise AdabertError(f"{type(module).__name__}: no vocabulary size (no config.vocab_size, no nn.Embedding)")
    return int(max(sizes))


def random_token_inputs(input_names: Sequence[str], vocab_size: int, seed: int = 0,
                        type_vocab_size: int = 2) -> Callable[[int, int], dict[str, torch.Tensor]]:
    """A ``make_inputs`` function: names containing "mask" -> ones; "token_type" -> 0 then 1 halves
    (0 only if ``type_vocab_size`` is 1); anything else -> token ids uniform in ``[0, vocab_size)``."""

    def make_inputs(batch: int, seq_len: int) -> dict[str, torch.Tensor]:
        if batch < 1 or seq_len < 1:
            raise AdabertError(f"inputs: batch and seq_len must be >= 1, got {batch}, {seq_len}")
        gen = torch.Generator().manual_seed(seed + 7919 * batch + seq_len)
        out: dict[str, torch.Tensor] = {}
        for name in input_names:
            if "mask" in name:
                out[name] = torch.ones(batch, seq_len, dtype=torch.int64)
            elif "token_type" in name:
                tt = torch.zeros(batch, seq_len, dtype=torch.int64)
                if type_vocab_size > 1:
                    tt[:, seq_len // 2:] = 1
                out[name] = tt
            else:
                out[name] = torch.randint(0, vocab_size, (batch, seq_len), generator=gen, dtype=torch.int64)
        return out

    return make_inputs


def hf_classifier_under_test(name: str, kind: str, model: nn.Module, label: str = "", info: dict | None = None) -> ModelUnderTest:
    """Adapter for a Hugging Face sequence classifier (``input_ids, attention_mask, token_type_ids``)."""
    config = model.config
    return ModelUnderTest(
        name=name, kind=kind, module=model,
        make_inputs=random_token_inputs(HF_INPUT_NAMES, int(config.vocab_size), type_vocab_size=int(getattr(config, "type_vocab_size", 2))),
        input_names=HF_INPUT_NAMES, label=label, info=dict(info or {}),
    )


def load_teacher(teacher_dir: str | Path, name: str = "teacher") -> ModelUnderTest:
    """The fine-tuned teacher of the teacher stage: ``teacher_dir/model`` (or ``teacher_dir`` itself if
    it is the ``save_pretrained`` folder), loaded with ``AutoModelForSequenceClassification``."""
    from transformers import AutoModelForSequenceClassification  # lazy: slow to import, not at CLI start-up

    teacher_dir = Path(teacher_dir)
    folder = teacher_dir / "model" if (teacher_dir / "model" / "config.json").is_file() else teacher_dir
    if not (folder / "config.json").is_file():
        raise AdabertError(f"{teacher_dir}: no teacher model (expected {teacher_dir / 'model' / 'config.json'})")
    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(folder)
    except Exception as exc:  # noqa: BLE001
        raise AdabertError(f"{folder}: the teacher could not be loaded ({type(exc).__name__}: {exc})") from exc
    info: dict[str, Any] = {"path": str(folder), "num_labels": int(model.config.num_labels)}
    metrics = teacher_dir / "metrics.json"
    if metrics.is_file():
        info["base_model"] = read_json(metrics).get("model")
    label = f"fine-tuned teacher ({info.get('base_model') or model.config.model_type})"
    return hf_classifier_under_test(name, "teacher", model.eval(), label=label, info=info)


def bert_base_architecture(num_labels: int, weights_dir: str | Path | None = None, seed: int = 0,
                           name: str = "bert-base") -> ModelUnderTest:
    """BERT-base for speed/size references.

    Without ``weights_dir``: ``BertConfig()`` defaults with random weights (seeded), ~109.5M
    parameters, labelled :data:`BERT_BASE_ARCH_LABEL`: its speed and size are those of BERT-base, its
    outputs mean nothing. With a local ``bert-base-uncased`` folder: its real weights (new classifier head).
    """
    from transformers import BertConfig, BertForSequenceClassification  # lazy: slow to import, not at CLI start-up

    if num_labels < 1:
        raise AdabertError(f"bert_base_architecture: num_labels must be >= 1, got {num_labels}")
    if weights_dir is not None:
        folder = Path(weights_dir)
        if not (folder / "config.json").is_file():
            raise AdabertError(f"{folder}: not a local BERT-base folder (no config.json)")
        try:
            with quiet_transformers():
                model = BertForSequenceClassification.from_pretrained(folder, num_labels=num_labels)
        except Exception as exc:  # noqa: BLE001
            raise AdabertError(f"{folder}: BERT-base could not be loaded ({type(exc).__name__}: {exc})") from exc
        label = "BERT-base (pre-trained weights, untrained classifier head; speed/size only)"
        info = {"weights": str(folder), "num_labels": num_labels}
    else:
        config = BertConfig(num_labels=num_labels)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BertForSequenceClassification(config)
        label = BERT_BASE_ARCH_LABEL
        info = {"weights": "random", "seed": seed, "num_labels": num_labels}
    return hf_classifier_under_test(name, "bert-base-arch", model.eval(), label=label, info=info)


def student_under_test(folder: str | Path, name: str = "student", label: str = "") -> ModelUnderTest:
    """An AdaBERT student folder (``adabert.student.Student.from_folder``), inputs ``a_ids, a_mask, b_ids, b_mask``."""
    module = Student.from_folder(folder).eval()
    return student_module_under_test(module, name=name, label=label or f"AdaBERT student ({Path(folder).name})",
                                     info={"path": str(folder)})


def student_module_under_test(module: nn.Module, name: str = "student", label: str = "AdaBERT student",
                              info: dict | None = None, vocab_size: int | None = None) -> ModelUnderTest:
    """Adapter for any module with the student signature ``forward(a_ids, a_mask, b_ids, b_mask)``."""
    vocab = int(vocab_size or vocab_size_of(module))
    return ModelUnderTest(name=name, kind="student", module=module,
                          make_inputs=random_token_inputs(STUDENT_INPUT_NAMES, vocab),
                          input_names=STUDENT_INPUT_NAMES, label=label, info=dict(info or {}))

