"""What the study ran on: CPU, memory, GPU, and the host's measured memory bandwidth.

The bandwidth figure is what ``aggregate.efficiency_frame`` divides by to say how close CPU decoding
came to the memory-bound limit. Measure it at run time (the runner records it in
``model_runs.details['memory_bandwidth_bytes_per_s']``), never at render time: a measurement varies
from call to call, and a re-rendered report must be byte-identical.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np


def measure_memory_bandwidth(size_mb: int = 256, repeats: int = 5) -> float:
    """Host memory bandwidth in bytes/s: copy a ``size_mb`` MiB array, best of ``repeats``.

    A copy reads the source and writes the destination, so it counts 2 × the array's bytes (the STREAM
    "copy" convention; write-allocate traffic, which real hardware also does, is not counted, so this is
    what a program like a decode loop can actually get). The arrays are far larger than any CPU cache.
    Cached per process (per size and repeats): the first call takes a few seconds, later calls are free.
    """
    if size_mb <= 0 or repeats <= 0:
        raise ValueError("size_mb and repeats must be positive")
    return _measure(int(size_mb), int(repeats))


@lru_cache(maxsize=None)
def _measure(size_mb: int, repeats: int) -> float:
    source = np.ones(size_mb * 2**20 // 8, dtype=np.float64)  # ones, not empty: touches every page
    target = np.zeros_like(source)
    np.copyto(target, source)  # warm-up: faults in the pages of both arrays
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return 2.0 * source.nbytes / best


def _cpuinfo() -> dict[str, str]:
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return {}
    info: dict[str, str] = {}
    physical: set[tuple[str, str]] = set()
    package = core = ""
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Model", "Hardware", "cpu model") and "model" not in info and value:
            info["model"] = value
        elif key == "physical id":
            package = value
        elif key == "core id":
            core = value
        elif not key and (package or core):
            physical.add((package, core))
            package = core = ""
    if package or core:
        physical.add((package, core))
    if physical:
        info["physical_cores"] = str(len(physical))
    return info


def _memory_total_bytes() -> int | None:
    path = Path("/proc/meminfo")
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024  # the file says kB, and means KiB
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _torch_summary() -> dict[str, Any]:
    if importlib.util.find_spec("torch") is None:
        return {"torch": None, "cuda_available": False, "gpus": []}
    import torch  # heavy: only here, and only when it is installed

    gpus = []
    cuda = bool(torch.cuda.is_available())
    if cuda:
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append({"index": index, "name": props.name, "memory_bytes": int(props.total_memory)})
    return {"torch": torch.__version__, "cuda_available": cuda, "cuda_version": torch.version.cuda, "gpus": gpus}


def hardware_summary(measure_bandwidth: bool = False, include_torch: bool = True) -> dict[str, Any]:
    """The machine, as a JSON-able dict: cpu_model, cpu_cores (logical), cpu_physical_cores,
    cpu_cores_usable (this process's affinity), memory_total_bytes, platform, python, numpy,
    torch (version or None), cuda_available, cuda_version, gpus ([{index, name, memory_bytes}]),
    gpu_name (the first GPU's, or None), and memory_bandwidth_bytes_per_s when ``measure_bandwidth``."""
    cpu = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    physical = cpu.get("physical_cores")
    summary: dict[str, Any] = {
        "cpu_model": cpu.get("model") or platform.processor() or platform.machine() or None,
        "cpu_cores": os.cpu_count(),
        "cpu_physical_cores": int(physical) if physical else None,
        "cpu_cores_usable": usable,
        "memory_total_bytes": _memory_total_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    if include_torch:
        summary.update(_torch_summary())
    else:
        summary.update({"torch": None, "cuda_available": False, "gpus": []})
    summary["gpu_name"] = summary["gpus"][0]["name"] if summary["gpus"] else None
    if measure_bandwidth:
        summary["memory_bandwidth_bytes_per_s"] = measure_memory_bandwidth()
    return summary
