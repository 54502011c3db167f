"""Latency and throughput of one batch, for PyTorch modules and ONNX Runtime sessions.

Protocol (every engine): each runner first runs ``warmup`` untimed batches (of the timed batch's first
``warmup_rows`` rows where the runner was built with warm-up inputs: a warm-up initialises the engine,
kernels and threads, and a full BERT-base batch of 128 x 128 takes ~28 s here). Then ``repeats`` rounds: in
each round every runner (the engine under test and the references timed in the same job, in an order
that rotates from round to round, so slow drift of the machine hits all of them alike) times batches
one by one until BOTH at least ``min_seconds`` of timed work and at least ``min_batches`` batches have
been collected (and at most ``max_batches``, if given). The same input batch is reused (no data
loading in the timing). Reported per runner (:func:`summarize`): ``median_s`` = the median of the
rounds' median batch times; the spread of the rounds (``repeat_min_s``, ``repeat_max_s``,
``repeat_spread`` = (max - min) / median); over all timed batches the quartiles (``p25_s``, ``p75_s``,
``iqr_s``), p90, mean, min, max and standard deviation, the number of batches and their total; and
throughput = batch size / median. A speedup is a ratio of two runners' medians from the same call.

PyTorch batches are timed with ``time.perf_counter`` around one forward pass (CUDA synchronised
before and after), under ``torch.inference_mode`` with the module in eval mode and the inputs on the
device, at the process's torch thread count (the measure stage sets it from ``measure.threads``);
precision ``fp16`` runs under ``torch.autocast(float16)``. Not ``torch.utils.benchmark.Timer``: its
``timeit`` runs two untimed warm-up calls before every measurement (three forward passes per timed
batch: ~80 s of extra work per BERT-base batch here) and runs at one thread unless told otherwise.
ONNX Runtime batches are timed with ``time.perf_counter`` around ``session.run``; with the CUDA
provider, inputs and outputs are bound to the GPU (``IOBinding``) and synchronised, so host copies are
not timed.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from adabert.errors import AdabertError
from adabert.measure.onnx_export import logits_of, numpy_inputs, ort_session

Step = Callable[[], float]  # runs one batch, returns its seconds
PRECISIONS = ("fp32", "fp16")
TORCH_TIMER = "time.perf_counter around one forward pass (CUDA synchronised)"
ORT_TIMER = "time.perf_counter around InferenceSession.run"


def summarize(times: Sequence[float], batch: int, rounds: Sequence[Sequence[float]] | None = None) -> dict[str, Any]:
    """Statistics of per-batch times (seconds) grouped in ``rounds`` (default: one round of all ``times``)
    and throughput in samples/s (batch / median); see the module docstring."""
    arr = np.asarray(times, dtype=np.float64)
    if arr.size == 0:
        raise AdabertError("no batch was timed")
    rounds = [list(r) for r in (rounds if rounds is not None else [times])]
    if any(not r for r in rounds):
        raise AdabertError("a timing round holds no batch")
    medians = [float(np.median(r)) for r in rounds]
    median = float(np.median(medians))
    p25, p75 = (float(v) for v in np.percentile(arr, [25, 75]))
    return {
        "median_s": median,
        "p25_s": p25,
        "p75_s": p75,
        "iqr_s": p75 - p25,
        "p90_s": float(np.percentile(arr, 90)),
        "mean_s": float(arr.mean()),
        "min_s": float(arr.min()),
        "max_s": float(arr.max()),
        "std_s": float(arr.std()),
        "n_batches": int(arr.size),
        "total_s": float(arr.sum()),
        "repeats": len(rounds),
        "repeat_medians_s": medians,
        "repeat_batches": [len(r) for r in rounds],
        "repeat_min_s": min(medians),
        "repeat_max_s": max(medians),
        "repeat_spread": (max(medians) - min(medians)) / median if median > 0 else 0.0,
        "throughput_samples_per_s": float(batch / median) if median > 0 else float("inf"),
        "batch": int(batch),
    }


def check_rule(min_seconds: float, min_batches: int, max_batches: int | None, warmup: int, repeats: int = 1) -> None:
    if min_seconds < 0 or min_batches < 1 or warmup < 0 or repeats < 1:
        raise AdabertError(f"timing: need min_seconds >= 0, min_batches >= 1, warmup >= 0, repeats >= 1 "
                           f"(got {min_seconds}, {min_batches}, {warmup}, {repeats})")
    if max_batches is not None and max_batches < min_batches:
        raise AdabertError(f"timing: max_batches {max_batches} < min_batches {min_batches}")


def timed_loop(step: Step, min_seconds: float, min_batches: int, max_batches: int | None = None) -> list[float]:
    """Call ``step`` (returns the seconds of one batch) until the stopping rule of this module holds."""
    times: list[float] = []
    total = 0.0
    while len(times) < min_batches or total < min_seconds:
        if max_batches is not None and len(times) >= max_batches:
            break
        t = float(step())
        times.append(t)
        total += t
    return times


def time_interleaved(steps: Mapping[str, Step], batch: int, min_seconds: float = 2.0, min_batches: int = 3,
                     warmup: int = 1, repeats: int = 3, max_batches: int | None = None) -> dict[str, dict[str, Any]]:
    """Time every runner of ``steps`` by the protocol of this module (rounds interleaved): ``{name: summary}``."""
    check_rule(min_seconds, min_batches, max_batches, warmup, repeats)
    if not steps:
        raise AdabertError("timing: nothing to time")
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            getattr(steps[name], "warm", steps[name])()
    rounds: dict[str, list[list[float]]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            rounds[name].append(timed_loop(steps[name], min_seconds, min_batches, max_batches))
    return {name: summarize([t for rnd in rounds[name] for t in rnd], batch, rounds[name])
            | {"warmup_batches": warmup} for name in names}


def _batch_size(inputs: Mapping[str, Any]) -> int:
    first = next(iter(inputs.values()))
    return int(first.shape[0])


def torch_step(module: nn.Module, inputs: Mapping[str, torch.Tensor], device: str | torch.device = "cpu",
               precision: str = "fp32", warmup_inputs: Mapping[str, torch.Tensor] | None = None) -> Step:
    """A runner of ``module(**inputs)`` on ``device`` (module and inputs moved there; eval mode); with
    ``warmup_inputs``, its ``warm`` attribute runs them instead (the warm-up of :func:`time_interleaved`)."""
    if precision not in PRECISIONS:
        raise AdabertError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AdabertError("timing on cuda requested, but CUDA is not available")
    module = module.to(dev).eval()
    inputs = {k: v.to(dev) for k, v in inputs.items()}

    def forward(feed: Mapping[str, torch.Tensor]) -> torch.Tensor:
        autocast = (torch.autocast(dev.type, dtype=torch.float16) if precision == "fp16"
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            return logits_of(module(**feed))

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def timed(feed: Mapping[str, torch.Tensor]) -> Step:
        def step() -> float:
            sync()
            start = time.perf_counter()
            forward(feed)
            sync()
            return time.perf_counter() - start

        return step

    step = timed(inputs)
    if warmup_inputs is not None:
        step.warm = timed({k: v.to(dev) for k, v in warmup_inputs.items()})
    return step


def ort_step(onnx_path, inputs: Mapping[str, torch.Tensor], providers: Sequence[str] = ("CPUExecutionProvider",),
             threads: int | None = None, warmup_inputs: Mapping[str, torch.Tensor] | None = None
             ) -> tuple[Step, list[str]]:
    """A runner of one ``session.run`` (``threads`` intra-op threads, optimisation ALL) and the session's
    providers; with ``warmup_inputs``, its ``warm`` attribute runs them instead (CPU provider; on the GPU the
    warm-up runs the bound batch). Asking for the CUDA provider and getting a session without it is an
    error (ORT would otherwise fall back to the CPU silently)."""
    session = ort_session(onnx_path, providers, threads)
    got = list(session.get_providers())
    if providers and providers[0] != "CPUExecutionProvider" and providers[0] not in got:
        raise AdabertError(f"{onnx_path}: ONNX Runtime did not start {providers[0]} (session providers: {got})")
    feeds = numpy_inputs(session, inputs)
    output_names = [o.name for o in session.get_outputs()]

    if providers and providers[0] == "CUDAExecutionProvider":
        import onnxruntime as ort

        binding = session.io_binding()
        for name, arr in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0))
        for name in output_names:
            binding.bind_output(name, "cuda", 0)

        def run() -> None:
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()  # the GPU work is finished when the timer stops
    else:

        def run() -> None:
            session.run(output_names, feeds)

    def step() -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    if warmup_inputs is not None and not (providers and providers[0] == "CUDAExecutionProvider"):
        warm_feeds = numpy_inputs(session, warmup_inputs)
        step.warm = lambda: session.run(output_names, warm_feeds)
    return step, got


def time_torch(module: nn.Module, inputs: Mapping[str, torch.Tensor], device: str | torch.device = "cpu",
               min_seconds: float = 2.0, min_batches: int = 3, warmup: int = 1,
               max_batches: int | None = None, repeats: int = 1, precision: str = "fp32") -> dict[str, Any]:
    """Time ``module(**inputs)`` per batch on ``device`` (see the module docstring for the protocol).

    The module is moved to ``device`` (and left there) and put in eval mode.
    """
    check_rule(min_seconds, min_batches, max_batches, warmup, repeats)
    step = torch_step(module, inputs, device, precision)
    res = time_interleaved({"torch": step}, _batch_size(inputs), min_seconds, min_batches, warmup, repeats,
                           max_batches)["torch"]
    return res | {"timer": TORCH_TIMER, "precision": precision}


def time_ort(onnx_path, inputs: Mapping[str, torch.Tensor], providers: Sequence[str] = ("CPUExecutionProvider",),
             threads: int | None = None, min_seconds: float = 2.0, min_batches: int = 3, warmup: int = 1,
             max_batches: int | None = None, repeats: int = 1) -> dict[str, Any]:
    """Time one ONNX Runtime ``session.run`` per batch (``threads`` intra-op threads, optimisation ALL)."""
    check_rule(min_seconds, min_batches, max_batches, warmup, repeats)
    step, got = ort_step(onnx_path, inputs, providers, threads)
    res = time_interleaved({"onnxruntime": step}, _batch_size(inputs), min_seconds, min_batches, warmup, repeats,
                           max_batches)["onnxruntime"]
    return res | {"timer": ORT_TIMER, "providers": got}
