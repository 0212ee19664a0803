"""The verdict: the study's answer in a few lines, one per need, read before anything else.

Each line is a finding of the conclusion (``analysis.conclusion``, ``analysis.specs``, ``analysis.judged``)
under a verdict kind, with the section that proves it: best quality (with its significance), best on the
multiple-choice items (acc, McNemar), fastest single
stream, highest batched throughput, least memory, cheapest to retrain, and what to watch out for. Built from
the same findings as the analysis, so the two cannot disagree; where no difference is clear the line says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from reportgen.analysis import choice, code, conclusion, judged, specs as spec_findings
from reportgen.analysis.findings import Finding
from reportgen.analysis.measured import has_results

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.specs.extract import ModelSpec
    from reportgen.study.config import Study

__all__ = ["NEEDS", "verdict_findings"]

#: need → (the conclusion kinds that answer it, in order of preference; the section that proves it: title, anchor)
NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, str]]] = {
    "quality": (("conclusion.best", "conclusion.only_score"), ("Quality", "quality")),
    "choice": (("conclusion.best_choice", "conclusion.only_choice"), ("Multiple choice", "multiple-choice")),
    "single": (("conclusion.fastest_single",), ("Speed and memory", "speed-and-memory")),
    "batched": (("conclusion.fastest",), ("Speed and memory", "speed-and-memory")),
    "memory": (("conclusion.least_memory",), ("Speed and memory", "speed-and-memory")),
    "retrain": (("conclusion.cheapest_to_finetune",), ("Specifications at a glance", "specifications-at-a-glance")),
    "watch_out": (("conclusion.watch_out",), ("Comparative analysis", "comparative-analysis")),
    "code": (("code.best",), ("Code by execution", "code-by-execution")),
    "judge": (("judged.unreliable", "judged.problems"), ("Judged comparisons", "judged-comparisons")),
}


def verdict_findings(
    study: Study, tables: Any, specs: Mapping[str, ModelSpec] | None = None, deltas: Iterable[Any] = ()
) -> list[Finding]:
    """One ``verdict.<need>`` finding per need that the study can answer, in the order of ``NEEDS``.

    Its ``numbers`` are the answering finding's, plus ``source`` (that finding's kind, which phrases it),
    ``section`` and ``anchor`` (where the report proves it). A need without an answer (no results, no
    adapter, nothing to watch out for) has no line."""
    found: list[Finding] = []
    if has_results(tables):
        found += conclusion.result_conclusion(study, tables, deltas)
        found += judged.judged_findings(tables)
        found += code.code_findings(tables)
        best_choice = choice.choice_conclusion(tables)
        found += [best_choice] if best_choice is not None else []
    if specs:
        found += spec_findings.spec_conclusion(study, specs)
    by_kind: dict[str, Finding] = {}
    for f in found:
        if f.kind == "conclusion.cheapest_to_finetune" and f.kind in by_kind:  # one per adapter: the cheapest
            if f.numbers["trainable_parameters"] >= by_kind[f.kind].numbers["trainable_parameters"]:
                continue
            del by_kind[f.kind]
        by_kind.setdefault(f.kind, f)
    out = []
    for need, (kinds, (section, anchor)) in NEEDS.items():
        answer = next((by_kind[k] for k in kinds if k in by_kind), None)
        if answer is None:
            continue
        numbers = {**answer.numbers, "source": answer.kind, "section": section, "anchor": anchor}
        out.append(Finding(f"verdict.{need}", answer.subjects, numbers, "verdict"))
    return out
