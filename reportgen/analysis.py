"""The comparative analysis: statements computed from the spec table, claims checked, contradictions flagged.

Pure functions over the study and its specs (or the spec table): no files, no network, no models.
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
from reportgen.render.format import human_bytes, human_count, is_missing, num, percent, ratio
from reportgen.render.markdown import md_escape, md_inline_code

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from reportgen.config import Claim, ModelConfig, Study
    from reportgen.specs import ModelSpec

__all__ = [
    "Check",
    "ClaimResult",
    "Comparison",
    "Operand",
    "Statement",
    "check_claims",
    "conclusion_points",
    "consistency_warnings",
    "parse_check",
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
    from reportgen.model_specs import table_value

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


def check_claims(study: Study, table: pd.DataFrame, *, strict: bool = True) -> list[ClaimResult]:
    """Check every claim of the study against ``table`` (the spec table, later joined with metrics).

    Syntax errors, unknown models and unknown fields raise ConfigError with ``file:line``. With
    ``strict`` (the default) a false claim raises ClaimError quoting the claim and its numbers; with
    ``strict=False`` the results say ``passed=False`` instead.
    """
    results: list[ClaimResult] = []
    problems: list[str] = []
    for index, claim in enumerate(study.claims):
        where = f"{study.where('claims', index, 'check')}"
        try:
            check = parse_check(claim.check, index)
            passed, values, failed = evaluate_check(check, table, where=f"claims[{index}].check")
        except ConfigError as exc:
            problems.extend(f"{where}: {p}" for p in exc.problems)
            continue
        results.append(ClaimResult(claim, passed, values, check, failed, index))
    if problems:
        raise ConfigError(problems)
    false = [r for r in results if not r.passed]
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
        values = ", ".join(f"{md_inline_code(ref)} = {num(v)}" for ref, v in r.values.items())
        mark = "✓" if r.passed else "✗"
        text = " ".join(line for line in md_escape(r.claim.text).split("\n") if line)
        lines.append(f"{mark} {text} — checked: {md_inline_code(r.claim.check)} with {values}.")
    return lines
