"""What the process runs on: torch (or the install line that brings it), CUDA, memory, versions."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from reportgen.errors import MissingExtraError


def import_torch():
    """torch, once transformers is known to be importable too; else the ``hf`` extra's install line."""
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "hf", "The transformers backend") from None
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise MissingExtraError("transformers", "hf", "The transformers backend") from None
    return torch


def short(exc: BaseException, limit: int = 240) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def cuda_available() -> bool:
    """Whether a CUDA GPU is usable, without importing torch when it is absent. Asked through NVML: the
    driver process asks this when it plans the run, and a CUDA runtime initialised there would be unusable
    in the worker processes it forks for the models (reportgen.run.worker)."""
    if importlib.util.find_spec("torch") is None:
        return False
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch

    return bool(torch.cuda.is_available())


def rss_bytes() -> int | None:
    """The process's current resident set size (Linux), or None."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def version_at_least(version: str, wanted: tuple[int, ...]) -> bool:
    parts = []
    for piece in version.split(".")[: len(wanted)]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts) >= wanted


def config_int(config: Any, names: tuple[str, ...], default: int) -> int:
    """The first of ``names`` the model config sets (sizes are named differently across families), else ``default``."""
    for name in names:
        value = getattr(config, name, None)
        if value:
            return int(value)
    return default
