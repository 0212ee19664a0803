"""The comparative analysis: statements computed from the specs and from the measured results, claims
checked, contradictions flagged.

Pure functions over the study and its specs (or the spec table), and over the measured frames
(aggregate.Tables: ``result_statements``, ``result_conclusion``): no files, no network, no models.
Every number a statement prints comes from the table and is also returned in ``Statement.numbers``,
so tests (and readers) can trace it. Model names and other config text are Markdown-escaped here,
because statement text goes into the report as Markdown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reportgen.errors import ClaimError, ConfigError
from reportgen.format import human_bytes, human_count, is_missing, num, percent, ratio
from reportgen.report.markdown import md_escape, md_inline_code

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from reportgen.study.config import Claim, ModelConfig, Study
    from reportgen.specs.extract import ModelSpec

__all__ = [
    "Check",
    "ClaimResult",
    "Comparison",
    "ModelPair",
    "Operand",
    "Statement",
    "check_claims",
    "claims_table",
    "conclusion_points",
    "consistency_warnings",
    "has_results",
    "headline_metric",
    "metrics_claim_table",
    "model_pairs",
    "paired_difference",
    "pareto_front",
    "parse_check",
    "quality_metrics",
    "result_conclusion",
    "result_statements",
    "retraining_statement",
    "spec_statements",
]


@dataclass(frozen=True)
class Statement:
    """One sentence of the analysis. ``text`` is Markdown-safe; ``numbers`` holds every value it prints."""

    text: str
    numbers: dict = field(default_factory=dict)
    topic: str = ""


# ==================================================================================================
# Computed statements


def _names(study: Study) -> dict[str, str]:
    return {m.id: md_escape(m.name).replace("\n", " ") for m in study.models}


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + f" and {items[-1]}"


def _values(specs: Mapping[str, ModelSpec], attr: str) -> tuple[dict[str, Any], list[str]]:
    known, missing = {}, []
    for model_id, spec in specs.items():
        value = getattr(spec, attr)
        if is_missing(value):
            missing.append(model_id)
        else:
            known[model_id] = value
    return known, missing


def _groups(values: dict[str, Any], *, descending: bool = True) -> list[tuple[Any, list[str]]]:
    """Models grouped by equal value, best first; study order kept inside a group."""
    by_value: dict[Any, list[str]] = {}
    for model_id, value in values.items():
        by_value.setdefault(value, []).append(model_id)
    return sorted(by_value.items(), key=lambda item: item[0], reverse=descending)


def _compare_statement(
    specs: Mapping[str, ModelSpec],
    names: dict[str, str],
    attr: str,
    *,
    topic: str,
    top_phrase: str,  # "the longest context"
    value_text,  # value -> "4,096 tokens"
    other_text,  # value -> "4,096"
    same_phrase: str,  # "the same context length"
    missing_phrase: str,  # "context length"
    extra=None,  # (top, other) -> extra words after the factor, e.g. "(18,257 more tokens)"
) -> Statement | None:
    values, missing = _values(specs, attr)
    numbers: dict[str, Any] = {attr: dict(values)}
    tail = f" The {missing_phrase} of {_join([names[m] for m in missing])} is not stated." if missing else ""
    if not values:
        return Statement(f"No model states its {missing_phrase}.", numbers, topic) if missing else None
    groups = _groups(values)
    top_value, top_ids = groups[0]
    top_names = _join([names[m] for m in top_ids])
    if len(values) == 1:
        only = top_ids[0]
        return Statement(f"{names[only]} has {value_text(top_value)}.{tail}", numbers, topic)
    if len(groups) == 1:
        return Statement(f"All {len(values)} models have {same_phrase}, {value_text(top_value)}.{tail}", numbers, topic)
    subject = f"{top_names} share {top_phrase}" if len(top_ids) > 1 else f"{top_names} has {top_phrase}"
    parts = []
    factors: dict[str, float] = {}
    for value, ids in groups[1:]:
        factor = top_value / value if value else math.inf
        for m in ids:
            factors[m] = factor
        each = " each" if len(ids) > 1 else ""
        words = f"{ratio(factor)} that of {_join([names[m] for m in ids])} ({other_text(value)}{each})"
        if extra is not None:
            words += extra(top_value, value)
        parts.append(words)
    numbers["factor_over"] = factors
    return Statement(f"{subject}, {value_text(top_value)}: {'; '.join(parts)}.{tail}", numbers, topic)


def _context_statement(specs, names) -> Statement | None:
    return _compare_statement(
        specs, names, "context_length", topic="context",
        top_phrase="the longest context", value_text=lambda v: f"{num(v)} tokens", other_text=num,
        same_phrase="the same context length", missing_phrase="context length",
    )


def _vocab_statement(specs, names) -> Statement | None:
    return _compare_statement(
        specs, names, "vocab_size", topic="vocabulary",
        top_phrase="the largest vocabulary", value_text=lambda v: f"{num(v)} tokens", other_text=num,
        same_phrase="the same vocabulary size", missing_phrase="vocabulary size",
        extra=lambda top, other: f", {num(top - other)} more tokens",
    )


def _parameters_statement(specs, names) -> Statement | None:
    return _compare_statement(
        specs, names, "parameters", topic="parameters",
        top_phrase="the most parameters", value_text=lambda v: f"{num(v)} ({human_count(v)})",
        other_text=lambda v: f"{num(v)}, {human_count(v)}",
        same_phrase="the same number of parameters", missing_phrase="parameter count",
    )


def _memory_statement(specs, names) -> Statement | None:
    stored, _ = _values(specs, "weight_bytes")
    four, _ = _values(specs, "weight_bytes_4bit")
    # a GGUF file is already quantized: a bitsandbytes 4-bit estimate of it compares nothing
    four = {m: v for m, v in four.items() if specs[m].source != "gguf"}
    if not stored and not four:
        return None
    parts_stored = [f"{names[m]} {human_bytes(v)} ({specs[m].dtype})" for m, v in stored.items()]
    parts_four = []
    for m, v in four.items():
        saving = f" ({ratio(stored[m] / v)} less)" if m in stored and v else ""
        parts_four.append(f"{names[m]} {human_bytes(v)}{saving}")
    text = ""
    if parts_stored:
        text += f"Weight memory at the stored dtype: {_join(parts_stored)}."
    if parts_four:
        text += (" " if text else "") + (
            f"Loaded in 4-bit with bitsandbytes (NF4, estimated): {_join(parts_four)}."
        )
    not_stated = [names[m] for m in specs if m not in stored]
    if not_stated:
        text += f" The stored size of {_join(not_stated)} is not known."
    return Statement(text, {"weight_bytes": stored, "weight_bytes_4bit": four}, "memory")


_SHAPE_FIELDS = ("architecture", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "vocab_size", "parameters")
_DIFF_FIELDS = (("context_length", "context length", num), ("dtype", "stored dtype", str),
                ("transformers_version", "transformers version", str), ("activation", "activation", str),
                ("tie_word_embeddings", "tied embeddings", lambda v: "yes" if v else "no"))


def _shape_statements(specs, names) -> list[Statement]:
    groups: dict[tuple, list[str]] = {}
    for model_id, spec in specs.items():
        key = tuple(getattr(spec, f) for f in _SHAPE_FIELDS)
        if any(is_missing(v) for v in key):
            continue
        groups.setdefault(key, []).append(model_id)
    out = []
    for key, ids in groups.items():
        if len(ids) < 2:
            continue
        spec = specs[ids[0]]
        shape = (
            f"{md_inline_code(spec.architecture)}, {num(spec.num_hidden_layers)} layers, hidden size "
            f"{num(spec.hidden_size)}, {num(spec.num_attention_heads)} attention heads, "
            f"{num(spec.parameters)} parameters"
        )
        diffs, numbers = [], {f: getattr(spec, f) for f in _SHAPE_FIELDS}
        for attr, label, show in _DIFF_FIELDS:
            values = [getattr(specs[m], attr) for m in ids]
            if len(set(values)) > 1:
                diffs.append(f"{label} ({' vs '.join('not stated' if is_missing(v) else show(v) for v in values)})")
                numbers[attr] = {m: getattr(specs[m], attr) for m in ids}
        differ = f"; they differ in {_join(diffs)}" if diffs else "; their specs are identical"
        text = f"{_join([names[m] for m in ids])} have the same architecture and size ({shape}){differ}."
        out.append(Statement(text, numbers, "architecture"))
    return out


def _adapter_statements(specs, names) -> list[Statement]:
    out = []
    for model_id, spec in specs.items():
        a = spec.adapter
        if a is None:
            continue
        settings = []
        if a.r is not None:
            settings.append(f"r = {num(a.r)}")
        if a.alpha is not None:
            settings.append(f"alpha = {num(a.alpha)}")
        if a.dropout is not None:
            settings.append(f"dropout = {num(a.dropout)}")
        targets = ", ".join(md_inline_code(t) for t in a.target_modules) or "no listed modules"
        kind = "LoRA" if a.peft_type == "LORA" else md_escape(a.peft_type)
        text = f"{names[model_id]} adds a {kind} adapter ({', '.join(settings)}) on {targets}"
        numbers: dict[str, Any] = {"r": a.r, "alpha": a.alpha, "dropout": a.dropout,
                                   "trainable_parameters": a.trainable_parameters, "share_of_base": a.share_of_base}
        if a.trainable_parameters is not None:
            text += f": it trains {num(a.trainable_parameters)} parameters ({human_count(a.trainable_parameters)})"
            if a.share_of_base is not None and spec.parameters is not None:
                text += f", {percent(a.share_of_base)} of the {num(spec.parameters)} of its base model"
                numbers["base_parameters"] = spec.parameters
        else:
            text += "; its trainable parameters are not counted (no base model config)"
        if a.peft_type == "LORA" and a.r and a.alpha is not None:
            scale = a.alpha / a.r
            numbers["scaling"] = scale
            text += f". The update is scaled by alpha / r = {num(scale)}"
        out.append(Statement(text + ".", numbers, "adapter"))
    return out


def _quantization_statements(study: Study, specs, names) -> list[Statement]:
    out = []
    for model in study.models:
        q = model.quantization
        if q is None:
            continue
        spec = specs.get(model.id)
        numbers: dict[str, Any] = {"bits": q.bits, **q.model_dump(mode="json")}
        if q.load_in_4bit:
            double = "with" if q.bnb_4bit_use_double_quant else "without"
            text = (f"{names[model.id]} is loaded with bitsandbytes in 4-bit ({q.bnb_4bit_quant_type.upper()}, "
                    f"compute dtype {q.bnb_4bit_compute_dtype}, {double} double quantization)")
            if spec is not None and spec.weight_bytes_4bit is not None:
                numbers["weight_bytes_4bit"] = spec.weight_bytes_4bit
                text += f": an estimated {human_bytes(spec.weight_bytes_4bit)} of weights"
                if spec.weight_bytes:
                    numbers["weight_bytes"] = spec.weight_bytes
                    text += (f" instead of {human_bytes(spec.weight_bytes)} at {spec.dtype} "
                             f"({ratio(spec.weight_bytes / spec.weight_bytes_4bit)} less)")
            if spec is not None and spec.adapter is not None and spec.adapter.peft_type == "LORA" and q.bnb_4bit_quant_type == "nf4":
                text += ". A frozen 4-bit NF4 base with a trainable LoRA adapter is the QLoRA recipe"
        elif q.load_in_8bit:
            text = (f"{names[model.id]} is loaded with bitsandbytes in 8-bit (LLM.int8(), outlier threshold "
                    f"{num(q.llm_int8_threshold)})")
        else:
            text = f"{names[model.id]} has a bitsandbytes configuration that loads neither in 4-bit nor in 8-bit"
        out.append(Statement(text + ".", numbers, "quantization"))
    return out


def _missing_statements(specs, names, study: Study) -> list[Statement]:
    out = []
    without = [m.id for m in study.models if m.id not in specs]
    if without:
        out.append(Statement(
            f"No spec is available for {_join([names[m] for m in without])}: give a vendored `config` "
            "(config.json) or a local source.", {"models": without}, "missing"))
    for model_id, spec in specs.items():
        for note in spec.notes:
            out.append(Statement(f"{names[model_id]}: {md_escape(note)}.", {}, "missing"))
    return out


def spec_statements(study: Study, specs: Mapping[str, ModelSpec]) -> list[Statement]:
    """The comparative analysis computed from the specs: context, vocabulary, size, memory, shape, adapter, quantization."""
    names = _names(study)
    specs = {m.id: specs[m.id] for m in study.models if m.id in specs}  # study order
    out: list[Statement] = []
    for make in (_context_statement, _vocab_statement, _parameters_statement, _memory_statement):
        statement = make(specs, names) if specs else None
        if statement is not None:
            out.append(statement)
    out += _shape_statements(specs, names)
    out += _adapter_statements(specs, names)
    out += _quantization_statements(study, specs, names)
    out += _missing_statements(specs, names, study)
    return out


def conclusion_points(study: Study, specs: Mapping[str, ModelSpec]) -> list[Statement]:
    """What the comparison means for a choice between the models, one line per criterion."""
    names = _names(study)
    specs = {m.id: specs[m.id] for m in study.models if m.id in specs}
    out: list[Statement] = []
    if len(specs) < 2:
        return out

    def extreme(attr: str, best=max) -> tuple[Any, list[str]] | None:
        values, _ = _values(specs, attr)
        if len(values) < 2 or len(set(values.values())) == 1:
            return None
        target = best(values.values())
        return target, [m for m, v in values.items() if v == target]

    small = extreme("weight_bytes", min)
    big = extreme("parameters", max)
    if small:
        value, ids = small
        four = [specs[m].weight_bytes_4bit for m in ids if specs[m].weight_bytes_4bit]
        text = (f"**Smallest to run:** {_join([names[m] for m in ids])}: {human_bytes(value)} of weights "
                f"at {specs[ids[0]].dtype}" + (f", about {human_bytes(four[0])} in 4-bit" if four else ""))
        numbers: dict[str, Any] = {"weight_bytes": value}
        if big and specs[ids[0]].parameters:
            text += f"; {ratio(big[0] / specs[ids[0]].parameters)} fewer parameters than {_join([names[m] for m in big[1]])}"
            numbers["largest_parameters"] = big[0]
        out.append(Statement(text + ".", numbers, "conclusion"))
    if big:
        value, ids = big
        out.append(Statement(
            f"**Largest:** {_join([names[m] for m in ids])}, {num(value)} parameters ({human_count(value)}).",
            {"parameters": value}, "conclusion"))
    longest = extreme("context_length")
    if longest:
        value, ids = longest
        out.append(Statement(
            f"**Longest context:** {_join([names[m] for m in ids])}, {num(value)} tokens.",
            {"context_length": value}, "conclusion"))
    vocab = extreme("vocab_size")
    if vocab:
        value, ids = vocab
        out.append(Statement(
            f"**Largest vocabulary:** {_join([names[m] for m in ids])}, {num(value)} tokens.",
            {"vocab_size": value}, "conclusion"))
    adapted = [(m, s.adapter) for m, s in specs.items() if s.adapter is not None and s.adapter.trainable_parameters]
    for model_id, adapter in adapted:
        out.append(Statement(
            f"**Cheapest to fine-tune again:** {names[model_id]} trains only its adapter, "
            f"{num(adapter.trainable_parameters)} parameters ({percent(adapter.share_of_base)} of the base model).",
            {"trainable_parameters": adapter.trainable_parameters, "share_of_base": adapter.share_of_base}, "conclusion"))
    return out


# ==================================================================================================
# Claims: a small declared form, parsed here and never evaluated as Python

OPERATORS = ("<=", ">=", "==", "!=", "<", ">")
_TOKEN = re.compile(r"\s*(?:(<=|>=|==|!=|<|>)|(\*)|([^\s<>=!*]+)|(\S))")
_NUMBER = re.compile(r"^[+-]?(\d[\d_]*)(\.\d[\d_]*)?([eE][+-]?\d+)?$")
_REF = re.compile(r"^([a-z0-9][a-z0-9_.-]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
CHECK_FORM = "comparisons joined by 'and'; each side a number, MODEL.FIELD or NUMBER * MODEL.FIELD"


@dataclass(frozen=True)
class Operand:
    """``factor * model.field``, or a plain number when ``model`` is None."""

    factor: float | int
    model: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        if self.model is None:
            return _show_number(self.factor)
        ref = f"{self.model}.{self.field}"
        return ref if self.factor == 1 else f"{_show_number(self.factor)} * {ref}"


@dataclass(frozen=True)
class Comparison:
    left: Operand
    op: str
    right: Operand

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class Check:
    comparisons: tuple[Comparison, ...]

    @property
    def references(self) -> list[tuple[str, str]]:
        refs: list[tuple[str, str]] = []
        for c in self.comparisons:
            for side in (c.left, c.right):
                if side.model is not None and (side.model, side.field) not in refs:
                    refs.append((side.model, side.field))
        return refs


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    passed: bool
    values: dict  # "model.field" -> value
    check: Check | None = None
    failed: tuple[Comparison, ...] = ()
    index: int = 0
    pending: bool = False  # names a measured value, and the report has no results yet: not checked


def _show_number(value: float | int | None) -> str:
    if value is None:
        return "not stated"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def _parse_number(text: str) -> int | float:
    clean = text.replace("_", "")
    return int(clean) if re.fullmatch(r"[+-]?\d+", clean) else float(clean)


def parse_check(text: str, index: int | None = None) -> Check:
    """Parse ``a.x > 2 * b.x and c.y == 3``. Syntax errors raise ConfigError naming ``claims[index].check``."""
    where = f"claims[{index}].check" if index is not None else "check"

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{where}: {problem} in {text!r}. Expected {CHECK_FORM}, e.g. 'a.context_length > 2 * b.context_length'")

    tokens: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(text):
        op, star, word, other = match.groups()
        if op:
            tokens.append(("op", op))
        elif star:
            tokens.append(("*", star))
        elif word:
            if word == "and":
                tokens.append(("and", word))
            elif word.lower() in ("or", "not", "and"):
                raise fail(f"'{word}' is not allowed: only 'and' joins comparisons")
            elif _NUMBER.match(word):
                tokens.append(("num", word))
            elif _REF.match(word):
                tokens.append(("ref", word))
            else:
                raise fail(f"'{word}' is neither a number nor MODEL.FIELD")
        elif other:
            raise fail(f"unexpected '{other}'")
    if not tokens:
        raise fail("empty check")

    pos = 0

    def take(kind: str | None = None) -> tuple[str, str] | None:
        nonlocal pos
        if pos < len(tokens) and (kind is None or tokens[pos][0] == kind):
            pos += 1
            return tokens[pos - 1]
        return None

    def operand() -> Operand:
        token = take()
        if token is None:
            raise fail("the check ends too early")
        kind, value = token
        if kind == "num":
            if take("*"):
                ref = take("ref")
                if ref is None:
                    raise fail(f"'{value} *' must be followed by MODEL.FIELD")
                model, fld = _REF.match(ref[1]).groups()
                return Operand(_parse_number(value), model, fld)
            return Operand(_parse_number(value))
        if kind == "ref":
            if pos < len(tokens) and tokens[pos][0] == "*":
                raise fail("write the factor first: NUMBER * MODEL.FIELD")
            model, fld = _REF.match(value).groups()
            return Operand(1, model, fld)
        raise fail(f"expected a number or MODEL.FIELD, got '{value}'")

    comparisons = []
    while True:
        left = operand()
        op = take("op")
        if op is None:
            found = f"'{tokens[pos][1]}'" if pos < len(tokens) else "the end"
            raise fail(f"expected a comparison operator ({' '.join(OPERATORS)}) after '{left}', got {found}")
        right = operand()
        if left.model is None and right.model is None:
            raise fail(f"'{left} {op[1]} {right}' compares two numbers; name at least one MODEL.FIELD")
        comparisons.append(Comparison(left, op[1], right))
        if pos == len(tokens):
            break
        if take("and") is None:
            raise fail(f"expected 'and' between comparisons, got '{tokens[pos][1]}'")
    return Check(tuple(comparisons))


def _compare(left: float, op: str, right: float) -> bool:
    if op in ("==", "!="):
        exact = isinstance(left, int) and isinstance(right, int)
        equal = left == right if exact else math.isclose(left, right, rel_tol=1e-9, abs_tol=0.0)
        return equal if op == "==" else not equal
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _lookup(table: pd.DataFrame, model: str, fld: str) -> Any:
    from reportgen.specs.study import table_value

    return table_value(table, model, fld)


def evaluate_check(check: Check, table: pd.DataFrame, *, where: str = "check") -> tuple[bool, dict, tuple[Comparison, ...]]:
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

    failed = []
    for comparison in check.comparisons:
        left, right = resolve(comparison.left), resolve(comparison.right)
        if left is None or right is None or not _compare(left, comparison.op, right):
            failed.append(comparison)
    return not failed, values, tuple(failed)


def _claim_failure(study: Study, result: ClaimResult) -> str:
    shown = ", ".join(f"{ref} = {_show_number(v)}" for ref, v in result.values.items())
    unknown = [ref for ref, v in result.values.items() if v is None]
    verdict = f"cannot be checked ({', '.join(unknown)} not stated)" if unknown else "is false"
    failing = "; ".join(str(c) for c in result.failed)
    return (f"claim '{result.claim.text}' {verdict}: {shown} (fails: {failing}) "
            f"(claims[{result.index}] at {study.where('claims', result.index, 'check')})")


def claims_table(table: pd.DataFrame, metrics: pd.DataFrame | None) -> pd.DataFrame:
    """The spec table joined with the measured values (``metrics_claim_table``); spec columns win a name clash."""
    if metrics is None or metrics.empty:
        return table
    extra = metrics[[c for c in metrics.columns if c not in table.columns]]
    joined = table.join(extra, how="outer")
    order = list(table.index) + [m for m in extra.index if m not in table.index]
    return joined.reindex(order)


def check_claims(study: Study, table: pd.DataFrame, *, metrics: pd.DataFrame | None = None, strict: bool = True) -> list[ClaimResult]:
    """Check every claim of the study against ``table`` (the spec table) joined with ``metrics``.

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
                    raise ConfigError(f"claims[{index}].check: unknown model '{known[0]}'. Known models: {', '.join(x.id for x in study.models)}.")
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
        raise ClaimError(messages[0] if len(messages) == 1 else f"{len(messages)} claims are false:\n" + "\n".join(f"  {m}" for m in messages))
    return results


