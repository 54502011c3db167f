"""Baseline students, trained on the same prepared data and teacher as the AdaBERT students and measured
by the same code:

* ``bilstm`` (:mod:`.bilstm`): BiLSTM-SOFT (Tang et al. 2019), a one-layer BiLSTM on the teacher's word
  embeddings, distilled with MSE on the teacher's logits;
* ``truncated`` (:mod:`.truncated`): the fine-tuned teacher cut to its first k layers, distilled with KD on
  the teacher's logits and optionally the PKD patient loss (Sun et al. 2019).

:func:`run_baseline` is the ``baseline`` stage (``python -m adabert baseline --kind ...``). Both write
``metrics.json`` with the keys of the retrain stage (``variant`` = the kind), ``predictions_{split}.jsonl``
in its row format and ``config.json``; the model is a BiLSTM folder (``bilstm.json`` +
``model.safetensors`` + tokenizer; ``measure --model-kind bilstm``) or a teacher-like ``model/`` folder
(``measure --model-kind truncated`` or ``teacher``). The shared loop is :mod:`.train`.
"""

from __future__ import annotations

import os

from adabert.baselines.train import KINDS
from adabert.errors import AdabertError

__all__ = ["KINDS", "run_baseline"]


def run_baseline(cfg: dict, kind: str, task: str, seed: int, data_dir: str | os.PathLike,
                 teacher_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Train the baseline ``kind`` (``bilstm`` or ``truncated``) on one task / seed into ``out_dir``.

    ``cfg`` is the stage view (:func:`adabert.config.stage_config` of stage ``baseline``: sections
    data, teacher, loss, baselines); missing keys of ``baselines.<kind>`` and ``loss`` take their
    schema defaults. Returns the ``metrics.json`` dict.
    """
    if kind == "bilstm":
        from adabert.baselines.bilstm import run_bilstm

        return run_bilstm(cfg, task, seed, data_dir, teacher_dir, out_dir)
    if kind == "truncated":
        from adabert.baselines.truncated import run_truncated

        return run_truncated(cfg, task, seed, data_dir, teacher_dir, out_dir)
    raise AdabertError(f"baseline kind must be one of {list(KINDS)}, got {kind!r}")
