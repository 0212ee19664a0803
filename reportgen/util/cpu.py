"""How much of the machine's CPU other processes used while this one was timed.

A timed pass is only a fair measurement when the model had the machine to itself: another job on the same
cores slows every pass of the model timed beside it, and two copies of one model timed in turn then look
different (an A/A study on a busy machine shows it). ``OtherLoad`` reads the machine's busy CPU time and this
process's own CPU time (all its threads) before and after a piece of work; what the machine spent beyond this
process, as a share of the cores over the wall time, is the other processes' load.
"""

from __future__ import annotations

import time


def _machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy since boot (not idle, not waiting on I/O)."""
    import psutil

    t = psutil.cpu_times()
    return float(sum(getattr(t, field, 0.0) for field in ("user", "nice", "system", "irq", "softirq", "steal")))


def _own_s() -> float:
    """CPU seconds this process (every thread of it) and its finished children have used."""
    import psutil

    t = psutil.Process().cpu_times()
    return float(t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0))


class OtherLoad:
    """Context manager: ``share`` = CPU time other processes used while active ÷ (wall time × cores), 0 to 1.

    0 on an otherwise idle machine; 0.5 when another process kept one of two cores busy throughout."""

    def __init__(self) -> None:
        import os

        self.cores = os.cpu_count() or 1
        self.share = 0.0

    def __enter__(self) -> OtherLoad:
        self._wall, self._machine, self._own = time.perf_counter(), _machine_busy_s(), _own_s()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall
        others = (_machine_busy_s() - self._machine) - (_own_s() - self._own)
        self.share = max(0.0, min(1.0, others / (wall * self.cores))) if wall > 0 else 0.0
