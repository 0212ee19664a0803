"""Multiple choice by log-likelihood: the stored choices' log-probabilities → one row per (model, item).

Each row has the item's category and the binary metrics of kind ``choice`` (``mc_acc``, ``mc_acc_norm``), so
``frames.model_summary`` (Wilson intervals), ``frames.category_summary`` and ``frames.paired_comparisons``
(McNemar's exact test) read it as they read the per-prompt frame. An item counts for a model only when every
one of its choices is stored for the model's fingerprint (a partial item has no argmax).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import pandas as pd

from reportgen.stats.frames import current_fingerprint, ordered_models
from reportgen.stats.metrics import metrics_of_kind

if TYPE_CHECKING:
    from reportgen.study.prompts import PromptSet

CHOICE_METRICS: tuple[str, ...] = tuple(m.name for m in metrics_of_kind("choice"))
CHOICE_COLUMNS = ["model_id", "prompt_id", "category", "gold", "chosen", "chosen_norm", "fingerprint", *CHOICE_METRICS]


def item_scores(logprobs: Sequence[float], lengths: Sequence[int], gold: int) -> tuple[float, ...]:
    """Every choice metric of one item, in CHOICE_METRICS order."""
    return tuple(m(logprobs, lengths, gold) for m in metrics_of_kind("choice"))


def choice_frame(
    rows: pd.DataFrame,
    prompt_set: "PromptSet | None",
    fingerprints: Mapping[str, str | None] | None = None,
    model_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (model, item of the set) with all its choices stored: ``rows`` is the store's
    ``choice_loglik`` table (or any frame with model_id, item_id, choice, logprob and, optionally, fingerprint
    and created_at). ``fingerprints`` pins each model's weights as in stats.frames.latest_results: scores
    belong to the weights, so two entries with the same weights share them; by default a model's latest."""
    if rows.empty or prompt_set is None or not prompt_set.multiple_choice:
        return pd.DataFrame(columns=CHOICE_COLUMNS)
    if "fingerprint" not in rows:
        rows = rows.assign(fingerprint="", created_at=0.0)
    order = model_order if model_order is not None else (list(fingerprints) if fingerprints is not None else None)
    candidates = list(rows["model_id"]) + [m for m, fp in (fingerprints or {}).items() if fp]
    records = []
    for model_id in ordered_models(candidates, order):
        if fingerprints is not None and model_id not in fingerprints:
            continue
        fingerprint = (fingerprints or {}).get(model_id)
        if not fingerprint:
            own = rows[rows["model_id"] == model_id]
            if own.empty:
                continue
            fingerprint = current_fingerprint(own, "created_at")
        mine = rows[rows["fingerprint"] == fingerprint].sort_values("created_at", kind="stable")
        scores = {(i, int(c)): float(lp) for i, c, lp in zip(mine["item_id"], mine["choice"], mine["logprob"])}
        for item in prompt_set.multiple_choice:
            logprobs = [scores.get((item.id, index)) for index in range(len(item.choices))]
            if any(lp is None for lp in logprobs):
                continue
            values = [float(lp) for lp in logprobs if lp is not None]
            lengths = [len(choice) for choice in item.choices]
            records.append(
                {
                    "model_id": model_id,
                    "prompt_id": item.id,
                    "category": item.category,
                    "gold": item.gold,
                    "chosen": max(range(len(values)), key=lambda i: (values[i], -i)),
                    "chosen_norm": max(range(len(values)), key=lambda i: (values[i] / max(lengths[i], 1), -i)),
                    "fingerprint": fingerprint,
                    **dict(zip(CHOICE_METRICS, item_scores(values, lengths, item.gold))),
                }
            )
    return pd.DataFrame(records, columns=CHOICE_COLUMNS)
