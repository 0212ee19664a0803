"""Strict verdict parsing. The documented output format:

- pairwise: ``[[A]]`` (the first answer is better), ``[[B]]`` (the second), ``[[C]]`` (a tie);
- rubric: ``Rating: [[N]]`` with N a whole number on the judge's scale.

The judge's text must hold exactly one verdict (repeating the same one is allowed); anything else —
no verdict, two different ones, a rating off the scale — is an unparsed judgement, kept with its raw
text and retried on the next run.

The same formats as GBNF grammars (``verdict_grammar``): a backend that can constrain its output
(``Backend.constrains_output``, e.g. llama.cpp) makes the judge write only the verdict, so that even a
small judge's verdicts parse; the parsing stays as strict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Verdict", "parse_pairwise", "parse_rubric", "verdict_grammar"]

_PAIRWISE = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_RATING = re.compile(r"Rating:\s*\[\[\s*(-?\d+(?:\.\d+)?)\s*\]\]", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    verdict: str | None  # "A", "B", "C" (tie); None for rubric verdicts and unparsed ones
    score: float | None  # rubric score
    problem: str | None = None  # why the text did not parse

    @property
    def ok(self) -> bool:
        return self.problem is None


def parse_pairwise(text: str) -> Verdict:
    found = set(_PAIRWISE.findall(text or ""))
    if len(found) == 1:
        return Verdict(found.pop(), None)
    if not found:
        return Verdict(None, None, "no verdict in the format [[A]], [[B]] or [[C]]")
    return Verdict(None, None, f"conflicting verdicts {', '.join(sorted(found))}")


def parse_rubric(text: str, scale: tuple[int, int]) -> Verdict:
    found = {float(v) for v in _RATING.findall(text or "")}
    if not found:
        return Verdict(None, None, "no rating in the format Rating: [[N]]")
    if len(found) > 1:
        return Verdict(None, None, f"conflicting ratings {', '.join(f'{v:g}' for v in sorted(found))}")
    score = found.pop()
    if score != int(score) or not scale[0] <= score <= scale[1]:
        return Verdict(None, None, f"rating {score:g} is not a whole number from {scale[0]} to {scale[1]}")
    return Verdict(None, score)


def verdict_grammar(mode: str, scale: tuple[int, int] = (1, 10)) -> str:
    """A GBNF grammar (llama.cpp's grammar format) of exactly one verdict: ``[[A]]``, ``[[B]]`` or ``[[C]]``
    (pairwise), or ``Rating: [[N]]`` with N a whole number on ``scale`` (rubric; each number spelled out,
    so that the grammar cannot produce a rating off the scale)."""
    if mode == "pairwise":
        return 'root ::= "[[" ("A" | "B" | "C") "]]"\n'
    if mode == "rubric":
        low, high = scale
        numbers = " | ".join(f'"{n}"' for n in range(high, low - 1, -1))
        return f'root ::= "Rating: [[" ({numbers}) "]]"\n'
    raise ValueError(f"no verdict grammar for judge mode {mode!r}")
