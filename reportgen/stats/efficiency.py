"""Speed and memory per model: load time, time to first token, latency, throughput, peak memory,
memory-bandwidth share. Times are seconds, sizes bytes, timestamps Unix epoch seconds."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from reportgen.records import RunManifest, sequence_latency
from reportgen.stats.frames import none_if_nan, ordered_models
from reportgen.stats.metrics import (
    METRICS,
)

if TYPE_CHECKING:
    pass

EFFICIENCY_COLUMNS = [
    "model_id",
    "device",
    "precision",
    "n_prompts",
    "n_failed",
    "load_time_s",
    "ttft_p50_s",
    "ttft_p95_s",
    "latency_p50_s",
    "latency_p95_s",
    "generated_tokens",
    "generate_time_s",
    "tokens_per_s",
    "tokens_per_s_low",
    "tokens_per_s_high",
    "latency_p50_s_low",
    "latency_p50_s_high",
    "single_tokens_per_s",
    "single_tokens_per_s_low",
    "single_tokens_per_s_high",
    "batched_batch_size",
    "answer_tokens_per_s",
    "speed_passes",
    "others_cpu_share",
    "throughput_source",
    "decode_steps",
    "decode_steps_per_s",
    "mean_batch_size",
    "peak_memory_bytes",
    "weight_bytes",
    "bandwidth_bytes_per_s",
    "bandwidth_share",
]

# ---------------------------------------------------------------------------------------------
# Efficiency


#: Relative differences within which two single measurements (one per model, no passes) are the same:
#: peak memory taken over the same fixed workload varies by a few percent between fresh processes (allocator
#: and page granularity), load time by more (disk cache, first-touch page faults). A difference inside the
#: threshold is reported as no clear difference, never as lighter or quicker.
NOISE_THRESHOLDS = {"peak_memory_bytes": 0.10, "load_time_s": 0.25}

#: Absolute differences within which two single measurements are the same, whatever their ratio: a tiny model
#: loads in a tenth of a second and adds a few MiB, where scheduling and allocator arenas alone move the figure
#: by half (an A/A study of a tiny model: load 0.110 s and 0.160 s for the same weights, twice; 0.125 s to
#: 0.754 s for three copies while other jobs loaded the machine's two cores).
NOISE_FLOORS = {"peak_memory_bytes": 16 * 2**20, "load_time_s": 0.5}


def clearly_different(measure: str, a: float, b: float) -> bool:
    """Whether one measurement of ``a`` and one of ``b`` differ by more than ``NOISE_THRESHOLDS[measure]``
    (relative to the smaller) and by more than ``NOISE_FLOORS[measure]``; a measure without a threshold (e.g.
    weight bytes, exact) differs when unequal."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    small, big = sorted((abs(a), abs(b)))
    if big - small <= NOISE_FLOORS.get(measure, 0.0):
        return False
    threshold = NOISE_THRESHOLDS.get(measure, 0.0)
    return big > small * (1 + threshold) if small > 0 else big > 0


#: The share of the machine's CPU that other processes may use while a model's passes are timed
#: (util.cpu.OtherLoad; the highest over its passes) before its speed is no evidence: a job beside one model's
#: slot slows all of that model's passes, which the spread of the passes cannot show.
BUSY_SHARE = 0.10


def timed_on_a_busy_machine(row: Mapping[str, Any]) -> bool:
    """Whether other processes kept the machine busy beyond ``BUSY_SHARE`` while this model was timed (an
    efficiency row; passes stored before the share was measured count as quiet)."""
    share = row.get("others_cpu_share")
    return isinstance(share, (int, float)) and math.isfinite(share) and share > BUSY_SHARE


#: The smallest relative gap between two ranges of timed passes that counts as a difference in speed: with a
#: few passes per model, ranges of the same engine fail to overlap now and then by a hair (an A/A study shows
#: it: a fresh CI run set one copy's single-stream passes 2.9% apart from another's, on a quiet machine); a gap
#: under this share of the slower figure is still "no clear difference".
SPEED_MIN_GAP = 0.05


