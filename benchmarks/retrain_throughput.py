"""Retrain-step throughput: uniformly shuffled vs length-grouped batches on a task's real training rows.

Times the retrain stage's own step (:func:`adabert.retrain.retrain_step`, CE only, AdamW) of random
architectures of the search space at a few fixed depths, on the prepared training split of one task
(the prepare stage's output folder: real sentence lengths, so the padding that trimmed batches keep is
the real one). Each arm runs the same number of steps from the same seed; the mean trimmed batch length
is reported next to the examples/s.

Usage:
    python -m adabert prepare --task QQP --config config/config.yaml --out /tmp/data/QQP
    python benchmarks/retrain_throughput.py --data /tmp/data/QQP --threads 1 \
        --out docs/results/retrain_throughput.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert import artifacts  # noqa: E402
from adabert.batching import (STUDENT_INPUTS, length_grouped_batches, row_lengths,  # noqa: E402
                              shuffled_batches, trim)
from adabert.measure.machine import cpu_model  # noqa: E402
from adabert.nas.genotype import sample_genotype  # noqa: E402
from adabert.nas.ops import OP_NAMES  # noqa: E402
from adabert.retrain import retrain_step  # noqa: E402
from adabert.student import Student  # noqa: E402
from adabert.training import param_groups  # noqa: E402


def time_arm(data, train, depth: int, order_name: str, args) -> dict:
    torch.manual_seed(args.seed)
    genotype = sample_genotype(OP_NAMES, args.nodes, args.k_max, args.width, seed=args.seed, fixed_depth=depth)
    student = Student(genotype, args.vocab_size, data.meta["max_seq_length"], data.num_labels)
    step = retrain_step("none", 0.0, 1.0, data.regression, torch.nn.ModuleList())
    opt = torch.optim.AdamW(param_groups([student], 0.01), lr=1e-3)
    n = int(train["labels"].shape[0])
    order = length_grouped_batches(row_lengths(train)) if order_name == "length_grouped" else shuffled_batches
    gen = torch.Generator().manual_seed(args.seed)
    batches = list(itertools.islice(order(n, args.batch_size, gen, None), args.warmup + args.steps))
    student.train()
    lengths, seen, elapsed = [], 0, 0.0
    for i, idx in enumerate(batches):
        batch = {k: v[idx] for k, v in train.items()}
        t0 = time.perf_counter()
        loss = step(student, batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            elapsed += dt
            seen += int(idx.numel())
            lengths.append(int(trim(batch)["a_input_ids"].shape[1]))
    return {"depth": depth, "order": order_name, "steps": args.steps, "seconds": round(elapsed, 3),
            "examples_per_s": round(seen / elapsed, 1), "mean_trimmed_length": round(sum(lengths) / len(lengths), 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a prepare-stage output folder (meta.json, splits)")
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--k-max", type=int, default=8)
    parser.add_argument("--vocab-size", type=int, default=30522)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = artifacts.read_data(args.data)
    train = data.split("train", STUDENT_INPUTS)
    rows = [time_arm(data, train, d, o, args) for d in args.depths for o in ("shuffled", "length_grouped")]
    for depth in args.depths:
        a, b = (r for r in rows if r["depth"] == depth)
        b["speedup_vs_shuffled"] = round(b["examples_per_s"] / a["examples_per_s"], 2)
    result = {
        "benchmark": "retrain_throughput", "task": data.meta.get("task"), "n_train": int(train["labels"].shape[0]),
        "max_seq_length": data.meta["max_seq_length"], "batch_size": args.batch_size, "threads": args.threads,
        "width": args.width, "machine": {"cpu": cpu_model(), "python": platform.python_version(),
                                         "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%d"), "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
