import time

from reportgen.util.memory import MemorySampler


def test_sampler_sees_a_short_lived_allocation():
    """The background thread samples while the block lives: the block is held until a sample has seen it
    (a deadline of 30 s, far above the 5 ms interval) and freed before the sampler stops, so only a sample
    taken in the background can report it (the final sample on exit comes after the block is gone)."""
    import numpy as np

    with MemorySampler(interval_s=0.005) as sampler:
        block = np.ones(40_000_000)  # 305 MiB, touched
        block.sum()
        deadline = time.monotonic() + 30
        while sampler.peak_bytes - sampler.baseline_bytes < 250 * 2**20 and time.monotonic() < deadline:
            time.sleep(0.001)
        del block
    assert 250 * 2**20 < sampler.peak_delta_bytes < 600 * 2**20
