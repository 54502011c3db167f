"""Chance references: the dev metrics of always answering one class, from a workflow run's data folders.

For each classification task of ``<results>/data/<task>``: the training set's majority class (what a
model that learnt nothing but the label prior answers) and the evaluation split's own majority class,
each scored with the task's metrics (``adabert.metrics.compute``) on the main evaluation split. A
regression task has no majority class (a constant prediction has no correlation) and is listed as such.

Usage (the committed report):
    python benchmarks/majority_class.py --results results --out docs/results/majority_class.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert import artifacts, config, metrics  # noqa: E402


def constant_scores(spec, labels: torch.Tensor, label: int) -> dict[str, float]:
    """The metrics of answering ``label`` for every row of ``labels``."""
    logits = torch.zeros(labels.shape[0], spec.num_labels)
    logits[:, label] = 1.0
    return metrics.compute(spec, logits, labels)


def task_report(data_dir: Path, cfg: dict) -> dict:
    data = artifacts.read_data(data_dir)
    task = data_dir.name
    spec = data.check_task(cfg, task)
    if data.regression:
        return {"task": task, "regression": True, "note": "no majority class: a constant has no correlation"}
    train = data.split("train", [])["labels"]
    gold = data.split(data.main_split, [])["labels"]
    train_major = int(torch.bincount(train, minlength=spec.num_labels).argmax())
    eval_major = int(torch.bincount(gold, minlength=spec.num_labels).argmax())
    return {"task": task, "split": data.main_split, "n": int(gold.shape[0]), "main_metric": spec.main_metric,
            "train_majority_label": train_major, "train_majority": constant_scores(spec, gold, train_major),
            "eval_majority_label": eval_major, "eval_majority": constant_scores(spec, gold, eval_major)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True, help="a workflow run's results folder (its data/<task>)")
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"), help="for custom tasks' specs")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    cfg = config.load([args.config])
    folders = sorted(p.parent for p in (Path(args.results) / "data").glob("*/meta.json"))
    if not folders:
        parser.error(f"no data folders (data/<task>/meta.json) under {args.results}")
    reports = [task_report(folder, cfg) for folder in folders]
    for r in reports:
        if r.get("regression"):
            print(f"{r['task']:6s} regression: {r['note']}")
        else:
            print(f"{r['task']:6s} {r['split']} {r['main_metric']}: train majority {r['train_majority'][r['main_metric']]:.2f}, "
                  f"{r['split']} majority {r['eval_majority'][r['main_metric']]:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "majority_class", "tasks": {r["task"]: r for r in reports}}, indent=1)
                   + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
