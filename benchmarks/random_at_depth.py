"""Does the search pick better cells than chance at the depth it chose? Random cells of a fixed depth.

Random architectures of uniform depth 1..k_max (``baselines.random.depth: uniform``, the workflow's
rule until this study) are mostly deeper than the searches, which keep K = 1 almost always; with
``retrain.init: inherit`` a deep random architecture inherits cells the supernet hardly trained, so the
searched-vs-random table mixes two questions (which depth, which cells). This script asks the second
alone, on any run: for each task, with the pipeline's own stages on a workflow run's
folders (``<results>/data|teacher|probes/<task>`` and the main search of seed ``seeds[0]``, the supernet
the run's random architectures come from):

1. ``--samples`` random architectures of the search space at depth ``--depth`` are drawn exactly as the
   workflow's random baseline draws its architectures (:func:`adabert.architectures.run_random_architecture`
   with ``baselines.random.depth`` set to it; the same per-task sample seeds), weighted from that supernet
   with the main variant's ``retrain.init``;
2. each is retrained once by the retrain stage with the random architectures' recipe (the main variant's).

Reported per task: the values, median and range of the random cells, and where the run's searched
students (``<results>/retrain/<main>/<task>/seed*``) stand among them (how many random cells score
below the searched mean), next to the run's own random architectures of uniform depth
(``<results>/retrain/random/<task>/seed*``). Tasks run in ``--jobs`` processes of one thread each.

Usage (the committed report):
    python benchmarks/random_at_depth.py --results results --depth 1 --samples 5 \
        --tasks CoLA SST-2 MRPC STS-B QQP MNLI QNLI RTE --jobs 2 --out docs/results/random_at_depth_1.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import (  # noqa: E402
    add_run_options, map_tasks, one_thread_machine, parse_settings, start_task, task_folders,
)
from fixed_cells import reference, run_values  # noqa: E402

from adabert import config, io  # noqa: E402
from adabert.architectures import run_random_architecture  # noqa: E402
from adabert.nas.genotype import Genotype  # noqa: E402
from adabert.retrain import run_retrain  # noqa: E402


def standing(searched_mean: float, values: list[float]) -> dict:
    """How the searched mean ranks among ``values``: how many are below, equal and above it."""
    return {"below": sum(v < searched_mean for v in values), "equal": sum(v == searched_mean for v in values),
            "above": sum(v > searched_mean for v in values), "n": len(values)}


def run_task(job: tuple[str, str, str, int, int, dict]) -> dict:
    """``samples`` random cells of one task at the given depth, each retrained once (one thread)."""
    results, config_path, task, depth, samples, settings = job
    cfg_all = start_task(task, config_path, settings)
    results = Path(results)
    main = cfg_all["main_variant"]
    folders = task_folders(results, cfg_all, task)
    search_dir = results / "search" / main / task / f"seed{cfg_all['seeds'][0]}"
    arch_cfg = config.stage_config(cfg_all, "random_architecture", task, main)
    arch_cfg["baselines"] = {"random": {"depth": int(depth)}}
    retrain_cfg = config.retrain_config(cfg_all, task, "random")
    scores, cells = [], []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for sample in range(samples):
            arch = Path(tmp) / f"arch{sample}"
            run_random_architecture(arch_cfg, task, sample, search_dir, folders["data"], arch)
            genotype = Genotype.load(arch / "genotype.json")
            if genotype.depth != depth:
                raise RuntimeError(f"{task} sample {sample}: drew depth {genotype.depth}, not {depth}")
            m = run_retrain(retrain_cfg, task, "random", sample, folders["data"], folders["teacher"],
                            folders["probes"], arch, Path(tmp) / f"retrain{sample}")
            scores.append(float(m["main_value"]))
            cells.append({"sample": sample, "genotype": genotype.to_dict(), "dev": scores[-1],
                          "params": int(m["params"]), "steps": int(m["steps"]), "init": m["init"]})
    searched = reference(run_values(results / "retrain" / main / task))
    random = reference(scores) | {"min": min(scores), "max": max(scores)}
    out = {"task": task, "metric": f"{m['main_split']} {m['main_metric']}", "depth": int(depth),
           "random_at_depth": random, "cells": cells, "searched": searched,
           "searched_standing": standing(searched["mean"], scores),
           "run_random": reference(run_values(results / "retrain" / "random" / task)),
           "s": time.perf_counter() - start}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True, help="a workflow run's results folder")
    parser.add_argument("--tasks", nargs="+", required=True)
    parser.add_argument("--depth", type=int, default=1, help="cells of every random architecture")
    parser.add_argument("--samples", type=int, default=5, help="random architectures per task")
    add_run_options(parser, "config values of every random architecture and retrain (dotted keys, YAML values)")
    args = parser.parse_args(argv)
    if args.samples < 1 or args.depth < 1:
        raise SystemExit(f"--samples must be >= 1 and --depth must be >= 1, got {args.samples} and {args.depth}")
    start = time.perf_counter()
    settings = parse_settings(args.set)
    jobs = [(args.results, args.config, task, args.depth, args.samples, settings) for task in args.tasks]
    reports = map_tasks(run_task, jobs, args.jobs)
    tasks = {r["task"]: r for r in reports}
    at_or_above = [t for t, r in tasks.items() if r["searched"]["mean"] >= r["random_at_depth"]["median"]]
    report = {
        "benchmark": "random_at_depth", "depth": args.depth, "samples": args.samples, "settings": settings,
        "tasks": tasks, "searched_at_or_above_median": {"n": len(at_or_above), "of": len(tasks), "tasks": at_or_above},
        "wall_s": time.perf_counter() - start, "jobs": args.jobs, "machine": one_thread_machine(),
    }
    io.write_json(Path(args.out), report)
    for t, r in tasks.items():
        rnd, st = r["random_at_depth"], r["searched_standing"]
        print(f"{t:6s} {r['metric']}: searched {r['searched']['mean']:.1f}  random depth {r['depth']} median "
              f"{rnd['median']:.1f} ({rnd['min']:.1f}-{rnd['max']:.1f}; {st['below']} of {st['n']} below the searched)  "
              f"run's random median {r['run_random']['median'] if r['run_random']['n'] else float('nan'):.1f}")
    print(f"searched at or above the median on {len(at_or_above)} of {len(tasks)} tasks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
