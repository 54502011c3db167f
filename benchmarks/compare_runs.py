"""Two full runs of the default workflow side by side: what a change of the default setting did.

Reads the tables two runs committed (``search.csv``, ``searched_vs_random.csv``, ``cost_jobs.csv``; see
``adabert.report.run_comparison``) and writes the comparison: how far the main searches' op distribution
committed and what the derived cells kept, the searched students per task against the seed spread and
the random architectures, and the job time per stage.

Usage (the committed report; the 2535401 run's tables are kept in docs/results/run_2535401):
    python benchmarks/compare_runs.py --before docs/results/run_2535401 --after docs/results \
        --out docs/results/search_setting_change.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert.report.run_comparison import compare_runs, read_run  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="folder of the earlier run's tables")
    parser.add_argument("--after", type=Path, required=True, help="folder of the later run's tables")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    report = {"benchmark": "compare_runs", "before": str(args.before), "after": str(args.after),
              **compare_runs(read_run(args.before), read_run(args.after))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("search", "cost")}, indent=1))
    return report


if __name__ == "__main__":
    main()
