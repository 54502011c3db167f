"""Searched against random architectures on dev, straight from a run's folders (no speed measurement).

For runs of a study config that stop before the measurement stage (e.g. ``config/long_search.yaml``), the
dev side of the searched-vs-random table: per task, the main variant's searched students (one per search
seed; ``retrain/<main>/<task>/seed<s>``), the random architectures (``retrain/random/<task>/seed<n>``)
and the fixed cells (``retrain/fixed-<op>/<task>/seed<s>``), each a retrained student's dev metric, with
what the searches ended with (``search/<main>/<task>/seed<s>/metrics.json``: depth, mean strongest-op
probability, largest depth probability, steps, search seconds) and how many convolutions each searched
cell keeps. Several runs (``--results``, each ``LABEL=FOLDER``) are reported side by side.

Usage (the committed report: the default run's 300-step searches against 3,000-step searches of SST-2
and MNLI, each with its own random architectures and identity cells cut from its own supernets):
    snakemake --cores 2 --configfile config/config.yaml config/long_search.yaml -- \\
        $(python benchmarks/searched_vs_random_dev.py --targets --tasks SST-2 MNLI)
    python benchmarks/searched_vs_random_dev.py --tasks SST-2 MNLI \\
        --results steps300=<default run>/results steps3000=results --out docs/results/long_search.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert import io  # noqa: E402
from adabert.errors import AdabertError  # noqa: E402
from adabert.nas.genotype import Genotype  # noqa: E402

CONV_PREFIXES = ("std_conv", "dil_conv")


def _values(results: Path, variant: str, task: str) -> list[dict]:
    rows = []
    for folder in sorted((results / "retrain" / variant / task).glob("seed*"), key=lambda p: int(p.name[4:])):
        if (folder / "metrics.json").is_file():
            m = io.read_json(folder / "metrics.json")
            rows.append({"seed": int(folder.name[4:]), "dev": float(m["main_value"]), "metric": m["main_metric"]})
    return rows


def _search(results: Path, main: str, task: str, seed: int) -> dict:
    m = io.read_json(results / "search" / main / task / f"seed{seed}" / "metrics.json")
    genotype = Genotype.from_dict(io.read_json(results / "derive" / main / task / f"seed{seed}" / "genotype.json"))
    convs = sum(op.startswith(CONV_PREFIXES) for _, _, op in genotype.edge_list())
    return {"seed": seed, "depth": genotype.depth, "convolutions_per_cell": convs,
            "steps": m["schedule"]["total_steps"], "alpha_lr": m["schedule"]["alpha_lr"],
            "max_op_prob_mean": m["final"]["max_op_prob_mean"], "depth_max_prob": m["final"]["depth_max_prob"],
            "search_time_s": m["total_time_s"]}


def task_report(results: Path, main: str, task: str) -> dict:
    searched = _values(results, main, task)
    randoms = _values(results, "random", task)
    if not searched or not randoms:
        raise AdabertError(f"{results}: {task} needs retrained searched students and random architectures "
                           f"(found {len(searched)} and {len(randoms)})")
    fixed = {p.name: _values(results, p.name, task) for p in sorted((results / "retrain").glob("fixed-*"))}
    mean = statistics.fmean(r["dev"] for r in searched)
    median = statistics.median(r["dev"] for r in randoms)
    return {
        "metric": searched[0]["metric"], "searched": searched, "searched_mean": mean,
        "random": randoms, "random_median": median, "random_min": min(r["dev"] for r in randoms),
        "random_max": max(r["dev"] for r in randoms), "at_or_above_median": mean >= median,
        "fixed": {k: {"values": v, "mean": statistics.fmean(r["dev"] for r in v)} for k, v in fixed.items() if v},
        "searches": [_search(results, main, task, r["seed"]) for r in searched],
    }


def targets(tasks: list[str], main: str, seeds: list[int], samples: int, fixed: list[str]) -> list[str]:
    """The retrained students a study run needs for this report (the workflow's file names)."""
    files = [f"results/retrain/{main}/{t}/seed{s}/metrics.json" for t in tasks for s in seeds]
    files += [f"results/retrain/random/{t}/seed{n}/metrics.json" for t in tasks for n in range(samples)]
    files += [f"results/retrain/fixed-{op}/{t}/seed{s}/metrics.json" for t in tasks for op in fixed for s in seeds]
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", nargs="+", default=[], metavar="LABEL=FOLDER")
    parser.add_argument("--tasks", nargs="+", required=True)
    parser.add_argument("--main-variant", default="main")
    parser.add_argument("--targets", action="store_true",
                        help="print the workflow targets of the study (--seeds, --samples, --fixed) and stop")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--fixed", nargs="*", default=["skip_connect"])
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.targets:
        print(" ".join(targets(args.tasks, args.main_variant, args.seeds, args.samples, args.fixed)))
        return 0
    if not args.results or not args.out:
        parser.error("--results and --out are needed (or --targets)")
    runs = {}
    for item in args.results:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            parser.error(f"--results {item!r}: expected LABEL=FOLDER")
        runs[label] = {"results": folder, "tasks": {t: task_report(Path(folder), args.main_variant, t)
                                                    for t in args.tasks}}
    report = {"benchmark": "searched_vs_random_dev", "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for label, run in runs.items():
        for task, r in run["tasks"].items():
            s = r["searches"]
            each = ", ".join(format(x["dev"], ".1f") for x in r["searched"])
            print(f"{label:10s} {task:6s} searched {r['searched_mean']:.2f} ({each}) "
                  f"random median {r['random_median']:.2f} [{r['random_min']:.1f}-{r['random_max']:.1f}] "
                  f"fixed {({k: round(v['mean'], 1) for k, v in r['fixed'].items()})} "
                  f"K {[x['depth'] for x in s]} conv {[x['convolutions_per_cell'] for x in s]} "
                  f"p_op {[round(x['max_op_prob_mean'], 2) for x in s]} steps {[x['steps'] for x in s]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