def ranges_separate(first: tuple[float, float], second: tuple[float, float]) -> bool:
    """Whether two ranges of timed passes (low, high) are apart: every pass of one beats every pass of the other,
    by more than ``SPEED_MIN_GAP`` of the lower range's top."""
    (low_a, high_a), (low_b, high_b) = first, second
    if low_a > high_b:
        return low_a > high_b * (1 + SPEED_MIN_GAP)
    if low_b > high_a:
        return low_b > high_a * (1 + SPEED_MIN_GAP)
    return False


def _passes(speed: pd.DataFrame | None, model_id: str, fingerprints: set[str], settings: set[str]) -> pd.DataFrame:
    """The timed passes of one model entry's current weights and settings: the most recent protocol's."""
    if speed is None or speed.empty:
        return pd.DataFrame()
    rows = speed[
        (speed["model_id"] == model_id) & speed["fingerprint"].isin(fingerprints) & speed["settings_hash"].isin(settings)
    ]
    if rows.empty:
        return rows
    latest = rows.sort_values("created_at", kind="stable").iloc[-1]
    return rows[
        (rows["fingerprint"] == latest["fingerprint"])
        & (rows["settings_hash"] == latest["settings_hash"])
        & (rows["protocol_hash"] == latest["protocol_hash"])
    ]


def pass_figures(passes: pd.DataFrame) -> dict[str, float]:
    """Median and range over timed passes (of one regime) of throughput (tokens ÷ wall seconds of the pass)
    and of each pass's median per-prompt latency (time to the prompt's last token); the median of the
    passes' 95th percentiles; the median time to first token. Empty without passes."""
    if passes.empty:
        return {}
    seconds = pd.to_numeric(passes["seconds"], errors="coerce")
    tokens = pd.to_numeric(passes["generated_tokens"], errors="coerce")
    rate = (tokens / seconds).where((seconds > 0) & (tokens > 0)).dropna()
    latencies = [values for values in (json.loads(text) for text in passes["latencies"]) if values]
    p50 = [float(np.median(values)) for values in latencies]
    p95 = [float(np.percentile(values, 95)) for values in latencies]
    ttfts = [v for text in passes["ttfts"] for v in json.loads(text)] if "ttfts" in passes else []
    figures = {"speed_passes": float(len(passes))}
    if len(rate):
        figures.update(tokens_per_s=float(rate.median()), tokens_per_s_low=float(rate.min()), tokens_per_s_high=float(rate.max()))
    if p50:
        figures.update(
            latency_p50_s=float(np.median(p50)),
            latency_p50_s_low=float(min(p50)),
            latency_p50_s_high=float(max(p50)),
            latency_p95_s=float(np.median(p95)),
        )
    if ttfts:
        figures.update(ttft_p50_s=float(np.median(ttfts)), ttft_p95_s=float(np.percentile(ttfts, 95)))
    if "batch_size" in passes and len(passes):
        figures["batch_size"] = float(pd.to_numeric(passes["batch_size"], errors="coerce").max())
    return figures


def speed_figures(passes: pd.DataFrame) -> dict[str, float]:
    """The figures of one entry's timed passes by regime: batched throughput as ``tokens_per_s`` (with its
    range); single-stream throughput as ``single_tokens_per_s``, and single-stream latency per prompt and
    time to first token as ``latency_*`` and ``ttft_*`` (one prompt at a time: what a user waits for).
    ``speed_passes`` counts the passes of one regime."""
    if passes.empty:
        return {}
    regime = passes["regime"] if "regime" in passes else pd.Series(["batched"] * len(passes), index=passes.index)
    batched, single = pass_figures(passes[regime == "batched"]), pass_figures(passes[regime == "single"])
    figures: dict[str, float] = {}
    for key in ("tokens_per_s", "tokens_per_s_low", "tokens_per_s_high", "speed_passes"):
        if key in batched:
            figures[key] = batched[key]
    if "batch_size" in batched:
        figures["batched_batch_size"] = batched["batch_size"]
    for key in ("tokens_per_s", "tokens_per_s_low", "tokens_per_s_high"):
        if key in single:
            figures[f"single_{key}"] = single[key]
    source = single if single else batched
    for key in ("latency_p50_s", "latency_p50_s_low", "latency_p50_s_high", "latency_p95_s", "ttft_p50_s", "ttft_p95_s"):
        if key in source:
            figures[key] = source[key]
    if "speed_passes" not in figures and "speed_passes" in single:
        figures["speed_passes"] = single["speed_passes"]
    if "others_cpu_share" in passes:
        shares = pd.to_numeric(passes["others_cpu_share"], errors="coerce").dropna()
        if len(shares):
            figures["others_cpu_share"] = float(shares.max())
    return figures


