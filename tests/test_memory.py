from reportgen.util.memory import MemorySampler


def test_sampler_sees_a_short_lived_allocation():
    import numpy as np

    with MemorySampler(interval_s=0.005) as sampler:
        block = np.ones(40_000_000)  # 305 MiB, touched
        block.sum()
        del block
    assert 250 * 2**20 < sampler.peak_delta_bytes < 600 * 2**20
