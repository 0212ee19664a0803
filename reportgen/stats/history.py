"""History across retrainings: one row per fingerprint a model has had, and what changed between two."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from reportgen.stats.bootstrap import LEVEL, N_BOOT, SEED, paired_bootstraps
from reportgen.stats.frames import (
    latest_results,
    metric_columns,
    per_prompt_frame,
    per_prompt_metric_names,
    score_rows,
)
from reportgen.stats.metrics import get_metric
from reportgen.study.prompts import PromptSet


# ---------------------------------------------------------------------------------------------
# History across retrainings


def history_frame(
    model_runs: pd.DataFrame,
    results: pd.DataFrame,
    model_id: str,
    prompt_set: "PromptSet | None" = None,
    metrics: Iterable[str] | None = None,
) -> pd.DataFrame:
    """One row per fingerprint the model has had, oldest first: first_run_at, last_run_at (epoch s),
    n_runs, last_run_id, fingerprint, n_prompts, n_failed, and the mean of each metric over that
    fingerprint's latest results. Without a prompt set only the text metrics can be computed."""
    return _history(model_runs, results, model_id, prompt_set, metrics)[0]


def _history(
    model_runs: pd.DataFrame,
    results: pd.DataFrame,
    model_id: str,
    prompt_set: "PromptSet | None",
    metrics: Iterable[str] | None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """``history_frame``, and each fingerprint's per-prompt frame it was computed from."""
    names = per_prompt_metric_names(prompt_set, metrics)
    runs = model_runs[model_runs["model_id"] == model_id].sort_values("started_at", kind="stable")
    mine = results[results["model_id"] == model_id] if not results.empty else results
    fingerprints = list(dict.fromkeys(runs["fingerprint"].tolist() + list(mine.get("fingerprint", pd.Series()).tolist())))
    records = []
    scored_by: dict[str, pd.DataFrame] = {}
    for fingerprint in fingerprints:
        its_runs = runs[runs["fingerprint"] == fingerprint]
        rows = latest_results(mine, {model_id: fingerprint}) if len(mine) else mine
        if prompt_set is not None:
            scored = per_prompt_frame(rows, prompt_set, metrics=names)
        else:
            scored = pd.DataFrame(score_rows(rows, {}, names)) if len(rows) else pd.DataFrame(columns=names)
            scored["failed"] = (rows["finish_reason"] == "error").to_numpy() if len(rows) else []
        scored_by[fingerprint] = scored
        created = mine.loc[mine["fingerprint"] == fingerprint, "created_at"] if len(mine) else pd.Series(dtype=float)
        started = its_runs["started_at"] if len(its_runs) else created
        records.append(
            {
                "fingerprint": fingerprint,
                "first_run_at": float(started.min()) if len(started) else math.nan,
                "last_run_at": float(started.max()) if len(started) else math.nan,
                "n_runs": int(its_runs["run_id"].nunique()),
                "last_run_id": its_runs["run_id"].iloc[-1] if len(its_runs) else None,
                "n_prompts": int(len(scored)),
                "n_failed": int(scored["failed"].sum()) if len(scored) else 0,
                **{name: float(np.nanmean(scored[name])) if scored[name].notna().any() else math.nan for name in names},
            }
        )
    columns = ["fingerprint", "first_run_at", "last_run_at", "n_runs", "last_run_id", "n_prompts", "n_failed", *names]
    history = pd.DataFrame(records, columns=columns).sort_values("first_run_at", kind="stable").reset_index(drop=True)
    return history, scored_by


def run_delta(
    per_prompt_old: pd.DataFrame,
    per_prompt_new: pd.DataFrame,
    metric: str,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
) -> dict[str, Any]:
    """What changed between two runs of one model, on the prompts both answered (paired-bootstrap CI;
    p-value from McNemar exact for a 0/1 metric, else the paired sign-flip permutation test).

    Returns metric, n, mean_old, mean_new, diff (new − old), ci_low, ci_high, p_value, significant,
    improved (True/False when significant and the metric has a direction, else None).
    """
    return run_deltas(per_prompt_old, per_prompt_new, [metric], n_boot=n_boot, seed=seed, level=level)[0]


def run_deltas(
    per_prompt_old: pd.DataFrame,
    per_prompt_new: pd.DataFrame,
    metrics: Iterable[str],
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
) -> list[dict[str, Any]]:
    """``run_delta`` of each metric, the bootstraps and tests computed together (``paired_bootstraps``)."""
    for name, frame in (("old", per_prompt_old), ("new", per_prompt_new)):
        if frame["prompt_id"].duplicated().any():
            raise ValueError(f"run_delta: the {name} frame has several rows per prompt; pass one model's per-prompt frame")
    metrics = list(metrics)
    joined = per_prompt_old[["prompt_id", *metrics]].merge(
        per_prompt_new[["prompt_id", *metrics]], on="prompt_id", suffixes=("_old", "_new")
    )
    tests = paired_bootstraps(
        [(joined[f"{m}_new"].to_numpy(float), joined[f"{m}_old"].to_numpy(float), get_metric(m).binary) for m in metrics],
        n_boot=n_boot,
        seed=seed,
        level=level,
    )
    out = []
    for metric, test in zip(metrics, tests):
        direction = get_metric(metric).higher_is_better
        improved = None
        if test["significant"] and direction is not None:
            improved = (test["diff"] > 0) == direction
        out.append(
            {
                "metric": metric,
                "n": test["n"],
                "mean_old": test["mean_b"],
                "mean_new": test["mean_a"],
                "diff": test["diff"],
                "ci_low": test["ci_low"],
                "ci_high": test["ci_high"],
                "p_value": test["p_value"],
                "significant": test["significant"],
                "improved": improved,
            }
        )
    return out


@dataclass
class RetrainingDelta:
    """A model's change between its last two fingerprints, metric by metric (new − old, paired)."""

    model_id: str
    old_fingerprint: str
    new_fingerprint: str
    old_run_at: float
    new_run_at: float
    deltas: pd.DataFrame  # metric, n, mean_old, mean_new, diff, ci_low, ci_high, p_value, significant, improved
    history: pd.DataFrame  # one row per fingerprint, oldest first (history_frame)

    @property
    def worse(self) -> list[str]:
        return [row.metric for row in self.deltas.itertuples() if row.improved is False]

    @property
    def better(self) -> list[str]:
        return [row.metric for row in self.deltas.itertuples() if row.improved is True]


def retraining_delta(
    results: pd.DataFrame, model_runs: pd.DataFrame, prompt_set: PromptSet, model_id: str
) -> RetrainingDelta | None:
    """The change of a model between its last two fingerprints (None if it has had only one)."""
    if results.empty or results.loc[results["model_id"] == model_id, "fingerprint"].nunique() < 2:
        return None  # one set of answers: nothing changed (and no history frame to score)
    history, scored_by = _history(model_runs, results, model_id, prompt_set, None)
    history = history[history["n_prompts"] > 0].reset_index(drop=True)
    if len(history) < 2:
        return None
    old, new = history.iloc[-2], history.iloc[-1]
    frames = {"old": scored_by[old["fingerprint"]], "new": scored_by[new["fingerprint"]]}
    names = [m for m in metric_columns(frames["new"]) if m in frames["old"].columns]
    deltas = pd.DataFrame(run_deltas(frames["old"], frames["new"], names))
    return RetrainingDelta(
        model_id, old["fingerprint"], new["fingerprint"], old["last_run_at"], new["last_run_at"], deltas, history
    )
