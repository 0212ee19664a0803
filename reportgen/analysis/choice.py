"""Findings of multiple choice by log-likelihood: which model answers the items best, and whether it is
significantly ahead (McNemar, Holm-adjusted), for acc and acc_norm. The same findings as the per-prompt
quality metrics get (``results.best_finding``, ``conclusion``'s best), read from the choice tables
(``Tables.choice_summary``, ``choice_pairwise``) and filed under the topic "choice"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from reportgen.analysis import conclusion, results
from reportgen.analysis.findings import Finding

__all__ = ["choice_conclusion", "choice_findings"]

#: The multiple-choice metric the verdict leads with (lm-eval's acc).
HEADLINE = "mc_acc"


@dataclass(frozen=True)
class _ChoiceTables:
    """The choice tables under the names the quality findings read (summary, pairwise)."""

    summary: pd.DataFrame
    pairwise: pd.DataFrame


def _view(tables: Any) -> _ChoiceTables | None:
    summary = getattr(tables, "choice_summary", None)
    if summary is None or summary.empty or not (summary["n"] > 0).any():
        return None
    return _ChoiceTables(summary, tables.choice_pairwise)


def choice_findings(tables: Any) -> list[Finding]:
    """One ``result.best`` finding per multiple-choice metric with scores (topic "choice")."""
    view = _view(tables)
    if view is None:
        return []
    found = [results.best_finding(view, metric) for metric in ("mc_acc", "mc_acc_norm")]
    return [Finding(f.kind, f.subjects, f.numbers, "choice") for f in found if f is not None]


def choice_conclusion(tables: Any) -> Finding | None:
    """The verdict's multiple-choice line: the best on acc, with its paired test against the runner-up."""
    view = _view(tables)
    best = conclusion.best_on(view, HEADLINE) if view is not None else None
    if best is None:
        return None
    kind = "conclusion.best_choice" if best.kind == "conclusion.best" else "conclusion.only_choice"
    return Finding(kind, best.subjects, best.numbers, "conclusion")
