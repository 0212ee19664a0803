"""Claims checked against the study's numbers: the spec table joined with the measured values.

The syntax is ``study.claims``; here a parsed check is evaluated against the tables (``evaluate_check``),
every claim of a study is checked (``check_claims``), and the measured values a claim can name are laid
out one row per model (``metrics_claim_table``). A false claim raises ClaimError with its numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reportgen.errors import ClaimError, ConfigError
from reportgen.study.claims import (
    Check,
    Comparison,
    Operand,
    compare,
    parse_check,
    show_number,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from reportgen.study.config import Claim, Study

__all__ = [
    "ClaimResult",
    "check_claims",
    "claim_field_problems",
    "claims_table",
    "evaluate_check",
    "metric_fields",
    "metrics_claim_table",
]


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    passed: bool
    values: dict[str, Any]  # "model.field" -> value
    check: Check | None = None
    failed: tuple[Comparison, ...] = ()
    index: int = 0
    pending: bool = False  # names a measured value, and the report has no results yet: not checked


def _lookup(table: pd.DataFrame, model: str, fld: str) -> Any:
    from reportgen.specs.study import table_value

    return table_value(table, model, fld)


def evaluate_check(
    check: Check, table: pd.DataFrame, *, where: str = "check"
) -> tuple[bool, dict[str, Any], tuple[Comparison, ...]]:
    """Evaluate a parsed check against a table (index: model id, columns: fields)."""
    import difflib

    values: dict[str, Any] = {}
    problems = []
    for model, fld in check.references:
        if model not in table.index:
            close = difflib.get_close_matches(model, [str(i) for i in table.index], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else f" Known models: {', '.join(map(str, table.index))}."
            problems.append(f"{where}: unknown model '{model}'.{hint}")
            continue
        if fld not in table.columns:
            close = difflib.get_close_matches(fld, [str(c) for c in table.columns], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            problems.append(f"{where}: unknown field '{fld}'.{hint}")
            continue
        value = _lookup(table, model, fld)
        if isinstance(value, bool) or (value is not None and not isinstance(value, (int, float))):
            problems.append(f"{where}: {model}.{fld} is {value!r}, not a number")
            continue
        values[f"{model}.{fld}"] = value
    if problems:
        raise ConfigError(problems)

    def resolve(side: Operand) -> float | int | None:
        if side.model is None:
            return side.factor
        value = values[f"{side.model}.{side.field}"]
        return None if value is None else side.factor * value

    def bounds(side: Operand) -> tuple[float, float] | None:
        """The side's range when its field was measured over repeated passes (``FIELD_low``/``FIELD_high``)."""
        if side.model is None or f"{side.field}_low" not in table.columns or f"{side.field}_high" not in table.columns:
            return None
        found = [_lookup(table, side.model, f"{side.field}_{end}") for end in ("low", "high")]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in found):
            return None
        low, high = side.factor * found[0], side.factor * found[1]
        return (min(low, high), max(low, high))

    failed = []
    for comparison in check.comparisons:
        left, right = resolve(comparison.left), resolve(comparison.right)
        if left is None or right is None:
            failed.append(comparison)
            continue
        spans = bounds(comparison.left), bounds(comparison.right)
        if comparison.op in ("<", "<=", ">", ">=") and any(spans):
            # measured over repeated passes: the claim must hold for every value of both ranges
            (left_low, left_high), (right_low, right_high) = (span or (value, value) for span, value in zip(spans, (left, right)))
            holds = (
                compare(left_low, comparison.op, right_high)
                if comparison.op[0] == ">"
                else compare(left_high, comparison.op, right_low)
            )
        else:
            holds = compare(left, comparison.op, right)
        if not holds:
            failed.append(comparison)
    return not failed, values, tuple(failed)


def _claim_failure(study: Study, result: ClaimResult) -> str:
    shown = ", ".join(f"{ref} = {show_number(v)}" for ref, v in result.values.items())
    unknown = [ref for ref, v in result.values.items() if v is None]
    verdict = f"cannot be checked ({', '.join(unknown)} not stated)" if unknown else "is false"
    failing = "; ".join(str(c) for c in result.failed)
    return (
        f"claim '{result.claim.text}' {verdict}: {shown} (fails: {failing}) "
        f"(claims[{result.index}] at {study.where('claims', result.index, 'check')})"
    )


def claims_table(table: pd.DataFrame, metrics: pd.DataFrame | None) -> pd.DataFrame:
    """The spec table joined with the measured values (``metrics_claim_table``); spec columns win a name clash."""
    if metrics is None or metrics.empty:
        return table
    extra = metrics[[c for c in metrics.columns if c not in table.columns]]
    joined = table.join(extra, how="outer")
    order = list(table.index) + [m for m in extra.index if m not in table.index]
    return joined.reindex(order)


