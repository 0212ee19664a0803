"""util.cpu.OtherLoad: the share of the machine's CPU other processes used while a pass was timed, measured
with real processes (a spinning child beside an idle parent; the parent's own work alone)."""

from __future__ import annotations

import subprocess
import sys
import time

from reportgen.util.cpu import OtherLoad


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_spinning_process_beside_an_idle_one_is_other_load():
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # the child is running
        with OtherLoad() as others:
            time.sleep(1.0)
    finally:
        child.kill()
        child.wait()
    # one core of the machine's cores kept busy by the child throughout: about 1 / cores
    assert others.share > 0.6 / others.cores, (others.share, others.cores)


def test_a_process_own_work_is_not_other_load():
    from reportgen.util import cpu

    machine, started = cpu._machine_busy_s(), time.perf_counter()
    with OtherLoad() as own:
        spin(1.0)
    machine_share = (cpu._machine_busy_s() - machine) / ((time.perf_counter() - started) * own.cores)
    # the process kept one core busy itself: the machine's share counts it, the other processes' share does not
    # (whatever else the machine did meanwhile is in both)
    assert own.share <= machine_share - 0.7 / own.cores, (own.share, machine_share, own.cores)