def has_pass_ranges(efficiency: pd.DataFrame) -> bool:
    """Whether any model's speed comes from timed passes with a range (``*_low``/``*_high`` columns)."""
    return any(
        math.isfinite(float(v))
        for column in ("tokens_per_s_low", "latency_p50_s_low")
        if column in efficiency
        for v in efficiency[column]
        if v is not None
    )


def sequence_latencies(rows: pd.DataFrame) -> list[float]:
    """Each answered prompt's latency (``records.sequence_latency``: the time to its last token) from the
    stored rows' ``extra`` JSON and ``latency_s``."""
    extras = rows["extra"].tolist() if "extra" in rows else ["{}"] * len(rows)
    # only a batching backend's rows name "finish_s": the others' JSON is not parsed (40,000 rows: 0.15 s)
    return [
        sequence_latency(_json_object(extra) if isinstance(extra, str) and "finish_s" in extra else {}, latency)
        for extra, latency in zip(extras, pd.to_numeric(rows["latency_s"], errors="coerce").tolist())
    ]


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _batches(rows: pd.DataFrame) -> pd.DataFrame:
    """Reconstruct batches from result rows: rows of one batch share run, batch size and latency
    (the backend reports the batch's wall time for each of its prompts). Columns: steps (the
    longest output in the batch: a batch decodes until its last sequence ends), tokens, seconds."""
    if rows.empty:
        return pd.DataFrame(columns=["steps", "tokens", "seconds", "size"])
    size = pd.to_numeric(rows["batch_size"], errors="coerce").fillna(1)
    key = np.where(
        size > 1,
        rows["run_id"].astype(str) + "|" + size.astype(int).astype(str) + "|" + rows["latency_s"].astype(str),
        rows.index.astype(str),
    )
    tokens = pd.to_numeric(rows["output_tokens"], errors="coerce").fillna(0)
    grouped = pd.DataFrame({"key": key, "tokens": tokens, "latency": pd.to_numeric(rows["latency_s"], errors="coerce")}).groupby(
        "key", sort=False
    )
    return pd.DataFrame(
        {
            "steps": grouped["tokens"].max(),
            "tokens": grouped["tokens"].sum(),
            "seconds": grouped["latency"].first(),
            "size": grouped.size(),
        }
    )


def _last_value(runs: pd.DataFrame, column: str, prefer: pd.Series | None) -> Any:
    if prefer is not None and none_if_nan(prefer.get(column)) is not None:
        return prefer[column]
    values = runs[column].dropna() if column in runs else pd.Series(dtype=object)
    return values.iloc[-1] if len(values) else None


