"""Latency and throughput of one batch, for PyTorch modules and ONNX Runtime sessions.

Protocol (both engines): ``warmup`` untimed batches, then batches are timed one by one until BOTH at
least ``min_seconds`` of timed work and at least ``min_batches`` batches have been collected (and at
most ``max_batches``, if given). The same input batch is reused (no data loading in the timing).
Reported: median, p90, mean, min and standard deviation of the per-batch time (seconds), the number
of batches and their total, and throughput = batch size / median.

PyTorch batches are timed with ``torch.utils.benchmark.Timer`` (one call per measurement; it
synchronises CUDA), under ``torch.inference_mode`` with the module in eval mode and the inputs on the
device. ONNX Runtime batches are timed with ``time.perf_counter`` around ``session.run``; with the
CUDA provider, inputs and outputs are bound to the GPU (``IOBinding``) so host copies are not timed.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from adabert.errors import AdabertError
from adabert.measure.onnx_export import logits_of, numpy_inputs, ort_session


def summarize(times: Sequence[float], batch: int) -> dict[str, Any]:
    """Statistics of per-batch times (seconds) and throughput in samples/s (batch / median)."""
    arr = np.asarray(times, dtype=np.float64)
    if arr.size == 0:
        raise AdabertError("no batch was timed")
    median = float(np.median(arr))
    return {
        "median_s": median,
        "p90_s": float(np.percentile(arr, 90)),
        "mean_s": float(arr.mean()),
        "min_s": float(arr.min()),
        "std_s": float(arr.std()),
        "n_batches": int(arr.size),
        "total_s": float(arr.sum()),
        "throughput_samples_per_s": float(batch / median) if median > 0 else float("inf"),
        "batch": int(batch),
    }


def _check_rule(min_seconds: float, min_batches: int, max_batches: int | None, warmup: int) -> None:
    if min_seconds < 0 or min_batches < 1 or warmup < 0:
        raise AdabertError(f"timing: need min_seconds >= 0, min_batches >= 1, warmup >= 0 "
                           f"(got {min_seconds}, {min_batches}, {warmup})")
    if max_batches is not None and max_batches < min_batches:
        raise AdabertError(f"timing: max_batches {max_batches} < min_batches {min_batches}")


def timed_loop(step: Callable[[], float], min_seconds: float, min_batches: int, max_batches: int | None = None) -> list[float]:
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


def _batch_size(inputs: Mapping[str, Any]) -> int:
    first = next(iter(inputs.values()))
    return int(first.shape[0])


def time_torch(module: nn.Module, inputs: Mapping[str, torch.Tensor], device: str | torch.device = "cpu",
               min_seconds: float = 10.0, min_batches: int = 5, warmup: int = 2,
               max_batches: int | None = None) -> dict[str, Any]:
    """Time ``module(**inputs)`` per batch on ``device`` (see the module docstring for the protocol).

    The module is moved to ``device`` (and left there) and put in eval mode.
    """
    from torch.utils import benchmark

    _check_rule(min_seconds, min_batches, max_batches, warmup)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AdabertError("timing on cuda requested, but CUDA is not available")
    module = module.to(dev).eval()
    inputs = {k: v.to(dev) for k, v in inputs.items()}

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            return logits_of(module(**inputs))

    for _ in range(warmup):
        forward()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    timer = benchmark.Timer(stmt="forward()", globals={"forward": forward})
    times = timed_loop(lambda: timer.timeit(1).times[0], min_seconds, min_batches, max_batches)
    return summarize(times, _batch_size(inputs)) | {"warmup_batches": warmup, "timer": "torch.utils.benchmark.Timer"}


def time_ort(onnx_path, inputs: Mapping[str, torch.Tensor], providers: Sequence[str] = ("CPUExecutionProvider",),
             threads: int | None = None, min_seconds: float = 10.0, min_batches: int = 5, warmup: int = 2,
             max_batches: int | None = None) -> dict[str, Any]:
    """Time one ONNX Runtime ``session.run`` per batch (``threads`` intra-op threads, optimisation ALL)."""
    _check_rule(min_seconds, min_batches, max_batches, warmup)
    session = ort_session(onnx_path, providers, threads)
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

    for _ in range(warmup):
        run()

    def step() -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    times = timed_loop(step, min_seconds, min_batches, max_batches)
    return summarize(times, _batch_size(feeds)) | {
        "warmup_batches": warmup,
        "timer": "time.perf_counter around InferenceSession.run",
        "providers": list(session.get_providers()),
    }
