"""What machine a measurement ran on, how many threads it used, and what its GEMM peak is.

Nothing here records personal data: no hostname, user name, IP address or path under ``$HOME``.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

from adabert.errors import AdabertError

# What the last set_threads() call asked for and got; measure() copies it into every JSON.
_THREADS: dict[str, Any] = {}


def cpu_model() -> str:
    """The CPU model string of ``/proc/cpuinfo`` (``model name``), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in {"model name", "Model", "cpu model", "Hardware"} and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _affinity_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _version(module_name: str) -> str | None:
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return str(getattr(module, "__version__", "unknown"))


def versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries a measurement depends on."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "onnx": _version("onnx"),
        "transformers": _version("transformers"),
        "numpy": _version("numpy"),
    }


def cuda_info() -> dict[str, Any] | None:
    """Name, memory and CUDA/cuDNN versions of GPU 0, or None without CUDA."""
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {
        "device_name": torch.cuda.get_device_name(0),
        "device_count": torch.cuda.device_count(),
        "total_memory_bytes": int(props.total_memory),
        "capability": f"{props.major}.{props.minor}",
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version(),
    }


def machine_info() -> dict[str, Any]:
    """Hardware, thread settings and software versions, hostname-free."""
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "cores_available": _affinity_cores(),
        "architecture": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "threads_setting": dict(_THREADS) or None,
        "cuda": cuda_info(),
        "python_implementation": sys.implementation.name,
        "versions": versions(),
    }


def set_threads(n: int) -> dict[str, Any]:
    """Use ``n`` threads for torch (intra-op; inter-op as well where still possible) and OpenMP/MKL.

    Call it BEFORE any heavy work: OpenMP reads ``OMP_NUM_THREADS`` once, and torch refuses to change
    the inter-op pool after it has started (then the current value is kept and recorded). ONNX Runtime
    sessions get ``n`` through ``SessionOptions.intra_op_num_threads`` (see :mod:`adabert.measure.timing`).
    Returns (and remembers for :func:`machine_info`) what was asked and what is in effect.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise AdabertError(f"threads: expected a positive integer, got {n!r}")
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["MKL_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    interop_note = None
    if torch.get_num_interop_threads() != n:
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError as exc:  # already set, or parallel work already started
            interop_note = f"inter-op threads left at {torch.get_num_interop_threads()} ({str(exc).splitlines()[0]})"
    _THREADS.clear()
    _THREADS.update(
        {
            "requested": n,
            "torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads(),
            "ort_intra_op_num_threads": n,
            "note": interop_note,
        }
    )
    return dict(_THREADS)


def configured_threads() -> int | None:
    """Threads of the last :func:`set_threads` call, or None."""
    return _THREADS.get("requested")


def _torch_gemm_seconds(dev: torch.device, n: int, seconds: float, repeats: int) -> list[float]:
    """Median seconds of one ``n x n`` fp32 matmul on ``dev``, once per repeat (``blocked_autorange``)."""
    from torch.utils import benchmark

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dev)
    b = torch.randn(n, n, generator=gen).to(dev)
    if dev.type == "cuda":
        # fp32 peak, not TF32: keep the comparison against the same arithmetic the fp32 models use.
        allow_tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
    try:
        torch.matmul(a, b)  # warm-up
        timer = benchmark.Timer(stmt="torch.matmul(a, b)", globals={"torch": torch, "a": a, "b": b},
                                num_threads=torch.get_num_threads())  # the Timer defaults to one thread
        return [timer.blocked_autorange(min_run_time=float(seconds)).median for _ in range(repeats)]
    finally:
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = allow_tf32


def _ort_gemm_seconds(n: int, seconds: float, repeats: int) -> list[float] | None:
    """The same matmul as a one-node ONNX graph on ONNX Runtime's CPU provider (its own GEMM kernels),
    median seconds per repeat; None without onnxruntime."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None

    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "B")
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "gemm",
                              [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(configured_threads() or torch.get_num_threads())
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"A": rng.standard_normal((n, n), dtype=np.float32)}
    session.run(None, feed)  # warm-up
    medians = []
    for _ in range(repeats):
        times: list[float] = []
        while len(times) < 3 or sum(times) < seconds:
            start = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - start)
        medians.append(float(np.median(times)))
    return medians


def matmul_peak_gflops(device: str = "cpu", seconds: float = 1.0, n: int = 2048, repeats: int = 3) -> dict[str, Any]:
    """Measured fp32 GEMM throughput (an ``n x n`` by ``n x n`` matmul, 2 n^3 FLOPs) in GFLOP/s.

    The practical peak the achieved GFLOP/s of a model is compared with. Each engine's GEMM is timed
    ``repeats`` times for ``seconds`` (torch: ``blocked_autorange``, synchronised on CUDA; on the CPU also
    ONNX Runtime's own kernels, which the ONNX engines use); an engine's throughput is the median over
    the repeats, and the peak is the faster engine's.
    """
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AdabertError("matmul peak on cuda requested, but CUDA is not available")
    if repeats < 1 or seconds <= 0:
        raise AdabertError(f"matmul peak: need repeats >= 1 and seconds > 0, got {repeats}, {seconds}")
    flops = 2.0 * n**3
    by_engine: dict[str, Any] = {}
    timings = {"torch": _torch_gemm_seconds(dev, n, seconds, repeats)}
    if dev.type == "cpu":
        ort_times = _ort_gemm_seconds(n, seconds, repeats)
        if ort_times is not None:
            timings["onnxruntime"] = ort_times
    for engine, times in timings.items():
        median = float(np.median(times))
        by_engine[engine] = {"gflops": flops / median / 1e9, "median_s": median,
                             "repeat_gflops": [flops / t / 1e9 for t in times]}
    best = max(by_engine, key=lambda e: by_engine[e]["gflops"])
    return {
        "gflops": by_engine[best]["gflops"],
        "engine": best,
        "by_engine": by_engine,
        "n": n,
        "dtype": "float32",
        "device": dev.type,
        "median_s": by_engine[best]["median_s"],
        "repeats": repeats,
        "seconds_per_repeat": float(seconds),
        "threads": torch.get_num_threads(),
    }