def _details(run: pd.Series | None) -> dict[str, Any]:
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
    for run_id, text in zip(runs["run_id"], runs["manifest"]):
        try:
            manifest = RunManifest.from_json(json.loads(text))
        except (TypeError, ValueError):
            continue
        value = manifest.hardware.get("memory_bandwidth_bytes_per_s")
        if isinstance(value, (int, float)) and value:
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
    speed: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Speed and memory per model, from its current results and its runs (see EFFICIENCY_COLUMNS).

    * tokens_per_s = generated_tokens / generate_time_s of the model's latest run (for the current
      fingerprint) that generated anything and answered some of the current results (``throughput_source``
      'run'); else Σ output tokens / Σ batch wall time over the answered results ('latency': per stream, for
      concurrent HTTP requests); none when every current result failed.
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
    * latency percentiles are over the answered prompts, each prompt's time to its last token (inside a
      batch, from the batch's start: comparable with a backend that runs one prompt at a time); TTFT alike.
    * With timed passes (``speed``: the store's timed_passes, each entry's own, over the fixed workload of
      ``measure``), tokens_per_s is the median batched throughput over the passes and single_tokens_per_s the
      single-stream one, ``*_low``/``*_high`` their ranges; latency_p50_s (with its range), latency_p95_s and
      the time to first token are the single-stream regime's (one prompt at a time); ``speed_passes`` counts
      the passes of a regime and ``throughput_source`` is 'passes'. ``answer_tokens_per_s`` is always the
      answer run's own rate (its tokens over its time: it depends on the answers); decode steps and the
      bandwidth share stay the answer run's.
    """
    records = []
    manifests = _manifest_bandwidths(runs)
    models = ordered_models(results["model_id"], model_order) if not results.empty else []
    for model_id in models:
        rows = results[results["model_id"] == model_id]
        ok = rows[rows["finish_reason"] != "error"]
        fingerprints = set(rows["fingerprint"].tolist())
        runs = model_runs[(model_runs["model_id"] == model_id) & model_runs["fingerprint"].isin(fingerprints)]
        runs = runs.sort_values("started_at", kind="stable")
        # the throughput of a run that answered some of the prompts shown: never an older run's beside answers
        # that all failed since (its figure would describe answers the table no longer shows)
        generating = runs[
            (runs["generated_tokens"] > 0) & (runs["generate_time_s"] > 0) & runs["run_id"].isin(set(ok["run_id"].tolist()))
        ]
        run = generating.iloc[-1] if len(generating) else (runs.iloc[-1] if len(runs) else None)

        source: str | None
        if run is not None and len(generating):
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
        answer_rate = tokens_per_s
        settings = set(rows["settings_hash"].tolist()) if "settings_hash" in rows else set()
        timed = speed_figures(_passes(speed, model_id, fingerprints, settings))
        if "tokens_per_s" in timed:
            tokens_per_s, source = timed["tokens_per_s"], "passes"
        steps_per_s = METRICS.get("decode_steps_per_s")(steps, seconds)

        device = none_if_nan(_last_value(runs, "device", run))
        precision = none_if_nan(_last_value(runs, "precision", run))
        weights = (weight_bytes or {}).get(model_id)
        if weights is None:
            weights = none_if_nan(_last_value(runs, "weight_bytes", run))
        bandwidth = _bandwidth_for(device, bandwidth_bytes_per_s, run, manifests)
        # load and memory: the latest run that measured them under the fixed workload (run.measure), if any
        measured = runs[runs["measure_protocol"].notna()] if "measure_protocol" in runs else runs.iloc[0:0]
        loaded = measured.iloc[-1] if len(measured) else run
        load_time = none_if_nan(_last_value(measured if len(measured) else runs, "load_time_s", loaded))
        peak = none_if_nan(_last_value(measured if len(measured) else runs, "peak_memory_bytes", loaded))
        ttft = pd.to_numeric(ok["ttft_s"], errors="coerce").tolist()
        latency = sequence_latencies(ok)
        records.append(
            {
                "model_id": model_id,
                "device": device,
                "precision": precision,
                "n_prompts": int(len(rows)),
                "n_failed": int(len(rows) - len(ok)),
                "load_time_s": METRICS.get("load_time_s")(load_time),
                "ttft_p50_s": timed.get("ttft_p50_s", METRICS.get("ttft_p50_s")(ttft)),
                "ttft_p95_s": timed.get("ttft_p95_s", METRICS.get("ttft_p95_s")(ttft)),
                "latency_p50_s": timed.get("latency_p50_s", METRICS.get("latency_p50_s")(latency)),
                "latency_p95_s": timed.get("latency_p95_s", METRICS.get("latency_p95_s")(latency)),
                "generated_tokens": generated,
                "generate_time_s": seconds,
                "tokens_per_s": tokens_per_s,
                "tokens_per_s_low": timed.get("tokens_per_s_low", math.nan),
                "tokens_per_s_high": timed.get("tokens_per_s_high", math.nan),
                "latency_p50_s_low": timed.get("latency_p50_s_low", math.nan),
                "latency_p50_s_high": timed.get("latency_p50_s_high", math.nan),
                "single_tokens_per_s": timed.get("single_tokens_per_s", math.nan),
                "single_tokens_per_s_low": timed.get("single_tokens_per_s_low", math.nan),
                "single_tokens_per_s_high": timed.get("single_tokens_per_s_high", math.nan),
                "batched_batch_size": timed.get("batched_batch_size", math.nan),
                "answer_tokens_per_s": answer_rate,
                "speed_passes": timed.get("speed_passes", math.nan),
                "others_cpu_share": timed.get("others_cpu_share", math.nan),
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
