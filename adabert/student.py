"""The derived, deployable AdaBERT student: loads from ``genotype.json`` + ``weights.safetensors`` alone.

Structure (spec 1.5/1.6/4, the authors' TF fine-tune mode): low-dimensional word and position tables
(vocab x width, positions x width: the supernet's factorised embedding with the projection folded in),
LayerNorm and dropout; K fixed cells holding only the genotype's kept edges (cell k reads
(c_{k-2}, c_{k-1}) with c_{-1} = sentence a, c_0 = sentence b); the attentive read-out of depth K over
the mask-aware token means of layers 0..K (with the genotype's ``head: interaction``, sentence pairs, also
the product and absolute difference of the two sentences' embedding means: :mod:`adabert.nas.head`),
tanh, dropout and one linear classifier.

Parameter names equal the supernet's where the tensors are the same (``cells.{k}.edges.{e}.{op}``,
``layer_norm``), so weight inheritance (``adabert.nas.derive``) is a rename-free selection, except for the
read-out of depth K (``layer_weights``, ``classifier``) and the folded embedding tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from adabert import io
from adabert.errors import AdabertError
from adabert.nas import head as readout
from adabert.nas.cell import FixedCell
from adabert.nas.genotype import Genotype
from adabert.nas.ops import masked_mean, token_embeddings

GENOTYPE_FILE = "genotype.json"
WEIGHTS_FILE = "weights.safetensors"
# A retrained, deployable student folder (adabert.retrain) holds its trained weights as MODEL_FILE and
# its metadata (vocabulary, labels, text columns, max_seq_length) as METADATA_FILE, plus the tokenizer.
MODEL_FILE = "model.safetensors"
METADATA_FILE = "student.json"
METADATA_KEYS = ("format", "schema_version", "vocab_size", "max_positions", "num_labels", "dropout", "task")
TASK_KEYS = ("name", "type", "label_names", "text_columns", "max_seq_length", "metrics")


def weights_path(folder: str | os.PathLike) -> Path:
    """The weights file of a student folder: ``model.safetensors`` in a deployable (retrained) folder,
    i.e. one with ``student.json``; ``weights.safetensors`` in a derive folder."""
    folder = Path(folder)
    return folder / (MODEL_FILE if (folder / METADATA_FILE).is_file() else WEIGHTS_FILE)


def read_metadata(folder: str | os.PathLike) -> dict:
    """``student.json`` of a deployable student folder, checked for the keys deployment needs."""
    path = Path(folder) / METADATA_FILE
    meta = io.read_json(path)
    if not isinstance(meta, dict):
        raise AdabertError(f"{path}: expected a JSON object")
    missing = [k for k in METADATA_KEYS if k not in meta]
    if missing:
        raise AdabertError(f"{path}: missing field(s) {missing}")
    task = meta["task"]
    missing = [k for k in TASK_KEYS if not isinstance(task, dict) or k not in task]
    if missing:
        raise AdabertError(f"{path}: field 'task' lacks {missing}")
    return meta


def load_tokenizer(folder: str | os.PathLike):
    """The tokenizer saved inside a deployable student folder (``save_pretrained`` files)."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    try:
        from adabert.models import quiet_transformers

        with quiet_transformers():
            return AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # noqa: BLE001 - transformers raises many types
        raise AdabertError(f"{folder}: the tokenizer could not be loaded ({type(exc).__name__}: {exc})") from exc


