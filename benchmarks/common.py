"""Helpers shared by the benchmark scripts that compare arms over seeds on a workflow run's folders
(search_arms, fixed_cells, retrain_arms: one process of one thread per task, ``--set`` overrides)."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import platform
import statistics
from pathlib import Path
from typing import Callable


def arm_summary(values: list[float]) -> dict:
    """The values of one arm, their mean and (with two or more) their sample standard deviation."""
    return {"values": values, "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None}


def with_value(cfg: dict, key: str, value) -> dict:
    """A copy of ``cfg`` with the dotted ``key`` set to ``value`` (every level must exist)."""
    head, _, rest = key.partition(".")
    if head not in cfg:
        raise SystemExit(f"config key {key}: the config has no {head!r}")
    return {**cfg, head: with_value(cfg[head], rest, value) if rest else value}


def parse_settings(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items (dotted keys, YAML values) as a mapping."""
    import yaml

    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. search.alpha_weight_decay=0")
        settings[key] = yaml.safe_load(value)
    return settings


def add_run_options(parser: argparse.ArgumentParser, set_help: str) -> None:
    """``--set``, ``--jobs``, ``--config`` and ``--out`` (the config defaults to the repository's own)."""
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help=set_help)
    parser.add_argument("--jobs", type=int, default=2, help="tasks run side by side, one thread each")
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config" / "config.yaml"))
    parser.add_argument("--out", required=True)


def start_task(task: str, config_path: str, settings: dict) -> dict:
    """In a task's worker process: one torch thread, log lines tagged with the task, and the resolved config
    of ``config_path`` (every key has its value) with ``settings`` applied."""
    import torch
    import yaml

    from adabert import config

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {task} %(message)s", force=True)
    cfg = config.resolve(yaml.safe_load(Path(config_path).read_text()))
    for key, value in settings.items():
        cfg = with_value(cfg, key, value)
    return cfg


def _run_job(call: tuple[Callable[[tuple], dict], tuple]) -> dict:
    """One job in a pool process. A ``SystemExit`` there (a bad argument found by the job) would kill the
    process and leave the pool waiting for its result forever: it comes back as an error instead."""
    run_task, job = call
    try:
        return run_task(job)
    except SystemExit as exc:
        raise RuntimeError(str(exc)) from None


def task_folders(results: str | Path, cfg: dict, task: str) -> dict[str, Path]:
    """The data, teacher and probes folders that a workflow run's jobs of the main variant (and its random,
    fixed and transferred architectures) read for ``task``: the augment stage's copies where the main
    variant augments the task (``variants.<main>.augment``, as the workflow's rules choose them)."""
    from adabert import config

    results = Path(results)
    if task in config.augmented_tasks(cfg, cfg["main_variant"]):
        return {k: results / "augment" / task / k for k in ("data", "teacher", "probes")}
    return {k: results / k / task for k in ("data", "teacher", "probes")}


def map_tasks(run_task: Callable[[tuple], dict], jobs: list[tuple], processes: int) -> list[dict]:
    """``run_task`` on every job, in at most ``processes`` fresh (spawned) processes."""
    with multiprocessing.get_context("spawn").Pool(max(1, min(processes, len(jobs)))) as pool:
        return pool.map(_run_job, [(run_task, job) for job in jobs], chunksize=1)


def one_thread_machine() -> dict:
    """The machine record of a report whose jobs ran one thread each."""
    import torch

    from adabert.measure.machine import cpu_model

    return {"cpu": cpu_model(), "threads_per_job": 1, "torch": torch.__version__, "platform": platform.platform()}
