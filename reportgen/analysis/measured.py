"""Reading the measured frames (stats.tables.Tables) the way every finding about results reads them.

Which metrics count as quality, which one heads the report, each model's mean, the paired test of
two models, the speed/quality points and their Pareto front. Significance always means what
``stats.frames.paired_comparisons`` decided (``tables.pairwise``): the Holm-adjusted p-value of the paired
test (McNemar exact for 0/1 metrics, the paired sign-flip permutation test otherwise; adjusted over one
metric's pairs) is below 0.05. The paired-bootstrap 95% CI of the difference is not adjusted and is not
what decides: it can exclude 0 for a difference that is not significant after the adjustment, so text
that shows it labels it unadjusted and prints the adjusted p-value beside it (``analysis.phrasing``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from reportgen.format import finite

__all__ = [
    "HEADLINE_METRICS",
    "best_as_shown",
    "efficiency_rows",
    "has_results",
    "headline_metric",
    "means",
    "no_throughput",
    "paired_difference",
    "pareto_front",
    "quality_metrics",
    "ranked",
    "speed_quality_points",
    "clearly_dominates",
    "dominance",
    "undominated",
    "tradeoff_front",
    "TRADEOFF_AXES",
]

#: The reference metrics that can head the report, in order of preference.
HEADLINE_METRICS = ("exact_match", "contains_answer", "rouge_l", "chrf")


def has_results(tables: Any) -> bool:
    """Whether ``tables`` holds measured results to report (at least one generation)."""
    return tables is not None and not tables.per_prompt.empty


def means(tables: Any, metric: str) -> dict[str, dict[str, Any]]:
    """model_id → its summary row (mean, ci_low, ci_high, n) for ``metric``, models with a finite mean, table order."""
    rows = tables.summary[tables.summary["metric"] == metric]
    return {r["model_id"]: r for r in rows.to_dict("records") if finite(r["mean"])}


def quality_metrics(tables: Any) -> list[str]:
    """The reference metrics and the metrics imported from other tools' logs with at least one model's mean, in
    registry order."""
    from reportgen.stats.metrics import METRICS

    out = []
    for metric in tables.metrics:
        if METRICS.find(metric) is None or METRICS.get(metric).kind not in ("reference", "imported"):
            continue
        if means(tables, metric):
            out.append(metric)
    return out


def headline_metric(tables: Any) -> str | None:
    """The quality metric the report leads with: the first of HEADLINE_METRICS with results (else, in a study of
    imported results only, the first imported metric), skipping one on which every model scores 0 (it would say
    nothing) unless all of them do."""
    quality = quality_metrics(tables)
    present = [m for m in HEADLINE_METRICS if m in quality] or quality
    for metric in present:
        if any(float(row["mean"]) != 0 for row in means(tables, metric).values()):
            return metric
    return present[0] if present else None


def higher_is_better(metric: str) -> bool | None:
    from reportgen.stats.metrics import METRICS

    return METRICS.get(metric).higher_is_better if metric in METRICS else None


def ranked(rows: Mapping[str, dict[str, Any]], metric: str) -> list[str]:
    """The model ids of ``rows`` (``means``), best mean first; table order breaks ties."""
    from reportgen.stats.metrics import METRICS

    higher = METRICS.get(metric).higher_is_better if metric in METRICS else True  # no direction: ascending
    order = list(rows)
    return sorted(order, key=lambda m: (-float(rows[m]["mean"]) if higher else float(rows[m]["mean"]), order.index(m)))


def paired_difference(tables: Any, metric: str, a: str, b: str) -> dict[str, Any] | None:
    """The paired test of ``a − b`` on ``metric`` from tables.pairwise, whichever way round it is stored.

    ``diff``, ``ci_low`` / ``ci_high`` (the unadjusted paired-bootstrap 95% CI), ``p_value`` (unadjusted),
    ``p_holm`` (Holm-adjusted over the metric's pairs: what ``significant`` rests on), ``comparisons`` (how
    many tested pairs the adjustment is over), ``n`` (prompts both answered).
    """
    frame = tables.pairwise
    if frame is None or frame.empty:
        return None
    mine = frame[frame["metric"] == metric]
    for first, second, sign in ((a, b, 1.0), (b, a, -1.0)):
        rows = mine[(mine["model_a"] == first) & (mine["model_b"] == second)]
        if len(rows):
            row = rows.iloc[0]
            low, high = float(row["ci_low"]) * sign, float(row["ci_high"]) * sign
            p_holm = float(row["p_holm"]) if "p_holm" in row else math.nan
            return {
                "diff": float(row["diff"]) * sign,
                "ci_low": min(low, high),
                "ci_high": max(low, high),
                "significant": bool(row["significant"]),
                "n": int(row["n"]),
                "p_value": float(row["p_value"]),
                "p_holm": p_holm,
                "comparisons": _tested(mine["p_value"]),
            }
    return None


def _tested(p_values: Any) -> int:
    """How many pairs have a p-value (an untested pair, with fewer than two shared prompts, has NaN)."""
    import numpy as np

    return int(np.isfinite(np.asarray(p_values, dtype=float)).sum())


def efficiency_rows(tables: Any) -> dict[str, dict[str, Any]]:
    """model_id → its row of tables.efficiency."""
    return {row["model_id"]: row for row in tables.efficiency.to_dict("records")}


def finite_column(rows: Mapping[str, dict[str, Any]], column: str) -> dict[str, float]:
    """model_id → the finite values of ``column`` in ``rows``."""
    return {m: float(r[column]) for m, r in rows.items() if finite(r.get(column))}


def no_throughput(rows: dict[str, dict[str, Any]]) -> dict[str, str]:
    """model_id → why it has no throughput: ``"no_tokens"`` (it generated none) or ``"no_time"`` (its
    generation took no measurable time). Such a model is left out of every speed ratio."""
    out = {}
    for model_id, row in rows.items():
        tokens, seconds = row.get("generated_tokens"), row.get("generate_time_s")
        if finite(tokens) and float(tokens) <= 0:
            out[model_id] = "no_tokens"
        elif finite(seconds) and float(seconds) <= 0:
            out[model_id] = "no_time"
    return out


def best_as_shown(values: Mapping[str, Any], higher: bool | None, shown: Callable[[float], str]) -> list[str]:
    """The ids that share the best of ``values`` as a reader sees it: compared by ``shown(value)``, the text a
    table or sentence prints (1.0631 and 1.0634 both print as 1.063, so they tie), in input order.

    Values that are not finite numbers are left out; no direction (``higher`` None) or fewer than two values
    give no best (``[]``). Rounding keeps the order, so the ids are those whose text equals the text of the
    best unrounded value. Tables bold a value only when this is exactly one id (report.sections).
    """
    numbers = {m: float(v) for m, v in values.items() if finite(v)}
    if higher is None or len(numbers) < 2:
        return []
    top = shown(max(numbers.values()) if higher else min(numbers.values()))
    return [m for m, v in numbers.items() if shown(v) == top]


def first_max(values: Mapping[str, float]) -> str:
    """The id with the largest value (the first one on a tie)."""
    order = list(values)
    return max(values, key=lambda m: (values[m], -order.index(m)))


def first_min(values: Mapping[str, float]) -> str:
    """The id with the smallest value (the first one on a tie)."""
    order = list(values)
    return min(values, key=lambda m: (values[m], order.index(m)))


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """The ids whose (x, y) no other point beats on both (higher is better on both axes), in input order."""
    front = []
    for m, (x, y) in points.items():
        dominated = any((ox >= x and oy >= y) and (ox > x or oy > y) for o, (ox, oy) in points.items() if o != m)
        if not dominated:
            front.append(m)
    return front


def speed_quality_points(tables: Any, metric: str | None) -> dict[str, tuple[float, float]]:
    """model_id → (tokens/s, mean of ``metric``) for models with both."""
    if metric is None:
        return {}
    rows = means(tables, metric)
    points = {}
    for row in tables.efficiency.to_dict("records"):
        if row["model_id"] in rows and finite(row["tokens_per_s"]):
            points[row["model_id"]] = (float(row["tokens_per_s"]), float(rows[row["model_id"]]["mean"]))
    return points


#: The measured axes a trade-off reads beside quality, each with whether higher is better and how a difference
#: is judged: "passes" (the timed passes' ranges apart: stats.efficiency.ranges_separate) or "noise" (one
#: measurement per model, beyond stats.efficiency.NOISE_THRESHOLDS and NOISE_FLOORS).
TRADEOFF_AXES: dict[str, tuple[bool, str]] = {
    "tokens_per_s": (True, "passes"),
    "latency_p50_s": (False, "passes"),
    "peak_memory_bytes": (False, "noise"),
}


def _axis_order(tables: Any, axis: str, a: str, b: str, rows: dict[str, dict[str, Any]] | None = None) -> int:
    """+1 where ``a`` is clearly better than ``b`` on the measured ``axis``, -1 clearly worse, 0 neither (or
    either lacks the measurement). ``rows``: ``efficiency_rows(tables)`` when the caller has it."""
    from reportgen.stats.efficiency import clearly_different, ranges_separate, timed_on_a_busy_machine

    higher, judged = TRADEOFF_AXES[axis]
    rows = efficiency_rows(tables) if rows is None else rows
    ra, rb = rows.get(a) or {}, rows.get(b) or {}
    if judged == "passes":
        if timed_on_a_busy_machine(ra) or timed_on_a_busy_machine(rb):
            return 0
        ends = [r.get(f"{axis}_{end}") for r in (ra, rb) for end in ("low", "high")]
        values = [float(v) for v in ends if finite(v)]
        if len(values) < 4:
            return 0
        low_a, high_a, low_b, high_b = values
        if not ranges_separate((low_a, high_a), (low_b, high_b)):
            return 0
        above = low_a > high_b
    else:
        va, vb = ra.get(axis), rb.get(axis)
        if not (finite(va) and finite(vb) and va > 0 and vb > 0):
            return 0
        if not clearly_different(axis, va, vb):
            return 0
        above = va > vb
    return 1 if above == higher else -1


def clearly_dominates(tables: Any, metric: str, a: str, b: str, axes: tuple[str, ...] = tuple(TRADEOFF_AXES)) -> bool:
    """Whether ``a`` beats ``b`` on ``metric`` and the measured ``axes`` on the evidence: clearly better on at
    least one (quality: the paired test is significant; speed: the timed passes' ranges apart; memory: beyond
    the noise) and clearly worse on none. Noise never dominates: copies of one model (an A/A study) dominate
    none of each other, and a model clearly best on any axis (the lightest, the quickest per prompt) is
    dominated by no one."""
    return _dominates(tables, efficiency_rows(tables), metric, a, b, axes)


def _dominates(tables: Any, rows: dict[str, dict[str, Any]], metric: str, a: str, b: str, axes: tuple[str, ...]) -> bool:
    orders = [_axis_order(tables, axis, a, b, rows) for axis in axes]
    test = paired_difference(tables, metric, a, b)
    direction = higher_is_better(metric)
    if test is not None and test["significant"] and direction is not None and test["diff"] != 0:
        orders.append(1 if (test["diff"] > 0) == direction else -1)
    return 1 in orders and -1 not in orders


def dominance(tables: Any, metric: str, axes: tuple[str, ...] = tuple(TRADEOFF_AXES)) -> dict[tuple[str, str], bool]:
    """(a, b) → ``clearly_dominates(tables, metric, a, b, axes)`` for every ordered pair of the models of
    ``speed_quality_points`` (the efficiency rows read once, not once per pair and axis)."""
    points = list(speed_quality_points(tables, metric))
    rows = efficiency_rows(tables)
    return {(a, b): _dominates(tables, rows, metric, a, b, axes) for a in points for b in points if a != b}


def tradeoff_front(tables: Any, metric: str | None, axes: tuple[str, ...] = tuple(TRADEOFF_AXES)) -> list[str]:
    """The models of ``speed_quality_points`` that no other model clearly dominates (``clearly_dominates``) on
    ``metric`` and the measured ``axes``, in table order: the Pareto front read with the noise of each axis. By
    default every measured axis counts (batched throughput, single-stream latency, peak memory), so a model
    that is slower in batches but quickest per prompt or lightest stays on the front."""
    points = speed_quality_points(tables, metric)
    if metric is None:
        return []
    return undominated(dominance(tables, metric, axes), list(points))


def undominated(beats: dict[tuple[str, str], bool], models: list[str]) -> list[str]:
    """The ``models`` no other of them beats (``beats[(other, model)]``, as ``dominance`` gives), in order."""
    return [m for m in models if not any(beats[(o, m)] for o in models if o != m)]
