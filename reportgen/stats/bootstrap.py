"""Bootstrap intervals and paired tests over prompts: pure functions of arrays, seeded, deterministic.

Intervals are percentile bootstraps (``level`` 0.95 by default); fewer than two values or constant
values give no interval (NaN), never a zero-width one. Paired differences are ``a − b`` on the items both
have, with a percentile-bootstrap CI and a p-value from a test against the null of no difference
(``reportgen.stats.inference``: McNemar exact for 0/1 outcomes, the paired sign-flip permutation test
otherwise); ``holm`` (from inference) adjusts a family of p-values.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from reportgen.stats import inference
from reportgen.stats.inference import holm
from reportgen.stats.memo import SHARED_STATS, stat_key

if TYPE_CHECKING:
    pass

__all__ = ["bootstrap_ci", "bootstrap_ratio_ci", "finite_values", "holm", "paired_bootstrap", "paired_bootstraps"]

N_BOOT = 2000
SEED = 0
LEVEL = 0.95
# bootstrap index matrices are built in chunks of at most this many cells (memory stays ~64 MB)
_CHUNK_CELLS = 8_000_000

# ---------------------------------------------------------------------------------------------
# Bootstrap


def finite_values(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values, dtype=float)
    finite: np.ndarray = array[~np.isnan(array)]
    return finite


def _resampled(stat_of_indices: Callable[[np.ndarray], np.ndarray], n: int, n_boot: int, seed: int) -> np.ndarray:
    """``stat_of_indices(idx)`` over ``n_boot`` resamples of ``range(n)``; idx has shape (rows, n)."""
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, _CHUNK_CELLS // max(n, 1))
    out = np.empty(n_boot)
    for start in range(0, n_boot, rows_per_chunk):
        stop = min(n_boot, start + rows_per_chunk)
        out[start:stop] = stat_of_indices(rng.integers(0, n, size=(stop - start, n)))
    return out


def _ci_key(differences: np.ndarray, n_boot: int, seed: int, level: float) -> str:
    return stat_key("paired-ci", (n_boot, seed, level), differences)


def _interval(boots: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boots, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    values: Iterable[float], n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> tuple[float, float, float]:
    """(mean, low, high): the sample mean and a percentile-bootstrap interval. NaNs are dropped.

    No values: all NaN. Constant values (one value included): the mean, and no interval (NaN).
    """
    data = finite_values(values)
    if data.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if np.all(data == data[0]):
        return (float(data[0]), math.nan, math.nan)
    low, high = _interval(_resampled(lambda idx: data[idx].mean(axis=1), data.size, n_boot, seed), level)
    return (mean, low, high)


def bootstrap_ratio_ci(
    numerator: Sequence[float], denominator: Sequence[float], n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> tuple[float, float, float]:
    """(Σnum/Σden, low, high), resampling items jointly (e.g. NLL and bytes per text)."""
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    if num.size == 0 or den.sum() <= 0:
        return (math.nan, math.nan, math.nan)
    ratio = float(num.sum() / den.sum())
    if num.size == 1:  # one item: no interval
        return (ratio, math.nan, math.nan)

    def stat(idx: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios: np.ndarray = num[idx].sum(axis=1) / den[idx].sum(axis=1)
        return ratios

    boots = _resampled(stat, num.size, n_boot, seed)
    boots = boots[np.isfinite(boots)]  # a resample of only zero-byte texts has no ratio
    if boots.size == 0:
        return (ratio, math.nan, math.nan)
    low, high = _interval(boots, level)
    return (ratio, low, high)


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
    *,
    binary: bool = False,
) -> dict[str, Any]:
    """Mean difference a − b over pairs where both are present, its paired-bootstrap CI and a test.

    Prompts are resampled jointly (one index picks both a[i] and b[i]) for the percentile CI; constant
    differences have none. The two-sided p-value tests the null of no difference: McNemar's exact test
    when ``binary`` (0/1 outcomes), else the paired sign-flip permutation test (exact for small n).
    ``significant``: p < 1 − level. Fewer than two pairs: no interval, no test, not significant.
    """
    return paired_bootstraps([(a, b, binary)], n_boot=n_boot, seed=seed, level=level)[0]


def paired_bootstraps(
    pairs: Sequence[tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray, bool]],
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
) -> list[dict[str, Any]]:
    """``paired_bootstrap(a, b, binary=binary)`` of each (a, b, binary), computed together: pairs with the
    same number of common items share one stream of resamples and one of sign patterns (the streams each
    would draw alone; ``inference.resampled_means``, ``inference.sign_flip_tests``)."""
    results: list[dict[str, Any]] = []
    resample: list[tuple[int, np.ndarray]] = []  # (result index, differences) for the CI
    flip: list[tuple[int, np.ndarray]] = []  # (result index, differences) for the sign-flip test
    for a, b, binary in pairs:
        x = np.asarray(a, dtype=float)
        y = np.asarray(b, dtype=float)
        both = ~np.isnan(x) & ~np.isnan(y)
        x, y = x[both], y[both]
        n = int(x.size)
        result: dict[str, Any] = {
            "n": n,
            "mean_a": float(x.mean()) if n else math.nan,
            "mean_b": float(y.mean()) if n else math.nan,
            "diff": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "p_value": math.nan,
            "significant": False,
        }
        results.append(result)
        if n == 0:
            continue
        d = x - y
        result["diff"] = float(d.mean())
        if n < 2:
            continue
        known = SHARED_STATS.get(_ci_key(d, n_boot, seed, level))
        if known is not None:  # computed before (stats.memo)
            result["ci_low"], result["ci_high"] = known
        elif not np.all(d == d[0]):
            resample.append((len(results) - 1, d))
        if binary:
            result["p_value"] = inference.mcnemar_exact(x, y).p_value
        else:
            flip.append((len(results) - 1, d))
    drawn = inference.resampled_means([d for _, d in resample], n_boot, seed) if resample else []
    for (i, d), means in zip(resample, drawn):
        results[i]["ci_low"], results[i]["ci_high"] = _interval(means, level)
        SHARED_STATS.put(_ci_key(d, n_boot, seed, level), [results[i]["ci_low"], results[i]["ci_high"]])
    for (i, _), test in zip(flip, inference.sign_flip_tests([d for _, d in flip], seed=seed)):
        results[i]["p_value"] = test.p_value
    for result in results:
        result["significant"] = bool(result["p_value"] < 1 - level)  # NaN (no test) compares False
    return results
