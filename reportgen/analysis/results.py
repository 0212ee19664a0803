"""Findings from the measured results: the best model per quality metric, speed against quality
(the Pareto front), throughput / latency / memory, language modelling, and behaviour (token limits,
loops, failures).

Pure functions over stats.tables.Tables. Throughput and memory are one measurement per model, so they
get no interval and no test; a quality difference is significant when its Holm-adjusted p-value
(McNemar exact for 0/1 metrics, paired sign-flip permutation otherwise; stats.frames) is below 0.05.
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
    paired_difference,
    pareto_front,
    ranked,
    speed_quality_points,
)
from reportgen.format import finite

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.study.config import Study

__all__ = [
    "LOOP_MEAN",
    "LOOP_PROMPT",
    "RAMBLE_SHARE",
    "behaviour_findings",
    "best_finding",
    "efficiency_findings",
    "lm_finding",
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
    """Speed (tokens/s) against the mean of ``metric``: the Pareto-optimal models and who dominates the rest."""
    points = speed_quality_points(tables, metric)
    if len(points) < 2 or metric is None:
        return None
    front = pareto_front(points)
    dominated = {
        m: [o for o in front if points[o][0] >= points[m][0] and points[o][1] >= points[m][1]] for m in points if m not in front
    }
    return Finding(
        "result.tradeoff",
        tuple(points),
        {"metric": metric, "front": front, "points": points, "dominated_by": dominated},
        "tradeoff",
    )


def throughput_finding(rows: dict[str, dict[str, Any]]) -> Finding | None:
    """The fastest and the slowest model by tokens/s (``rows``: measured.efficiency_rows), and the factor between them.

    Only models with a positive throughput are compared; the others are named in ``no_throughput`` with
    the reason. With one model left, ``slowest`` and ``ratio`` are None (never an infinite factor).
    """
    missing = no_throughput(rows)
    speed = {m: v for m, v in finite_column(rows, "tokens_per_s").items() if m not in missing and v > 0}
    if len(speed) + len(missing) < 2 or not speed:
        return None
    fast = first_max(speed)
    slow = first_min(speed) if len(speed) >= 2 else None
    factor = speed[fast] / speed[slow] if slow is not None else None
    low, high = finite_column(rows, "tokens_per_s_low"), finite_column(rows, "tokens_per_s_high")
    ranges = {m: (low[m], high[m]) for m in speed if m in low and m in high}
    passes = sorted({int(v) for m, v in finite_column(rows, "speed_passes").items() if m in speed})
    # the fastest is fastest on the evidence of the passes only if its slowest pass beats every other's fastest
    separated = all(ranges[fast][0] > ranges[m][1] for m in speed if m != fast) if len(ranges) == len(speed) and slow else None
    return Finding(
        "result.throughput",
        (fast, slow) if slow is not None else (fast, *missing),
        {
            "fastest": fast,
            "slowest": slow,
            "tokens_per_s": speed,
            "ratio": factor,
            "no_throughput": missing,
            "ranges": ranges,
            "passes": passes,
            "separated": separated,
        },
        "efficiency",
    )


def _latency(rows: dict[str, dict[str, Any]]) -> Finding | None:
    latency = finite_column(rows, "latency_p50_s")
    if len(latency) < 2:
        return None
    quick = first_min(latency)
    numbers: dict[str, Any] = {"latency_p50_s": latency, "fastest": quick}
    if finite(rows[quick]["latency_p95_s"]):
        numbers["latency_p95_s"] = rows[quick]["latency_p95_s"]
    numbers["batched"] = [m for m, r in rows.items() if finite(r.get("mean_batch_size")) and float(r["mean_batch_size"]) > 1]
    return Finding("result.latency", tuple(latency), numbers, "efficiency")


def _memory(rows: dict[str, dict[str, Any]]) -> Finding | None:
    memory = {m: v for m, v in finite_column(rows, "peak_memory_bytes").items() if v > 0}  # 0 bytes: not measured
    if len(memory) < 2:
        return None
    small, big = first_min(memory), first_max(memory)
    factor = memory[big] / memory[small]
    return Finding(
        "result.memory", (small, big), {"peak_memory_bytes": memory, "least": small, "most": big, "ratio": factor}, "efficiency"
    )


def efficiency_findings(tables: Any) -> list[Finding]:
    """Throughput, latency, peak memory, and the cautions that go with them (devices, per-stream rates)."""
    rows = efficiency_rows(tables)
    out = [f for f in (throughput_finding(rows), _latency(rows), _memory(rows)) if f is not None]
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
