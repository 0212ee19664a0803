"""Findings of the judged comparisons (``tables.judged``): who a judge prefers, and whether the judge can be trusted.

A pairwise judge's finding calls a model better (or worse) than the baseline only when the judge is
reliable (position consistency at or above its ``min_consistency``) and the 95% interval of the model's
score (wins + ½ ties) excludes ½; an unreliable judge gets one finding saying so and none that ranks.
"""

from __future__ import annotations

import math
from typing import Any

from reportgen.analysis.findings import Finding

__all__ = ["judged_findings", "judged_claim_columns"]


def _reliability(c: Any) -> dict[str, Any]:
    r = c.reliability
    return {
        "judge": c.judge_id,
        "judge_name": c.judge_name,
        "mode": c.mode,
        "consistency": r.consistency,
        "consistency_n": r.consistency_n,
        "min_consistency": r.min_consistency,
        "first_position_rate": r.first_position_rate,
        "tie_rate": r.tie_rate,
        "longer_wins_rate": r.longer_wins_rate,
        "judgements": r.judgements,
        "expected": r.expected,
        "unparsed": r.unparsed,
        "failed": r.failed,
    }


def judged_findings(tables: Any) -> list[Finding]:
    out: list[Finding] = []
    for c in getattr(tables, "judged", None) or []:
        if c.reliability is None or c.reliability.judgements == 0:
            out.append(
                Finding(
                    "judged.none",
                    (),
                    {"judge": c.judge_id, "judge_name": c.judge_name, "expected": c.reliability.expected if c.reliability else 0},
                    "judged",
                )
            )
            continue
        base = _reliability(c)
        if c.reliability.unparsed or c.reliability.failed:
            out.append(Finding("judged.problems", (), base, "judged"))
        if not c.reliable:
            out.append(Finding("judged.unreliable", (), base, "judged"))
            continue
        if c.mode == "pairwise":
            for r in c.rates.to_dict("records"):
                verdict = _verdict(r)
                out.append(
                    Finding(f"judged.{verdict}", (r["model_id"], c.baseline), {**base, **r, "baseline": c.baseline}, "judged")
                )
            out.append(Finding("judged.reliable", (), base, "judged"))
        else:
            rows = [r for r in c.rubric.to_dict("records") if not math.isnan(r["mean"])]
            if rows:
                best = max(rows, key=lambda r: r["mean"])
                clear = all(best["ci_low"] > r["ci_high"] for r in rows if r is not best)
                out.append(
                    Finding(
                        "judged.rubric",
                        (best["model_id"],),
                        {**base, "scores": rows, "best": best["model_id"], "clear": clear and len(rows) > 1},
                        "judged",
                    )
                )
    return out


SIGN_TEST_PROMPTS = 6  # every prompt the same way: two-sided sign test p = 2 · ½ⁿ < 0.05 from n = 6


def _verdict(r: dict[str, Any]) -> str:
    """better / worse when the score's 95% interval excludes ½; when every prompt went the same way (no
    bootstrap interval), when that many prompts agreeing is significant by the sign test."""
    low, high, score = r["score_low"], r["score_high"], r["score"]
    if math.isnan(low) or math.isnan(high):
        if score != 0.5 and r["n"] >= SIGN_TEST_PROMPTS:
            return "better" if score > 0.5 else "worse"
        return "even"
    return "better" if low > 0.5 else "worse" if high < 0.5 else "even"


def judged_claim_columns(tables: Any) -> dict[str, dict[str, float]]:
    """``win_rate`` (score against the baseline, wins + ½ ties, of the first pairwise judge) and ``judge_score``
    (mean of the first rubric judge), per model id, for claims."""
    columns: dict[str, dict[str, float]] = {"win_rate": {}, "judge_score": {}}
    judged = getattr(tables, "judged", None) or []
    pairwise = next((c for c in judged if c.mode == "pairwise" and len(c.rates)), None)
    rubric = next((c for c in judged if c.mode == "rubric" and len(c.rubric)), None)
    if pairwise is not None:
        columns["win_rate"] = dict(zip(pairwise.rates["model_id"], pairwise.rates["score"]))
    if rubric is not None:
        columns["judge_score"] = dict(zip(rubric.rubric["model_id"], rubric.rubric["mean"]))
    return columns
