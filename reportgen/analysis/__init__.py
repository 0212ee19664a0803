"""The comparative analysis: text-free findings, and the one place they become sentences.

``findings`` (the record), the modules that compute findings as pure functions (``specs``,
``consistency``, ``results``, ``variants``, ``history``, ``conclusion``, over ``measured`` reads of the
stats tables), ``claims`` (claims checked against the tables), ``phrasing`` (findings → sentences in a
style) and ``statements`` (both together: what the report and the terminal call). The names below are
the package's public face.
"""

from reportgen.analysis.claims import (
    ClaimResult,
    check_claims,
    claims_table,
    metrics_claim_table,
)
from reportgen.analysis.findings import Finding
from reportgen.analysis.history import metric_verdict, retraining_finding
from reportgen.analysis.measured import (
    HEADLINE_METRICS,
    best_as_shown,
    has_results,
    headline_metric,
    paired_difference,
    pareto_front,
    quality_metrics,
    speed_quality_points,
)
from reportgen.analysis.phrasing import (
    PLAIN,
    Statement,
    Style,
    claim_lines,
    claim_sentences,
    phrase,
    phrase_all,
    runtime_label,
)
from reportgen.analysis.results import LOOP_MEAN, LOOP_PROMPT, RAMBLE_SHARE
from reportgen.analysis.statements import (
    RESULT_TOPICS,
    analysis_sections,
    conclusion_points,
    consistency_warnings,
    result_conclusion,
    result_findings,
    result_statements,
    retraining_statement,
    spec_statements,
    verdict_lines,
    warnings_by_model,
)
from reportgen.analysis.variants import ModelPair, model_pairs

__all__ = [
    "HEADLINE_METRICS",
    "LOOP_MEAN",
    "LOOP_PROMPT",
    "PLAIN",
    "RAMBLE_SHARE",
    "RESULT_TOPICS",
    "ClaimResult",
    "Finding",
    "ModelPair",
    "analysis_sections",
    "best_as_shown",
    "Statement",
    "Style",
    "check_claims",
    "claim_lines",
    "claim_sentences",
    "claims_table",
    "conclusion_points",
    "consistency_warnings",
    "has_results",
    "headline_metric",
    "metric_verdict",
    "metrics_claim_table",
    "model_pairs",
    "paired_difference",
    "pareto_front",
    "phrase",
    "phrase_all",
    "quality_metrics",
    "result_conclusion",
    "result_findings",
    "result_statements",
    "retraining_finding",
    "retraining_statement",
    "runtime_label",
    "spec_statements",
    "speed_quality_points",
    "verdict_lines",
    "warnings_by_model",
]