# ==================================================================================================
# Consistency warnings: what the config or card says against what the spec says

#: A name keyword and the model types it implies. Checked in order; the first match of each name
#: span wins, so "GPT-NeoX" is not also read as "GPT-Neo".
FAMILY_KEYWORDS: tuple[tuple[str, str, frozenset[str]], ...] = (
    (r"gpt[-_ ]?neo[-_ ]?x", "GPT-NeoX", frozenset({"gpt_neox"})),
    (r"gpt[-_ ]?neo", "GPT-Neo", frozenset({"gpt_neo"})),
    (r"gpt[-_ ]?j(?![a-z])", "GPT-J", frozenset({"gptj"})),
    (r"gpt[-_ ]?2(?![0-9])", "GPT-2", frozenset({"gpt2"})),
    (r"code[-_ ]?llama|llama", "Llama", frozenset({"llama", "llama4", "mllama"})),
    (r"mixtral", "Mixtral", frozenset({"mixtral"})),
    (r"mistral", "Mistral", frozenset({"mistral", "mixtral"})),
    (r"(?<![a-z0-9])(?:flan[-_ ]?|m|umt|long)?t5(?![0-9])", "T5", frozenset({"t5", "mt5", "umt5", "longt5"})),
    (r"(?:ro|distil|de)?bert", "BERT", frozenset({"bert", "roberta", "distilbert", "deberta", "deberta-v2", "camembert", "xlm-roberta"})),
    (r"falcon", "Falcon", frozenset({"falcon"})),
    (r"(?<![a-z])phi(?![a-z])", "Phi", frozenset({"phi", "phi3", "phimoe"})),
    (r"qwen", "Qwen", frozenset({"qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen2_vl", "qwen2_5_vl"})),
    (r"gemma", "Gemma", frozenset({"gemma", "gemma2", "gemma3", "gemma3_text"})),
    (r"bloom", "BLOOM", frozenset({"bloom"})),
    (r"(?<![a-z])opt(?![a-z])", "OPT", frozenset({"opt"})),
    (r"starcoder", "StarCoder", frozenset({"gpt_bigcode", "starcoder2"})),
    (r"(?<![a-z])olmo", "OLMo", frozenset({"olmo", "olmo2"})),
    (r"(?<![a-z])bart(?![a-z])", "BART", frozenset({"bart", "mbart"})),
)

