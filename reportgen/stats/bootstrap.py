"""Bootstrap intervals and paired tests over prompts: pure functions of arrays, seeded, deterministic.

Intervals are percentile bootstraps (``level`` 0.95 by default); paired differences are ``a − b`` on the
items both have; ``holm`` adjusts a family of p-values.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    pass

N_BOOT = 2000
SEED = 0
LEVEL = 0.95
# bootstrap index matrices are built in chunks of at most this many cells (memory stays ~64 MB)
_CHUNK_CELLS = 8_000_000

# ---------------------------------------------------------------------------------------------
# Bootstrap


def finite_values(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values, dtype=float)
    return array[~np.isnan(array)]


def _resampled(stat_of_indices, n: int, n_boot: int, seed: int) -> np.ndarray:
    """``stat_of_indices(idx)`` over ``n_boot`` resamples of ``range(n)``; idx has shape (rows, n)."""
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, _CHUNK_CELLS // max(n, 1))
    out = np.empty(n_boot)
    for start in range(0, n_boot, rows_per_chunk):
        stop = min(n_boot, start + rows_per_chunk)
        out[start:stop] = stat_of_indices(rng.integers(0, n, size=(stop - start, n)))
    return out


def _interval(boots: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boots, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    values: Iterable[float], n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> tuple[float, float, float]:
    """(mean, low, high): the sample mean and a percentile-bootstrap interval. NaNs are dropped.

    No values: all NaN. Constant values (one value included): a zero-width interval at that value.
    """
    data = finite_values(values)
    if data.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if np.all(data == data[0]):
        return (float(data[0]),) * 3
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
    if num.size == 1:
        return (ratio, ratio, ratio)

    def stat(idx: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return num[idx].sum(axis=1) / den[idx].sum(axis=1)

    boots = _resampled(stat, num.size, n_boot, seed)
    boots = boots[np.isfinite(boots)]  # a resample of only zero-byte texts has no ratio
    if boots.size == 0:
        return (ratio, math.nan, math.nan)
    low, high = _interval(boots, level)
    return (ratio, low, high)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> dict[str, Any]:
    """Mean difference a − b over pairs where both are present, its paired-bootstrap CI and p-value.

    Prompts are resampled jointly (one index picks both a[i] and b[i]). The two-sided p-value is
    2 × the smaller share of resampled differences on either side of 0, with the +1 Monte-Carlo
    correction, so it is never 0 (the smallest is 2/(n_boot+1)). ``significant``: the CI excludes 0.
    Fewer than two pairs: no interval, not significant.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    both = ~np.isnan(x) & ~np.isnan(y)
    x, y = x[both], y[both]
    n = int(x.size)
    result: dict[str, Any] = {
        "n": n,
        "mean_a": float(x.mean()) if n else math.nan,
        "mean_b": float(y.mean()) if n else math.nan,
        "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan, "significant": False,
    }
    if n == 0:
        return result
    d = x - y
    result["diff"] = float(d.mean())
    if n < 2:
        return result
    if np.all(d == d[0]):
        boots = np.full(n_boot, float(d[0]))
        low = high = float(d[0])
    else:
        boots = _resampled(lambda idx: d[idx].mean(axis=1), n, n_boot, seed)
        low, high = _interval(boots, level)
    below, above = int(np.sum(boots <= 0)), int(np.sum(boots >= 0))
    result.update(
        ci_low=low,
        ci_high=high,
        p_value=min(1.0, 2.0 * (min(below, above) + 1) / (n_boot + 1)),
        significant=bool(low > 0 or high < 0),
    )
    return result


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.size, math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
