"""Does a search setting help the students? One config key, two or more values, search + retrain per arm.

For each task, with the pipeline's own stages on a workflow run's folders
(``<results>/data|teacher|probes/<task>``) and the default config (``config/config.yaml``), once per
value of ``--key`` (a dotted config key, e.g. ``search.pair_head`` or ``search.length_grouped``):

1. one search per ``--search-seeds`` (default: seed 0 only) and its derivation;
2. for each search, the retrain stage with ``retrain.seed`` offsets ``--seeds`` (the default recipe).

Reported per task and arm: the dev metric of every retrain (all searches pooled, so with several search
seeds the spread includes search-to-search variation), mean and std, the difference between the last and
the first arm and whether it exceeds the seed spread (the larger std), and per search the derived genotype,
depth and head, the op confidence, training examples/s and wall time (the arm's top-level ``depth``,
``head``, ``max_op_prob_mean``, ``depth_max_prob`` and ``search_examples_per_s`` are the first search's).
With several tasks and search seeds the report also gives, per arm, the mean genotype distance within a
task (across search seeds) and across tasks (``adaptivity``): does the setting make the architecture
follow the task? Tasks run in ``--jobs`` processes of one thread each; an existing report at ``--out`` of
the same key keeps its other tasks.

Usage (the committed reports):
    python benchmarks/search_arms.py --results results --key search.pair_head --values mean interaction \
        --tasks STS-B MRPC RTE QNLI --seeds 0 1 --jobs 2 --out docs/results/pair_head.json
    python benchmarks/search_arms.py --results results --key search.length_grouped --values false true \
        --tasks RTE QNLI --seeds 0 1 --jobs 2 --out docs/results/search_length_grouped.json
    python benchmarks/search_arms.py --results results --key search.alpha_weight_decay --values 0.001 0 \
        --tasks SST-2 MRPC QNLI RTE --search-seeds 0 1 --seeds 0 --jobs 2 \
        --out docs/results/alpha_weight_decay.json
    python benchmarks/search_arms.py --results results --set search.alpha_weight_decay=0 --key loss.beta \
        --values 4 0 --tasks SST-2 MRPC --search-seeds 0 1 --seeds 0 --jobs 2 \
        --out docs/results/beta_without_alpha_decay.json
    python benchmarks/search_arms.py --results results --set search.alpha_weight_decay=0 --key search.arch_warmup \
        --values 0.3 0.6 --tasks SST-2 MRPC --search-seeds 0 1 --seeds 0 --jobs 2 \
        --out docs/results/arch_warmup_without_alpha_decay.json
    python benchmarks/search_arms.py --results results --set search.alpha_weight_decay=0 --key search.execution \
        --values single_path all_ops --tasks SST-2 MRPC --search-seeds 0 --seeds 0 --jobs 2 \
        --out docs/results/execution_without_alpha_decay.json
    python benchmarks/search_arms.py --results results --set search.alpha_weight_decay=0 \
        --key search.max_parameter_free --values 2 0 --tasks SST-2 MRPC QNLI RTE --search-seeds 0 1 --jobs 2 \
        --out docs/results/parameter_free_cap_without_alpha_decay.json

``--set`` fixes other config values for every arm (recorded in the report as ``settings``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import (  # noqa: E402
    add_run_options, arm_summary, map_tasks, one_thread_machine, parse_settings, start_task, task_folders,
    with_value,
)

from adabert import config, io  # noqa: E402
from adabert.report.adaptivity import genotype_pairs, summarise  # noqa: E402
from adabert.nas.derive import run_derive  # noqa: E402
from adabert.nas.genotype import Genotype  # noqa: E402
from adabert.nas.search import run_search  # noqa: E402
from adabert.retrain import run_retrain  # noqa: E402


def arm_name(value) -> str:
    """How a config value names its arm (``false``/``true`` for booleans, as YAML spells them)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def run_task(job: tuple[str, str, str, list, str, list[int], list[int], dict]) -> dict:
    """Every arm of one task (one thread)."""
    results, config_path, key, values, task, seeds, search_seeds, settings = job
    base = start_task(task, config_path, settings)
    folders = task_folders(results, base, task)
    variant = base["main_variant"]
    arms, metric = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for value in values:
            name = arm_name(value)
            cfg_all = with_value(base, key, value)
            start = time.perf_counter()
            searches, scores = [], []
            for search_seed in search_seeds:
                work = Path(tmp) / name / f"search{search_seed}"
                record = _search_and_retrain(cfg_all, task, variant, int(search_seed), seeds, folders, work)
                searches.append(record)
                scores += record["dev"]
                metric = record["metric"]
            first = searches[0]
            arms[name] = arm_summary(scores) | {
                "value": value, "depth": first["depth"], "head": first["head"],
                "max_op_prob_mean": first["max_op_prob_mean"], "depth_max_prob": first["depth_max_prob"],
                "search_examples_per_s": first["search_examples_per_s"], "search_s": first["search_s"],
                "searches": searches, "arm_s": time.perf_counter() - start}
    stds = [a["std"] for a in arms.values() if a["std"] is not None]
    first, last = arms[arm_name(values[0])], arms[arm_name(values[-1])]
    delta = last["mean"] - first["mean"]
    return {"task": task, "metric": metric, "seeds": seeds, "search_seeds": search_seeds, "arms": arms,
            "delta": delta, "seed_spread": max(stds) if stds else None,
            "exceeds_seed_spread": (abs(delta) > max(stds)) if stds else None}


