"""Search-step throughput: single-path (GDAS-style) vs mixed (authors' code) execution of the supernet.

One step = Gumbel samples of ops and depth, forward, the full search loss (CE + probe/final KD + L_E),
backward, gradient clipping, SGD step on the weights and Adam step on the alphas: the search loop's own
step function (adabert.nas.search.search_step) on one batch. Inputs are random token batches without
padding (every sentence uses the full sequence length), the real BERT vocabulary size (30522) and a
MiniLM-sized teacher embedding (384), so the embedding-table work is realistic.

Usage:
    python benchmarks/search_throughput.py --out results/benchmarks/search_throughput.json
    python benchmarks/search_throughput.py --seq-len 128 --mixed-steps 1 --out ...

Single-path steps sample the depth too, so their cost varies with the sampled K; the mean sampled
depth is reported next to the timing (alphas at their 1e-3 * randn init: roughly uniform depth).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils import benchmark

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert.measure.machine import cpu_model  # noqa: E402
from adabert.nas.costs import cost_vector, op_costs  # noqa: E402
from adabert.nas.ops import OP_NAMES  # noqa: E402
from adabert.nas.schedule import make_schedule  # noqa: E402
from adabert.nas.search import Optimisers, search_step  # noqa: E402
from adabert.nas.supernet import SuperNet  # noqa: E402

from adabert.config import resolve  # noqa: E402

DEFAULTS = resolve({})  # the shipped search and loss settings: the benchmark times the real step


def make_step(args, execution: str, device: torch.device):
    torch.manual_seed(args.seed)
    net = SuperNet(
        args.vocab_size, max(512, args.seq_len), args.teacher_dim, 2, width=args.width, k_max=args.k_max,
        ops=OP_NAMES,
    ).to(device)
    costs = cost_vector(op_costs(OP_NAMES, args.width, args.seq_len), OP_NAMES).to(device)
    steps = max(args.single_steps, args.mixed_steps)
    schedule = make_schedule({**DEFAULTS["search"], "steps": steps, "epochs": 1}, args.batch_size)
    opt = Optimisers.create(net, DEFAULTS["search"], schedule)
    b, length = args.batch_size, args.seq_len
    mask = torch.ones(b, length, dtype=torch.long, device=device)
    batch = {
        "a_input_ids": torch.randint(1000, args.vocab_size, (b, length), device=device), "a_attention_mask": mask,
        "b_input_ids": torch.randint(1000, args.vocab_size, (b, length), device=device), "b_attention_mask": mask,
        "labels": torch.randint(0, 2, (b,), device=device), "teacher_logits": torch.randn(b, 2, device=device),
        "teacher_probe_logits": torch.randn(b, args.teacher_layers + 1, 2, device=device),
    }
    depths: list[int] = []

    def step() -> None:
        values = search_step(net, batch, 1.0, costs, DEFAULTS["loss"], opt, execution)
        depths.append(int(values["sampled_depth"]))
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step, depths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--seq-len", type=int, default=64, choices=[64, 128])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--k-max", type=int, default=8)
    parser.add_argument("--vocab-size", type=int, default=30522)
    parser.add_argument("--teacher-dim", type=int, default=384)
    parser.add_argument("--teacher-layers", type=int, default=6)
    parser.add_argument("--single-steps", type=int, default=8, help="timed single-path steps")
    parser.add_argument("--mixed-steps", type=int, default=2, help="timed mixed steps (slow on CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    results = []
    for execution, steps in (("single_path", args.single_steps), ("mixed", args.mixed_steps)):
        step, depths = make_step(args, execution, device)
        # Timer.timeit runs max(number // 100, 2) warm-up steps (allocations, optimiser state) first.
        timer = benchmark.Timer(stmt="step()", globals={"step": step}, label="search step", sub_label=execution,
                                num_threads=torch.get_num_threads())
        start = time.perf_counter()
        measurement = timer.timeit(steps)
        wall = time.perf_counter() - start
        per_step = measurement.mean
        # Single-path runs first, so the process peak after it is its own; after mixed it is mixed's
        # (mixed needs more memory than single-path, so the max is mixed's peak).
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        depths = depths[-steps:]  # the timed steps only
        results.append({
            "execution": execution,
            "steps": steps,
            "step_s": per_step,
            "examples_per_s": args.batch_size / per_step,
            "mean_depth": statistics.mean(depths) if depths else None,
            "wall_s": wall,
            "peak_rss_mb": peak_rss_mb,
            "peak_cuda_mb": peak_cuda_mb,
        })
        print(f"{execution:12s} {per_step:8.3f} s/step  {args.batch_size / per_step:8.1f} examples/s  "
              f"(mean sampled K {results[-1]['mean_depth']:.2f}, {steps} steps, peak RSS {peak_rss_mb:.0f} MB)", flush=True)

    by = {r["execution"]: r for r in results}
    speedup = by["mixed"]["step_s"] / by["single_path"]["step_s"]
    print(f"single_path speed-up over mixed: {speedup:.1f}x")
    report = {
        "benchmark": "search_throughput",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "results": results,
        "speedup_single_over_mixed": speedup,
        "machine": {
            "cpu": cpu_model(),
            "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "note": "mixed computes all k_max cells and every op (authors' code); single_path only the sampled "
                "op per edge and cells up to the sampled depth. Shared machines make timings noisy.",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
