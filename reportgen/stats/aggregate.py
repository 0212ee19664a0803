"""Aggregation: results-store rows → pandas frames, with bootstrap confidence intervals.

Pure functions over data frames; the only one that touches I/O is ``compute_tables``, which reads a
``Store`` it is handed. Everything is deterministic (fixed seeds, stable orders), so re-rendering a
report from the same store is byte-identical.

Conventions the report relies on:

* A generation that failed (``finish_reason == 'error'``) is kept in ``per_prompt`` with ``failed=True``
  and NaN metrics: quality is measured on the prompts a model answered, failures are counted apart
  (``efficiency.n_failed``). Means skip NaN, and ``n`` always says how many values a mean is over.
* Confidence intervals are percentile bootstraps over prompts (``level`` 0.95 by default). With few
  prompts (under ~10) they are too narrow; with a 0/1 metric that is constant they have zero width.
* Pairwise differences are ``model_a − model_b`` on the prompts both answered; ``significant`` means the
  paired-bootstrap CI excludes 0 (no correction for the number of pairs; ``p_holm`` has one).
* Times are seconds, sizes bytes, timestamps Unix epoch seconds (the store's ``started_at``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from reportgen.stats.metrics import LN2, METRICS, PER_PROMPT_KINDS, get_metric, metrics_of_kind

if TYPE_CHECKING:
    from reportgen.study.config import Study
    from reportgen.study.prompts import PromptSet
    from reportgen.store import Store

N_BOOT = 2000
SEED = 0
LEVEL = 0.95
# bootstrap index matrices are built in chunks of at most this many cells (memory stays ~64 MB)
_CHUNK_CELLS = 8_000_000

PER_PROMPT_COLUMNS = [
    "model_id", "prompt_id", "category", "output", "references", "finish_reason", "prompt_tokens",
    "output_tokens", "latency_s", "ttft_s", "batch_size", "failed", "error", "fingerprint", "run_id",
]
SUMMARY_COLUMNS = ["model_id", "metric", "mean", "ci_low", "ci_high", "n"]
CATEGORY_COLUMNS = ["model_id", "category", "metric", "mean", "ci_low", "ci_high", "n"]
PAIRWISE_COLUMNS = [
    "metric", "model_a", "model_b", "n", "mean_a", "mean_b", "diff", "ci_low", "ci_high",
    "p_value", "p_holm", "significant", "better",
]
EFFICIENCY_COLUMNS = [
    "model_id", "device", "precision", "n_prompts", "n_failed", "load_time_s", "ttft_p50_s", "ttft_p95_s",
    "latency_p50_s", "latency_p95_s", "generated_tokens", "generate_time_s", "tokens_per_s",
    "throughput_source", "decode_steps", "decode_steps_per_s", "mean_batch_size", "peak_memory_bytes",
    "weight_bytes", "bandwidth_bytes_per_s", "bandwidth_share",
]
LM_COLUMNS = [
    "model_id", "fingerprint", "n_texts", "n_tokens", "n_bytes", "nll_nats",
    "bits_per_byte", "bpb_ci_low", "bpb_ci_high", "perplexity",
]


# ---------------------------------------------------------------------------------------------
# Bootstrap


def _clean(values: Iterable[float]) -> np.ndarray:
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
    data = _clean(values)
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


# ---------------------------------------------------------------------------------------------
# Selecting the current rows


def _current_fingerprint(rows: pd.DataFrame, time_column: str) -> str:
    return rows.sort_values(time_column, kind="stable")["fingerprint"].iloc[-1]


def _ordered_models(models: Iterable[str], order: Sequence[str] | None) -> list[str]:
    models = list(dict.fromkeys(models))
    if order is None:
        return sorted(models)
    known = [m for m in order if m in models]
    return known + sorted(m for m in models if m not in known)


def latest_results(
    results: pd.DataFrame,
    fingerprints: Mapping[str, str | None] | None = None,
    settings_hashes: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The rows of each model's current fingerprint, one per prompt.

    ``fingerprints``: model_id → the fingerprint to report (what the runner computed for the current
    config). Models missing from the mapping are dropped; a None value, or ``fingerprints=None``,
    means "the fingerprint of the model's most recent row". Within that fingerprint, only rows of the
    generation settings of its most recent row are kept (or ``settings_hashes[model_id]``), so a run
    under changed settings never mixes with older outputs; then the newest row per prompt wins.
    """
    if results.empty:
        return results.copy()
    keep: list[pd.DataFrame] = []
    order = list(fingerprints) if fingerprints is not None else None
    for model_id in _ordered_models(results["model_id"], order):
        rows = results[results["model_id"] == model_id]
        if fingerprints is not None and model_id not in fingerprints:
            continue
        fingerprint = (fingerprints or {}).get(model_id) or _current_fingerprint(rows, "created_at")
        rows = rows[rows["fingerprint"] == fingerprint]
        if rows.empty:
            continue
        settings = (settings_hashes or {}).get(model_id) or rows.sort_values("created_at", kind="stable")["settings_hash"].iloc[-1]
        rows = rows[rows["settings_hash"] == settings]
        rows = rows.sort_values(["created_at", "request_hash"], kind="stable").drop_duplicates("prompt_id", keep="last")
        keep.append(rows.sort_values("prompt_id", kind="stable"))
    if not keep:
        return results.iloc[0:0].copy()
    return pd.concat(keep, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Per prompt


def _per_prompt_metric_names(prompt_set: "PromptSet | None", metrics: Iterable[str] | None) -> list[str]:
    if metrics is not None:
        chosen = [get_metric(name) for name in metrics]
        wrong = [m.name for m in chosen if m.kind not in PER_PROMPT_KINDS]
        if wrong:
            raise ValueError(f"per-prompt frames take reference and text metrics, not {', '.join(wrong)}")
        return [m.name for m in chosen]
    has_references = prompt_set is not None and any(p.all_references for p in prompt_set.prompts)
    kinds = PER_PROMPT_KINDS if has_references else ("text",)
    return [m.name for m in metrics_of_kind(*kinds)]


def _none_if_nan(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _score_rows(rows: pd.DataFrame, references: Mapping[str, tuple[str, ...]], names: Sequence[str]) -> dict[str, list[float]]:
    chosen = [get_metric(name) for name in names]
    columns: dict[str, list[float]] = {name: [] for name in names}
    for text, prompt_id, finish_reason, output_tokens in zip(
        rows["text"], rows["prompt_id"], rows["finish_reason"], rows["output_tokens"]
    ):
        failed = finish_reason == "error"
        refs = references.get(prompt_id, ())
        tokens = _none_if_nan(output_tokens)
        for m in chosen:
            value = math.nan if failed else m.score(
                text or "", refs, finish_reason=finish_reason, output_tokens=None if tokens is None else int(tokens)
            )
            columns[m.name].append(value)
    return columns


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
    names = _per_prompt_metric_names(prompt_set, metrics)
    columns = PER_PROMPT_COLUMNS + names
    if results.empty or prompt_set is None:
        return pd.DataFrame(columns=columns)
    position = {p.id: i for i, p in enumerate(prompt_set.prompts)}
    category = {p.id: p.category for p in prompt_set.prompts}
    references = {p.id: tuple(p.all_references) for p in prompt_set.prompts}

    rows = results[results["prompt_id"].isin(position)]
    rows = rows.sort_values(["created_at"], kind="stable").drop_duplicates(["model_id", "prompt_id"], keep="last")
    models = _ordered_models(rows["model_id"], model_order)
    rank = {m: i for i, m in enumerate(models)}
    rows = rows.assign(_m=rows["model_id"].map(rank), _p=rows["prompt_id"].map(position))
    rows = rows.sort_values(["_m", "_p"], kind="stable").reset_index(drop=True)

    frame = pd.DataFrame(
        {
            "model_id": rows["model_id"],
            "prompt_id": rows["prompt_id"],
            "category": rows["prompt_id"].map(category),
            "output": rows["text"].fillna(""),
            "references": [references[p] for p in rows["prompt_id"]],
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
    for name, values in _score_rows(rows, references, names).items():
        frame[name] = np.asarray(values, dtype=float)
    return frame[columns]


def metric_columns(per_prompt: pd.DataFrame) -> list[str]:
    """The metric columns of a per-prompt frame, in registry order."""
    return [c for c in per_prompt.columns if c in METRICS and c not in PER_PROMPT_COLUMNS]


# ---------------------------------------------------------------------------------------------
# Summaries


def _summarise(per_prompt: pd.DataFrame, keys: list[str], metrics: Sequence[str], n_boot: int, seed: int, level: float) -> list[dict]:
    rows = []
    for key_values, group in per_prompt.groupby(keys, sort=False):
        key_values = key_values if isinstance(key_values, tuple) else (key_values,)
        for name in metrics:
            values = _clean(group[name])
            mean, low, high = bootstrap_ci(values, n_boot=n_boot, seed=seed, level=level)
            rows.append({**dict(zip(keys, key_values)), "metric": name, "mean": mean, "ci_low": low, "ci_high": high, "n": int(values.size)})
    return rows


def model_summary(
    per_prompt: pd.DataFrame, metrics: Sequence[str] | None = None, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> pd.DataFrame:
    """Long format: model_id, metric, mean, ci_low, ci_high, n (values the mean is over)."""
    metrics = list(metrics) if metrics is not None else metric_columns(per_prompt)
    rows = _summarise(per_prompt, ["model_id"], metrics, n_boot, seed, level) if not per_prompt.empty else []
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).astype({"n": int})


def category_summary(
    per_prompt: pd.DataFrame, metrics: Sequence[str] | None = None, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> pd.DataFrame:
    """Long format: model_id, category, metric, mean, ci_low, ci_high, n (categories in prompt-set order)."""
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
    bootstrap), p_value (two-sided bootstrap), p_holm (Holm-adjusted over this metric's pairs),
    significant (CI excludes 0), better (the better model's id when significant and the metric has a
    direction, else None).
    """
    direction = get_metric(metric).higher_is_better
    if per_prompt.empty:
        return pd.DataFrame(columns=PAIRWISE_COLUMNS)
    models = list(dict.fromkeys(per_prompt["model_id"]))
    table = per_prompt.pivot(index="prompt_id", columns="model_id", values=metric)
    rows = []
    for a, b in combinations(models, 2):
        test = paired_bootstrap(table[a].to_numpy(float), table[b].to_numpy(float), n_boot=n_boot, seed=seed, level=level)
        better = None
        if test["significant"] and direction is not None:
            better = a if (test["diff"] > 0) == direction else b
        rows.append({"metric": metric, "model_a": a, "model_b": b, **test, "better": better})
    frame = pd.DataFrame(rows, columns=[c for c in PAIRWISE_COLUMNS if c != "p_holm"])
    frame.insert(PAIRWISE_COLUMNS.index("p_holm"), "p_holm", holm(frame["p_value"].tolist()))
    frame["better"] = pd.Series([r["better"] for r in rows], dtype=object)  # None stays None, not NaN
    return frame.astype({"n": int, "significant": bool})


def all_paired_comparisons(
    per_prompt: pd.DataFrame, metrics: Sequence[str] | None = None, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL
) -> pd.DataFrame:
    metrics = list(metrics) if metrics is not None else metric_columns(per_prompt)
    frames = [paired_comparisons(per_prompt, m, n_boot=n_boot, seed=seed, level=level) for m in metrics]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAIRWISE_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Efficiency


def _batches(rows: pd.DataFrame) -> pd.DataFrame:
    """Reconstruct batches from result rows: rows of one batch share run, batch size and latency
    (the backend reports the batch's wall time for each of its prompts). Columns: steps (the
    longest output in the batch: a batch decodes until its last sequence ends), tokens, seconds."""
    if rows.empty:
        return pd.DataFrame(columns=["steps", "tokens", "seconds", "size"])
    size = pd.to_numeric(rows["batch_size"], errors="coerce").fillna(1)
    key = np.where(size > 1, rows["run_id"].astype(str) + "|" + size.astype(int).astype(str) + "|" + rows["latency_s"].astype(str), rows.index.astype(str))
    tokens = pd.to_numeric(rows["output_tokens"], errors="coerce").fillna(0)
    grouped = pd.DataFrame({"key": key, "tokens": tokens, "latency": pd.to_numeric(rows["latency_s"], errors="coerce")}).groupby("key", sort=False)
    return pd.DataFrame(
        {"steps": grouped["tokens"].max(), "tokens": grouped["tokens"].sum(), "seconds": grouped["latency"].first(), "size": grouped.size()}
    )


def _last_value(runs: pd.DataFrame, column: str, prefer: pd.Series | None) -> Any:
    if prefer is not None and _none_if_nan(prefer.get(column)) is not None:
        return prefer[column]
    values = runs[column].dropna() if column in runs else pd.Series(dtype=object)
    return values.iloc[-1] if len(values) else None


def _details(run: pd.Series | None) -> dict:
    if run is None or not isinstance(run.get("details"), str):
        return {}
    try:
        value = json.loads(run["details"])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _manifest_bandwidths(runs: pd.DataFrame | None) -> dict[str, float]:
    """run_id → manifest['hardware']['memory_bandwidth_bytes_per_s'] (hardware_summary(measure_bandwidth=True))."""
    found: dict[str, float] = {}
    if runs is None or runs.empty or "manifest" not in runs:
        return found
    for run_id, manifest in zip(runs["run_id"], runs["manifest"]):
        try:
            hardware = json.loads(manifest).get("hardware") or {}
            value = hardware.get("memory_bandwidth_bytes_per_s") if isinstance(hardware, dict) else None
        except (TypeError, ValueError, AttributeError):
            continue
        if value:
            found[run_id] = float(value)
    return found


def _bandwidth_for(
    device: str | None, given: float | Mapping[str, float] | None, run: pd.Series | None, manifests: Mapping[str, float]
) -> float | None:
    if isinstance(given, Mapping):
        if device is None:
            return None
        return given.get(device, given.get(device.split(":")[0]))
    host_memory = device is None or device.startswith("cpu")
    if given is not None:
        # a single figure is host-memory bandwidth (hardware.measure_memory_bandwidth): CPU runs only
        return float(given) if host_memory else None
    recorded = _details(run).get("memory_bandwidth_bytes_per_s")  # the runner's figure for this device
    if recorded:
        return float(recorded)
    if host_memory and run is not None and run.get("run_id") in manifests:
        return manifests[run["run_id"]]
    return None


def efficiency_frame(
    results: pd.DataFrame,
    model_runs: pd.DataFrame,
    weight_bytes: Mapping[str, int | None] | None = None,
    bandwidth_bytes_per_s: float | Mapping[str, float] | None = None,
    model_order: Sequence[str] | None = None,
    runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Speed and memory per model, from its current results and its runs (see EFFICIENCY_COLUMNS).

    * tokens_per_s = generated_tokens / generate_time_s of the model's latest run (for the current
      fingerprint) that generated anything (``throughput_source`` 'run'); else Σ output tokens / Σ
      batch wall time over the results ('latency': per stream, for concurrent HTTP requests).
    * decode_steps: per reconstructed batch, the longest output (one decoder step gives every
      sequence of the batch one token); decode_steps_per_s divides by the same time as tokens_per_s,
      prefill included, so it is a lower bound on the pure decode rate.
    * bandwidth_share = weight_bytes × decode_steps_per_s ÷ bandwidth. Assumes each decode step
      reads all weights once (a batch shares that read, so steps, not tokens) and ignores KV-cache
      traffic. ``bandwidth_bytes_per_s``: a float is host-memory bandwidth, applied to CPU runs only;
      a mapping is per device ('cpu', 'cuda', 'cuda:0'); None uses ``memory_bandwidth_bytes_per_s`` from
      the model run's ``details`` if the runner recorded it there, else (CPU runs) from the ``runs``
      frame's manifest ``hardware`` entry. Without one, the share is NaN.
    * weight_bytes: the mapping's value, else the run's recorded ``weight_bytes``.
    * latency and TTFT percentiles are over the answered prompts (a batched prompt counts its batch's time).
    """
    records = []
    manifests = _manifest_bandwidths(runs)
    models = _ordered_models(results["model_id"], model_order) if not results.empty else []
    for model_id in models:
        rows = results[results["model_id"] == model_id]
        ok = rows[rows["finish_reason"] != "error"]
        fingerprints = set(rows["fingerprint"])
        runs = model_runs[(model_runs["model_id"] == model_id) & model_runs["fingerprint"].isin(fingerprints)]
        runs = runs.sort_values("started_at", kind="stable")
        generating = runs[(runs["generated_tokens"] > 0) & (runs["generate_time_s"] > 0)]
        run = generating.iloc[-1] if len(generating) else (runs.iloc[-1] if len(runs) else None)

        if len(generating):
            generated, seconds, source = float(run["generated_tokens"]), float(run["generate_time_s"]), "run"
            batches = _batches(ok[ok["run_id"] == run["run_id"]])
            steps = float(batches["steps"].sum()) if len(batches) else math.nan
            mean_batch = float(batches["size"].sum() / len(batches)) if len(batches) else math.nan
        else:
            batches = _batches(ok)
            generated = float(batches["tokens"].sum()) if len(batches) else math.nan
            seconds = float(batches["seconds"].sum()) if len(batches) else math.nan
            steps = float(batches["steps"].sum()) if len(batches) else math.nan
            mean_batch = float(batches["size"].sum() / len(batches)) if len(batches) else math.nan
            source = "latency" if len(batches) else None
        tokens_per_s = METRICS.get("tokens_per_s")(generated, seconds)
        steps_per_s = METRICS.get("decode_steps_per_s")(steps, seconds)

        device = _none_if_nan(_last_value(runs, "device", run))
        precision = _none_if_nan(_last_value(runs, "precision", run))
        weights = (weight_bytes or {}).get(model_id)
        if weights is None:
            weights = _none_if_nan(_last_value(runs, "weight_bytes", run))
        bandwidth = _bandwidth_for(device, bandwidth_bytes_per_s, run, manifests)
        load_time = _none_if_nan(_last_value(runs, "load_time_s", run))
        peak = _none_if_nan(_last_value(runs, "peak_memory_bytes", run))
        ttft = pd.to_numeric(ok["ttft_s"], errors="coerce").tolist()
        latency = pd.to_numeric(ok["latency_s"], errors="coerce").tolist()
        records.append(
            {
                "model_id": model_id,
                "device": device,
                "precision": precision,
                "n_prompts": int(len(rows)),
                "n_failed": int(len(rows) - len(ok)),
                "load_time_s": METRICS.get("load_time_s")(load_time),
                "ttft_p50_s": METRICS.get("ttft_p50_s")(ttft),
                "ttft_p95_s": METRICS.get("ttft_p95_s")(ttft),
                "latency_p50_s": METRICS.get("latency_p50_s")(latency),
                "latency_p95_s": METRICS.get("latency_p95_s")(latency),
                "generated_tokens": generated,
                "generate_time_s": seconds,
                "tokens_per_s": tokens_per_s,
                "throughput_source": source,
                "decode_steps": steps,
                "decode_steps_per_s": steps_per_s,
                "mean_batch_size": mean_batch,
                "peak_memory_bytes": METRICS.get("peak_memory_bytes")(peak),
                "weight_bytes": math.nan if weights is None else float(weights),
                "bandwidth_bytes_per_s": math.nan if bandwidth is None else float(bandwidth),
                "bandwidth_share": METRICS.get("bandwidth_share")(weights, steps_per_s, bandwidth),
            }
        )
    return pd.DataFrame(records, columns=EFFICIENCY_COLUMNS)


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
    for model_id in _ordered_models(candidates, order):
        if fingerprints is not None and model_id not in fingerprints:
            continue
        fingerprint = (fingerprints or {}).get(model_id)
        if not fingerprint:
            own = loglik[loglik["model_id"] == model_id]
            if own.empty:
                continue
            fingerprint = _current_fingerprint(own, "created_at")
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
    names = _per_prompt_metric_names(prompt_set, metrics)
    runs = model_runs[model_runs["model_id"] == model_id].sort_values("started_at", kind="stable")
    mine = results[results["model_id"] == model_id] if not results.empty else results
    fingerprints = list(dict.fromkeys(list(runs["fingerprint"]) + list(mine.get("fingerprint", []))))
    records = []
    for fingerprint in fingerprints:
        its_runs = runs[runs["fingerprint"] == fingerprint]
        rows = latest_results(mine, {model_id: fingerprint}) if len(mine) else mine
        if prompt_set is not None:
            scored = per_prompt_frame(rows, prompt_set, metrics=names)
        else:
            scored = pd.DataFrame(_score_rows(rows, {}, names)) if len(rows) else pd.DataFrame(columns=names)
            scored["failed"] = (rows["finish_reason"] == "error").to_numpy() if len(rows) else []
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
    return pd.DataFrame(records, columns=columns).sort_values("first_run_at", kind="stable").reset_index(drop=True)


def run_delta(
    per_prompt_old: pd.DataFrame,
    per_prompt_new: pd.DataFrame,
    metric: str,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    level: float = LEVEL,
) -> dict[str, Any]:
    """What changed between two runs of one model, on the prompts both answered (paired bootstrap).

    Returns metric, n, mean_old, mean_new, diff (new − old), ci_low, ci_high, p_value, significant,
    improved (True/False when significant and the metric has a direction, else None).
    """
    for name, frame in (("old", per_prompt_old), ("new", per_prompt_new)):
        if frame["prompt_id"].duplicated().any():
            raise ValueError(f"run_delta: the {name} frame has several rows per prompt; pass one model's per-prompt frame")
    joined = per_prompt_old[["prompt_id", metric]].merge(
        per_prompt_new[["prompt_id", metric]], on="prompt_id", suffixes=("_old", "_new")
    )
    test = paired_bootstrap(joined[f"{metric}_new"], joined[f"{metric}_old"], n_boot=n_boot, seed=seed, level=level)
    direction = get_metric(metric).higher_is_better
    improved = None
    if test["significant"] and direction is not None:
        improved = (test["diff"] > 0) == direction
    return {
        "metric": metric, "n": test["n"], "mean_old": test["mean_b"], "mean_new": test["mean_a"], "diff": test["diff"],
        "ci_low": test["ci_low"], "ci_high": test["ci_high"], "p_value": test["p_value"],
        "significant": test["significant"], "improved": improved,
    }


# ---------------------------------------------------------------------------------------------
# Everything the report shows


@dataclass
class Tables:
    """The frames ``reportgen metrics`` prints and the report renders (columns: the *_COLUMNS lists)."""

    per_prompt: pd.DataFrame
    summary: pd.DataFrame
    category_summary: pd.DataFrame
    pairwise: pd.DataFrame
    efficiency: pd.DataFrame
    lm: pd.DataFrame
    metrics: list[str] = field(default_factory=list)        # per-prompt metric columns, registry order
    model_ids: list[str] = field(default_factory=list)      # models with results, in study order
    fingerprints: dict[str, str] = field(default_factory=dict)  # model_id → fingerprint reported


def _result_fingerprints(results: pd.DataFrame) -> dict[str, str]:
    return dict(zip(results["model_id"], results["fingerprint"])) if len(results) else {}


def compute_tables(
    store: "Store",
    study: "Study",
    prompt_set: "PromptSet | None",
    fingerprints: Mapping[str, str | None] | None = None,
    bandwidth_bytes_per_s: float | Mapping[str, float] | None = None,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> Tables:
    """Read the store and compute every table, for the study's models only, in the study's order.

    ``fingerprints`` (model_id → fingerprint, from the runner) pins what is reported; by default each
    model's most recent fingerprint. ``bandwidth_bytes_per_s`` defaults to what the runner recorded
    (``model_runs.details`` or the run manifest's ``hardware``); it is never measured here, so
    re-rendering stays byte-identical.
    """
    order = [m.id for m in study.models]
    wanted: dict[str, str | None] = {m: (fingerprints or {}).get(m) for m in order}
    results = latest_results(store.results_frame(), wanted)
    if prompt_set is not None and len(results):
        results = results[results["prompt_id"].isin({p.id for p in prompt_set.prompts})].reset_index(drop=True)
    model_runs = store.model_runs_frame()
    per_prompt = per_prompt_frame(results, prompt_set, model_order=order)
    names = metric_columns(per_prompt)
    return Tables(
        per_prompt=per_prompt,
        summary=model_summary(per_prompt, names, n_boot=n_boot, seed=seed),
        category_summary=category_summary(per_prompt, names, n_boot=n_boot, seed=seed),
        pairwise=all_paired_comparisons(per_prompt, names, n_boot=n_boot, seed=seed),
        efficiency=efficiency_frame(
            results, model_runs, bandwidth_bytes_per_s=bandwidth_bytes_per_s, model_order=order, runs=store.runs_frame()
        ),
        lm=lm_frame(store.loglik_frame(), {**wanted, **_result_fingerprints(results)}, n_boot=n_boot, seed=seed, model_order=order),
        metrics=names,
        model_ids=list(dict.fromkeys(per_prompt["model_id"])),
        fingerprints={m: fp for m, fp in zip(results["model_id"], results["fingerprint"])} if len(results) else {},
    )
