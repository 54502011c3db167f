"""Search dynamics: does the architecture distribution commit, and to what, under a given budget?

Runs the pipeline's own search stage (``adabert.nas.search.run_search``) on a task's real prepared data,
teacher-labelled distillation set and probes (the folders of a workflow run: ``<results>/data/<task>``,
``<results>/teacher/<task>``, ``<results>/probes/<task>``) once per setting of a small grid. Every
setting starts from the default config (``config/config.yaml``) with the given ``search``/``loss``
overrides. Reported per setting and seed: steps, the architecture learning rate used, the end-of-search
confidence (mean strongest-op probability, largest depth probability), the selected architecture (depth,
kept ops, whether it has a convolution), its dev metric and loss, the per-term gradient balance on the
architecture logits in the last round, and the wall time.

Usage (settings are JSON objects of overrides, named with ``name=``):
    python benchmarks/search_dynamics.py --results results --task SST-2 --seeds 0 1 \
        --setting 'travel=12.6:{"search": {"steps": 300}}' \
        --out docs/results/search_dynamics.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert import config  # noqa: E402
from adabert.io import read_json  # noqa: E402
from adabert.measure.machine import cpu_model  # noqa: E402
from adabert.nas.genotype import Genotype  # noqa: E402
from adabert.nas.search import run_search  # noqa: E402


def parse_setting(text: str) -> tuple[str, dict]:
    name, _, body = text.partition(":")
    if not body:
        raise SystemExit(f"--setting {text!r}: expected NAME:JSON")
    return name, json.loads(body)


def merged(cfg: dict, overrides: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    for section, values in overrides.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    return cfg


def run_one(base: dict, name: str, overrides: dict, task: str, seed: int, results: Path) -> dict:
    cfg = merged(config.stage_config(base, "search", task, base["main_variant"]), overrides)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        summary = run_search(cfg, task, seed, "bench", results / "data" / task, results / "teacher" / task,
                             results / "probes" / task, Path(out) / "search")
        history = read_json(Path(out) / "search" / "alpha_history.json")
    wall = time.perf_counter() - start
    genotype = Genotype.from_dict(summary["best_genotype"])
    last = summary["epochs"][-1]
    return {
        "setting": name, "overrides": overrides, "task": task, "seed": seed,
        "steps": summary["schedule"]["total_steps"], "warmup_steps": summary["schedule"]["warmup_steps"],
        "alpha_lr": summary["schedule"]["alpha_lr"], "final": summary["final"],
        "best_round": summary["best_epoch"], "depth": genotype.depth, "has_conv": genotype.has_conv,
        "ops": sorted(op for _, _, op in genotype.edge_list()),
        "dev_main": summary["best_dev_main"], "dev_loss": summary["best_dev_loss"],
        "main_metric": summary["main_metric"], "n_dev": summary["n_dev"],
        "rounds": [{k: e.get(k) for k in ("step", "tau", "dev_main", "dev_loss", "max_op_prob_mean",
                                         "depth_max_prob", "depth_derived", "loss", "efficiency")}
                   for e in summary["epochs"]],
        "grad_balance_last_round": {k: v for k, v in last.items() if k.startswith("grad_")},
        "softmax_depth_final": history["epochs"][-1]["softmax_depth"],
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True, help="a workflow results folder with data/teacher/probes")
    parser.add_argument("--task", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--setting", action="append", required=True, help="NAME:JSON overrides")
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    base = config.resolve(yaml.safe_load(Path(args.config).read_text()))
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else None
    kept = previous["runs"] if previous and previous.get("benchmark") == "search_dynamics" else []
    runs = []
    for text in args.setting:
        name, overrides = parse_setting(text)
        for seed in args.seeds:
            run = run_one(base, name, overrides, args.task, seed, Path(args.results))
            print(json.dumps({k: run[k] for k in ("setting", "seed", "steps", "alpha_lr", "final", "depth",
                                                  "has_conv", "dev_main", "dev_loss", "wall_s")}), flush=True)
            runs.append(run)
            # written after every run (a long grid keeps what it has); other tasks' and settings' runs are kept
            done = {(r["task"], r["setting"], r["seed"]) for r in runs}
            report = {
                "benchmark": "search_dynamics", "config": args.config,
                "runs": [r for r in kept if (r["task"], r["setting"], r["seed"]) not in done] + runs,
                "machine": {"cpu": cpu_model(), "threads": args.threads, "torch": torch.__version__,
                            "platform": platform.platform()},
                "note": "Wall times on a shared 2-core machine are indicative only.",
            }
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
