"""Does the supernet know which architecture trains best? Inherited-weight loss vs retrained dev metric.

For each task of a finished workflow run (``<results>/...``), every architecture the run cut out of the
first main search's supernet (``search/main/<task>/seed<s>``) and retrained is scored twice:

* **proxy**: the architecture evaluated with the weights it inherits from that supernet, on the rows the
  search selects on (``search.max_eval_examples`` rows of the main dev split, the search stage's
  :func:`adabert.nas.search.search_inputs`): cross-entropy (MSE for STS-B) and the main metric;
* **retrained**: the dev metric of its retrained student (``retrain/<variant>/<task>/seed<n>/metrics.json``).

The architectures: the searched student of that seed (``main``), the random architectures
(``random``, all cut from the first search seed's supernet) and the identity cell of that seed
(``fixed-skip_connect``). Reported per task: the Spearman correlation between the proxy loss and the
retrained metric (negative = a lower inherited loss goes with a better student), and whether the
architecture with the lowest proxy loss is at or above the median retrained metric; pooled over tasks,
the mean correlation. A selection rule that samples several architectures from the searched distribution
and keeps the one the supernet scores best (ENAS-style) can only beat the argmax if this correlation is
clearly negative.

Usage:
    python benchmarks/supernet_proxy.py --results results --out docs/results/supernet_proxy.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import one_thread_machine  # noqa: E402

from adabert import artifacts, io  # noqa: E402
from adabert import metrics as metrics_mod  # noqa: E402
from adabert.nas.derive import load_supernet  # noqa: E402
from adabert.nas.genotype import Genotype  # noqa: E402
from adabert.nas.search import eval_loss, predict, search_inputs  # noqa: E402


def candidates(results: Path, task: str, seed: int) -> list[dict]:
    """The retrained architectures cut from ``search/main/<task>/seed<seed>``: variant, sample, folders."""
    supernet = results / "search" / "main" / task / f"seed{seed}" / "supernet.safetensors"
    found = [{"variant": "main", "sample": seed, "genotype": results / "derive" / "main" / task / f"seed{seed}",
              "retrain": results / "retrain" / "main" / task / f"seed{seed}"}]
    for variant in ("random", "fixed-skip_connect"):
        for folder in sorted((results / "architectures" / variant / task).glob("seed*")):
            # the workflow records the supernet relative to the run's folder (the parent of results/)
            source = results.parent / io.read_json(folder / "derive.json").get("supernet", "")
            if source.resolve() != supernet.resolve():
                continue
            found.append({"variant": variant, "sample": int(folder.name.removeprefix("seed")), "genotype": folder,
                          "retrain": results / "retrain" / variant / task / folder.name})
    return [c for c in found if (c["retrain"] / "metrics.json").is_file()]


def score_task(results: Path, task: str, seed: int) -> dict:
    search_dir = results / "search" / "main" / task / f"seed{seed}"
    cfg = io.read_json(search_dir / "config.json")
    data = artifacts.read_data(results / "data" / task)
    _, dev = search_inputs(cfg, task, data, results / "teacher" / task, results / "probes" / task)
    net = load_supernet(search_dir / "supernet.safetensors")
    ops = list(cfg["search"]["ops"])
    rows = []
    for cand in candidates(results, task, seed):
        genotype = Genotype.from_dict(io.read_json(cand["genotype"] / "genotype.json"))
        logits = predict(net, dev, genotype.op_weights(ops), genotype.depth_weights(), 128)
        proxy_metrics = metrics_mod.compute(data.spec, logits, dev["labels"])
        retrained = io.read_json(cand["retrain"] / "metrics.json")
        rows.append({"variant": cand["variant"], "sample": cand["sample"], "depth": genotype.depth,
                     "proxy_loss": eval_loss(logits, dev["labels"]),
                     "proxy_main": float(proxy_metrics[data.spec.main_metric]),
                     "retrained_main": float(retrained["main_value"])})
    losses = np.array([r["proxy_loss"] for r in rows])
    retrained = np.array([r["retrained_main"] for r in rows])
    rho = float(spearmanr(losses, retrained).statistic) if len(rows) > 2 else float("nan")
    chosen = rows[int(np.argmin(losses))]
    return {"task": task, "search_seed": seed, "main_metric": data.spec.main_metric, "n_eval": int(dev["labels"].shape[0]),
            "n": len(rows), "spearman_proxy_loss_vs_retrained": rho,
            "chosen_by_proxy": {k: chosen[k] for k in ("variant", "sample", "retrained_main")},
            "chosen_at_or_above_median": bool(chosen["retrained_main"] >= float(np.median(retrained))),
            "searched_at_or_above_median": bool(rows[0]["retrained_main"] >= float(np.median(retrained))),
            "retrained_median": float(np.median(retrained)), "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="a finished workflow run's results folder")
    parser.add_argument("--tasks", nargs="+", default=["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE"])
    parser.add_argument("--search-seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    results = Path(args.results)
    tasks = {t: score_task(results, t, args.search_seed) for t in args.tasks}
    rhos = [v["spearman_proxy_loss_vs_retrained"] for v in tasks.values()]
    report = {
        "benchmark": "supernet_proxy",
        "question": "does the inherited-weight loss of an architecture (the supernet's own score) rank the "
                    "retrained students of the same supernet?",
        "results": str(results), "search_seed": args.search_seed,
        "mean_spearman": float(np.nanmean(rhos)),
        "chosen_at_or_above_median": sum(v["chosen_at_or_above_median"] for v in tasks.values()),
        "searched_at_or_above_median": sum(v["searched_at_or_above_median"] for v in tasks.values()),
        "n_tasks": len(tasks), "tasks": tasks, "wall_s": time.perf_counter() - start, "machine": one_thread_machine(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for t, v in tasks.items():
        print(f"{t:6s} n={v['n']} rho={v['spearman_proxy_loss_vs_retrained']:+.2f} chosen={v['chosen_by_proxy']} "
              f"median={v['retrained_median']:.2f}")
    print(f"mean rho {report['mean_spearman']:+.2f}; proxy choice >= median on {report['chosen_at_or_above_median']}"
          f"/{len(tasks)}, searched on {report['searched_at_or_above_median']}/{len(tasks)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
