"""What retraining changed: one verdict per metric and one per re-trained model.

A model's verdict is the one the report, its conclusion and the terminal all use: ``worse`` when any
metric got significantly worse (by its direction), else ``better`` when any got significantly better,
else ``unchanged``. Significant: the metric's own paired test (McNemar exact for 0/1 metrics, the paired
sign-flip permutation test otherwise; stats.history.run_delta) has p < 0.05, not adjusted across metrics;
the paired-bootstrap interval of the change is shown beside that p-value, and does not decide.
"""

from __future__ import annotations

from typing import Any

from reportgen.analysis.findings import Finding

__all__ = ["metric_verdict", "retraining_finding"]


def metric_verdict(row: Any) -> str:
    """``better`` / ``worse`` / ``changed`` (significant, no direction) / ``no significant change``."""
    improved = getattr(row, "improved", None)
    if improved is True:
        return "better"
    if improved is False:
        return "worse"
    return "changed" if bool(getattr(row, "significant", False)) else "no significant change"


def retraining_finding(delta: Any) -> Finding:
    """A re-trained model (stats.history.RetrainingDelta): its verdict and the change of each metric it rests on."""
    rows = {row.metric: row for row in delta.deltas.itertuples()}
    worse = [m for m in delta.worse if m in rows]
    better = [m for m in delta.better if m in rows]
    changes = {
        m: {
            "mean_old": rows[m].mean_old,
            "mean_new": rows[m].mean_new,
            "diff": rows[m].diff,
            "ci_low": rows[m].ci_low,
            "ci_high": rows[m].ci_high,
            "n": rows[m].n,
            "p_value": rows[m].p_value,
        }
        for m in worse + better
    }
    verdict = "worse" if worse else ("better" if better else "unchanged")
    return Finding(
        "retraining",
        (delta.model_id,),
        {"model": delta.model_id, "verdict": verdict, "worse": worse, "better": better, "changes": changes},
        "retraining",
    )
