"""Intervals and tests agree with scipy and statsmodels on synthetic data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reportgen.stats import inference as I

scipy_stats = pytest.importorskip("scipy.stats")
pytest.importorskip("statsmodels")


def _paired(n: int, shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(shift, 1.0, n).round(3)


# ------------------------------------------------------------------------------------------------
# paired sign-flip permutation test
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, shift, seed", [(5, 0.0, 1), (9, 0.5, 2), (12, 1.0, 3), (13, 0.2, 4)])
def test_exact_sign_flip_agrees_with_scipy_permutation_test(n, shift, seed):
    d = _paired(n, shift, seed)
    ours = I.sign_flip_test(d)
    ref = scipy_stats.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=np.inf, vectorized=True, alternative="two-sided"
    )
    assert ours.method == "exact sign-flip permutation" and ours.resamples == 2**n
    assert ours.statistic == pytest.approx(ref.statistic, abs=1e-15)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_sign_flip_with_ties_agrees_with_scipy():
    # differences of 0/1 metrics: many exact ties with the observed mean
    d = np.array([1, 0, 0, 1, 1, -1, 0, 1, 0, 1, 1, 0], dtype=float)
    ref = scipy_stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf, vectorized=True)
    assert I.sign_flip_test(d).p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_monte_carlo_sign_flip_agrees_with_exact_within_its_error():
    d = _paired(15, 0.45, 5)  # 2^15 patterns: scipy enumerates them all, we draw 9999
    exact = scipy_stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf, vectorized=True).pvalue
    ours = I.sign_flip_test(d, seed=11)
    assert ours.method == "Monte Carlo sign-flip permutation" and ours.resamples == 9999
    se = math.sqrt(exact * (1 - exact) / 9999)
    assert abs(ours.p_value - exact) < 4 * 2 * se + 1e-4
    assert I.sign_flip_test(d, seed=11) == ours  # seeded: the same p every time


def test_known_answers_of_the_sign_flip_test():
    # all five differences positive: only the all-positive and all-negative patterns are as extreme
    assert I.sign_flip_test([1.0, 2.0, 3.0, 4.0, 5.0]).p_value == pytest.approx(2 / 32)
    assert I.sign_flip_test([0.0, 0.0, 0.0]).p_value == 1.0
    single = I.sign_flip_test([0.7, math.nan])
    assert not single.estimable and single.reason == "n < 2" and math.isnan(single.p_value)


# ------------------------------------------------------------------------------------------------
# McNemar, Holm
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n01, n10, n11, n00", [(3, 9, 10, 8), (0, 6, 4, 4), (5, 5, 2, 0), (0, 0, 7, 3), (12, 31, 40, 17)])
def test_mcnemar_exact_agrees_with_statsmodels(n01, n10, n11, n00):
    from statsmodels.stats.contingency_tables import mcnemar

    a = [0] * n01 + [1] * n10 + [1] * n11 + [0] * n00
    b = [1] * n01 + [0] * n10 + [1] * n11 + [0] * n00
    ref = mcnemar([[n11, n10], [n01, n00]], exact=True)
    ours = I.mcnemar_exact(a, b)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert ours.statistic == ref.statistic and ours.n == n01 + n10 + n11 + n00


def test_holm_agrees_with_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(7)
    for m in (1, 2, 5, 12):
        p = rng.uniform(0, 0.2, m)
        p[0] = p[-1]  # a tie
        assert I.holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), rel=1e-12)
    with_nan = I.holm([0.01, math.nan, 0.04])
    assert math.isnan(with_nan[1]) and with_nan[0] == pytest.approx(0.02) and with_nan[2] == pytest.approx(0.04)


# ------------------------------------------------------------------------------------------------
# proportions
# ------------------------------------------------------------------------------------------------

PROPORTIONS = [(0, 1), (1, 1), (7, 7), (0, 7), (3, 10), (17, 40), (99, 100), (512, 1000)]


@pytest.mark.parametrize("k, n", PROPORTIONS)
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_wilson_agrees_with_statsmodels(k, n, level):
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=1 - level, method="wilson")
    ours = I.wilson_interval(k, n, level=level)
    assert (ours.low, ours.high) == pytest.approx((low, high), rel=1e-12, abs=1e-15)
    assert ours.estimate == k / n and ours.method == "wilson"


@pytest.mark.parametrize("k, n", PROPORTIONS)
def test_clopper_pearson_agrees_with_scipy_and_statsmodels(k, n):
    from statsmodels.stats.proportion import proportion_confint

    ci = scipy_stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    ours = I.clopper_pearson_interval(k, n)
    assert (ours.low, ours.high) == pytest.approx((ci.low, ci.high), rel=1e-12, abs=1e-15)
    assert (ours.low, ours.high) == pytest.approx(proportion_confint(k, n, method="beta"), rel=1e-9, abs=1e-12)


def test_constant_proportions_still_get_an_honest_interval():
    # seven hits out of seven: Wilson says the rate is plausibly as low as 0.65, not "1.00 [1.00, 1.00]"
    all_hits = I.proportion_interval([1] * 7)
    assert all_hits.estimable and all_hits.high == 1.0 and 0.6 < all_hits.low < 0.7
    assert not I.proportion_interval([math.nan]).estimable
    with pytest.raises(ValueError):
        I.proportion_interval([0.5, 1])


# ------------------------------------------------------------------------------------------------
# bootstrap of a mean
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, scipy_method", [("BCa", "BCa"), ("percentile", "percentile")])
@pytest.mark.parametrize("n, seed", [(8, 0), (30, 1), (200, 2)])
def test_bootstrap_agrees_with_scipy_given_the_same_seed(method, scipy_method, n, seed):
    x = np.random.default_rng(100 + seed).exponential(1.0, n)  # skewed: BCa and percentile differ
    ref = scipy_stats.bootstrap(
        (x,), np.mean, method=scipy_method, n_resamples=2000, vectorized=True, rng=np.random.default_rng(seed)
    ).confidence_interval
    ours = I.bootstrap_mean_interval(x, method=method, n_resamples=2000, seed=seed)
    assert (ours.low, ours.high) == pytest.approx((ref.low, ref.high), rel=1e-9)
    assert ours.method == f"{method} bootstrap" and ours.estimate == pytest.approx(x.mean())


def test_bca_differs_from_percentile_on_skewed_data():
    x = np.random.default_rng(3).exponential(1.0, 25)
    bca, pct = I.bootstrap_mean_interval(x), I.bootstrap_mean_interval(x, method="percentile")
    assert bca.high > pct.high  # BCa shifts right for right-skewed data


@pytest.mark.parametrize(
    "values, reason", [([], "n < 2"), ([1.0], "n < 2"), ([1.0] * 7, "constant data"), ([0.25, 0.25, math.nan], "constant data")]
)
def test_bootstrap_that_cannot_be_estimated_says_so(values, reason):
    for method in ("BCa", "percentile"):
        ci = I.bootstrap_mean_interval(values, method=method)
        assert not ci.estimable and ci.reason == reason
        assert math.isnan(ci.low) and math.isnan(ci.high)


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, reportgen.stats.inference; print('scipy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_sign_flip_on_binary_differences_is_mcnemars_exact_test():
    rng = np.random.default_rng(9)
    a, b = rng.integers(0, 2, 13).astype(float), rng.integers(0, 2, 13).astype(float)
    assert I.sign_flip_test(a - b).p_value == pytest.approx(I.mcnemar_exact(a, b).p_value, rel=1e-12)
