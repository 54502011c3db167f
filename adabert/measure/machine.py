"""What machine a measurement ran on, how many threads it used, and what its GEMM peak is.

Nothing here records personal data: no hostname, user name, IP address or path under ``$HOME``.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

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


def matmul_peak_gflops(device: str = "cpu", seconds: float = 1.0, n: int = 2048) -> dict[str, Any]:
    """Measured fp32 GEMM throughput (an ``n x n`` by ``n x n`` matmul, 2 n^3 FLOPs) in GFLOP/s.

    The practical peak the achieved GFLOP/s of a model is compared with; timed with
    ``torch.utils.benchmark.Timer.blocked_autorange`` (synchronised on CUDA), median over blocks.
    """
    from torch.utils import benchmark

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AdabertError("matmul peak on cuda requested, but CUDA is not available")
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dev)
    b = torch.randn(n, n, generator=gen).to(dev)
    if dev.type == "cuda":
        # fp32 peak, not TF32: keep the comparison against the same arithmetic the models use.
        allow_tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
    try:
        torch.matmul(a, b)  # warm-up
        timer = benchmark.Timer(stmt="torch.matmul(a, b)", globals={"torch": torch, "a": a, "b": b})
        m = timer.blocked_autorange(min_run_time=float(seconds))
    finally:
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    flops = 2.0 * n**3
    return {
        "gflops": flops / m.median / 1e9,
        "n": n,
        "dtype": "float32",
        "device": dev.type,
        "median_s": m.median,
        "runs": len(m.times),
        "threads": torch.get_num_threads(),
    }
