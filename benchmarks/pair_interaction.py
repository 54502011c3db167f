"""How much of a sentence-pair task can be read without any interaction between the two sentences?

A diagnostic of the student's design: the AdaBERT student feeds the two sentences to the first cell's
two input nodes, merges them position by position and mean-pools. This script fits a ridge regression
(regression tasks) or logistic regression (classification) on bags of the teacher's input word
embeddings (masked means over each sentence's tokens, the student's inputs before any cell) with three
feature sets: [a, b] (no interaction), a + b (a position-free merge), and [a * b, |a - b|] (the
interaction features of BiLSTM-SOFT-style pair models). It reads a workflow run's prepared data and
teacher folders (``<results>/data/<task>``, ``<results>/teacher/<task>``).

Usage:
    python benchmarks/pair_interaction.py --results results --tasks STS-B MRPC --out docs/results/pair_interaction.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, Ridge

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert import artifacts, metrics  # noqa: E402
from adabert.batching import STUDENT_INPUTS  # noqa: E402
from adabert.models import load_encoder  # noqa: E402

FEATURES = {
    "[a, b] (no interaction)": lambda a, b: np.hstack([a, b]),
    "a + b (position-free merge)": lambda a, b: a + b,
    "[a * b, |a - b|] (interaction)": lambda a, b: np.hstack([a * b, np.abs(a - b)]),
}


def bags(split: dict, table: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for side in ("a", "b"):
        mask = split[f"{side}_attention_mask"].float()
        emb = table[split[f"{side}_input_ids"]] * mask[..., None]
        out.append((emb.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)).numpy())
    return out[0], out[1]


def run_task(results: Path, task: str) -> dict:
    data = artifacts.read_data(results / "data" / task)
    train, dev = data.split("train", STUDENT_INPUTS), data.split(data.main_split, STUDENT_INPUTS)
    table = load_encoder(str(artifacts.teacher_model_dir(results / "teacher" / task))).get_input_embeddings()
    table = table.weight.detach()
    (a, b), (a_dev, b_dev) = bags(train, table), bags(dev, table)
    rows = {}
    for name, make in FEATURES.items():
        if data.regression:
            model = Ridge(alpha=1.0).fit(make(a, b), train["labels"].numpy())
            logits = torch.tensor(model.predict(make(a_dev, b_dev)), dtype=torch.float32)[:, None]
        else:
            model = LogisticRegression(max_iter=2000).fit(make(a, b), train["labels"].numpy())
            logits = torch.tensor(model.predict_log_proba(make(a_dev, b_dev)), dtype=torch.float32)
        rows[name] = metrics.compute(data.spec, logits, dev["labels"])[data.spec.main_metric]
    return {"task": task, "metric": data.spec.main_metric, "split": data.main_split,
            "n_train": int(train["labels"].shape[0]), "n_dev": int(dev["labels"].shape[0]), "dev": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--tasks", nargs="+", default=["STS-B"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    report = {"benchmark": "pair_interaction", "tasks": [run_task(Path(args.results), t) for t in args.tasks]}
    print(json.dumps(report, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
