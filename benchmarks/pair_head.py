"""Does the ``interaction`` read-out help the students of sentence-pair tasks? (search + retrain, both heads)

For each task, with the pipeline's own stages on a workflow run's folders
(``<results>/data|teacher|probes/<task>``) and the default config (``config/config.yaml``), once per
``search.pair_head`` value (``mean``, the paper's read-out, and ``interaction``, adabert/nas/head.py):

1. one search (seed 0) and its derivation (the supernet carries the head, the student inherits it);
2. the retrain stage with ``retrain.seed`` offsets ``--seeds`` (the default recipe).

Reported per task and arm: the dev metric of every retrain, mean and std, the difference between the arms
and whether it exceeds the seed spread (the larger std), the derived depth and the search's op
confidence, the wall time of each arm. Tasks run in ``--jobs`` processes of one thread each; an
existing report at ``--out`` keeps its other tasks.

Usage:
    python benchmarks/pair_head.py --results results --tasks STS-B MRPC RTE QNLI --seeds 0 1 --jobs 2 \
        --out docs/results/pair_head.json
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import arm_summary  # noqa: E402

from adabert import config, io  # noqa: E402
from adabert.measure.machine import cpu_model  # noqa: E402
from adabert.nas.derive import run_derive  # noqa: E402
from adabert.nas.head import HEADS  # noqa: E402
from adabert.nas.search import run_search  # noqa: E402
from adabert.retrain import run_retrain  # noqa: E402


def run_task(job: tuple[str, str, str, list[int]]) -> dict:
    """Both arms of one task (one thread)."""
    results, config_path, task, seeds = job
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {task} %(message)s")
    base = config.resolve(yaml.safe_load(Path(config_path).read_text()))
    folders = {k: Path(results) / k / task for k in ("data", "teacher", "probes")}
    variant = base["main_variant"]
    arms, metric = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for head in HEADS:
            cfg_all = {**base, "search": {**base["search"], "pair_head": head}}
            work = Path(tmp) / head
            start = time.perf_counter()
            search = run_search(config.stage_config(cfg_all, "search", task, variant), task, 0, variant,
                                folders["data"], folders["teacher"], folders["probes"], work / "search")
            run_derive(config.stage_config(cfg_all, "derive", task, variant), work / "search", work / "derive")
            genotype = io.read_json(work / "derive" / "genotype.json")
            search_s = time.perf_counter() - start
            values = []
            for seed in seeds:
                cfg = config.retrain_config(cfg_all, task, variant)
                cfg["retrain"] = {**cfg["retrain"], "seed": int(seed)}
                m = run_retrain(cfg, task, variant, 0, folders["data"], folders["teacher"], folders["probes"],
                                work / "derive", work / f"retrain-{seed}")
                values.append(float(m["main_value"]))
                metric = f"{m['main_split']} {m['main_metric']}"
            arms[head] = arm_summary(values) | {
                "depth": genotype["depth"], "head": genotype.get("head", "mean"),
                "max_op_prob_mean": search["final"]["max_op_prob_mean"], "depth_max_prob": search["final"]["depth_max_prob"],
                "search_s": search_s, "arm_s": time.perf_counter() - start}
    stds = [a["std"] for a in arms.values() if a["std"] is not None]
    delta = arms["interaction"]["mean"] - arms["mean"]["mean"]
    return {"task": task, "metric": metric, "seeds": seeds, "arms": arms, "delta": delta,
            "seed_spread": max(stds) if stds else None,
            "exceeds_seed_spread": (abs(delta) > max(stds)) if stds else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--tasks", nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="retrain.seed offsets")
    parser.add_argument("--jobs", type=int, default=2, help="tasks run side by side, one thread each")
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    jobs = [(args.results, args.config, task, list(args.seeds)) for task in args.tasks]
    with multiprocessing.get_context("spawn").Pool(max(1, min(args.jobs, len(jobs)))) as pool:
        reports = pool.map(run_task, jobs, chunksize=1)
    report = {
        "benchmark": "pair_head", "tasks": {r["task"]: r for r in reports},
        "wall_s": time.perf_counter() - start, "jobs": args.jobs,
        "machine": {"cpu": cpu_model(), "threads_per_job": 1, "torch": torch.__version__,
                    "platform": platform.platform()},
    }
    for r in reports:
        print(f"{r['task']:6s} {r['metric']}: mean {r['arms']['mean']['values']} -> interaction "
              f"{r['arms']['interaction']['values']} (delta {r['delta']:+.2f}, spread {r['seed_spread']})")
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    if previous.get("benchmark") == "pair_head":  # add these tasks to an earlier report's
        report["tasks"] = {**previous.get("tasks", {}), **report["tasks"]}
        report["wall_s"] = {"this_call": report["wall_s"], "earlier": previous.get("wall_s")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
