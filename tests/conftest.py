"""Shared fixtures: the local GLUE data (the full copy, or else the small committed fixture in tests/data/glue),
and a small real MRPC pipeline (prepare -> teacher -> probes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The end-to-end files (minutes each) are collected first: pytest runs on several workers (pytest-xdist,
# one file per worker at a time, see addopts in pyproject.toml), so they start at once on separate
# workers while the short tests fill the others, instead of ending the suite alone.
LONG_FILES = ("test_workflow.py", "test_slurm.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))  # stable: file order kept otherwise

REPO = Path(__file__).resolve().parents[1]
FIXTURE_GLUE = REPO / "tests" / "data" / "glue"  # a few dozen real rows per split, always present
SHARED_GLUE = REPO.parent / "shared" / "glue"  # the full local copy, where there is one


def _glue_dir() -> Path:
    """ADABERT_GLUE_DIR if set, else ../shared/glue if it exists, else the small committed fixture."""
    env = os.environ.get("ADABERT_GLUE_DIR")
    if env:
        return Path(env)
    return SHARED_GLUE if (SHARED_GLUE / "MRPC" / "train.tsv").is_file() else FIXTURE_GLUE


def _is_full(path: Path) -> bool:
    """Whether ``path`` holds the full local copy rather than the small fixture (MRPC train: 3,668 rows)."""
    train = path / "MRPC" / "train.tsv"
    return train.is_file() and path.resolve() != FIXTURE_GLUE.resolve() and train.stat().st_size > 500_000


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """Real GLUE data in the glue_data layout; at worst the small fixture in tests/data/glue."""
    path = _glue_dir()
    if not (path / "MRPC" / "train.tsv").is_file():  # only a wrong ADABERT_GLUE_DIR gets here
        pytest.fail(f"GLUE data missing at {path} (ADABERT_GLUE_DIR); unset it to use {FIXTURE_GLUE}")
    return path


@pytest.fixture(scope="session")
def full_glue_dir(glue_dir) -> Path:
    """The full local GLUE copy, for tests that check the complete files (known row counts, full-size runs).
    Skipped when only the small fixture is available; under CI=true (where ../shared/glue exists) a missing full
    copy fails instead, unless ADABERT_GLUE_DIR deliberately names the small fixture."""
    if not _is_full(glue_dir):
        reason = (f"needs the full local GLUE copy (ADABERT_GLUE_DIR or {SHARED_GLUE}); "
                  f"only the small fixture {glue_dir} is available")
        env = os.environ.get("ADABERT_GLUE_DIR")
        if os.environ.get("CI") == "true" and not (env and Path(env).resolve() == FIXTURE_GLUE.resolve()):
            pytest.fail(f"CI=true: {reason}")
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return glue_dir


def n_rows(path: Path) -> int:
    """Data rows of a glue_data TSV (its lines after the header; CoLA files have none), so that a test expects
    the row counts of the data it ran on: the full local copy or the small fixture."""
    lines = path.read_bytes().rstrip(b"\n").split(b"\n")
    return len(lines) - (0 if path.parent.name == "CoLA" else 1)


def small_config(glue_dir: Path, **overrides) -> dict:
    """A resolved config for tiny real runs (seq 32, a few dozen examples, one teacher epoch)."""
    from adabert import config

    cfg = {
        "glue_dir": str(glue_dir),
        "tasks": ["MRPC"],
        "seeds": [0],
        "data": {"max_seq_length": 32, "max_train_examples": 128, "max_eval_examples": 64},
        # the teacher fine-tunes on 96 of the 128 rows and labels all of them (the distillation set)
        # fp32 on every machine, so the numbers the tests compare do not depend on the CPU's bf16 support
        "teacher": {"epochs": 1, "batch_size": 16, "max_train_examples": 96, "precision": "fp32"},
        "probes": {"epochs": 3},
        "search": {"epochs": 2, "batch_size": 32, "width": 32, "k_max": 3},
    }
    for key, value in overrides.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return config.resolve(cfg)


def run_small_pipeline(root: Path, cfg: dict, task: str) -> dict:
    from adabert import config as config_mod
    from adabert.encode import prepare
    from adabert.probes import train_probes
    from adabert.teacher import train_teacher

    data_dir, teacher_dir, probes_dir = root / "data" / task, root / "teacher" / task, root / "probes" / task
    prepare(config_mod.stage_config(cfg, "prepare", task), task, data_dir)
    train_teacher(config_mod.stage_config(cfg, "teacher", task), task, data_dir, teacher_dir)
    train_probes(config_mod.stage_config(cfg, "probes", task), task, data_dir, teacher_dir, probes_dir)
    return {"cfg": cfg, "data_dir": data_dir, "teacher_dir": teacher_dir, "probes_dir": probes_dir}


@pytest.fixture(scope="session")
def mrpc_small(glue_dir, tmp_path_factory) -> dict:
    """A small real MRPC subset processed by the prepare, teacher and probes stages."""
    root = tmp_path_factory.mktemp("mrpc_small")
    return run_small_pipeline(root, small_config(glue_dir), "MRPC")


@pytest.fixture(scope="session")
def mrpc_searched(mrpc_small, tmp_path_factory) -> dict:
    """Search and derive (the small config's settings, seed 0) on ``mrpc_small``; shared, treat as read-only."""
    import torch

    from adabert import config
    from adabert.nas.derive import run_derive
    from adabert.nas.search import run_search

    root = tmp_path_factory.mktemp("mrpc_searched")
    cfg = mrpc_small["cfg"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: intra-op threads only stall on a shared 2-core machine
    try:
        summary = run_search(config.stage_config(cfg, "search", "MRPC", "main"), "MRPC", 0, "main",
                             mrpc_small["data_dir"], mrpc_small["teacher_dir"], mrpc_small["probes_dir"],
                             root / "search")
        derived = run_derive(config.stage_config(cfg, "derive", "MRPC", "main"), root / "search", root / "derive")
    finally:
        torch.set_num_threads(threads)
    return {"root": root, "summary": summary, "derived": derived}


@pytest.fixture
def torch_one_thread():
    """One torch thread for the test: on tiny tensors intra-op threads only add overhead (and stall on a
    shared 2-core machine). Modules of such tests use it with ``pytest.mark.usefixtures``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def check_predictions(out: Path, data_dir: Path, task: str, expected: dict) -> None:
    """``out/predictions_dev.jsonl`` holds the rows of ``data_dir/dev.jsonl`` in order, with their labels and
    predictions named, and every metric of ``expected`` recomputes from its logits."""
    import json

    import torch

    from adabert import metrics, tasks

    rows = [json.loads(line) for line in (out / "predictions_dev.jsonl").read_text().splitlines()]
    data_rows = [json.loads(line) for line in (data_dir / "dev.jsonl").read_text().splitlines()]
    assert [r["idx"] for r in rows] == [r["idx"] for r in data_rows]
    spec = tasks.get_task(task)
    logits = torch.tensor([r["logits"] for r in rows])
    labels = torch.tensor([r["label_index"] for r in rows])
    assert metrics.compute(spec, logits, labels) == pytest.approx(expected)
    assert [r["label"] for r in rows] == [spec.label_names[r["label"]] for r in data_rows]
    assert all(r["prediction"] == spec.label_names[r["prediction_index"]] for r in rows)


@pytest.fixture
def restore_threads():
    """Export and measurement code set torch's threads and OMP/MKL variables; give them back afterwards."""
    import torch

    threads = torch.get_num_threads()
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    yield
    torch.set_num_threads(threads)
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
