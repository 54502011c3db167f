"""What would the searches have derived without the cap on parameter-free ops?

``search.max_parameter_free`` turns the least confident pools and identities of a derived cell into their
edge's strongest convolution. The cap does not change which edges are kept (they are ranked by their
strongest op before it applies), only their ops, so the cell derived from the same logits without it
shows what the architecture distribution itself committed to. For every main search of a workflow run
(``<results>/search/main/<task>/seed<s>``) this script derives the genotype of the search's selected round
(its ``alpha_history.json``, as the derive stage does) with the search's own cap and without one, and
counts the parameter-free kept edges of each and whether the uncapped cell keeps any convolution.

Usage (the committed report):
    python benchmarks/uncapped_cells.py --results results --out docs/results/search_committed/uncapped_cells.json
(run in the folder of the committed-search run, docs/results/search_committed/README.md; that overlay,
no decay and a cap of 2, is the default since 2026-12-06).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert import io  # noqa: E402
from adabert.artifacts import HISTORY_FILE  # noqa: E402
from adabert.errors import AdabertError  # noqa: E402
from adabert.nas.genotype import derive_genotype, parameter_free_count  # noqa: E402


def cells(search_dir: Path) -> dict:
    """The cell of the search's selected round derived with the search's cap and without one."""
    history = io.read_json(search_dir / HISTORY_FILE)
    rounds = {entry["epoch"]: entry for entry in history["epochs"]}
    if history.get("best_epoch") not in rounds:
        raise AdabertError(f"{search_dir / HISTORY_FILE}: best_epoch {history.get('best_epoch')} has no entry")
    entry = rounds[history["best_epoch"]]
    cap = io.read_json(search_dir / "config.json")["search"].get("max_parameter_free")
    alpha_ops, alpha_depth = torch.tensor(entry["alpha_ops"]), torch.tensor(entry["alpha_depth"])
    capped, uncapped = (derive_genotype(alpha_ops, alpha_depth, history["ops"], k=2, max_parameter_free=c)
                        for c in (cap, None))
    edges = sum(len(node) for node in uncapped.nodes)
    return {"cap": cap, "edges": edges, "parameter_free": parameter_free_count(capped.nodes),
            "parameter_free_uncapped": parameter_free_count(uncapped.nodes),
            "no_conv_uncapped": parameter_free_count(uncapped.nodes) == edges,
            "cell_uncapped": [[list(edge) for edge in node] for node in uncapped.nodes]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="a workflow run's results folder")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    searches = sorted(Path(args.results, "search", "main").glob("*/seed*"))
    if not searches:
        raise SystemExit(f"error: no main search under {Path(args.results, 'search', 'main')}")
    rows = [{"task": d.parent.name, "seed": int(d.name.removeprefix("seed")), **cells(d)} for d in searches]
    report = {"benchmark": "uncapped_cells", "results": str(args.results), "searches": rows,
              "total": {k: sum(int(r[k]) for r in rows)
                        for k in ("edges", "parameter_free", "parameter_free_uncapped", "no_conv_uncapped")},
              "n_searches": len(rows)}
    io.write_json(args.out, report)
    print(json.dumps(report["total"]))
    return report


if __name__ == "__main__":
    main()
