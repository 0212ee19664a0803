"""What the measured results mean for a choice between the models, one finding per criterion.

Built from the other findings (results, variants, history) so that the conclusion never disagrees
with the analysis above it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from reportgen.analysis.findings import Finding
from reportgen.analysis.history import retraining_finding
from reportgen.analysis.measured import (
    efficiency_rows,
    has_results,
    headline_metric,
    means,
    paired_difference,
    ranked,
    speed_quality_points,
)
from reportgen.analysis.results import (
    RAMBLE_SHARE,
    behaviour_findings,
    memory_finding,
    single_stream_finding,
    throughput_finding,
    tradeoff_finding,
)
from reportgen.analysis.variants import change, model_pairs

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.study.config import Study

__all__ = ["result_conclusion"]


def _best(tables: Any, headline: str) -> Finding | None:
    """The best model on ``headline`` (a summary row per model in ``tables.summary``), with its paired test against the runner-up."""
    rows = means(tables, headline)
    order = ranked(rows, headline)
    if len(order) == 1:
        return Finding(
            "conclusion.only_score", (order[0],), {"metric": headline, "mean": float(rows[order[0]]["mean"])}, "conclusion"
        )
    if not order:
        return None
    best, runner = order[0], order[1]
    test = paired_difference(tables, headline, best, runner)
    row = rows[best]
    numbers: dict[str, Any] = {
        "metric": headline,
        "best": best,
        "runner_up": runner,
        "significant": bool(test and test["significant"]),
        "mean": row["mean"],
        "ci_low": row["ci_low"],
        "ci_high": row["ci_high"],
        "test": test,
    }
    numbers["tied"] = [m for m in order if float(rows[m]["mean"]) == float(row["mean"])]
    if not numbers["significant"]:
        numbers["not_better_than"] = [
            m for m in order[1:] if (t := paired_difference(tables, headline, best, m)) is not None and not t["significant"]
        ]
        numbers["others"] = list(order[1:])
    return Finding("conclusion.best", (best, runner), numbers, "conclusion")


best_on = _best  # for other tables of the same shape (analysis.choice)


def _watch_out(study: Study, tables: Any) -> Finding | None:
    warnings = []
    for found in behaviour_findings(study, tables):
        n = found.numbers
        if n.get("share", 0) >= RAMBLE_SHARE:
            warnings.append(("rambles", n["model"], n["share"]))
        if n.get("mean_repeated_4gram_rate") is not None:
            warnings.append(("loops", n["model"], None))
        if n.get("failed"):
            warnings.append(("failed", n["model"], n["failed"]))
    if not warnings:
        return None
    return Finding(
        "conclusion.watch_out",
        tuple(dict.fromkeys(m for _, m, _ in warnings)),
        {"warnings": len(warnings), "items": warnings},
        "conclusion",
    )


def result_conclusion(study: Study, tables: Any, deltas: Iterable[Any] = ()) -> list[Finding]:
    """Best on the headline metric, fastest, least memory, the best trade-offs, the adapter, watch-outs, retraining."""
    if not has_results(tables):
        return []
    out: list[Finding] = []
    headline = headline_metric(tables)
    if headline is not None:
        best = _best(tables, headline)
        if best is not None:
            out.append(best)
    rows = efficiency_rows(tables)
    single = single_stream_finding(rows)
    if single is not None:
        out.append(Finding("conclusion.fastest_single", single.subjects, single.numbers, "conclusion"))
    speed = throughput_finding(rows)
    if speed is not None:
        out.append(Finding("conclusion.fastest", speed.subjects, speed.numbers, "conclusion"))
    memory = memory_finding(rows)
    if memory is not None:
        n = memory.numbers
        small = n["least"]
        out.append(
            Finding(
                "conclusion.least_memory",
                (small,) if n["clear"] else tuple(n["tied"]),
                {
                    "least_memory": small,
                    "peak_memory_bytes": n["peak_memory_bytes"][small],
                    "clear": n["clear"],
                    "tied": n["tied"],
                    "all_tied": len(n["tied"]) == len(n["peak_memory_bytes"]),
                    "threshold": n["threshold"],
                    "floor": n["floor"],
                },
                "conclusion",
            )
        )
    points = speed_quality_points(tables, headline)
    if len(points) >= 2 and headline is not None:
        tradeoff = tradeoff_finding(tables, headline)
        if tradeoff is not None:
            front, figures = tradeoff.numbers["front"], tradeoff.numbers["figures"]
            out.append(
                Finding(
                    "conclusion.tradeoffs", tuple(front), {"metric": headline, "front": front, "figures": figures}, "conclusion"
                )
            )
    for pair in model_pairs(study):
        if pair.kind != "adapter" or headline is None:
            continue
        found = change(tables, headline, pair.base, pair.variant)
        if found is not None:
            out.append(Finding("conclusion.adapter", (pair.variant, pair.base), found, "conclusion"))
    watch = _watch_out(study, tables)
    if watch is not None:
        out.append(watch)
    for delta in deltas:
        retrained = retraining_finding(delta)
        out.append(Finding("conclusion.retraining", retrained.subjects, retrained.numbers, "conclusion"))
    return out
