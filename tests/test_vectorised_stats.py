"""The statistics of a table computed together (issue 30) equal what each computed alone gave: the same random
streams (the draws of numpy's default_rng(seed), chunk by chunk, as scipy draws them) and the same results,
bit for bit below 1,000 items and within 1e-12 from there on (resampled means as counts times values)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from reportgen.stats import bootstrap as sb
from reportgen.stats import inference as I

CHUNK = 8_000_000


def one_by_one_sign_flip(d: np.ndarray, n_resamples: int = 9999, seed: int = 0) -> float:
    """The Monte Carlo sign-flip test as it was computed before, one sample at a time."""
    rng = np.random.default_rng(seed)
    n = d.size
    rows = max(1, CHUNK // n)
    null = np.concatenate(
        [((1 - 2 * rng.integers(0, 2, (min(rows, n_resamples - k), n))) * d).mean(axis=1) for k in range(0, n_resamples, rows)]
    )
    return I._two_sided(null, float(d.mean()), 1)


def one_by_one_paired_ci(d: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    n = d.size
    rows = max(1, CHUNK // n)
    boots = np.concatenate([d[rng.integers(0, n, (min(rows, n_boot - k), n))].mean(axis=1) for k in range(0, n_boot, rows)])
    low, high = np.quantile(boots, [0.025, 0.975])
    return float(low), float(high)


@pytest.mark.parametrize("n", [40, 1500])
def test_sign_flip_tests_together_equal_each_alone(n):
    rng = np.random.default_rng(n)
    samples = [rng.normal(shift, 1.0, n) for shift in (0.0, 0.03, 0.08)] + [rng.integers(0, 5, n).astype(float) - 2]
    together = I.sign_flip_tests(samples)
    for d, test in zip(samples, together):
        assert test.p_value == pytest.approx(one_by_one_sign_flip(d), abs=0)
        assert test == I.sign_flip_test(d)
    again = I.sign_flip_tests(samples[::-1])  # order does not matter, and remembered patterns are the same draws
    assert [t.p_value for t in again] == [t.p_value for t in together[::-1]]


@pytest.mark.parametrize("n", [60, 1500])
def test_bootstrap_intervals_together_equal_scipy(n):
    rng = np.random.default_rng(7)
    columns = [rng.exponential(1.0, n), rng.normal(0, 1, n), rng.integers(0, 30, n).astype(float)]
    together = I.bootstrap_mean_intervals(columns, n_resamples=2000, seed=3)
    for x, ours in zip(columns, together):
        ref = scipy_stats.bootstrap(
            (x,), np.mean, method="BCa", n_resamples=2000, vectorized=True, rng=np.random.default_rng(3)
        ).confidence_interval
        assert (ours.low, ours.high) == pytest.approx((ref.low, ref.high), rel=1e-12)
        alone = I.bootstrap_mean_interval(x, n_resamples=2000, seed=3)
        if n < I.COUNTED_FROM:  # indexed exactly as before: bit for bit
            assert (ours.low, ours.high) == (alone.low, alone.high)
        else:  # one column or three in the matrix product: sums in another order
            assert (ours.low, ours.high) == pytest.approx((alone.low, alone.high), rel=1e-12)


@pytest.mark.parametrize("n", [50, 1200])
def test_paired_bootstraps_together_equal_each_alone(n):
    rng = np.random.default_rng(11)
    a = [rng.normal(0.5, 0.2, n) for _ in range(3)]
    b = [x + rng.normal(0.02, 0.1, n) for x in a]
    a[1][::7] = np.nan  # fewer common items: another stream
    together = sb.paired_bootstraps([(x, y, False) for x, y in zip(a, b)])
    for x, y, result in zip(a, b, together):
        both = ~np.isnan(x) & ~np.isnan(y)
        d = x[both] - y[both]
        low, high = one_by_one_paired_ci(d)
        assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high), rel=1e-12)
        assert result["p_value"] == one_by_one_sign_flip(d)
        assert result["n"] == int(both.sum())


def test_kept_streams_are_the_streams_drawn_afresh(monkeypatch, tmp_path):
    """The draws kept for reuse (``stats.streams``: in memory, and in a folder between processes) are the
    streams each call would draw: resampled means and sign-flip p-values are bit for bit those computed with
    nothing kept; a second process reads the folder instead of drawing; a damaged file is drawn again."""
    from reportgen.stats import streams
    from reportgen.stats.memo import SHARED_STATS

    rng = np.random.default_rng(5)
    columns = [rng.exponential(1.0, 3000), rng.integers(0, 2, 3000).astype(float)]
    differences = [rng.normal(0.01, 1.0, 3000), rng.normal(0.0, 1.0, 3000)]

    def computed():
        return I.resampled_means(columns, 2000, 9), [t.p_value for t in I.sign_flip_tests(differences, seed=9)]

    def forget():
        streams.draw_counts.cache_clear()
        streams.sign_patterns.cache_clear()
        SHARED_STATS.values.clear()  # nothing remembered: each computation resamples

    forget()
    monkeypatch.setattr(streams, "_folder", None)
    in_memory = computed()
    assert streams.draw_counts.cache_info().currsize == streams.sign_patterns.cache_info().currsize == 1
    forget()
    streams.keep_in(tmp_path)
    first = computed()  # drawn, and written to the folder
    kept = sorted(p.name.split("-numpy")[0] for p in tmp_path.glob("*.npy"))
    assert kept == [f"counts-n3000-b2000-s9-r{8_000_000 // 3000}", f"signs-n3000-b9999-s9-r{8_000_000 // 3000}"]
    forget()
    monkeypatch.setattr(np.random, "default_rng", lambda *a, **k: (_ for _ in ()).throw(AssertionError("drew")))
    second = computed()  # read back: nothing drawn
    monkeypatch.undo()  # (also restores the folder the test started with)
    streams.keep_in(tmp_path)
    forget()
    damaged = next(tmp_path.glob("counts-*.npy"))
    damaged.write_bytes(b"damaged")
    redrawn = computed()
    assert np.load(damaged, allow_pickle=False).shape == (2000, 3000)  # drawn again and kept again
    forget()
    streams.keep_in(None)
    monkeypatch.setattr(streams, "KEPT_BYTES", 0)  # too large to keep: drawn chunk by chunk as before
    fresh = computed()
    for other in (in_memory, first, second, redrawn):
        assert all(np.array_equal(a, b) for a, b in zip(other[0], fresh[0])) and other[1] == fresh[1]


def test_remembered_statistics_are_read_back_not_resampled(monkeypatch):
    """stats.memo: an interval or a test of values seen before (same settings) is read back, equal to the one
    computed; other values or other settings are computed."""
    from reportgen.stats.memo import SHARED_STATS

    rng = np.random.default_rng(17)
    columns = [rng.exponential(1.0, 1500), rng.normal(0, 1, 40)]
    pairs = [(x, x + rng.normal(0.05, 0.3, x.size), False) for x in columns]
    differences = [rng.normal(0.02, 1.0, 500), rng.normal(0.0, 1.0, 2000)]

    def computed(seed=3):
        return (
            I.bootstrap_mean_intervals(columns, n_resamples=2000, seed=seed),
            sb.paired_bootstraps(pairs, seed=seed),
            I.sign_flip_tests(differences, seed=seed),
        )

    first = computed()
    assert len(SHARED_STATS.values) == 2 + 2 * 2 + 2  # intervals; paired CIs and p-values; sign-flip p-values

    def no_resampling(*args, **kwargs):
        raise AssertionError("resampled again")

    monkeypatch.setattr(I, "resampled_means", no_resampling)
    monkeypatch.setattr(I.streams, "sign_patterns", no_resampling)
    assert computed() == first
    with pytest.raises(AssertionError, match="resampled again"):
        computed(seed=4)