CAUSAL_TAGS = {"text-generation"}
SEQ2SEQ_TAGS = {"text2text-generation", "translation", "summarization"}
_SIZE_IN_NAME = re.compile(r"(?<![0-9a-z.])(\d+(?:\.\d+)?)\s*([mb])(?![a-z])", re.IGNORECASE)


def _name_families(name: str) -> list[tuple[str, frozenset[str]]]:
    lowered = name.lower()
    taken: list[tuple[int, int]] = []
    found = []
    for pattern, label, types in FAMILY_KEYWORDS:
        for match in re.finditer(pattern, lowered):
            span = match.span()
            if any(span[0] < end and start < span[1] for start, end in taken):
                continue
            taken.append(span)
            found.append((label, types))
    return found


def _spec_what(spec: ModelSpec) -> str:
    bits = [b for b in (spec.architecture, f"model_type {spec.model_type}" if spec.model_type else None) if b]
    return f"{spec.family or spec.model_type or 'an unknown'} model ({', '.join(bits)})" if bits else "model"


def _model_warnings(model: ModelConfig, spec: ModelSpec | None, name: str) -> list[str]:
    warnings: list[str] = []
    card = model.card
    source = "the spec" if spec is None else ("config.json" if spec.source == "config.json" else "the GGUF metadata")

    if spec is not None and spec.model_type:
        families = _name_families(model.name)
        if families and not any(spec.model_type in types for _, types in families):
            said = _join([f"“{label}”" for label, _ in families])
            warnings.append(
                f"{name}: the name says {said}, but {source} describes a {_spec_what(spec)}. "
                "The report uses the architecture from the config; the name is kept as given."
            )

    tag = (card.pipeline_tag or "").strip().lower()
    if spec is not None and spec.task == "causal-lm" and tag in SEQ2SEQ_TAGS:
        warnings.append(
            f"{name}: the card's pipeline tag is {md_inline_code(card.pipeline_tag)}, but {source} describes a "
            f"causal (decoder-only) language model ({md_inline_code(spec.architecture or spec.model_type)}); "
            "its pipeline tag should be `text-generation`."
        )
    elif spec is not None and spec.task == "seq2seq-lm" and tag in CAUSAL_TAGS:
        warnings.append(
            f"{name}: the card's pipeline tag is {md_inline_code(card.pipeline_tag)}, but {source} describes an "
            f"encoder-decoder (seq2seq) model ({md_inline_code(spec.architecture or spec.model_type)}); "
            "its pipeline tag should be `text2text-generation`."
        )

    if (card.library or "").strip().lower() == "peft" and model.adapter is None:
        warnings.append(
            f"{name}: the card names the library PEFT, but the study configures no adapter for it: "
            f"{source} describes full model weights, which load with transformers alone."
        )

    if spec is not None and spec.adapter is not None and spec.adapter.task_type and spec.task:
        wants = {"CAUSAL_LM": "causal-lm", "SEQ_2_SEQ_LM": "seq2seq-lm"}.get(spec.adapter.task_type.upper())
        if wants and wants != spec.task:
            warnings.append(
                f"{name}: the adapter's task_type is {md_inline_code(spec.adapter.task_type)}, but the base model "
                f"is a {spec.task} model."
            )

    if spec is not None and spec.parameters:
        for value, unit in _SIZE_IN_NAME.findall(model.name):
            stated = float(value) * (1e9 if unit.lower() == "b" else 1e6)
            if stated and not 0.5 <= spec.parameters / stated <= 2:
                warnings.append(
                    f"{name}: the name says {md_escape(value + unit.upper())} parameters, but the architecture "
                    f"has {num(spec.parameters)} ({human_count(spec.parameters)})."
                )

    quant = model.quantization
    if quant is not None and spec is not None and spec.source == "gguf":
        warnings.append(
            f"{name}: a bitsandbytes `quantization:` is configured, but the model is a GGUF file, "
            f"already quantized ({md_escape(spec.dtype)}); bitsandbytes does not apply."
        )
    return warnings


