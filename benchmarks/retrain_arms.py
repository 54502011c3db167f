"""Does the searched-vs-random ranking hold under another retrain recipe? A run's architectures, retrained again.

For each task, with the pipeline's own retrain stage on a workflow run's folders (``<results>/data|teacher|
probes/<task>``), every architecture the run retrained for the searched-vs-random study is retrained once
more with the run's config plus ``--set`` overrides (e.g. ``retrain.init=scratch``: every student starts
from the same embedding with fresh cells and read-out, so no architecture profits from the weights the
supernet trained most; or a longer ``retrain.max_steps``):

* the searched students (``<results>/derive/<main>/<task>/seed<s>`` for the config's seeds),
* the random architectures (``<results>/architectures/random/<task>/seed<n>``),
* the fixed one-op cells, where the run has them (``<results>/architectures/fixed-<op>/<task>/seed<s>``),

each with the seed the workflow gives it. Reported per task and kind: the values, mean, median and range,
next to the run's own retrains of the same folders (``<results>/retrain/...``). Tasks run in ``--jobs``
processes of one thread each.

Usage (the committed report):
    python benchmarks/retrain_arms.py --results results --tasks STS-B MRPC RTE --set retrain.init=scratch \
        --jobs 2 --out docs/results/retrain_from_scratch.json
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
from adabert.retrain import run_retrain  # noqa: E402


def architectures(results: Path, main: str, task: str, seeds: list[int]) -> list[tuple[str, int, Path]]:
    """(variant, seed, derive folder) of every architecture the run retrained for ``task``'s study."""
    out = [(main, int(s), results / "derive" / main / task / f"seed{s}") for s in seeds]
    for root in sorted((results / "architectures").glob("*")):
        if root.name == "random" or root.name.startswith("fixed-"):
            for folder in sorted((root / task).glob("seed*"), key=lambda p: int(p.name.removeprefix("seed"))):
                out.append((root.name, int(folder.name.removeprefix("seed")), folder))
    missing = [str(f) for _, _, f in out if not (f / "genotype.json").is_file()]
    if missing:
        raise SystemExit(f"--results: no derive folder at {missing[:3]}")
    return out


def run_task(job: tuple[str, str, str, dict]) -> dict:
    """Every architecture of one task (one thread)."""
    results, config_path, task, settings = job
    cfg_all = start_task(task, config_path, settings)
    results = Path(results)
    main = cfg_all["main_variant"]
    folders = task_folders(results, cfg_all, task)
    values: dict[str, list[float]] = {}
    out = {"task": task, "kinds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for variant, seed, folder in architectures(results, main, task, list(cfg_all["seeds"])):
            cfg = config.retrain_config(cfg_all, task, variant)
            m = run_retrain(cfg, task, variant, seed, folders["data"], folders["teacher"], folders["probes"], folder,
                            Path(tmp) / variant / f"seed{seed}")
            values.setdefault(variant, []).append(float(m["main_value"]))
            out["metric"] = f"{m['main_split']} {m['main_metric']}"
            out["kinds"].setdefault(variant, {"init": m["init"], "steps": int(m["steps"])})
    for variant, vals in values.items():
        out["kinds"][variant] |= {"retrained": reference(vals),
                                  "run": reference(run_values(results / "retrain" / variant / task))}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True, help="a workflow run's results folder")
    parser.add_argument("--tasks", nargs="+", required=True)
    add_run_options(parser, "config values of every retrain (dotted keys, YAML values), e.g. retrain.init=scratch")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    settings = parse_settings(args.set)
    jobs = [(args.results, args.config, task, settings) for task in args.tasks]
    reports = map_tasks(run_task, jobs, args.jobs)
    report = {
        "benchmark": "retrain_arms", "settings": settings, "tasks": {r["task"]: r for r in reports},
        "wall_s": time.perf_counter() - start, "jobs": args.jobs,
        "machine": one_thread_machine(),
    }
    io.write_json(Path(args.out), report)
    for r in reports:
        cols = "  ".join(f"{v} {k['retrained']['mean']:.1f} (run {k['run']['mean'] if k['run']['n'] else float('nan'):.1f})"
                         for v, k in r["kinds"].items())
        print(f"{r['task']:6s} {r['metric']}: {cols}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
