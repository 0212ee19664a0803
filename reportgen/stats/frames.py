"""Store rows → per-prompt frames → summaries per model and per category, and pairwise comparisons.

A generation that failed (``finish_reason == 'error'``) is kept in ``per_prompt`` with ``failed=True``
and NaN metrics: quality is measured on the prompts a model answered, failures are counted apart.
Means skip NaN, and ``n`` always says how many values a mean is over.

Intervals (``level`` 0.95 by default, ``ci_method`` names the method): a 0/1 metric's mean is a
proportion with a Wilson interval; other means get a BCa bootstrap over prompts. Fewer than two values,
or constant values, give no interval (NaN, and ``ci_method`` says why), never a zero-width one.

Pairwise differences are ``model_a − model_b`` on the prompts both answered, with a paired-bootstrap CI.
The p-value is a test against the null of no difference (``reportgen.stats.inference``): McNemar's exact
test for 0/1 metrics, the paired sign-flip permutation test otherwise; ``p_holm`` is Holm-adjusted over
one metric's pairs, and ``significant`` means ``p_holm`` < 1 − level.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import TYPE_CHECKING, Any, Container, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from reportgen.stats.bootstrap import (
    LEVEL,
    N_BOOT,
    SEED,
    holm,
    paired_bootstraps,
)
from reportgen.stats import inference
from reportgen.stats.scoring import score_columns
from reportgen.stats.metrics import (
    METRICS,
    PER_PROMPT_KINDS,
    get_metric,
    metrics_of_kind,
)

if TYPE_CHECKING:
    from reportgen.study.prompts import PromptSet

PER_PROMPT_COLUMNS = [
    "model_id",
    "prompt_id",
    "category",
    "output",
    "references",
    "finish_reason",
    "prompt_tokens",
    "output_tokens",
    "latency_s",
    "ttft_s",
    "batch_size",
    "failed",
    "error",
    "fingerprint",
    "run_id",
]
SUMMARY_COLUMNS = ["model_id", "metric", "mean", "ci_low", "ci_high", "n", "ci_method"]
CATEGORY_COLUMNS = ["model_id", "category", "metric", "mean", "ci_low", "ci_high", "n", "ci_method"]
PAIRWISE_COLUMNS = [
    "metric",
    "model_a",
    "model_b",
    "n",
    "mean_a",
    "mean_b",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "significant",
    "better",
]

# ---------------------------------------------------------------------------------------------
# Selecting the current rows


def current_fingerprint(rows: pd.DataFrame, time_column: str) -> str:
    return str(rows.sort_values(time_column, kind="stable")["fingerprint"].iloc[-1])


def ordered_models(models: Iterable[str], order: Sequence[str] | None) -> list[str]:
    models = list(dict.fromkeys(models.tolist() if isinstance(models, pd.Series) else models))
    if order is None:
        return sorted(models)
    known = [m for m in order if m in models]
    return known + sorted(m for m in models if m not in known)


def _own_setup(
    model_id: str, results: pd.DataFrame, model_runs: pd.DataFrame | None, fingerprint: str | None
) -> tuple[str, str] | None:
    """(fingerprint, settings hash) of ``model_id``'s most recent record: a result it stored or a run of it
    (an entry that reuses another entry's answers stores none of its own, but its runs name its weights and
    settings). ``fingerprint``, when given, pins the weights."""
    candidates = []
    own = results[results["model_id"] == model_id]
    if len(own):
        candidates.append(own[["fingerprint", "settings_hash", "created_at"]].rename(columns={"created_at": "at"}))
    if model_runs is not None and len(model_runs):
        runs = model_runs[model_runs["model_id"] == model_id]
        if len(runs):
            candidates.append(runs[["fingerprint", "settings_hash", "started_at"]].rename(columns={"started_at": "at"}))
    if not candidates:
        return None
    rows = pd.concat(candidates, ignore_index=True)
    if fingerprint:
        rows = rows[rows["fingerprint"] == fingerprint]
        if rows.empty:
            return None
    latest = rows.sort_values("at", kind="stable").iloc[-1]
    return str(latest["fingerprint"]), str(latest["settings_hash"])


def latest_results(
    results: pd.DataFrame,
    fingerprints: Mapping[str, str | None] | None = None,
    settings_hashes: Mapping[str, str] | None = None,
    model_runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The answers each model entry reports, one row per prompt, under that entry's id.

    ``fingerprints``: model_id → the fingerprint to report (what the runner computed for the current
    config). Models missing from the mapping are dropped; a None value, or ``fingerprints=None``, means
    "the fingerprint of the model's most recent record" (a result it stored, or a run of it in
    ``model_runs``). The answers are those stored for that fingerprint and the generation settings of the
    same record (or ``settings_hashes[model_id]``), by whichever entry stored them: entries with the same
    weights and settings share their answers, and each still gets its own rows. ``answered_by`` names the
    entry that stored each answer. Then the newest row per prompt wins.
    """
    if results.empty:
        return results.assign(answered_by=results["model_id"]) if "model_id" in results else results.copy()
    keep: list[pd.DataFrame] = []
    candidates = results["model_id"].tolist()
    if model_runs is not None and len(model_runs):
        candidates += list(model_runs["model_id"])
    order = list(fingerprints) if fingerprints is not None else None
    for model_id in ordered_models(candidates, order):
        if fingerprints is not None and model_id not in fingerprints:
            continue
        setup = _own_setup(model_id, results, model_runs, (fingerprints or {}).get(model_id))
        if setup is None:
            continue
        fingerprint, settings = setup
        settings = (settings_hashes or {}).get(model_id) or settings
        rows = results[(results["fingerprint"] == fingerprint) & (results["settings_hash"] == settings)]
        if rows.empty:
            continue
        rows = rows.sort_values(["created_at", "request_hash"], kind="stable").drop_duplicates("prompt_id", keep="last")
        rows = rows.assign(answered_by=rows["model_id"], model_id=model_id)
        keep.append(rows.sort_values("prompt_id", kind="stable"))
    if not keep:
        return results.iloc[0:0].assign(answered_by=results["model_id"].iloc[0:0])
    return pd.concat(keep, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Per prompt


def per_prompt_metric_names(prompt_set: "PromptSet | None", metrics: Iterable[str] | None) -> list[str]:
    if metrics is not None:
        chosen = [get_metric(name) for name in metrics]
        wrong = [m.name for m in chosen if m.kind not in PER_PROMPT_KINDS]
        if wrong:
            raise ValueError(f"per-prompt frames take reference and text metrics, not {', '.join(wrong)}")
        return [m.name for m in chosen]
    has_references = prompt_set is not None and any(p.all_references for p in prompt_set.prompts)
    kinds = PER_PROMPT_KINDS if has_references else ("text",)
    return [m.name for m in metrics_of_kind(*kinds)]


def in_keys(column: pd.Series, keys: Container[Any]) -> np.ndarray:
    """Which values of ``column`` are in ``keys`` (a set or dict): ``Series.isin`` of a string column costs
    ~10 times as much (it converts every key first)."""
    return np.fromiter((value in keys for value in column.tolist()), dtype=bool, count=len(column))


def none_if_nan(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def score_rows(rows: pd.DataFrame, references: Mapping[str, tuple[str, ...]], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each named metric for each stored answer (NaN for a failed one), each distinct answer scored once:
    see ``stats.scoring``."""
    # .tolist() first: iterating a pandas (Arrow-backed) column value by value costs ~5 times as much
    tokens = [none_if_nan(t) for t in rows["output_tokens"].tolist()] if len(rows) else []
    return score_columns(
        [text or "" for text in rows["text"].tolist()],
        [references.get(p, ()) for p in rows["prompt_id"].tolist()],
        rows["finish_reason"].tolist(),
        [None if t is None else int(t) for t in tokens],
        names,
    )


def per_prompt_frame(
    results: pd.DataFrame,
    prompt_set: "PromptSet | None",
    metrics: Iterable[str] | None = None,
    model_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (model_id, prompt_id) of the prompt set, with a column per applicable metric.

    Pass ``latest_results(...)``; if several rows remain for a prompt, the newest counts. Prompts not
    in the prompt set (removed since the run) are dropped. Reference metrics are included when any
    prompt has references (NaN on prompts without). Failed generations get NaN metrics.
    Rows follow ``model_order`` (else model id) and then the prompt set's order.
    """
    names = per_prompt_metric_names(prompt_set, metrics)
    columns = PER_PROMPT_COLUMNS + names
    if results.empty or prompt_set is None:
        return pd.DataFrame(columns=columns)
    position = {p.id: i for i, p in enumerate(prompt_set.prompts)}
    category = {p.id: p.category for p in prompt_set.prompts}
    references = {p.id: tuple(p.all_references) for p in prompt_set.prompts}

    rows = results[in_keys(results["prompt_id"], position)]
    rows = rows.sort_values(["created_at"], kind="stable").drop_duplicates(["model_id", "prompt_id"], keep="last")
    models = ordered_models(rows["model_id"], model_order)
    rank = {m: i for i, m in enumerate(models)}
    prompt_ids = rows["prompt_id"].tolist()
    rows = rows.assign(_m=[rank[m] for m in rows["model_id"].tolist()], _p=[position[p] for p in prompt_ids])
    rows = rows.sort_values(["_m", "_p"], kind="stable").reset_index(drop=True)
    prompt_ids = rows["prompt_id"].tolist()

    frame = pd.DataFrame(
        {
            "model_id": rows["model_id"],
            "prompt_id": rows["prompt_id"],
            "category": [category[p] for p in prompt_ids],
            "output": rows["text"].fillna(""),
            "references": [references[p] for p in prompt_ids],
            "finish_reason": rows["finish_reason"],
            "prompt_tokens": pd.to_numeric(rows.get("prompt_tokens"), errors="coerce").astype(float),
            "output_tokens": pd.to_numeric(rows.get("output_tokens"), errors="coerce").astype(float),
            "latency_s": pd.to_numeric(rows.get("latency_s"), errors="coerce").astype(float),
            "ttft_s": pd.to_numeric(rows.get("ttft_s"), errors="coerce").astype(float),
            "batch_size": pd.to_numeric(rows.get("batch_size"), errors="coerce").astype(float),
            "failed": rows["finish_reason"] == "error",
            "error": rows["error"] if "error" in rows else None,
            "fingerprint": rows["fingerprint"],
            "run_id": rows["run_id"],
        }
    )
    for name, values in score_rows(rows, references, names).items():
        frame[name] = values
    return frame[columns]


def metric_columns(per_prompt: pd.DataFrame) -> list[str]:
    """The metric columns of a per-prompt frame, in registry order."""
    return [c for c in per_prompt.columns if c in METRICS and c not in PER_PROMPT_COLUMNS]


# ---------------------------------------------------------------------------------------------
# Summaries


def mean_interval(
    name: str, values: Iterable[float], n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> inference.Interval:
    """The interval of a metric's mean: Wilson for a 0/1 metric, else a BCa bootstrap (NaNs dropped)."""
    if get_metric(name).binary:
        return inference.proportion_interval(values, method="wilson", level=level)
    return inference.bootstrap_mean_interval(values, method="BCa", n_resamples=n_boot, seed=seed, level=level)


def _summarise(
    per_prompt: pd.DataFrame, keys: list[str], metrics: Sequence[str], n_boot: int, seed: int, level: float
) -> list[dict[str, Any]]:
    """One row per group and metric: Wilson for a 0/1 metric, else BCa bootstraps, all computed together
    (``inference.bootstrap_mean_intervals``: the same intervals as ``mean_interval`` one by one)."""
    places: list[tuple[tuple[Any, ...], str]] = []
    intervals: list[inference.Interval | None] = []
    boot: list[tuple[int, pd.Series]] = []
    for key_values, group in per_prompt.groupby(keys, sort=False):
        key_values = key_values if isinstance(key_values, tuple) else (key_values,)
        for name in metrics:
            places.append((key_values, name))
            if get_metric(name).binary:
                intervals.append(inference.proportion_interval(group[name], method="wilson", level=level))
            else:
                intervals.append(None)
                boot.append((len(intervals) - 1, group[name]))
    computed = inference.bootstrap_mean_intervals(
        [values for _, values in boot], method="BCa", n_resamples=n_boot, seed=seed, level=level
    )
    for (i, _), computed_ci in zip(boot, computed):
        intervals[i] = computed_ci
    rows = []
    for (key_values, name), ci in zip(places, intervals):
        if ci is None:  # every bootstrap place was filled above
            raise AssertionError(f"no interval for {name}")
        rows.append(
            {
                **dict(zip(keys, key_values)),
                "metric": name,
                "mean": ci.estimate,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "n": ci.n,
                "ci_method": ci.method if ci.estimable else ci.reason,
            }
        )
    return rows


def model_summary(
    per_prompt: pd.DataFrame, metrics: Sequence[str] | None = None, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> pd.DataFrame:
    """Long format: model_id, metric, mean, ci_low, ci_high, n (values the mean is over), ci_method."""
    metrics = list(metrics) if metrics is not None else metric_columns(per_prompt)
    rows = _summarise(per_prompt, ["model_id"], metrics, n_boot, seed, level) if not per_prompt.empty else []
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).astype({"n": int})


def category_summary(
    per_prompt: pd.DataFrame, metrics: Sequence[str] | None = None, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> pd.DataFrame:
    """Long format: model_id, category, metric, mean, ci_low, ci_high, n, ci_method (categories in prompt-set order)."""
    metrics = list(metrics) if metrics is not None else metric_columns(per_prompt)
    rows = _summarise(per_prompt, ["model_id", "category"], metrics, n_boot, seed, level) if not per_prompt.empty else []
    return pd.DataFrame(rows, columns=CATEGORY_COLUMNS).astype({"n": int})


# ---------------------------------------------------------------------------------------------
# Pairwise tests


def paired_comparisons(
    per_prompt: pd.DataFrame, metric: str, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> pd.DataFrame:
    """Every pair of models (a before b in the frame's order), on the prompts both answered.

    Columns: metric, model_a, model_b, n, mean_a, mean_b, diff (a − b), ci_low, ci_high (paired
    bootstrap), p_value (McNemar exact for a 0/1 metric, else the paired sign-flip permutation test),
    p_holm (Holm-adjusted over this metric's pairs), significant (p_holm < 1 − level), better (the better
    model's id when significant and the metric has a direction, else None).
    """
    return all_paired_comparisons(per_prompt, [metric], n_boot=n_boot, seed=seed, level=level)


def all_paired_comparisons(
    per_prompt: pd.DataFrame, metrics: Sequence[str] | None = None, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> pd.DataFrame:
    """``paired_comparisons`` of every metric, one frame; the bootstraps and tests of every pair of every
    metric are computed together (``bootstrap.paired_bootstraps``: the same results as one by one)."""
    metrics = list(metrics) if metrics is not None else metric_columns(per_prompt)
    if per_prompt.empty or not metrics:
        return pd.DataFrame(columns=PAIRWISE_COLUMNS)
    models = list(dict.fromkeys(per_prompt["model_id"].tolist()))
    places: list[tuple[str, str, str]] = []
    pairs: list[tuple[np.ndarray, np.ndarray, bool]] = []
    for metric in metrics:
        binary = get_metric(metric).binary
        table = per_prompt.pivot(index="prompt_id", columns="model_id", values=metric)
        for a, b in combinations(models, 2):
            places.append((metric, a, b))
            pairs.append((table[a].to_numpy(float), table[b].to_numpy(float), binary))
    tests = paired_bootstraps(pairs, n_boot=n_boot, seed=seed, level=level)
    frames = []
    for metric in metrics:
        direction = get_metric(metric).higher_is_better
        rows = [{"metric": m, "model_a": a, "model_b": b, **test} for (m, a, b), test in zip(places, tests) if m == metric]
        if not rows:
            continue
        p_holm = holm([r["p_value"] for r in rows])
        for row, adjusted in zip(rows, p_holm):
            row["significant"] = bool(adjusted < 1 - level)  # NaN (no test) compares False
            row["better"] = None
            if row["significant"] and direction is not None:
                row["better"] = row["model_a"] if (row["diff"] > 0) == direction else row["model_b"]
        frame = pd.DataFrame(rows, columns=[c for c in PAIRWISE_COLUMNS if c != "p_holm"])
        frame.insert(PAIRWISE_COLUMNS.index("p_holm"), "p_holm", p_holm)
        frame["better"] = pd.Series([r["better"] for r in rows], dtype=object)  # None stays None, not NaN
        frames.append(frame.astype({"n": int, "significant": bool}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAIRWISE_COLUMNS)
