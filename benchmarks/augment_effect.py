"""Does TinyBERT-style data augmentation help the retrained student of a task? (with vs without, seeds)

Uses the pipeline's own stages on a task's folders of a workflow run (``<results>/data|teacher|probes/<task>``)
and the default config (``config/config.yaml``):

1. the augment stage (``adabert.augment.run_augment``: word substitution, every new row labelled by the
   teacher's labelling pass), unless ``--augment`` names an existing augment folder;
2. one search (seed 0) and derive on the original distillation set, so both arms retrain the same
   architecture from the same inherited weights;
3. the retrain stage with ``retrain.seed`` offsets ``--seeds`` on the original rows and on the original
   plus augmented rows.

Reported: the dev metric of every retrain, mean and std per arm, the difference and whether it exceeds
the seed spread (the larger std), rows and wall time of each arm.

Usage:
    python benchmarks/augment_effect.py --results results --task MRPC --seeds 0 1 2 \
        --out docs/results/augment_effect.json
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(REPO / "benchmarks"))

from common import arm_summary  # noqa: E402

from adabert import config  # noqa: E402
from adabert.augment import run_augment  # noqa: E402
from adabert.measure.machine import cpu_model  # noqa: E402
from adabert.nas.derive import run_derive  # noqa: E402
from adabert.nas.search import run_search  # noqa: E402
from adabert.retrain import run_retrain  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="retrain.seed offsets")
    parser.add_argument("--augment", help="an existing augment folder (<results>/augment/<task>)")
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    base = config.resolve(yaml.safe_load(Path(args.config).read_text()))
    results, task = Path(args.results), args.task
    folders = {"data": results / "data" / task, "teacher": results / "teacher" / task,
               "probes": results / "probes" / task}
    timings, arms = {}, {"original": [], "augmented": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        aug = Path(args.augment) if args.augment else tmp / "augment"
        aug_summary = {}
        if not args.augment:
            aug_summary = run_augment(config.stage_config(base, "augment", task), task, folders["data"],
                                      folders["teacher"], folders["probes"], aug)
        timings["augment_s"] = time.perf_counter() - start
        variant = base["main_variant"]
        run_search(config.stage_config(base, "search", task, variant), task, 0, variant, folders["data"],
                   folders["teacher"], folders["probes"], tmp / "search")
        run_derive(config.stage_config(base, "derive", task, variant), tmp / "search", tmp / "derive")
        inputs = {"original": folders, "augmented": {k: aug / k for k in ("data", "teacher", "probes")}}
        rows = {}
        for arm, f in inputs.items():
            start = time.perf_counter()
            for seed in args.seeds:
                cfg = config.retrain_config(base, task, variant)
                cfg["retrain"] = {**cfg["retrain"], "seed": int(seed)}
                m = run_retrain(cfg, task, variant, 0, f["data"], f["teacher"], f["probes"], tmp / "derive",
                                tmp / f"retrain-{arm}-{seed}")
                arms[arm].append(float(m["main_value"]))
                rows[arm] = m.get("n_train")
                metric = m["main_metric"]
            timings[f"{arm}_retrains_s"] = time.perf_counter() - start
    original, augmented = arm_summary(arms["original"]), arm_summary(arms["augmented"])
    spread = max(s for s in (original["std"], augmented["std"]) if s is not None) if len(args.seeds) > 1 else None
    delta = augmented["mean"] - original["mean"]
    report = {
        "benchmark": "augment_effect", "task": task, "metric": metric, "seeds": args.seeds,
        "original": original, "augmented": augmented, "delta": delta,
        "exceeds_seed_spread": None if spread is None else abs(delta) > spread, "n_train": rows,
        "augment_summary": {k: aug_summary.get(k) for k in ("n_original", "n_sources", "n_augmented", "n_total",
                                                          "mean_replaced_words",
                                                          "teacher_label_agrees_with_source_label", "time_s")},
        "timings_s": timings, "augment_config": base["augment"],
        "machine": {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "platform": platform.platform()},
    }
    print(json.dumps({k: report[k] for k in ("task", "metric", "original", "augmented", "delta",
                                              "exceeds_seed_spread", "n_train")}, indent=1))
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    merged = {**(previous if previous.get("benchmark") == "augment_effect" else {}), "benchmark": "augment_effect"}
    merged.setdefault("tasks", {})[task] = report
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