def consistency_warnings(study: Study, specs: Mapping[str, ModelSpec]) -> list[str]:
    """Contradictions between what the config and card say and what the spec shows (Markdown-safe text)."""
    names = _names(study)
    out: list[str] = []
    for model in study.models:
        out += _model_warnings(model, specs.get(model.id), names[model.id])
    return out


def warnings_by_model(study: Study, specs: Mapping[str, ModelSpec]) -> dict[str, list[str]]:
    """The same warnings, grouped by model id (for the per-model sections)."""
    names = _names(study)
    return {m.id: _model_warnings(m, specs.get(m.id), names[m.id]) for m in study.models}


def claim_lines(results: Iterable[ClaimResult]) -> list[str]:
    """Markdown for checked claims: the claim, then the check and the values it was checked with."""
    lines = []
    for r in results:
        text = " ".join(line for line in md_escape(r.claim.text).split("\n") if line)
        if r.pending:
            lines.append(f"… {text} — not checked yet: {md_inline_code(r.claim.check)} names measured results, and this "
                         "report has none. Run the study (`reportgen run`) and render again.")
            continue
        values = ", ".join(f"{md_inline_code(ref)} = {num(v)}" for ref, v in r.values.items())
        mark = "✓" if r.passed else "✗"
        lines.append(f"{mark} {text} — checked: {md_inline_code(r.claim.check)} with {values}.")
    return lines



# ==================================================================================================
# The analysis of measured results: pure functions over aggregate.Tables
#
# Every number printed below is read from the frames (summary, pairwise, efficiency, lm, per_prompt)
# and returned in Statement.numbers too. Significance always means: the paired-bootstrap 95% CI of
# the difference (tables.pairwise) excludes 0. Throughput and memory are one measurement per model,
# so they get no interval and no test.

#: The reference metrics that can head the report, in order of preference.
HEADLINE_METRICS = ("exact_match", "contains_answer", "rouge_l", "chrf")
#: A model "rambles" when at least this share of its answers stopped at the token limit ...
RAMBLE_SHARE = 0.5
#: ... and "loops" when its mean repeated-4-gram rate reaches this, or one answer's exceeds LOOP_PROMPT.
LOOP_MEAN = 0.2
LOOP_PROMPT = 0.5


