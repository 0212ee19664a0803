"""Language modelling on the reference texts: bits per byte and perplexity per model, with intervals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import pandas as pd

from reportgen.stats.bootstrap import LEVEL, N_BOOT, SEED, bootstrap_ratio_ci
from reportgen.stats.frames import current_fingerprint, ordered_models
from reportgen.stats.metrics import (
    LN2,
    METRICS,
)

if TYPE_CHECKING:
    pass

LM_COLUMNS = [
    "model_id",
    "fingerprint",
    "n_texts",
    "n_tokens",
    "n_bytes",
    "nll_nats",
    "bits_per_byte",
    "bpb_ci_low",
    "bpb_ci_high",
    "perplexity",
]


# ---------------------------------------------------------------------------------------------
# Language modelling


def lm_frame(
    loglik: pd.DataFrame,
    fingerprints: Mapping[str, str | None] | None = None,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
    model_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per model (current fingerprint, as in latest_results): bits per byte with a bootstrap CI over
    texts (ratio of sums, texts resampled), perplexity per token, and the totals behind them.
    Bits per byte compare across tokenizers only when the models scored the same texts (see n_texts)."""
    records = []
    if loglik.empty:
        return pd.DataFrame(columns=LM_COLUMNS)
    order = model_order if model_order is not None else (list(fingerprints) if fingerprints is not None else None)
    candidates = list(loglik["model_id"]) + [m for m, fp in (fingerprints or {}).items() if fp]
    for model_id in ordered_models(candidates, order):
        if fingerprints is not None and model_id not in fingerprints:
            continue
        fingerprint = (fingerprints or {}).get(model_id)
        if not fingerprint:
            own = loglik[loglik["model_id"] == model_id]
            if own.empty:
                continue
            fingerprint = current_fingerprint(own, "created_at")
        # Scores belong to the weights, not to the model entry: two entries with the same weights (e.g.
        # greedy and sampled decoding) share them, whichever entry stored them.
        rows = loglik[loglik["fingerprint"] == fingerprint].sort_values(["created_at", "text_hash"], kind="stable")
        rows = rows.drop_duplicates("text_id", keep="last").sort_values("text_id", kind="stable")
        if rows.empty:
            continue
        nll = rows["nll_nats"].to_numpy(float)
        n_bytes = rows["n_bytes"].to_numpy(float)
        ratio, low, high = bootstrap_ratio_ci(nll, n_bytes, n_boot=n_boot, seed=seed, level=level)
        records.append(
            {
                "model_id": model_id,
                "fingerprint": fingerprint,
                "n_texts": int(len(rows)),
                "n_tokens": int(rows["n_tokens"].sum()),
                "n_bytes": int(n_bytes.sum()),
                "nll_nats": float(nll.sum()),
                "bits_per_byte": METRICS.get("bits_per_byte")(nll.sum(), n_bytes.sum()),
                "bpb_ci_low": low / LN2,
                "bpb_ci_high": high / LN2,
                "perplexity": METRICS.get("perplexity")(nll.sum(), rows["n_tokens"].sum()),
            }
        )
    return pd.DataFrame(records, columns=LM_COLUMNS)
