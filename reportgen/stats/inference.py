"""Statistical inference over per-prompt values: intervals and tests, as pure functions.

Each function follows the definition of a reference implementation, and a test checks the agreement:

* ``sign_flip_test`` — the paired permutation test of a mean difference (``scipy.stats.permutation_test``
  with one sample of differences and ``permutation_type='samples'``): exact enumeration of all 2^n sign
  patterns when 2^n <= ``n_resamples``, otherwise a seeded Monte Carlo test with p = (k + 1) / (B + 1);
* ``holm`` — Holm's step-down adjustment (``statsmodels ... multipletests(method='holm')``);
* ``wilson_interval`` / ``clopper_pearson_interval`` — intervals for a proportion
  (``statsmodels ... proportion_confint(method='wilson')``, ``scipy.stats.binomtest(...).proportion_ci()``);
* ``bootstrap_mean_interval`` — percentile or BCa bootstrap interval of a mean
  (``scipy.stats.bootstrap``; with the same seed the resamples, and so the interval, are scipy's);
* ``mcnemar_exact`` — McNemar's exact test for paired 0/1 outcomes (``statsmodels ... mcnemar(exact=True)``).

An interval that cannot be estimated (fewer than two values, constant data for a bootstrap, no
values for a proportion) comes back with ``estimable=False`` and a ``reason``, never as a zero-width
interval. numpy is the only import at module level; scipy is imported by ``clopper_pearson_interval``
alone (for the beta quantile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterable, Sequence

import numpy as np

from reportgen.stats import streams
from reportgen.stats.memo import SHARED_STATS, stat_key

__all__ = [
    "Interval",
    "TestResult",
    "bootstrap_mean_interval",
    "bootstrap_mean_intervals",
    "clopper_pearson_interval",
    "holm",
    "mcnemar_exact",
    "proportion_interval",
    "resampled_means",
    "sign_flip_test",
    "sign_flip_tests",
    "wilson_interval",
]

LEVEL = 0.95
N_RESAMPLES = 9999  # scipy's default for both bootstrap and permutation_test
SEED = 0
# resample matrices are built in chunks of at most this many cells (memory stays ~64 MB)
_CHUNK_CELLS = 8_000_000
# ... and turned into floats for a matrix product this many rows at a time (a block stays in the CPU's cache)
_BLOCK_ROWS = 64
#: from this many items on, resampled means come from counts of draws times the values (resampled_means)
COUNTED_FROM = 1000
_NORMAL = NormalDist()

#: why an interval or a test has no value
TOO_FEW = "n < 2"
CONSTANT = "constant data"
NO_VALUES = "no values"


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval, and the method that produced it."""

    estimate: float
    low: float
    high: float
    n: int
    method: str  # "wilson" | "clopper-pearson" | "percentile bootstrap" | "BCa bootstrap"
    level: float = LEVEL
    reason: str | None = None  # set when the interval cannot be estimated (low/high are NaN)

    @property
    def estimable(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class TestResult:
    """A two-sided test: the observed statistic and its p-value under the null hypothesis."""

    statistic: float
    p_value: float
    n: int
    method: str  # "exact sign-flip permutation" | "Monte Carlo sign-flip permutation" | "McNemar exact"
    resamples: int | None = None  # sign patterns evaluated (2^n when exact)
    reason: str | None = None  # set when the test cannot be run (p_value is NaN)

    @property
    def estimable(self) -> bool:
        return self.reason is None


def _clean(values: Iterable[float]) -> np.ndarray:
    a = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float).ravel()
    finite: np.ndarray = a[~np.isnan(a)]
    return finite


def _not_estimable(estimate: float, n: int, method: str, level: float, reason: str) -> Interval:
    return Interval(estimate, math.nan, math.nan, n, method, level, reason)


# ------------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------------


def _two_sided(null: np.ndarray, observed: float, adjustment: int) -> float:
    # scipy's rule: a relative tolerance counts numerically distinct but theoretically equal values as ties
    gamma = abs(np.finfo(float).eps * 100 * observed)
    total = null.size + adjustment
    less = (np.count_nonzero(null <= observed + gamma) + adjustment) / total
    greater = (np.count_nonzero(null >= observed - gamma) + adjustment) / total
    return float(min(1.0, 2 * min(less, greater)))


