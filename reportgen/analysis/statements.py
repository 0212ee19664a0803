"""The analysis as sentences: the findings of a study computed, then phrased in a style.

These are the entry points the report and the terminal call. Each computes findings (``specs``,
``consistency``, ``results``, ``variants``, ``conclusion``, ``history``) and phrases them
(``phrasing``) in ``style``: ``PLAIN`` (the default) for the terminal, the report's Markdown style for
a report. Nothing here writes a word of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from reportgen.analysis import choice, conclusion, consistency, history, judged, results, variants, verdict
from reportgen.analysis import specs as spec_findings
from reportgen.analysis.measured import has_results, headline_metric, quality_metrics
from reportgen.analysis.phrasing import PLAIN, Statement, Style, phrase, phrase_all

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.analysis.findings import Finding
    from reportgen.specs.extract import ModelSpec
    from reportgen.study.config import Study

__all__ = [
    "RESULT_TOPICS",
    "analysis_sections",
    "conclusion_points",
    "consistency_warnings",
    "result_conclusion",
    "result_statements",
    "retraining_statement",
    "spec_statements",
    "verdict_lines",
    "warnings_by_model",
]

#: The groups the analysis of results is shown in, in order: topic → heading.
RESULT_TOPICS = {
    "quality": "Quality against the references",
    "tradeoff": "Speed against quality",
    "efficiency": "Speed and memory",
    "lm": "Language modelling",
    "choice": "Multiple choice by log-likelihood",
    "adapter": "Variants of the same model",
    "runtime": "Variants of the same model",
    "decoding": "Variants of the same model",
    "behaviour": "Token limits, repetition and failures",
    "judged": "Judged comparisons",
}


def model_names(study: Study | None) -> dict[str, str]:
    """model id → the name the study gives it (raw: the style escapes it)."""
    return {m.id: m.name for m in study.models} if study is not None else {}


def spec_statements(study: Study, specs: Mapping[str, ModelSpec], style: Style = PLAIN) -> list[Statement]:
    """The comparative analysis computed from the specs: context, vocabulary, size, memory, shape, adapter, quantization."""
    return phrase_all(spec_findings.spec_findings(study, specs), model_names(study), style)


def conclusion_points(study: Study, specs: Mapping[str, ModelSpec], style: Style = PLAIN) -> list[Statement]:
    """What the specs mean for a choice between the models, one line per criterion."""
    return phrase_all(spec_findings.spec_conclusion(study, specs), model_names(study), style)


def warnings_by_model(study: Study, specs: Mapping[str, ModelSpec], style: Style = PLAIN) -> dict[str, list[str]]:
    """Contradictions between what the config and card say and what the spec shows, per model id."""
    names = model_names(study)
    return {
        m: [s.text for s in phrase_all(found, names, style)]
        for m, found in consistency.consistency_findings(study, specs).items()
    }


def consistency_warnings(study: Study, specs: Mapping[str, ModelSpec], style: Style = PLAIN) -> list[str]:
    """The same warnings, every model's in study order."""
    return [text for texts in warnings_by_model(study, specs, style).values() for text in texts]


def result_findings(study: Study, tables: Any, specs: Mapping[str, ModelSpec] | None = None) -> list[Finding]:
    """The findings of the measured results, grouped as RESULT_TOPICS orders them."""
    if not has_results(tables):
        return []
    headline = headline_metric(tables)
    out = [f for metric in quality_metrics(tables) if (f := results.best_finding(tables, metric)) is not None]
    tradeoff = results.tradeoff_finding(tables, headline)
    out += [tradeoff] if tradeoff is not None else []
    out += results.efficiency_findings(tables)
    lm = results.lm_finding(tables)
    out += [lm] if lm is not None else []
    out += choice.choice_findings(tables)
    for pair in variants.model_pairs(study):
        found = variants.pair_finding(study, tables, pair, specs or {}, headline)
        out += [found] if found is not None else []
    out += results.behaviour_findings(study, tables)
    out += judged.judged_findings(tables)
    order = list(dict.fromkeys(RESULT_TOPICS.values()))
    return sorted(out, key=lambda f: order.index(RESULT_TOPICS.get(f.topic, order[-1])))


def result_statements(
    study: Study, tables: Any, specs: Mapping[str, ModelSpec] | None = None, style: Style = PLAIN
) -> list[Statement]:
    """The comparative analysis of the measured results (topics: RESULT_TOPICS), computed from ``tables``."""
    return phrase_all(result_findings(study, tables, specs), model_names(study), style)


def result_conclusion(study: Study, tables: Any, deltas: Iterable[Any] = (), style: Style = PLAIN) -> list[Statement]:
    """What the results mean for a choice between the models, one line per criterion."""
    return phrase_all(conclusion.result_conclusion(study, tables, deltas), model_names(study), style)


def verdict_lines(
    study: Study,
    tables: Any,
    specs: Mapping[str, ModelSpec] | None = None,
    deltas: Iterable[Any] = (),
    style: Style = PLAIN,
) -> list[Statement]:
    """The verdict (analysis.verdict): one sentence per need, each with ``numbers['section']`` and
    ``numbers['anchor']``, the section that proves it."""
    return phrase_all(verdict.verdict_findings(study, tables, specs, deltas), model_names(study), style)


def retraining_statement(delta: Any, names: Mapping[str, str], style: Style = PLAIN) -> Statement:
    """One sentence per re-trained model; a model that got worse is said so, in bold."""
    return phrase(history.retraining_finding(delta), names, style)


def analysis_sections(
    study: Study, specs: Mapping[str, ModelSpec], tables: Any = None, deltas: Iterable[Any] = (), style: Style = PLAIN
) -> list[tuple[str, list[str]]]:
    """The whole analysis as headed groups of sentences, in the report's order (for the terminal, and JSON).

    Specs, contradictions, the claims, the measured results by topic, retraining, the conclusion;
    a group with nothing to say is left out.
    """
    from reportgen.analysis.claims import check_claims, metrics_claim_table
    from reportgen.analysis.phrasing import claim_lines
    from reportgen.specs.study import spec_table

    deltas = list(deltas)
    measured = metrics_claim_table(tables) if has_results(tables) else None
    claims = check_claims(study, spec_table(specs), metrics=measured, strict=False)
    groups: list[tuple[str, list[str]]] = [
        ("Verdict", [f"{s.text} (see {s.numbers['section']})" for s in verdict_lines(study, tables, specs, deltas, style)]),
        ("Specs", [s.text for s in spec_statements(study, specs, style)]),
        ("Contradictions", consistency_warnings(study, specs, style)),
        ("Claims", claim_lines(claims, style)),
    ]
    by_topic: dict[str, list[str]] = {}
    for statement in result_statements(study, tables, specs, style):
        by_topic.setdefault(RESULT_TOPICS.get(statement.topic, "Other findings"), []).append(statement.text)
    groups += list(by_topic.items())
    names = model_names(study)
    groups.append(("What retraining changed", [retraining_statement(d, names, style).text for d in deltas]))
    conclusion_lines = result_conclusion(study, tables, deltas, style) + conclusion_points(study, specs, style)
    groups.append(("Conclusion", [s.text for s in conclusion_lines]))
    return [(title, lines) for title, lines in groups if lines]
