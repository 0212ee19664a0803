"""Findings about code prompts: which model's code passes its tests most often, and whether that is
more than noise (McNemar's exact test on the prompts both answered, Holm-adjusted over the pairs)."""

from __future__ import annotations

from typing import Any

from reportgen.analysis.findings import Finding

__all__ = ["code_findings"]


def code_findings(tables: Any) -> list[Finding]:
    """``code.best``: the model with the highest pass@1 on the code prompts, with its interval and its
    comparison against the runner-up (none when no code prompt was run)."""
    summary = getattr(tables, "summary", None)
    if summary is None or summary.empty:
        return []
    rows = summary[(summary["metric"] == "code_pass") & (summary["n"] > 0)]
    rows = rows[rows["mean"] == rows["mean"]]
    if rows.empty:
        return []
    ranked = rows.sort_values("mean", ascending=False, kind="stable").to_dict("records")
    best = ranked[0]
    numbers: dict[str, Any] = {
        "mean": float(best["mean"]),
        "ci_low": float(best["ci_low"]),
        "ci_high": float(best["ci_high"]),
        "n": int(best["n"]),
        "models": len(ranked),
    }
    subjects: tuple[str, ...] = (str(best["model_id"]),)
    if len(ranked) > 1:
        second = ranked[1]
        pairs = tables.pairwise[tables.pairwise["metric"] == "code_pass"]
        pair = pairs[
            ((pairs["model_a"] == best["model_id"]) & (pairs["model_b"] == second["model_id"]))
            | ((pairs["model_b"] == best["model_id"]) & (pairs["model_a"] == second["model_id"]))
        ]
        subjects += (str(second["model_id"]),)
        numbers.update(
            runner_up_mean=float(second["mean"]),
            tied=bool(second["mean"] == best["mean"]),
            p_holm=float(pair["p_holm"].iloc[0]) if len(pair) else float("nan"),
            significant=bool(pair["significant"].iloc[0]) if len(pair) else False,
        )
    return [Finding("code.best", subjects, numbers, "quality")]
