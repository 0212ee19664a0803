"""Findings from the measured results: the best model per quality metric, speed against quality
(the Pareto front), throughput / latency / memory, language modelling, and behaviour (token limits,
loops, failures).

Pure functions over stats.tables.Tables. A quality difference is significant when its Holm-adjusted
p-value (McNemar exact for 0/1 metrics, paired sign-flip permutation otherwise; stats.frames) is below
0.05. Speed is read per regime (single stream, batched) from the timed passes over the fixed workload, and
a model is called faster only when its passes' range does not overlap any other's; peak memory is one
measurement per model, and a model is called lighter only beyond ``NOISE_THRESHOLDS`` (stats.efficiency).
Everything else is "no clear difference": that is what an A/A study (one model under several ids) must get.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from reportgen.analysis.findings import Finding
from reportgen.analysis.measured import (
    best_as_shown,
    efficiency_rows,
    finite_column,
    first_max,
    first_min,
    means,
    no_throughput,
    dominance,
    paired_difference,
    ranked,
    undominated,
    speed_quality_points,
    TRADEOFF_AXES,
)
from reportgen.format import finite
from reportgen.stats.efficiency import (
    NOISE_FLOORS,
    NOISE_THRESHOLDS,
    clearly_different,
    ranges_separate,
    timed_on_a_busy_machine,
)

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.study.config import Study

__all__ = [
    "LOOP_MEAN",
    "LOOP_PROMPT",
    "RAMBLE_SHARE",
    "behaviour_findings",
    "best_finding",
    "clear_best",
    "efficiency_findings",
    "lm_finding",
    "memory_finding",
    "single_stream_finding",
    "throughput_finding",
    "tradeoff_finding",
]

#: A model "rambles" when at least this share of its answers stopped at the token limit ...
RAMBLE_SHARE = 0.5
#: ... and "loops" when its mean repeated-4-gram rate reaches this, or one answer's exceeds LOOP_PROMPT.
LOOP_MEAN = 0.2
LOOP_PROMPT = 0.5


def best_finding(tables: Any, metric: str) -> Finding | None:
    """Which model is best on ``metric``, and whether it is significantly ahead of the runner-up.

    ``numbers["verdict"]``: only (one model has a score), no_test, all_tied, tie, significant, not_significant.
    The verdict rests on the Holm-adjusted p-value (``p_holm``, over ``comparisons`` pairs); ``diff_ci_low`` /
    ``diff_ci_high`` are the unadjusted paired-bootstrap interval of the difference, shown beside it.
    """
    rows = means(tables, metric)
    if not rows:
        return None
    order = ranked(rows, metric)
    best = order[0]
    row = rows[best]
    numbers: dict[str, Any] = {
        "metric": metric,
        "best": best,
        "mean": float(row["mean"]),
        "ci_low": float(row["ci_low"]),
        "ci_high": float(row["ci_high"]),
        "n": int(row["n"]),
    }

    def done(verdict: str) -> Finding:
        return Finding("result.best", tuple(order), {**numbers, "verdict": verdict}, "quality")

    if len(order) == 1:
        return done("only")
    runner = order[1]
    numbers["runner_up"] = runner
    numbers["runner_up_mean"] = float(rows[runner]["mean"])
    test = paired_difference(tables, metric, best, runner)
    if test is None:
        return done("no_test")
    numbers.update(
        diff=test["diff"],
        diff_ci_low=test["ci_low"],
        diff_ci_high=test["ci_high"],
        n_paired=test["n"],
        p_value=test["p_value"],
        p_holm=test["p_holm"],
        comparisons=test["comparisons"],
        significant=test["significant"],
    )
    if all(float(rows[m]["mean"]) == float(row["mean"]) for m in order):
        numbers["tied"] = list(order)
        return done("all_tied")
    if float(rows[best]["mean"]) == float(rows[runner]["mean"]):
        numbers["tied"] = [m for m in order if float(rows[m]["mean"]) == float(row["mean"])]
        return done("tie")
    return done("significant" if test["significant"] else "not_significant")


def tradeoff_finding(tables: Any, metric: str | None) -> Finding | None:
    """``metric`` against every measured axis (batched throughput, single-stream latency, peak memory): the models
    no other clearly dominates (a Pareto front read with each axis's noise: analysis.measured.clearly_dominates),
    who dominates the rest, and each model's figures on the axes it has."""
    points = speed_quality_points(tables, metric)
    if len(points) < 2 or metric is None:
        return None
    beats = dominance(tables, metric)
    front = undominated(beats, list(points))  # = tradeoff_front(tables, metric)
    dominated = {m: [o for o in front if beats[(o, m)]] for m in points if m not in front}
    rows = efficiency_rows(tables)
    figures = {m: {axis: float(rows[m][axis]) for axis in TRADEOFF_AXES if finite(rows[m].get(axis))} for m in points}
    return Finding(
        "result.tradeoff",
        tuple(points),
        {"metric": metric, "front": front, "points": points, "dominated_by": dominated, "figures": figures},
        "tradeoff",
    )


def _clear_winner(values: dict[str, float], ranges: dict[str, tuple[float, float]], best: str, higher: bool) -> bool | None:
    """Whether ``best`` wins on the evidence of the timed passes: its worst pass beats every other model's best
    pass (True), or some ranges overlap (False); None when a model has no range (no timed passes)."""
    if len(ranges) < len(values) or len(values) < 2:
        return None
    if higher:
        return all(ranges[best][0] > ranges[m][1] and ranges_separate(ranges[best], ranges[m]) for m in values if m != best)
    return all(ranges[best][1] < ranges[m][0] and ranges_separate(ranges[best], ranges[m]) for m in values if m != best)


def _speed_finding(rows: dict[str, dict[str, Any]], kind: str, column: str, *, higher: bool, regime: str) -> Finding | None:
    """The best and the worst model on ``column`` (a speed from the timed passes of ``regime``) with the factor
    between them, each model's range of passes, and whether the best one wins clearly (``separated``)."""
    missing = no_throughput(rows) if column == "tokens_per_s" else {}
    values = {m: v for m, v in finite_column(rows, column).items() if m not in missing and v > 0}
    if len(values) + len(missing) < 2 or not values:
        return None
    best = first_max(values) if higher else first_min(values)
    worst = (first_min(values) if higher else first_max(values)) if len(values) >= 2 else None
    factor = None
    if worst is not None:
        factor = values[best] / values[worst] if higher else values[worst] / values[best]
    low, high = finite_column(rows, f"{column}_low"), finite_column(rows, f"{column}_high")
    ranges = {m: (low[m], high[m]) for m in values if m in low and m in high}
    passes = sorted({int(v) for m, v in finite_column(rows, "speed_passes").items() if m in values})
    busy = {m: float(rows[m]["others_cpu_share"]) for m in values if timed_on_a_busy_machine(rows[m])}
    separated = _clear_winner(values, ranges, best, higher) if worst is not None else None
    if busy and separated:  # apart, but another job may have slowed some models' passes: no evidence
        separated = False
    numbers: dict[str, Any] = {
        "regime": regime,
        "fastest": best,
        "slowest": worst,
        column: values,
        "ratio": factor,
        "no_throughput": missing,
        "ranges": ranges,
        "passes": passes,
        "separated": separated,
        "busy": busy,
        # the only model with a throughput beside models that generated no tokens wins on no noise at all
        "winner": best if separated or (worst is None and missing) else None,
    }
    return Finding(kind, (best, worst) if worst is not None else (best, *missing), numbers, "efficiency")


#: Speed and memory columns of stats.efficiency and whether higher is better; ``clear_best`` reads them.
_EFFICIENCY_DIRECTIONS = {
    "tokens_per_s": True,
    "single_tokens_per_s": True,
    "latency_p50_s": False,
    "load_time_s": False,
    "peak_memory_bytes": False,
    "weight_bytes": False,
}


def clear_best(rows: dict[str, dict[str, Any]], column: str) -> str | None:
    """The model that is best on an efficiency ``column`` beyond the noise, or None (no clear best).

    Speeds with timed passes: the best whose range is apart from every other model's (``_clear_winner``);
    load time and peak memory: better than every other model by more than ``NOISE_THRESHOLDS``; weight bytes
    (exact): a unique best. Every other column (one measurement that depends on the answers) has no clear best."""
    if column not in _EFFICIENCY_DIRECTIONS:
        return None
    higher = _EFFICIENCY_DIRECTIONS[column]
    values = {m: v for m, v in finite_column(rows, column).items() if v > 0}
    if len(values) < 2:
        return None
    best = first_max(values) if higher else first_min(values)
    if column in ("tokens_per_s", "single_tokens_per_s", "latency_p50_s"):
        if any(timed_on_a_busy_machine(rows[m]) for m in values):
            return None
        low, high = finite_column(rows, f"{column}_low"), finite_column(rows, f"{column}_high")
        ranges = {m: (low[m], high[m]) for m in values if m in low and m in high}
        return best if _clear_winner(values, ranges, best, higher) else None
    if column in NOISE_THRESHOLDS:
        clear = all(clearly_different(column, values[best], values[m]) for m in values if m != best)
        return best if clear else None
    return best if sum(1 for v in values.values() if v == values[best]) == 1 else None


def throughput_finding(rows: dict[str, dict[str, Any]]) -> Finding | None:
    """Batched throughput (``rows``: measured.efficiency_rows): the fastest and the slowest model by tokens/s
    of the batched passes, the factor between them, and ``winner`` — the fastest, only where its passes'
    range separates from every other model's (else None: no clear difference).

    Only models with a positive throughput are compared; the others are named in ``no_throughput`` with
    the reason. With one model left, ``slowest`` and ``ratio`` are None (never an infinite factor).
    """
    return _speed_finding(rows, "result.throughput", "tokens_per_s", higher=True, regime="batched")


def single_stream_finding(rows: dict[str, dict[str, Any]]) -> Finding | None:
    """Single stream (one prompt at a time): the quickest model by median latency per prompt over the fixed
    workload, with ``winner`` only where the ranges of the passes separate; tokens/s of one stream beside it."""
    found = _speed_finding(rows, "result.latency", "latency_p50_s", higher=False, regime="single")
    if found is None:
        return None
    n = found.numbers
    quick = n["fastest"]
    if finite(rows[quick].get("latency_p95_s")):
        n["latency_p95_s"] = rows[quick]["latency_p95_s"]
    n["single_tokens_per_s"] = finite_column(rows, "single_tokens_per_s")
    n["ttft_p50_s"] = finite_column(rows, "ttft_p50_s")
    n["batched"] = [
        m
        for m, r in rows.items()
        if r.get("throughput_source") != "passes" and finite(r.get("mean_batch_size")) and float(r["mean_batch_size"]) > 1
    ]
    return found


def memory_finding(rows: dict[str, dict[str, Any]]) -> Finding | None:
    """Peak memory: the least and the most; ``clear`` when the least is below every other model's by more than
    the noise threshold (``tied``: the models within the threshold of the least, which is then no winner)."""
    memory = {m: v for m, v in finite_column(rows, "peak_memory_bytes").items() if v > 0}  # 0 bytes: not measured
    if len(memory) < 2:
        return None
    small, big = first_min(memory), first_max(memory)
    factor = memory[big] / memory[small]
    tied = [m for m in memory if not clearly_different("peak_memory_bytes", memory[small], memory[m])]
    return Finding(
        "result.memory",
        (small, big),
        {
            "peak_memory_bytes": memory,
            "least": small,
            "most": big,
            "ratio": factor,
            "tied": tied,
            "clear": len(tied) == 1,
            "threshold": NOISE_THRESHOLDS["peak_memory_bytes"],
            "floor": NOISE_FLOORS["peak_memory_bytes"],
        },
        "efficiency",
    )


def efficiency_findings(tables: Any) -> list[Finding]:
    """Batched throughput, single-stream latency, peak memory, and the cautions that go with them (devices,
    per-stream rates)."""
    rows = efficiency_rows(tables)
    out = [f for f in (throughput_finding(rows), single_stream_finding(rows), memory_finding(rows)) if f is not None]
    devices = {
        m: str(r["device"])
        for m, r in rows.items()
        if r.get("device") not in (None, "") and not isinstance(r.get("device"), float)
    }
    if len(set(devices.values())) > 1:
        out.append(Finding("result.devices", tuple(devices), {"devices": devices}, "efficiency"))
    streamed = [m for m, r in rows.items() if r.get("throughput_source") == "latency"]
    if streamed:
        out.append(Finding("result.per_stream", tuple(streamed), {"per_stream": streamed}, "efficiency"))
    return out


def lm_finding(tables: Any) -> Finding | None:
    """Bits per byte on the reference texts: who scores lowest, and which differences the intervals support."""
    lm = tables.lm
    if lm is None or lm.empty:
        return None
    rows = {r["model_id"]: r for r in lm.to_dict("records") if finite(r["bits_per_byte"])}
    if not rows:
        return None
    order = sorted(rows, key=lambda m: (float(rows[m]["bits_per_byte"]), list(rows).index(m)))
    best = order[0]
    bpb = {m: float(rows[m]["bits_per_byte"]) for m in order}
    from reportgen.stats.metrics import metric_value

    # tied: the same value as printed (1.0631 and 1.0634 both read 1.063), as the tables' bold decides it
    tied = best_as_shown(bpb, False, lambda v: metric_value("bits_per_byte", v)) or [best]
    best_high = float(rows[best]["bpb_ci_high"]) if finite(rows[best]["bpb_ci_high"]) else bpb[best]
    rest = [m for m in order if m not in tied]
    clearly_worse = [m for m in rest if finite(rows[m]["bpb_ci_low"]) and float(rows[m]["bpb_ci_low"]) > best_high]
    numbers: dict[str, Any] = {
        "bits_per_byte": bpb,
        "best": best,
        "tied": tied,
        "clearly_worse": clearly_worse,
        "uncertain": [m for m in rest if m not in clearly_worse],
        "bpb_ci_low": {m: rows[m]["bpb_ci_low"] for m in order},
        "bpb_ci_high": {m: rows[m]["bpb_ci_high"] for m in order},
        "n_texts": {m: int(rows[m]["n_texts"]) for m in order},
    }
    return Finding("result.lm", tuple(order), numbers, "lm")


def _median(values: Any) -> float:
    import numpy as np

    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    return float(np.median(data)) if data.size else math.nan


def _token_limit(study: Study | None, model_id: str) -> int | None:
    try:
        return study.generation_for(study.model(model_id)).max_new_tokens if study is not None else None
    except KeyError:
        return None


def _model_behaviour(study: Study | None, model_id: str, mine: Any) -> list[Finding]:
    out = []
    hits = int((mine["finish_reason"] == "length").sum())
    if hits:
        share = hits / len(mine)
        out.append(
            Finding(
                "behaviour.limit",
                (model_id,),
                {
                    "model": model_id,
                    "hits": hits,
                    "answered": len(mine),
                    "share": share,
                    "limit": _token_limit(study, model_id),
                    "rambles": share >= RAMBLE_SHARE,
                    "median_output_tokens": _median(mine["output_tokens"]),
                },
                "behaviour",
            )
        )
    if "repeated_4gram_rate" in mine:
        rates = mine["repeated_4gram_rate"].astype(float)
        rates = rates[rates.notna()]
        if len(rates):
            mean = float(rates.mean())
            looping = int((rates > LOOP_PROMPT).sum())
            if mean >= LOOP_MEAN or looping:
                out.append(
                    Finding(
                        "behaviour.loops",
                        (model_id,),
                        {
                            "model": model_id,
                            "mean_repeated_4gram_rate": mean,
                            "worst": float(rates.max()),
                            "worst_prompt": str(mine.at[rates.idxmax(), "prompt_id"]),
                            "looping_prompts": looping,
                            "scored_prompts": len(rates),
                        },
                        "behaviour",
                    )
                )
    return out


def behaviour_findings(study: Study | None, tables: Any) -> list[Finding]:
    """Token-limit hits (rambling), repeated 4-grams (loops) and failed generations, per model."""
    frame = tables.per_prompt
    out: list[Finding] = []
    limit_hits: dict[str, int] = {}
    for model_id in tables.model_ids:
        mine = frame[(frame["model_id"] == model_id) & ~frame["failed"].astype(bool)]
        if mine.empty:
            continue
        limit_hits[model_id] = int((mine["finish_reason"] == "length").sum())
        out += _model_behaviour(study, model_id, mine)
    if limit_hits and not any(limit_hits.values()):
        out.append(Finding("behaviour.no_limit", tuple(limit_hits), {"hits": 0}, "behaviour"))
    if "repeated_4gram_rate" in frame and not any(f.kind == "behaviour.loops" for f in out):
        out.append(Finding("behaviour.no_loops", (), {"loop_prompt": LOOP_PROMPT}, "behaviour"))
    failures = {r["model_id"]: (int(r["n_failed"]), int(r["n_prompts"])) for r in tables.efficiency.to_dict("records")}
    failed = {m: v for m, v in failures.items() if v[0]}
    for model_id, (count, total) in failed.items():
        errors = frame[(frame["model_id"] == model_id) & frame["failed"].astype(bool)]["error"].dropna().astype(str)
        out.append(
            Finding(
                "behaviour.failed",
                (model_id,),
                {"model": model_id, "failed": count, "prompts": total, "first_error": errors.iloc[0] if len(errors) else ""},
                "behaviour",
            )
        )
    if failures and not failed:
        total = sum(t for _, t in failures.values())
        out.append(
            Finding(
                "behaviour.no_failures",
                tuple(failures),
                {"failed": 0, "generations": total, "models": len(failures)},
                "behaviour",
            )
        )
    return out