def check_claims(
    study: Study, table: pd.DataFrame, *, metrics: pd.DataFrame | None = None, strict: bool = True
) -> list[ClaimResult]:
    """Check every claim of the study against ``table`` (the spec table) joined with ``metrics``.

    A comparison of a value measured over repeated timed passes (``tokens_per_s``, ``latency_p50_s`` with
    ``measure.repeats``) holds only if it holds across the ranges of the passes: ``a.tokens_per_s > b.tokens_per_s``
    needs a's slowest pass to beat b's fastest.

    ``metrics``: the measured values per model (``metrics_claim_table(tables)``), so a check can say
    ``smollm2-lora.exact_match > smollm2.exact_match`` (a metric's mean), ``a.tokens_per_s > 2 * b.tokens_per_s``
    or ``a.bits_per_byte < b.bits_per_byte``. Without it, a claim that names a measured value is
    ``pending`` (shown as not checked yet) instead of failing. Syntax errors, unknown models and unknown
    fields raise ConfigError with ``file:line``. With ``strict`` (the default) a false claim raises
    ClaimError quoting the claim and its numbers; with ``strict=False`` the results say ``passed=False``.
    """
    results: list[ClaimResult] = []
    problems: list[str] = []
    measured = metric_fields()
    table = claims_table(table, metrics)
    for index, claim in enumerate(study.claims):
        where = f"{study.where('claims', index, 'check')}"
        try:
            check = parse_check(claim.check, index)
            if metrics is None and any(fld in measured and fld not in table.columns for _, fld in check.references):
                known = [m for m, _ in check.references if m not in table.index and m not in {x.id for x in study.models}]
                if known:
                    raise ConfigError(
                        f"claims[{index}].check: unknown model '{known[0]}'. Known models: {', '.join(x.id for x in study.models)}."
                    )
                results.append(ClaimResult(claim, False, {}, check, (), index, pending=True))
                continue
            passed, values, failed = evaluate_check(check, table, where=f"claims[{index}].check")
        except ConfigError as exc:
            problems.extend(f"{where}: {p}" for p in exc.problems)
            continue
        results.append(ClaimResult(claim, passed, values, check, failed, index))
    if problems:
        raise ConfigError(problems)
    false = [r for r in results if not r.passed and not r.pending]
    if strict and false:
        messages = [_claim_failure(study, r) for r in false]
        raise ClaimError(
            messages[0] if len(messages) == 1 else f"{len(messages)} claims are false:\n" + "\n".join(f"  {m}" for m in messages)
        )
    return results


def metric_fields() -> set[str]:
    """Every field a claim can read from the measured results: metric names, efficiency and LM columns."""
    from reportgen.stats.efficiency import EFFICIENCY_COLUMNS
    from reportgen.stats.lm import LM_COLUMNS
    from reportgen.stats.metrics import METRICS

    skip = {"model_id", "device", "throughput_source", "fingerprint"}
    return set(METRICS) | {c for c in EFFICIENCY_COLUMNS + LM_COLUMNS if c not in skip} | {"win_rate", "judge_score"}


def claim_field_problems(study: Study) -> list[str]:
    """Fields a claim names that neither the spec table nor the measured tables have (``validate``; a claim
    whose syntax is wrong is left to ``study.claims.parse_claims``)."""
    import difflib

    from reportgen.specs.study import ADAPTER_COLUMNS, SPEC_COLUMNS

    known = sorted(set(SPEC_COLUMNS) | {f"adapter_{n}" for n in ADAPTER_COLUMNS} | metric_fields())
    problems = []
    for index, claim in enumerate(study.claims):
        try:
            check = parse_check(claim.check, index)
        except ConfigError:
            continue
        for model, fld in check.references:
            if fld not in known:
                close = difflib.get_close_matches(fld, known, n=1)
                hint = (
                    f" Did you mean '{close[0]}'?"
                    if close
                    else " Fix: name a spec field or a metric (see `reportgen specs --json`)"
                )
                problems.append(
                    f"{study.where('claims', index, 'check')}: claims[{index}].check: unknown field '{model}.{fld}'.{hint}"
                )
    return problems


def metrics_claim_table(tables: Any) -> pd.DataFrame:
    """One row per model with results, one column per measured value a claim can name: each per-prompt
    metric's mean (tables.summary), the efficiency columns (tokens_per_s, latency_p50_s, peak_memory_bytes,
    n_failed…), the LM columns (bits_per_byte, perplexity…) and the judged ones (win_rate, judge_score)."""
    import pandas as pd

    frame = pd.DataFrame(index=pd.Index(list(tables.model_ids), name="model_id"))
    if not tables.summary.empty:
        means = tables.summary.pivot(index="model_id", columns="metric", values="mean")
        frame = frame.join(means[[m for m in tables.metrics if m in means.columns]], how="outer")
    skip = {"model_id", "device", "throughput_source", "fingerprint"}
    for source in (tables.efficiency, tables.lm):
        if source is None or source.empty:
            continue
        columns = [c for c in source.columns if c not in skip and c not in frame.columns]
        frame = frame.join(source.set_index("model_id")[columns], how="outer")
    from reportgen.analysis.judged import judged_claim_columns

    for column, values in judged_claim_columns(tables).items():  # win_rate, judge_score: from the study's judges
        if values:
            frame = frame.join(pd.Series(values, name=column, dtype=float).rename_axis("model_id"), how="outer")
    frame = frame.reindex([m for m in tables.model_ids] + [m for m in frame.index if m not in tables.model_ids])
    missing = sorted(metric_fields() - set(frame.columns))  # not measured in this study: known, but empty
    frame = frame.reindex(columns=list(frame.columns) + missing)
    return frame.apply(pd.to_numeric, errors="coerce")