def _finite(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _result_names(study: Study | None, ids: Iterable[str]) -> dict[str, str]:
    names = _names(study) if study is not None else {}
    return {m: names.get(m, md_escape(m)) for m in ids}


def _label(metric: str) -> str:
    from reportgen.stats.metrics import metric_label

    return metric_label(metric)


def _capital(label: str) -> str:
    """Sentence case for a label at the start of a sentence: ``exact match`` → ``Exact match``; ``chrF`` stays."""
    return label[:1].upper() + label[1:] if label == label.lower() else label


def _value(metric: str, value: Any, **kw: Any) -> str:
    from reportgen.stats.metrics import metric_value

    return metric_value(metric, value, **kw)


def _ci_text(metric: str, low: Any, high: Any) -> str:
    return f"95% CI [{_value(metric, low)}, {_value(metric, high)}]"


def has_results(tables: Any) -> bool:
    """Whether ``tables`` holds measured results to report (at least one generation)."""
    return tables is not None and not tables.per_prompt.empty


def quality_metrics(tables: Any) -> list[str]:
    """The reference metrics with at least one model's mean, in registry order."""
    from reportgen.stats.metrics import METRICS

    out = []
    for metric in tables.metrics:
        if METRICS.find(metric) is None or METRICS.get(metric).kind != "reference":
            continue
        if _means(tables, metric):
            out.append(metric)
    return out


def headline_metric(tables: Any) -> str | None:
    """The quality metric the report leads with: the first of HEADLINE_METRICS with results, skipping
    one on which every model scores 0 (it would say nothing) unless all of them do."""
    present = [m for m in HEADLINE_METRICS if m in quality_metrics(tables)]
    for metric in present:
        if any(float(row["mean"]) != 0 for row in _means(tables, metric).values()):
            return metric
    return present[0] if present else None


def _means(tables: Any, metric: str) -> dict[str, dict]:
    """model_id → its summary row (mean, ci_low, ci_high, n) for ``metric``, models with a finite mean, table order."""
    rows = tables.summary[tables.summary["metric"] == metric]
    return {r["model_id"]: r for r in rows.to_dict("records") if _finite(r["mean"])}


def _ranked(means: Mapping[str, dict], metric: str) -> list[str]:
    from reportgen.stats.metrics import METRICS

    higher = METRICS.get(metric).higher_is_better if metric in METRICS else True
    order = list(means)
    return sorted(order, key=lambda m: (-float(means[m]["mean"]) if higher else float(means[m]["mean"]), order.index(m)))


def paired_difference(tables: Any, metric: str, a: str, b: str) -> dict | None:
    """The paired test of ``a − b`` on ``metric`` from tables.pairwise, whichever way round it is stored."""
    frame = tables.pairwise
    if frame is None or frame.empty:
        return None
    for first, second, sign in ((a, b, 1.0), (b, a, -1.0)):
        rows = frame[(frame["metric"] == metric) & (frame["model_a"] == first) & (frame["model_b"] == second)]
        if len(rows):
            row = rows.iloc[0]
            low, high = float(row["ci_low"]) * sign, float(row["ci_high"]) * sign
            return {
                "diff": float(row["diff"]) * sign, "ci_low": min(low, high), "ci_high": max(low, high),
                "significant": bool(row["significant"]), "n": int(row["n"]), "p_value": float(row["p_value"]),
            }
    return None


def _diff_text(metric: str, test: Mapping[str, Any]) -> str:
    if not _finite(test.get("ci_low")):
        return f"diff {_value(metric, test['diff'])}, no interval: fewer than two shared prompts"
    return f"diff {_value(metric, test['diff'])}, {_ci_text(metric, test['ci_low'], test['ci_high'])}"


def _best_statement(tables: Any, metric: str, names: Mapping[str, str]) -> Statement | None:
    means = _means(tables, metric)
    if not means:
        return None
    ranked = _ranked(means, metric)
    best = ranked[0]
    row = means[best]
    label = _label(metric)
    shown = f"{_value(metric, row['mean'])} ({_ci_text(metric, row['ci_low'], row['ci_high'])}, n = {int(row['n'])})"
    numbers: dict[str, Any] = {"best": best, "mean": float(row["mean"]), "ci_low": float(row["ci_low"]),
                               "ci_high": float(row["ci_high"]), "n": int(row["n"])}
    heading = f"**{_capital(label)}:**"
    if len(ranked) == 1:
        return Statement(f"{heading} only {names[best]} has a score: {shown}.", numbers, "quality")
    runner = ranked[1]
    numbers["runner_up"] = runner
    numbers["runner_up_mean"] = float(means[runner]["mean"])
    test = paired_difference(tables, metric, best, runner)
    if test is None:
        return Statement(
            f"{heading} {names[best]} has the best mean, {shown}; the runner-up {names[runner]} has "
            f"{_value(metric, means[runner]['mean'])}. No paired test is available for the two.", numbers, "quality")
    numbers.update(diff=test["diff"], diff_ci_low=test["ci_low"], diff_ci_high=test["ci_high"], significant=test["significant"])
    if all(float(means[m]["mean"]) == float(row["mean"]) for m in ranked):
        numbers["tied"] = list(ranked)
        every = "both models score" if len(ranked) == 2 else f"all {len(ranked)} models score"
        return Statement(f"{heading} {every} {_value(metric, row['mean'])} (n = {int(row['n'])}): {label} does not "
                         "separate them here.", numbers, "quality")
    if float(means[best]["mean"]) == float(means[runner]["mean"]):
        tied = [m for m in ranked if float(means[m]["mean"]) == float(row["mean"])]
        numbers["tied"] = tied
        return Statement(
            f"{heading} {_join([names[m] for m in tied])} tie at {_value(metric, row['mean'])}; "
            f"{names[best]} and {names[runner]} are not significantly different on {label} ({_diff_text(metric, test)}).",
            numbers, "quality")
    if test["significant"]:
        return Statement(
            f"{heading} {names[best]} is best, {shown}, significantly better than the runner-up {names[runner]} "
            f"({_value(metric, means[runner]['mean'])}; {_diff_text(metric, test)}).", numbers, "quality")
    return Statement(
        f"{heading} {names[best]} has the best mean, {shown}, but {names[best]} and {names[runner]} are not "
        f"significantly different on {label} ({_diff_text(metric, test)}).", numbers, "quality")


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """The ids whose (x, y) no other point beats on both (higher is better on both axes), in input order."""
    front = []
    for m, (x, y) in points.items():
        dominated = any(
            (ox >= x and oy >= y) and (ox > x or oy > y) for o, (ox, oy) in points.items() if o != m
        )
        if not dominated:
            front.append(m)
    return front


def speed_quality_points(tables: Any, metric: str | None) -> dict[str, tuple[float, float]]:
    """model_id → (tokens/s, mean of ``metric``) for models with both."""
    if metric is None:
        return {}
    means = _means(tables, metric)
    points = {}
    for row in tables.efficiency.to_dict("records"):
        if row["model_id"] in means and _finite(row["tokens_per_s"]):
            points[row["model_id"]] = (float(row["tokens_per_s"]), float(means[row["model_id"]]["mean"]))
    return points


def _tradeoff_statement(tables: Any, metric: str | None, names: Mapping[str, str]) -> Statement | None:
    points = speed_quality_points(tables, metric)
    if len(points) < 2 or metric is None:
        return None
    front = pareto_front(points)
    label = _label(metric)
    shown = [f"{names[m]} ({_value('tokens_per_s', points[m][0], unit=True)}, {label} {_value(metric, points[m][1])})" for m in front]
    dominated = []
    for m in points:
        if m in front:
            continue
        by = [o for o in front if points[o][0] >= points[m][0] and points[o][1] >= points[m][1]]
        each = "each " if len(by) > 1 else ""
        dominated.append(f"{names[m]} is dominated by {_join([names[o] for o in by])} ({each}at least as fast and as good)")
    if len(front) == 1:
        text = f"On speed versus {label}, {shown[0]} is both the fastest and the best: it dominates every other model."
    else:
        text = (f"On speed versus {label}, {_join(shown)} are Pareto-optimal: none of them is beaten on both "
                f"speed and {label}, so choosing between them is a trade-off.")
        if dominated:
            text += " " + "; ".join(dominated) + "."
    text += " Quality means have CIs (see above); a difference inside them can swap the order."
    return Statement(text, {"front": front, "points": points}, "tradeoff")


def _efficiency_rows(tables: Any) -> dict[str, dict]:
    return {row["model_id"]: row for row in tables.efficiency.to_dict("records")}


def _efficiency_statements(tables: Any, names: Mapping[str, str]) -> list[Statement]:
    rows = _efficiency_rows(tables)
    out: list[Statement] = []
    speed = {m: float(r["tokens_per_s"]) for m, r in rows.items() if _finite(r["tokens_per_s"])}
    if len(speed) >= 2:
        fast = max(speed, key=lambda m: (speed[m], -list(speed).index(m)))
        slow = min(speed, key=lambda m: (speed[m], list(speed).index(m)))
        text = (f"**Throughput:** {names[fast]} is the fastest, {_value('tokens_per_s', speed[fast], unit=True)}, "
                f"{ratio(speed[fast] / speed[slow]) if speed[slow] else '∞×'} the throughput of the slowest, {names[slow]} "
                f"({_value('tokens_per_s', speed[slow], unit=True)}). One measured run per model: no interval.")
        out.append(Statement(text, {"fastest": fast, "slowest": slow, "tokens_per_s": speed}, "efficiency"))
    latency = {m: float(r["latency_p50_s"]) for m, r in rows.items() if _finite(r["latency_p50_s"])}
    if len(latency) >= 2:
        quick = min(latency, key=lambda m: (latency[m], list(latency).index(m)))
        parts = [f"{names[m]} {_value('latency_p50_s', v, unit=True)}" for m, v in latency.items()]
        p95 = rows[quick]["latency_p95_s"]
        text = (f"**Latency:** {names[quick]} answers fastest, median {_value('latency_p50_s', latency[quick], unit=True)} per prompt"
                + (f" (p95 {_value('latency_p95_s', p95, unit=True)})" if _finite(p95) else "") + f"; medians: {_join(parts)}.")
        batched = [m for m, r in rows.items() if _finite(r.get("mean_batch_size")) and float(r["mean_batch_size"]) > 1]
        if batched:
            text += f" A batched prompt counts its whole batch's time ({_join([names[m] for m in batched])} ran in batches)"
            text += (", so the latencies of batched and unbatched models do not compare." if len(batched) < len(latency) else ".")
        out.append(Statement(text, {"latency_p50_s": latency, "fastest": quick}, "efficiency"))
    memory = {m: float(r["peak_memory_bytes"]) for m, r in rows.items() if _finite(r["peak_memory_bytes"])}
    if len(memory) >= 2:
        small = min(memory, key=lambda m: (memory[m], list(memory).index(m)))
        big = max(memory, key=lambda m: (memory[m], -list(memory).index(m)))
        text = (f"**Memory:** {names[small]} needs the least, {human_bytes(memory[small])} at peak; {names[big]} the most, "
                f"{human_bytes(memory[big])}, {ratio(memory[big] / memory[small]) if memory[small] else '∞×'} as much.")
        out.append(Statement(text, {"peak_memory_bytes": memory, "least": small, "most": big}, "efficiency"))
    devices = {m: str(r["device"]) for m, r in rows.items() if r.get("device") not in (None, "") and not (isinstance(r.get("device"), float))}
    if len(set(devices.values())) > 1:
        shown = [f"{names[m]} on {md_inline_code(d)}" for m, d in devices.items()]
        out.append(Statement(
            f"**Caution:** the models ran on different devices ({_join(shown)}): their speed and memory compare the "
            "hardware as much as the models.", {"devices": devices}, "efficiency"))
    streamed = [m for m, r in rows.items() if r.get("throughput_source") == "latency"]
    if streamed:
        out.append(Statement(
            f"Throughput of {_join([names[m] for m in streamed])} is per request stream (output tokens over the "
            "request times), not the whole run's rate.", {"per_stream": streamed}, "efficiency"))
    return out


def _lm_statement(tables: Any, names: Mapping[str, str]) -> Statement | None:
    lm = tables.lm
    if lm is None or lm.empty:
        return None
    rows = {r["model_id"]: r for r in lm.to_dict("records") if _finite(r["bits_per_byte"])}
    if not rows:
        return None
    order = sorted(rows, key=lambda m: (float(rows[m]["bits_per_byte"]), list(rows).index(m)))
    best = order[0]
    parts = [f"{names[m]} {_value('bits_per_byte', rows[m]['bits_per_byte'])} [{_value('bits_per_byte', rows[m]['bpb_ci_low'])}, "
             f"{_value('bits_per_byte', rows[m]['bpb_ci_high'])}]" for m in order]
    text = f"**Bits per byte** on the reference texts (lower is better, 95% CI over texts): {_join(parts)}. "
    numbers: dict[str, Any] = {"bits_per_byte": {m: float(rows[m]["bits_per_byte"]) for m in order}, "best": best}
    bpb = {m: float(rows[m]["bits_per_byte"]) for m in order}
    tied = [m for m in order if bpb[m] == bpb[best]]
    best_high = float(rows[best]["bpb_ci_high"]) if _finite(rows[best]["bpb_ci_high"]) else bpb[best]
    rest = [m for m in order if m not in tied]
    clearly_worse = [m for m in rest if _finite(rows[m]["bpb_ci_low"]) and float(rows[m]["bpb_ci_low"]) > best_high]
    uncertain = [m for m in rest if m not in clearly_worse]
    numbers.update(tied=tied, clearly_worse=clearly_worse, uncertain=uncertain)
    leaders = _join([names[m] for m in tied])
    text += f"{leaders} {'score' if len(tied) > 1 else 'scores'} lowest" + (" (the same value)" if len(tied) > 1 else "")
    if uncertain:
        text += (f"; the intervals of {_join([names[m] for m in uncertain])} overlap "
                 f"{'theirs' if len(tied) > 1 else 'its'}, so those differences are not certain")
    if clearly_worse:
        text += f"; {_join([names[m] for m in clearly_worse])} {'are' if len(clearly_worse) > 1 else 'is'} clearly worse (intervals apart)"
    texts = {int(rows[m]["n_texts"]) for m in order}
    if len(texts) > 1:
        text += ". The models scored different numbers of texts, so the figures do not compare directly"
    return Statement(text + ".", numbers, "lm")


# -- variants of one model: adapter, runtime (backend / precision / quantization), decoding ---------


@dataclass(frozen=True)
class ModelPair:
    """Two models of the study built from the same source that differ in one respect.

    kind: "adapter" (the variant adds an adapter), "runtime" (another backend, dtype or quantization),
    "decoding" (other generation settings). base: the model without the change; variant: with it.
    """

    kind: str
    base: str
    variant: str


def _differences(study: Study, a: ModelConfig, b: ModelConfig) -> set[str]:
    kinds = set()
    if a.adapter != b.adapter:
        kinds.add("adapter")
    if a.effective_backend != b.effective_backend or a.dtype != b.dtype or a.quantization != b.quantization:
        kinds.add("runtime")
    if study.generation_for(a).cache_dict() != study.generation_for(b).cache_dict():
        kinds.add("decoding")
    return kinds


def model_pairs(study: Study) -> list[ModelPair]:
    """Pairs of models with the same source that differ in exactly one respect (see ModelPair)."""
    out: list[ModelPair] = []
    models = list(study.models)
    for i, a in enumerate(models):
        for b in models[i + 1:]:
            if a.source is None or a.source != b.source:
                continue
            kinds = _differences(study, a, b)
            if len(kinds) != 1:
                continue
            kind = kinds.pop()
            base, variant = a, b
            if kind == "adapter" and a.adapter is not None and b.adapter is None:
                base, variant = b, a
            elif kind == "decoding" and study.generation_for(a).do_sample and not study.generation_for(b).do_sample:
                base, variant = b, a
            elif kind == "runtime" and a.effective_backend != "transformers" and b.effective_backend == "transformers":
                base, variant = b, a
            out.append(ModelPair(kind, base.id, variant.id))
    return out


def runtime_label(model: ModelConfig, spec: ModelSpec | None = None, precision: str | None = None) -> str:
    """How a model ran, in words: ``llama.cpp, Q4_1``, ``transformers, float32``, ``transformers, bitsandbytes 4-bit``."""
    backend = {"llamacpp": "llama.cpp", "transformers": "transformers", "http": "HTTP endpoint"}.get(model.effective_backend or "", model.effective_backend or "?")
    if precision:
        detail = precision
    elif model.quantization is not None and model.quantization.bits:
        detail = f"bitsandbytes {model.quantization.bits}-bit"
    elif model.effective_backend == "llamacpp" and spec is not None and spec.source == "gguf" and spec.dtype:
        detail = spec.dtype
    elif model.dtype != "auto":
        detail = model.dtype
    else:
        detail = ""
    return f"{backend}, {md_escape(detail)}" if detail else backend


def output_agreement(tables: Any, a: str, b: str) -> tuple[int, int]:
    """(prompts where a and b gave the identical output, prompts both answered)."""
    frame = tables.per_prompt
    mine = frame[(frame["model_id"] == a) & ~frame["failed"].astype(bool)].set_index("prompt_id")["output"]
    theirs = frame[(frame["model_id"] == b) & ~frame["failed"].astype(bool)].set_index("prompt_id")["output"]
    shared = [p for p in mine.index if p in theirs.index]
    same = sum(1 for p in shared if str(mine[p]).strip() == str(theirs[p]).strip())
    return same, len(shared)


def _change_text(tables: Any, metric: str, base: str, variant: str) -> tuple[str, dict] | None:
    from reportgen.stats.metrics import METRICS

    means = _means(tables, metric)
    if base not in means or variant not in means:
        return None
    test = paired_difference(tables, metric, variant, base)
    old, new = float(means[base]["mean"]), float(means[variant]["mean"])
    text = f"{_label(metric)} {_value(metric, old)} → {_value(metric, new)}"
    numbers = {"base": old, "variant": new}
    if test is None:
        return text, numbers
    numbers.update(diff=test["diff"], ci_low=test["ci_low"], ci_high=test["ci_high"], significant=test["significant"])
    change = f"change {_value(metric, test['diff'], signed=True)}, {_ci_text(metric, test['ci_low'], test['ci_high'])}"
    if test["significant"]:
        higher = METRICS.get(metric).higher_is_better if metric in METRICS else None
        verdict = "changed" if higher is None else ("significantly better" if (test["diff"] > 0) == higher else "**significantly worse**")
    else:
        verdict = "not significant"
    return f"{text} ({change}: {verdict})", numbers


def _pair_statement(study: Study, tables: Any, pair: ModelPair, names: Mapping[str, str], specs: Mapping[str, ModelSpec],
                    headline: str | None) -> Statement | None:
    ids = set(tables.model_ids)
    if pair.base not in ids or pair.variant not in ids:
        return None
    base, variant = study.model(pair.base), study.model(pair.variant)
    rows = _efficiency_rows(tables)
    precision = {m: (str(r["precision"]) if isinstance(r.get("precision"), str) and r.get("precision") else None) for m, r in rows.items()}
    numbers: dict[str, Any] = {"kind": pair.kind, "base": pair.base, "variant": pair.variant}
    if pair.kind == "adapter":
        spec = specs.get(pair.variant)
        kind = "LoRA adapter" if spec is not None and spec.adapter is not None and spec.adapter.peft_type == "LORA" else "adapter"
        lead = f"**The {kind}:** {names[pair.variant]} against its base {names[pair.base]}"
    elif pair.kind == "runtime":
        lead = (f"**Backend and precision:** {names[pair.variant]} ({runtime_label(variant, specs.get(pair.variant), precision.get(pair.variant))}) "
                f"against {names[pair.base]} ({runtime_label(base, specs.get(pair.base), precision.get(pair.base))})")
    else:
        g = study.generation_for(variant)
        how = (f"sampling at temperature {num(g.temperature)}, top-p {num(g.top_p)}" if g.do_sample else "greedy decoding")
        lead = f"**Decoding:** {names[pair.variant]} ({how}) against {names[pair.base]} ({'sampling' if study.generation_for(base).do_sample else 'greedy decoding'})"
    parts: list[str] = []
    quality = quality_metrics(tables)
    shown = [headline] if headline else []
    for metric in quality:
        if metric == headline:
            continue
        test = paired_difference(tables, metric, pair.variant, pair.base)
        if test is not None and test["significant"]:
            shown.append(metric)
    unchanged = [m for m in quality if m not in shown]
    for metric in shown:
        found = _change_text(tables, metric, pair.base, pair.variant)
        if found is not None:
            parts.append(found[0])
            numbers[metric] = found[1]
    if unchanged and headline:
        parts.append(f"no significant change on {_join([_label(m) for m in unchanged])}")
    if pair.kind == "decoding":
        for metric in ("distinct_2", "repeated_4gram_rate"):
            found = _change_text(tables, metric, pair.base, pair.variant)
            if found is not None:
                parts.append(found[0])
                numbers[metric] = found[1]
    b, v = rows.get(pair.base, {}), rows.get(pair.variant, {})
    if _finite(b.get("tokens_per_s")) and _finite(v.get("tokens_per_s")) and float(b["tokens_per_s"]) > 0:
        speed = float(v["tokens_per_s"]) / float(b["tokens_per_s"])
        numbers["speed_ratio"] = speed
        parts.append(f"throughput {ratio(speed)} ({_value('tokens_per_s', v['tokens_per_s'])} vs {_value('tokens_per_s', b['tokens_per_s'], unit=True)})")
    if _finite(b.get("peak_memory_bytes")) and _finite(v.get("peak_memory_bytes")) and float(b["peak_memory_bytes"]) > 0:
        memory = float(v["peak_memory_bytes"]) / float(b["peak_memory_bytes"])
        numbers["memory_ratio"] = memory
        parts.append(f"peak memory {ratio(memory)} ({human_bytes(v['peak_memory_bytes'])} vs {human_bytes(b['peak_memory_bytes'])})")
    same, shared = output_agreement(tables, pair.base, pair.variant)
    numbers.update(identical_outputs=same, shared_prompts=shared)
    if shared:
        greedy = not (study.generation_for(base).do_sample or study.generation_for(variant).do_sample)
        kind_of = "identical greedy output" if greedy else "identical output"
        parts.append(f"{kind_of} on {same} of {shared} prompts ({percent(same / shared)})")
    if not parts:
        return None
    return Statement(f"{lead}: {'; '.join(parts)}.", numbers, pair.kind)


# -- behaviour: token limits, repetition, failures ---------------------------------------------------


def _behaviour_statements(study: Study | None, tables: Any, names: Mapping[str, str]) -> list[Statement]:
    frame = tables.per_prompt
    out: list[Statement] = []
    limit_hits: dict[str, tuple[int, int]] = {}
    for model_id in tables.model_ids:
        mine = frame[(frame["model_id"] == model_id) & ~frame["failed"].astype(bool)]
        if mine.empty:
            continue
        hits = int((mine["finish_reason"] == "length").sum())
        limit_hits[model_id] = (hits, len(mine))
        if hits:
            try:
                limit = study.generation_for(study.model(model_id)).max_new_tokens if study is not None else None
            except KeyError:
                limit = None
            share = hits / len(mine)
            tokens = pd_median(mine["output_tokens"])
            limit_text = f"the {num(limit)}-token limit" if limit else "the token limit"
            text = f"{names[model_id]} hit {limit_text} on {hits} of {len(mine)} prompts ({percent(share)})"
            if share >= RAMBLE_SHARE:
                text = "**" + text + f": it rambles, and its answers are cut off** (median output {num(tokens)} tokens)"
            else:
                text += ": those answers may be cut off"
            out.append(Statement(text + ".", {"model": model_id, "hits": hits, "answered": len(mine), "share": share}, "behaviour"))
        if "repeated_4gram_rate" in mine:
            rates = mine["repeated_4gram_rate"].astype(float)
            rates = rates[rates.notna()]
            if len(rates):
                mean = float(rates.mean())
                worst_index = rates.idxmax()
                worst = float(rates.max())
                looping = int((rates > LOOP_PROMPT).sum())
                numbers = {"model": model_id, "mean_repeated_4gram_rate": mean, "worst": worst,
                           "worst_prompt": str(mine.at[worst_index, "prompt_id"]), "looping_prompts": looping}
                if mean >= LOOP_MEAN or looping:
                    text = (f"**{names[model_id]} loops:** on average {percent(mean)} of its word 4-grams repeat an earlier one; "
                            f"on {looping} of {len(rates)} prompts more than half do (worst: "
                            f"{md_inline_code(mine.at[worst_index, 'prompt_id'])}, {percent(worst)}).")
                    out.append(Statement(text, numbers, "behaviour"))
    if limit_hits and not any(h for h, _ in limit_hits.values()):
        out.append(Statement("No model hit the token limit: every answer ended on its own.", {"hits": 0}, "behaviour"))
    if "repeated_4gram_rate" in frame and not any(s.numbers.get("mean_repeated_4gram_rate") is not None for s in out):
        out.append(Statement(f"No model loops: no answer repeats more than {percent(LOOP_PROMPT)} of its word 4-grams.", {}, "behaviour"))
    failures = {r["model_id"]: (int(r["n_failed"]), int(r["n_prompts"])) for r in tables.efficiency.to_dict("records")}
    failed = {m: v for m, v in failures.items() if v[0]}
    if failed:
        for model_id, (count, total) in failed.items():
            errors = frame[(frame["model_id"] == model_id) & frame["failed"].astype(bool)]["error"].dropna().astype(str)
            first = errors.iloc[0] if len(errors) else ""
            example = f"; first error: {md_inline_code(first[:160])}" if first else ""
            out.append(Statement(
                f"**{names[model_id]} failed on {count} of {total} prompts**{example}. Failed prompts are left out of its "
                "quality means and retried on the next run.", {"model": model_id, "failed": count, "prompts": total}, "behaviour"))
    elif failures:
        total = sum(t for _, t in failures.values())
        out.append(Statement(f"No generation failed ({total} generations over {len(failures)} models).", {"failed": 0, "generations": total}, "behaviour"))
    return out


def pd_median(values: Any) -> float:
    import numpy as np

    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    return float(np.median(data)) if data.size else math.nan


#: The groups the analysis of results is shown in, in order: topic → heading.
RESULT_TOPICS = {
    "quality": "Quality against the references",
    "tradeoff": "Speed against quality",
    "efficiency": "Speed and memory",
    "lm": "Language modelling",
    "adapter": "Variants of the same model",
    "runtime": "Variants of the same model",
    "decoding": "Variants of the same model",
    "behaviour": "Token limits, repetition and failures",
}


def result_statements(study: Study, tables: Any, specs: Mapping[str, ModelSpec] | None = None) -> list[Statement]:
    """The comparative analysis of the measured results (topics: RESULT_TOPICS), computed from ``tables``."""
    if not has_results(tables):
        return []
    specs = specs or {}
    names = _result_names(study, list(tables.model_ids) + [m.id for m in study.models])
    headline = headline_metric(tables)
    out: list[Statement] = []
    for metric in quality_metrics(tables):
        statement = _best_statement(tables, metric, names)
        if statement is not None:
            out.append(statement)
    tradeoff = _tradeoff_statement(tables, headline, names)
    if tradeoff is not None:
        out.append(tradeoff)
    out += _efficiency_statements(tables, names)
    lm = _lm_statement(tables, names)
    if lm is not None:
        out.append(lm)
    for pair in model_pairs(study):
        statement = _pair_statement(study, tables, pair, names, specs, headline)
        if statement is not None:
            out.append(statement)
    out += _behaviour_statements(study, tables, names)
    order = list(dict.fromkeys(RESULT_TOPICS.values()))
    return sorted(out, key=lambda s: order.index(RESULT_TOPICS.get(s.topic, order[-1])))


def result_conclusion(study: Study, tables: Any, deltas: Iterable[Any] = (), specs: Mapping[str, ModelSpec] | None = None) -> list[Statement]:
    """What the results mean for a choice between the models, one line per criterion."""
    if not has_results(tables):
        return []
    specs = specs or {}
    names = _result_names(study, list(tables.model_ids) + [m.id for m in study.models])
    out: list[Statement] = []
    headline = headline_metric(tables)
    if headline is not None:
        means = _means(tables, headline)
        ranked = _ranked(means, headline)
        label = _label(headline)
        if len(ranked) >= 2:
            best, runner = ranked[0], ranked[1]
            test = paired_difference(tables, headline, best, runner)
            row = means[best]
            if test is not None and test["significant"]:
                text = (f"**Best {label}:** {names[best]}, {_value(headline, row['mean'])} "
                        f"({_ci_text(headline, row['ci_low'], row['ci_high'])}), significantly ahead of {names[runner]}.")
            else:
                close = [m for m in ranked[1:] if (t := paired_difference(tables, headline, best, m)) is not None and not t["significant"]]
                text = (f"**Best {label}: no clear winner.** {names[best]} has the highest mean ({_value(headline, row['mean'])}), "
                        f"but it is not significantly better than {_join([names[m] for m in close])}"
                        + (f" (against {names[runner]}: {_diff_text(headline, test)})" if test is not None else "") + ".")
            out.append(Statement(text, {"metric": headline, "best": best, "runner_up": runner,
                                        "significant": bool(test and test["significant"])}, "conclusion"))
        elif ranked:
            out.append(Statement(f"**{_capital(label)}:** {names[ranked[0]]}, {_value(headline, means[ranked[0]]['mean'])}.",
                                 {"metric": headline}, "conclusion"))
    rows = _efficiency_rows(tables)
    speed = {m: float(r["tokens_per_s"]) for m, r in rows.items() if _finite(r["tokens_per_s"])}
    if len(speed) >= 2:
        fast = max(speed, key=lambda m: (speed[m], -list(speed).index(m)))
        slow = min(speed, key=lambda m: (speed[m], list(speed).index(m)))
        out.append(Statement(
            f"**Fastest:** {names[fast]}, {_value('tokens_per_s', speed[fast], unit=True)}, "
            f"{ratio(speed[fast] / speed[slow]) if speed[slow] else '∞×'} the throughput of {names[slow]}.",
            {"fastest": fast, "ratio": speed[fast] / speed[slow] if speed[slow] else math.inf}, "conclusion"))
    memory = {m: float(r["peak_memory_bytes"]) for m, r in rows.items() if _finite(r["peak_memory_bytes"])}
    if len(memory) >= 2:
        small = min(memory, key=lambda m: (memory[m], list(memory).index(m)))
        out.append(Statement(f"**Least memory:** {names[small]}, {human_bytes(memory[small])} at peak.",
                             {"least_memory": small, "peak_memory_bytes": memory[small]}, "conclusion"))
    points = speed_quality_points(tables, headline)
    if len(points) >= 2 and headline is not None:
        front = pareto_front(points)
        out.append(Statement(
            f"**Best trade-offs** (Pareto-optimal on speed and {_label(headline)}): {_join([names[m] for m in front])}.",
            {"front": front}, "conclusion"))
    for pair in model_pairs(study):
        if pair.kind != "adapter" or headline is None:
            continue
        found = _change_text(tables, headline, pair.base, pair.variant)
        if found is not None:
            out.append(Statement(f"**Adapter:** {names[pair.variant]} against its base: {found[0]}.", found[1], "conclusion"))
    warnings = []
    for statement in _behaviour_statements(study, tables, names):
        n = statement.numbers
        if n.get("share", 0) >= RAMBLE_SHARE:
            warnings.append(f"{names[n['model']]} rambles (token limit on {percent(n['share'])} of prompts)")
        if n.get("mean_repeated_4gram_rate") is not None:
            warnings.append(f"{names[n['model']]} loops")
        if n.get("failed"):
            warnings.append(f"{names[n['model']]} failed on {n['failed']} prompts")
    if warnings:
        out.append(Statement(f"**Watch out:** {_join(warnings)}.", {"warnings": len(warnings)}, "conclusion"))
    for delta in deltas:
        worse = list(delta.worse)
        name = names.get(delta.model_id, md_escape(delta.model_id))
        if worse:
            out.append(Statement(f"**{name} got worse after retraining** on {_join([_label(m) for m in worse])}.",
                                 {"model": delta.model_id, "worse": worse}, "conclusion"))
        elif delta.better:
            out.append(Statement(f"**Retraining improved {name}** on {_join([_label(m) for m in delta.better])}.",
                                 {"model": delta.model_id, "better": list(delta.better)}, "conclusion"))
        else:
            out.append(Statement(f"**Retraining {name}** changed no metric significantly.", {"model": delta.model_id}, "conclusion"))
    return out


# -- what retraining changed ---------------------------------------------------------------------------


def retraining_verdict(row: Any) -> str:
    """``better`` / ``worse`` / ``changed`` (significant, no direction) / ``no significant change``."""
    improved = getattr(row, "improved", None)
    if improved is True:
        return "better"
    if improved is False:
        return "worse"
    return "changed" if bool(getattr(row, "significant", False)) else "no significant change"


def retraining_statement(delta: Any, name: str) -> Statement:
    """One sentence per re-trained model; a model that got worse is said so, in bold."""
    rows = {row.metric: row for row in delta.deltas.itertuples()}
    worse = [m for m in delta.worse if m in rows]
    better = [m for m in delta.better if m in rows]

    def change(metric: str) -> str:
        row = rows[metric]
        return (f"{_label(metric)} {_value(metric, row.mean_old)} → {_value(metric, row.mean_new)} "
                f"(change {_value(metric, row.diff, signed=True)}, {_ci_text(metric, row.ci_low, row.ci_high)})")

    numbers = {"worse": worse, "better": better}
    if worse:
        text = f"**{name} got worse after retraining: {'; '.join(change(m) for m in worse)}.**"
        if better:
            text += f" It improved on {'; '.join(change(m) for m in better)}."
    elif better:
        text = f"{name} improved after retraining: {'; '.join(change(m) for m in better)}. No metric got significantly worse."
    else:
        text = f"Retraining changed no metric of {name} significantly (paired bootstrap, 95%)."
    return Statement(text, numbers, "retraining")


# -- claims over measured values -------------------------------------------------------------------------


def metric_fields() -> set[str]:
    """Every field a claim can read from the measured results: metric names, efficiency and LM columns."""
    from reportgen.stats.efficiency import EFFICIENCY_COLUMNS
    from reportgen.stats.lm import LM_COLUMNS
    from reportgen.stats.metrics import METRICS

    skip = {"model_id", "device", "throughput_source", "fingerprint"}
    return set(METRICS) | {c for c in EFFICIENCY_COLUMNS + LM_COLUMNS if c not in skip}


def metrics_claim_table(tables: Any) -> pd.DataFrame:
    """One row per model with results, one column per measured value a claim can name: each per-prompt
    metric's mean (tables.summary), the efficiency columns (tokens_per_s, latency_p50_s, peak_memory_bytes,
    n_failed…) and the LM columns (bits_per_byte, perplexity…)."""
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
    frame = frame.reindex([m for m in tables.model_ids] + [m for m in frame.index if m not in tables.model_ids])
    missing = sorted(metric_fields() - set(frame.columns))  # not measured in this study: known, but empty
    frame = frame.reindex(columns=list(frame.columns) + missing)
    return frame.apply(pd.to_numeric, errors="coerce")


def parse_claims(study: Study) -> list[Check]:
    """Parse every claim's check (no data needed), for `reportgen validate`: syntax errors and unknown
    model ids are reported at once, each with ``file:line``."""
    import difflib

    checks, problems = [], []
    ids = [m.id for m in study.models]
    for index, claim in enumerate(study.claims):
        where = study.where("claims", index, "check")
        try:
            check = parse_check(claim.check, index)
        except ConfigError as exc:
            problems.extend(f"{where}: {p}" for p in exc.problems)
            continue
        for model, _ in check.references:
            if model not in ids:
                close = difflib.get_close_matches(model, ids, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else f" Known models: {', '.join(ids)}."
                problems.append(f"{where}: claims[{index}].check: unknown model '{model}'.{hint}")
        checks.append(check)
    if problems:
        raise ConfigError(problems)
    return checks
