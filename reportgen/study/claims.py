"""The claim language: a small declared form for checks over a study's numbers, parsed here and never
evaluated as Python.

``a.context_length > 2 * b.context_length and c.vocab_size >= 32_000``: comparisons joined by ``and``,
each side a number, ``MODEL.FIELD`` or ``NUMBER * MODEL.FIELD``. This module is the syntax (``parse_check``,
``parse_claims`` for `reportgen validate`) and the comparison of two values; evaluating a check against the
spec and measured tables is ``analysis.claims``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reportgen.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.study.config import Study

__all__ = ["CHECK_FORM", "OPERATORS", "Check", "Comparison", "Operand", "compare", "parse_check", "parse_claims", "show_number"]

OPERATORS = ("<=", ">=", "==", "!=", "<", ">")
_TOKEN = re.compile(r"\s*(?:(<=|>=|==|!=|<|>)|(\*)|([^\s<>=!*]+)|(\S))")
_NUMBER = re.compile(r"^[+-]?(\d[\d_]*)(\.\d[\d_]*)?([eE][+-]?\d+)?$")
_REF = re.compile(r"^([a-z0-9][a-z0-9_.-]*)\.([A-Za-z_][A-Za-z0-9_]*)$")


def _ref_parts(token: str) -> tuple[str, str]:
    """``model.field`` of a token the tokenizer already matched against ``_REF``."""
    match = _REF.match(token)
    assert match is not None
    return match.group(1), match.group(2)


CHECK_FORM = "comparisons joined by 'and'; each side a number, MODEL.FIELD or NUMBER * MODEL.FIELD"


@dataclass(frozen=True)
class Operand:
    """``factor * model.field``, or a plain number when ``model`` is None."""

    factor: float | int
    model: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        if self.model is None:
            return show_number(self.factor)
        ref = f"{self.model}.{self.field}"
        return ref if self.factor == 1 else f"{show_number(self.factor)} * {ref}"


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
                if side.model is not None and side.field is not None and (side.model, side.field) not in refs:
                    refs.append((side.model, side.field))
        return refs


def show_number(value: float | int | None) -> str:
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
        return ConfigError(
            f"{where}: {problem} in {text!r}. Expected {CHECK_FORM}, e.g. 'a.context_length > 2 * b.context_length'"
        )

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
                model, fld = _ref_parts(ref[1])
                return Operand(_parse_number(value), model, fld)
            return Operand(_parse_number(value))
        if kind == "ref":
            if pos < len(tokens) and tokens[pos][0] == "*":
                raise fail("write the factor first: NUMBER * MODEL.FIELD")
            model, fld = _ref_parts(value)
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


def compare(left: float, op: str, right: float) -> bool:
    """``left op right``; ``==`` and ``!=`` on floats are tolerant (relative 1e-9)."""
    if op in ("==", "!="):
        exact = isinstance(left, int) and isinstance(right, int)
        equal = left == right if exact else math.isclose(left, right, rel_tol=1e-9, abs_tol=0.0)
        return equal if op == "==" else not equal
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def parse_claims(study: Study) -> list[Check]:
    """Parse every claim's check (no data needed), for `reportgen validate`: syntax errors and unknown
    model ids are reported at once, each with ``file:line``."""
    import difflib

    checks: list[Check] = []
    problems: list[str] = []
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