def sign_flip_test(differences: Iterable[float], *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> TestResult:
    """Paired permutation test of mean(differences) = 0, two-sided (NaNs dropped).

    Under the null each paired difference is as likely positive as negative, so the null distribution is
    that of the mean with every sign flipped at random. All 2^n sign patterns are enumerated when
    2^n <= ``n_resamples`` (p = share of patterns at least as extreme); otherwise ``n_resamples``
    patterns are drawn with ``seed`` and p = (k + 1) / (n_resamples + 1), so it is never 0.
    """
    return sign_flip_tests([differences], n_resamples=n_resamples, seed=seed)[0]


def sign_flip_tests(
    differences: Sequence[Iterable[float]], *, n_resamples: int = N_RESAMPLES, seed: int = SEED
) -> list[TestResult]:
    """``sign_flip_test`` of each sequence of differences, the same results computed together: sequences
    of the same length (NaNs dropped) share one stream of drawn sign patterns (the stream each would draw
    alone), so the patterns are drawn once and applied to all of them as one matrix product."""
    cleaned = [_clean(d) for d in differences]
    results: list[TestResult | None] = [None] * len(cleaned)
    drawn: dict[int, list[int]] = {}
    for i, d in enumerate(cleaned):
        n = int(d.size)
        observed = float(d.mean()) if n else math.nan
        if n < 2:
            results[i] = TestResult(observed, math.nan, n, "sign-flip permutation", None, TOO_FEW)
        elif 2**n <= n_resamples:
            patterns = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
            null = ((1 - 2 * patterns) * d).mean(axis=1)
            results[i] = TestResult(observed, _two_sided(null, observed, 0), n, "exact sign-flip permutation", 2**n)
        else:
            known = SHARED_STATS.get(_flip_key(d, n_resamples, seed))
            if known is not None:  # tested before (stats.memo)
                results[i] = TestResult(observed, known[0], n, "Monte Carlo sign-flip permutation", n_resamples)
            else:
                drawn.setdefault(n, []).append(i)
    for n, members in drawn.items():
        columns = np.column_stack([cleaned[i] for i in members])
        totals = columns.sum(axis=0)
        nulls = np.empty((n_resamples, len(members)))
        start = 0
        for packed in streams.sign_patterns(n, n_resamples, seed, _CHUNK_CELLS):
            stop = start + packed.shape[0]
            nulls[start:stop] = (totals - 2 * _product(packed, columns, unpack=n)) / n  # bit 1: the sign is flipped
            start = stop
        for k, i in enumerate(members):
            observed = float(cleaned[i].mean())
            p = _two_sided(nulls[:, k], observed, 1)
            SHARED_STATS.put(_flip_key(cleaned[i], n_resamples, seed), [p])
            results[i] = TestResult(observed, p, n, "Monte Carlo sign-flip permutation", n_resamples)
    return [r for r in results if r is not None]


def _product(chunk: np.ndarray, columns: np.ndarray, *, unpack: int | None = None) -> np.ndarray:
    """``chunk @ columns`` with the chunk's integers (or, with ``unpack``, its first ``unpack`` bits per row) as
    floats, ``_BLOCK_ROWS`` rows at a time: a block converted to floats is still in the CPU's cache when the
    product reads it, a whole chunk (~64 MB) is not (~2.5 times as fast at 10,000 items; the same products)."""
    out = np.empty((chunk.shape[0], columns.shape[1]))
    for start in range(0, chunk.shape[0], _BLOCK_ROWS):
        block = chunk[start : start + _BLOCK_ROWS]
        if unpack is not None:
            block = np.unpackbits(block, axis=1, count=unpack)
        out[start : start + block.shape[0]] = block.astype(float) @ columns
    return out


def _flip_key(differences: np.ndarray, n_resamples: int, seed: int) -> str:
    return stat_key("sign-flip", (n_resamples, seed), differences)


def mcnemar_exact(a: Iterable[float], b: Iterable[float]) -> TestResult:
    """McNemar's exact test for paired 0/1 outcomes (pairs with a NaN dropped), two-sided.

    Only discordant pairs count: ``n01`` (a = 0, b = 1) and ``n10`` (a = 1, b = 0). Under the null each
    discordant pair is either kind with probability 1/2, so p = min(1, 2 * P(Binomial(n01 + n10, 1/2)
    <= min(n01, n10))), computed exactly. The statistic is min(n01, n10), as statsmodels reports it.
    """
    x, y = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    if x.shape != y.shape:
        raise ValueError("mcnemar_exact needs two paired sequences of the same length")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if not np.isin(x, (0.0, 1.0)).all() or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("mcnemar_exact needs 0/1 outcomes")
    n10 = int(np.count_nonzero((x == 1) & (y == 0)))
    n01 = int(np.count_nonzero((x == 0) & (y == 1)))
    discordant, low = n01 + n10, min(n01, n10)
    tail = sum(math.comb(discordant, k) for k in range(low + 1))
    p = min(1.0, 2 * tail / 2**discordant)
    return TestResult(float(low), p, int(x.size), "McNemar exact", None)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order; NaNs stay NaN and are not counted."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return [float(v) for v in out]
    order = valid[np.argsort(p[valid], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return [float(v) for v in out]


# ------------------------------------------------------------------------------------------------
# intervals for a proportion
# ------------------------------------------------------------------------------------------------


def _z(level: float) -> float:
    return _NORMAL.inv_cdf(1 - (1 - level) / 2)


def wilson_interval(successes: int, n: int, *, level: float = LEVEL) -> Interval:
    """Wilson score interval for a binomial proportion successes / n."""
    if n <= 0:
        return _not_estimable(math.nan, 0, "wilson", level, NO_VALUES)
    z = _z(level)
    p = successes / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(p, max(0.0, center - half), min(1.0, center + half), n, "wilson", level)


def clopper_pearson_interval(successes: int, n: int, *, level: float = LEVEL) -> Interval:
    """Clopper–Pearson ("exact") interval for a binomial proportion: beta quantiles (needs scipy)."""
    if n <= 0:
        return _not_estimable(math.nan, 0, "clopper-pearson", level, NO_VALUES)
    try:
        from scipy.stats import beta
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from reportgen.errors import MissingExtraError

        raise MissingExtraError("scipy", "stats", "A Clopper-Pearson interval") from exc
    alpha = 1 - level
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return Interval(successes / n, low, high, n, "clopper-pearson", level)


def proportion_interval(values: Iterable[float], *, method: str = "wilson", level: float = LEVEL) -> Interval:
    """Interval for the mean of 0/1 values (NaNs dropped): ``method`` "wilson" or "clopper-pearson"."""
    x = _clean(values)
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError("proportion_interval needs 0/1 values")
    compute = {"wilson": wilson_interval, "clopper-pearson": clopper_pearson_interval}[method]
    return compute(int(x.sum()), int(x.size), level=level)


# ------------------------------------------------------------------------------------------------
# bootstrap interval for a mean
# ------------------------------------------------------------------------------------------------


def resampled_means(columns: Sequence[np.ndarray], n_resamples: int, seed: int) -> list[np.ndarray]:
    """Each column's ``n_resamples`` bootstrap means under the draws scipy.stats.bootstrap makes
    (``rng.integers(0, n, (n_resamples, n))`` from ``default_rng(seed)``, row by row, in chunks).

    Columns of the same length share those draws, so they are drawn once. Below ``COUNTED_FROM`` items
    each column is indexed by the draws and averaged, exactly as scipy does (bit for bit: small samples
    have resampled means that tie with the sample mean, and BCa counts those ties). From ``COUNTED_FROM``
    items on, each chunk of resamples becomes a matrix of how often each item was drawn, and one matrix
    product gives every column's resampled means: the same resamples, summed in another order (equal
    within 1e-12; integer and dyadic values exactly).
    """
    out: list[np.ndarray] = [np.empty(0)] * len(columns)
    by_length: dict[int, list[int]] = {}
    for i, column in enumerate(columns):
        by_length.setdefault(int(column.size), []).append(i)
    for n, members in by_length.items():
        if n == 0:
            continue
        values = np.column_stack([columns[i] for i in members])
        means = np.empty((n_resamples, len(members)))
        if COUNTED_FROM <= n < 2**16 and n_resamples * n * 2 <= streams.KEPT_BYTES:  # 16-bit counts: exact
            start = 0
            for counts in streams.draw_counts(n, n_resamples, seed, _CHUNK_CELLS):  # drawn once, kept
                stop = start + counts.shape[0]
                means[start:stop] = _product(counts, values) / n
                start = stop
        else:
            rng = np.random.default_rng(seed)
            rows = max(1, _CHUNK_CELLS // n)
            for start in range(0, n_resamples, rows):
                stop = min(n_resamples, start + rows)
                drawn = rng.integers(0, n, (stop - start, n))
                if n < COUNTED_FROM:
                    for k in range(len(members)):
                        means[start:stop, k] = values[:, k][drawn].mean(axis=1)
                    continue
                means[start:stop] = _product(streams.counted(drawn, n), values) / n
        for k, i in enumerate(members):
            out[i] = means[:, k]
    return out


def bootstrap_mean_interval(
    values: Iterable[float],
    *,
    method: str = "BCa",
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """Bootstrap interval of the mean (NaNs dropped): ``method`` "BCa" or "percentile".

    BCa (bias-corrected and accelerated, Efron & Tibshirani 14.3) shifts the percentile levels by the
    bootstrap distribution's median bias ``z0`` and the jackknife acceleration ``a``; "percentile" takes
    the (1 - level) / 2 and (1 + level) / 2 quantiles (linear interpolation) of the resampled means.
    Fewer than two values, or constant values, give no interval (``reason``), not a zero-width one.
    """
    return bootstrap_mean_intervals([values], method=method, level=level, n_resamples=n_resamples, seed=seed)[0]


def bootstrap_mean_intervals(
    columns: Sequence[Iterable[float]],
    *,
    method: str = "BCa",
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> list[Interval]:
    """``bootstrap_mean_interval`` of each column, computed together (``resampled_means``: columns of one
    length share one stream of draws, the stream each would draw alone)."""
    if method not in ("BCa", "percentile"):
        raise ValueError(f"bootstrap method must be 'BCa' or 'percentile', not {method!r}")
    label = f"{method} bootstrap"
    cleaned = [_clean(values) for values in columns]
    results: list[Interval | None] = [None] * len(cleaned)
    resample: list[int] = []
    for i, x in enumerate(cleaned):
        n = int(x.size)
        mean = float(x.mean()) if n else math.nan
        if n < 2:
            results[i] = _not_estimable(mean, n, label, level, TOO_FEW)
        elif np.all(x == x[0]):
            results[i] = _not_estimable(mean, n, label, level, CONSTANT)
        elif (known := SHARED_STATS.get(_interval_key(x, method, n_resamples, seed, level))) is not None:
            low, high = known  # computed before (stats.memo); NaN ends: every resampled mean on one side
            results[i] = (
                Interval(mean, low, high, n, label, level) if low == low else _not_estimable(mean, n, label, level, CONSTANT)
            )
        else:
            resample.append(i)
    drawn = resampled_means([cleaned[i] for i in resample], n_resamples, seed) if resample else []
    for i, means in zip(resample, drawn):
        interval = results[i] = _interval_from_means(cleaned[i], means, method, level)
        SHARED_STATS.put(_interval_key(cleaned[i], method, n_resamples, seed, level), [interval.low, interval.high])
    return [r for r in results if r is not None]


def _interval_key(values: np.ndarray, method: str, n_resamples: int, seed: int, level: float) -> str:
    return stat_key("bootstrap-mean", (method, n_resamples, seed, level), values)


def _interval_from_means(x: np.ndarray, means: np.ndarray, method: str, level: float) -> Interval:
    label = f"{method} bootstrap"
    n = int(x.size)
    mean = float(x.mean())
    alpha = (1 - level) / 2
    if method == "percentile":
        levels: tuple[float, ...] = (alpha, 1 - alpha)
    else:
        share_below = (np.count_nonzero(means < mean) + np.count_nonzero(means <= mean)) / (2 * means.size)
        if not 0 < share_below < 1:  # every resampled mean on one side: the bias correction is infinite
            return _not_estimable(mean, n, label, level, CONSTANT)
        z0 = _NORMAL.inv_cdf(share_below)
        jackknife = (x.sum() - x) / (n - 1)
        u = (n - 1) * (jackknife.mean() - jackknife)
        a = (np.sum(u**3) / n**3) / (6 * (np.sum(u**2) / n**2) ** 1.5)
        z_alpha = _NORMAL.inv_cdf(alpha)
        levels = tuple(_NORMAL.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in (z_alpha, -z_alpha))
    low, high = np.quantile(means, levels)
    return Interval(mean, float(low), float(high), n, label, level)
