"""Per-model peak memory on the CPU, measured the same way for every backend.

The process's ru_maxrss only ever grows, so in a run of several models it cannot tell one model's
peak from another's. A background thread samples the resident set size instead, from just before the
model loads until it is closed; the model's peak is the highest sample minus the size before loading.
"""

from __future__ import annotations

import threading


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), so the next baseline is honest:
    memory a previous model freed but the allocator kept would otherwise hide the next model's use."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the baseline is merely less exact
        pass


class MemorySampler:
    """Context manager: ``peak_delta_bytes`` = highest RSS seen while active − RSS at the start."""

    def __init__(self, interval_s: float = 0.02):
        import psutil

        self._process = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.baseline_bytes = 0
        self.peak_bytes = 0

    def _rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_bytes = max(self.peak_bytes, self._rss())

    def __enter__(self) -> "MemorySampler":
        release_free_memory()
        self.baseline_bytes = self.peak_bytes = self._rss()
        self._thread = threading.Thread(target=self._sample, name="reportgen-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss())

    @property
    def peak_delta_bytes(self) -> int:
        return max(0, self.peak_bytes - self.baseline_bytes)
