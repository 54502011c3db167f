"""Do the cells matter? Fixed one-op cells retrained like the searched students, against a run's results.

The simplest baselines of the search space: a depth-1 student whose every edge is one fixed op, e.g.
``skip_connect`` (identity: the student is the folded teacher embedding, averaged, read by the
classifier, a bag of embeddings) or ``std_conv_3`` (every edge a convolution). For each task, with the
pipeline's own stages on a workflow run's folders (``<results>/data|teacher|probes/<task>`` and the main
search of seed ``seeds[0]``):

1. the fixed genotype (:func:`adabert.nas.genotype.fixed_genotype`: depth ``--depth``, each intermediate
   node reads the two cell inputs through ``OP``; the workflow's ``baselines.fixed_cells`` at depth 1) is cut out of the task's main supernet exactly as a random architecture is (the main
   variant's ``retrain.init``; :func:`adabert.architectures.supernet_weights`);
2. the retrain stage trains it with the random architectures' recipe (the main variant's), once per
   ``--seeds`` offset.

Reported per task and cell: the dev metric of every retrain, mean and std, next to the run's searched
students (``<results>/retrain/<main>/<task>/seed*``) and random architectures
(``<results>/retrain/random/<task>/seed*``): their values, mean and median. Tasks run in ``--jobs``
processes of one thread each; ``--set KEY=VALUE`` changes the fixed students' config (e.g. a longer
retrain), not the run's references.

Usage (the committed reports):
    python benchmarks/fixed_cells.py --results results --cells identity=skip_connect conv3=std_conv_3 \
        --tasks CoLA SST-2 MRPC STS-B QQP MNLI QNLI RTE --seeds 0 1 --jobs 2 --out docs/results/fixed_cells.json
    python benchmarks/fixed_cells.py --results results --cells identity=skip_connect conv3=std_conv_3 \
        --tasks CoLA SST-2 MNLI STS-B --seeds 0 1 --set retrain.max_steps=1500 retrain.epochs=8 --jobs 2 \
        --out docs/results/fixed_cells_long_retrain.json
    python benchmarks/fixed_cells.py --results results --cells identity=skip_connect conv3=std_conv_3 \
        --tasks STS-B MRPC RTE --seeds 0 1 --set retrain.epochs=8 --jobs 2 \
        --out docs/results/fixed_cells_small_tasks_300_steps.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import (  # noqa: E402
    add_run_options, arm_summary, map_tasks, one_thread_machine, parse_settings, start_task, task_folders,
)

from adabert import artifacts, config, io  # noqa: E402
from adabert.architectures import supernet_weights, write_architecture  # noqa: E402
from adabert.nas.genotype import fixed_genotype  # noqa: E402
from adabert.nas.head import head_for  # noqa: E402
from adabert.nas.ops import OPS  # noqa: E402
from adabert.retrain import run_retrain  # noqa: E402


def parse_cells(items: list[str]) -> dict[str, str]:
    """``--cells NAME=OP`` items as a mapping (name -> op)."""
    cells = {}
    for item in items:
        name, sep, op = item.partition("=")
        if not sep or not name or not op:
            raise SystemExit(f"--cells {item!r}: expected NAME=OP, e.g. identity=skip_connect")
        if op not in OPS or op == "none":
            raise SystemExit(f"--cells {item!r}: {op!r} is not an op of the search space "
                             f"({', '.join(o for o in OPS if o != 'none')})")
        cells[name] = op
    return cells


def run_values(folder: Path) -> list[float]:
    """The main dev values of the retrain folders ``folder/seed*`` of a workflow run."""
    return [float(io.read_json(p)["main_value"]) for p in sorted(folder.glob("seed*/metrics.json"))]


def reference(values: list[float]) -> dict:
    return {"values": values, "n": len(values), "mean": statistics.fmean(values) if values else None,
            "median": statistics.median(values) if values else None}


def run_task(job: tuple[str, str, dict[str, str], int, str, list[int], dict]) -> dict:
    """Every fixed cell of one task (one thread)."""
    results, config_path, cells, depth, task, seeds, settings = job
    cfg_all = start_task(task, config_path, settings)
    variant = cfg_all["main_variant"]
    results = Path(results)
    folders = task_folders(results, cfg_all, task)
    supernet = results / "search" / variant / task / f"seed{cfg_all['seeds'][0]}" / artifacts.SUPERNET_FILE
    data = artifacts.read_data(folders["data"])
    scfg, init = cfg_all["search"], cfg_all["retrain"]["init"]
    out = {"task": task, "cells": {}, "searched": reference(run_values(results / "retrain" / variant / task)),
           "random": reference(run_values(results / "retrain" / "random" / task))}
    with tempfile.TemporaryDirectory() as tmp:
        for name, op in cells.items():
            start = time.perf_counter()
            genotype = fixed_genotype(op, depth, scfg["ops"], int(scfg["nodes"]), int(scfg["width"]),
                                      int(scfg["k_max"]), head=head_for(scfg.get("pair_head", "mean"), data.pair))
            arch = Path(tmp) / name / "arch"
            tensors = supernet_weights(genotype, supernet, data.num_labels, 0, init)
            write_architecture(genotype, tensors, data, arch, {"kind": "fixed", "op": op, "init": init},
                               config.stage_config(cfg_all, "architecture"))
            scores = []
            for seed in seeds:
                cfg = config.retrain_config(cfg_all, task, "random")
                cfg["retrain"] = {**cfg["retrain"], "seed": int(seed)}
                m = run_retrain(cfg, task, "random", 0, folders["data"], folders["teacher"], folders["probes"],
                                arch, Path(tmp) / name / f"retrain-{seed}")
                scores.append(float(m["main_value"]))
                out["metric"] = f"{m['main_split']} {m['main_metric']}"
                params, steps = int(m["params"]), int(m["steps"])
            out["cells"][name] = arm_summary(scores) | {"op": op, "depth": depth, "params": params, "steps": steps,
                                                        "s": time.perf_counter() - start}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True, help="a workflow run's results folder")
    parser.add_argument("--cells", nargs="+", required=True, metavar="NAME=OP",
                        help="fixed cells, e.g. identity=skip_connect conv3=std_conv_3")
    parser.add_argument("--depth", type=int, default=1, help="cells of the fixed students")
    parser.add_argument("--tasks", nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="retrain.seed offsets")
    add_run_options(parser, "config values of every retrain (dotted keys, YAML values), e.g. retrain.max_steps=1200; "
                            "the run's searched and random students keep theirs")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cells = parse_cells(args.cells)
    settings = parse_settings(args.set)
    jobs = [(args.results, args.config, cells, args.depth, task, list(args.seeds), settings) for task in args.tasks]
    reports = map_tasks(run_task, jobs, args.jobs)
    report = {
        "benchmark": "fixed_cells", "cells": cells, "depth": args.depth, "seeds": list(args.seeds),
        "settings": settings,
        "tasks": {r["task"]: r for r in reports},
        "wall_s": time.perf_counter() - start, "jobs": args.jobs,
        "machine": one_thread_machine(),
    }
    io.write_json(Path(args.out), report)
    for r in reports:
        cols = "  ".join(f"{n} {c['mean']:.1f}" for n, c in r["cells"].items())
        print(f"{r['task']:6s} {r['metric']}: {cols}  searched {r['searched']['mean']:.1f}  "
              f"random median {r['random']['median']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
