"""Task adaptivity, tested: is the gap between across-task and within-task genotype distance larger than
shuffling the searches' task labels gives?

Reads a run's pair table (``paper/tables/task_adaptivity.csv``, copied to
``docs/results/task_adaptivity.csv``: one row per pair of main searches) and writes the observed gap in
mean edge distance (across tasks minus within a task) and its one-sided permutation p-value
(``adabert.report.adaptivity.label_permutation_p``).

Usage (the committed report):
    python benchmarks/task_adaptivity_permutation.py --pairs docs/results/task_adaptivity.csv \
        --out docs/results/task_adaptivity_permutation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert.report.adaptivity import label_permutation_p  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, required=True, help="the task-adaptivity pair table (csv)")
    parser.add_argument("--permutations", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    report = {"benchmark": "task_adaptivity_permutation", "pairs": str(args.pairs), "seed": args.seed,
              **label_permutation_p(pd.read_csv(args.pairs), args.permutations, args.seed)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