class Student(nn.Module):
    def __init__(
        self, genotype: Genotype, vocab_size: int, max_positions: int, num_labels: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.genotype = genotype
        width, depth = genotype.width, genotype.depth
        self.max_positions = max_positions
        self.word_embeddings = nn.Embedding(vocab_size, width)
        self.position_embeddings = nn.Embedding(max_positions, width)
        nn.init.normal_(self.word_embeddings.weight, std=0.02)
        nn.init.normal_(self.position_embeddings.weight, std=0.02)
        self.layer_norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        self.cells = nn.ModuleList(FixedCell(width, genotype.nodes) for _ in range(depth))
        self.layer_weights = nn.Parameter(0.01 * torch.randn(depth + 1))
        self.classifier = nn.Linear(readout.feature_width(genotype.head, width), num_labels)

    def embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = token_embeddings(self.word_embeddings, self.position_embeddings, self.max_positions, ids)
        return self.dropout(self.layer_norm(h)).transpose(1, 2) * mask

    def forward(
        self, a_ids: torch.Tensor, a_mask: torch.Tensor, b_ids: torch.Tensor, b_mask: torch.Tensor
    ) -> torch.Tensor:
        """Logits [B, num_labels] for token ids / attention masks [B, L] of sentences a and b."""
        return self.forward_with_layers(a_ids, a_mask, b_ids, b_mask)[0]

    def forward_with_layers(
        self, a_ids: torch.Tensor, a_mask: torch.Tensor, b_ids: torch.Tensor, b_mask: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the mask-aware means [B, width] of layers 0..K (read by the retrain stage's probe KD)."""
        ma = a_mask.to(torch.float32).unsqueeze(1)
        mb = b_mask.to(torch.float32).unsqueeze(1)
        emb_a, emb_b = self.embed(a_ids, ma), self.embed(b_ids, mb)
        reps = [masked_mean(emb_a, ma)]
        mean_b = masked_mean(emb_b, mb) if self.genotype.head != "mean" else reps[0]
        prev2, prev1 = (emb_a, ma), (emb_b, mb)
        for cell in self.cells:
            out = cell(prev2[0], prev2[1], prev1[0], prev1[1])
            reps.append(masked_mean(*out))
            prev2, prev1 = prev1, out
        att = torch.softmax(self.layer_weights, dim=0)
        pooled = torch.einsum("l,blw->bw", att, torch.stack(reps, dim=1))
        feats = readout.features(self.genotype.head, pooled, reps[0], mean_b)
        return self.classifier(self.dropout(torch.tanh(feats))), reps

    def num_parameters(self, include_embeddings: bool = True) -> int:
        skip = {"word_embeddings.weight", "position_embeddings.weight"}
        return int(sum(p.numel() for n, p in self.named_parameters() if include_embeddings or n not in skip))

    @torch.no_grad()
    def flops_per_sample(self, seq_len: int = 128) -> int:
        """FLOPs of one forward pass (2 per multiply-accumulate, torch.utils.flop_counter) of one example
        whose two inputs are ``seq_len`` tokens each."""
        from torch.utils.flop_counter import FlopCounterMode

        ids = torch.ones(1, seq_len, dtype=torch.long)
        was_training = self.training
        self.eval()
        with FlopCounterMode(display=False) as counter:
            self(ids, ids, ids, ids)
        self.train(was_training)
        return int(counter.get_total_flops())

    # -- files --------------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        self.genotype.save(folder / GENOTYPE_FILE)
        io.save_tensors(folder / WEIGHTS_FILE, self.state_dict())

    @classmethod
    def from_tensors(
        cls, genotype: Genotype, tensors: dict[str, torch.Tensor], dropout: float = 0.1, source: str = "weights"
    ) -> "Student":
        """Build a student from its genotype and a full state dict (strict: every tensor must match)."""
        for key in ("word_embeddings.weight", "position_embeddings.weight", "classifier.weight"):
            if key not in tensors:
                raise AdabertError(f"{source}: missing tensor '{key}'")
        model = cls(
            genotype,
            vocab_size=tensors["word_embeddings.weight"].shape[0],
            max_positions=tensors["position_embeddings.weight"].shape[0],
            num_labels=tensors["classifier.weight"].shape[0],
            dropout=dropout,
        )
        expected = model.state_dict()
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        mismatched = sorted(
            f"{k} (file {list(tensors[k].shape)}, model {list(expected[k].shape)})"
            for k in set(expected) & set(tensors)
            if tensors[k].shape != expected[k].shape
        )
        problems = []
        if missing:
            problems.append(f"missing tensors {missing}")
        if unexpected:
            problems.append(f"unexpected tensors {unexpected}")
        if mismatched:
            problems.append(f"mismatched shapes {mismatched}")
        if problems:
            raise AdabertError(f"{source}: does not match the genotype: " + "; ".join(problems))
        model.load_state_dict(tensors, strict=True)
        return model

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, dropout: float = 0.1) -> "Student":
        """Load ``genotype.json`` + weights from a derive folder (``weights.safetensors``) or a retrained,
        deployable folder (``model.safetensors``, see :func:`weights_path`)."""
        folder = Path(folder)
        genotype = Genotype.load(folder / GENOTYPE_FILE)
        path = weights_path(folder)
        tensors = io.load_tensors(path)
        return cls.from_tensors(genotype, tensors, dropout, source=str(path))