def _search_and_retrain(cfg_all: dict, task: str, variant: str, search_seed: int, seeds: list[int],
                        folders: dict[str, Path], work: Path) -> dict:
    """One search with ``search_seed``, its derivation and one retrain per ``seeds`` offset: the search's
    record with the dev score of every retrain (``dev``) and their metric."""
    start = time.perf_counter()
    search = run_search(config.stage_config(cfg_all, "search", task, variant), task, search_seed, variant,
                        folders["data"], folders["teacher"], folders["probes"], work / "search")
    run_derive(config.stage_config(cfg_all, "derive", task, variant), work / "search", work / "derive")
    genotype = io.read_json(work / "derive" / "genotype.json")
    record = {"seed": search_seed, "depth": genotype["depth"], "head": genotype.get("head", "mean"),
              "max_op_prob_mean": search["final"]["max_op_prob_mean"],
              "depth_max_prob": search["final"]["depth_max_prob"],
              "search_examples_per_s": search["train_examples_per_s"], "search_s": time.perf_counter() - start,
              "genotype": genotype}
    record["dev"] = []
    for seed in seeds:
        cfg = config.retrain_config(cfg_all, task, variant)
        cfg["retrain"] = {**cfg["retrain"], "seed": int(seed)}
        m = run_retrain(cfg, task, variant, search_seed, folders["data"], folders["teacher"], folders["probes"],
                        work / "derive", work / f"retrain-{seed}")
        record["dev"].append(float(m["main_value"]))
        record["metric"] = f"{m['main_split']} {m['main_metric']}"
    return record


def adaptivity(reports: list[dict], names: list[str]) -> dict:
    """Per arm ``names``: mean genotype distance (edges, depth) within a task across search seeds and across
    tasks."""
    out = {}
    for name in names:
        items = [(r["task"], s["seed"], Genotype.from_dict(s["genotype"]))
                 for r in reports for s in r.get("arms", {}).get(name, {}).get("searches", [])]
        summary = summarise(genotype_pairs(items)).set_index("pairs")
        out[name] = {label: {k: None if pd.isna(row[k]) else float(row[k]) for k in ("n", "edges_mean", "depth_mean")}
                     for label, row in summary.iterrows()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--key", required=True, help="dotted config key, e.g. search.pair_head")
    parser.add_argument("--values", nargs="+", required=True, help="its values (YAML), one arm each; delta = last - first")
    parser.add_argument("--tasks", nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="retrain.seed offsets")
    parser.add_argument("--search-seeds", type=int, nargs="+", default=[0], help="one search per seed and arm")
    add_run_options(parser, "config values every arm shares (dotted keys, YAML values), e.g. "
                            "search.alpha_weight_decay=0")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    values = [yaml.safe_load(v) for v in args.values]
    if len(values) < 2 or len({arm_name(v) for v in values}) != len(values):
        parser.error(f"--values needs two or more distinct values, got {args.values}")
    settings = parse_settings(args.set)
    jobs = [(args.results, args.config, args.key, values, task, list(args.seeds), list(args.search_seeds), settings)
            for task in args.tasks]
    reports = map_tasks(run_task, jobs, args.jobs)
    report = {
        "benchmark": "search_arms", "key": args.key, "values": values, "settings": settings,
        "tasks": {r["task"]: r for r in reports},
        "wall_s": time.perf_counter() - start, "jobs": args.jobs,
        "machine": one_thread_machine(),
    }
    for r in reports:
        arms = "; ".join(f"{name} {a['values']}" for name, a in r["arms"].items())
        print(f"{r['task']:6s} {r['metric']}: {arms} (delta {r['delta']:+.2f}, spread {r['seed_spread']})")
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    if previous.get("key") == args.key and previous.get("settings", {}) == settings:  # add to an earlier report
        report["tasks"] = {**previous.get("tasks", {}), **report["tasks"]}
        report["wall_s"] = {"this_call": report["wall_s"], "earlier": previous.get("wall_s")}
    report["adaptivity"] = adaptivity(list(report["tasks"].values()), [arm_name(v) for v in values])
    for name, rows in report["adaptivity"].items():
        print(f"{name}: mean edge distance " + ", ".join(f"{label} {row['edges_mean']} (n {row['n']})"
                                                      for label, row in rows.items()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
