"""A finding: one computed fact of the analysis, without words.

Findings are what the analysis modules return (``specs``, ``results``, ``variants``, ``history``,
``consistency``, ``conclusion``); ``phrasing`` is the one place where a finding becomes a sentence, in
a style (plain for the terminal, Markdown for a report). A finding names the models it is about by id
(``subjects``) and holds every value a sentence about it may print in ``numbers``, each under a name,
so a sentence can always be traced back to the fields it was written from (and a finding can be
written as JSON as it is).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reportgen.format import is_missing

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.specs.extract import ModelSpec

__all__ = ["Finding", "by_value", "spec_values"]


@dataclass(frozen=True)
class Finding:
    """One fact: ``kind`` (the template that phrases it), ``subjects`` (model ids), ``numbers`` (named values).

    ``topic`` groups findings in the report (``context``, ``quality``, ``conclusion``, …).
    """

    kind: str
    subjects: tuple[str, ...] = ()
    numbers: dict[str, Any] = field(default_factory=dict)
    topic: str = ""


def spec_values(specs: Mapping[str, ModelSpec], attr: str) -> tuple[dict[str, Any], list[str]]:
    """(model id → the stated value of ``attr``, ids of the models that do not state it), study order."""
    known, missing = {}, []
    for model_id, spec in specs.items():
        value = getattr(spec, attr)
        if is_missing(value):
            missing.append(model_id)
        else:
            known[model_id] = value
    return known, missing


def by_value(values: Mapping[str, Any], *, descending: bool = True) -> list[tuple[Any, list[str]]]:
    """Models grouped by equal value, best first; study order kept inside a group."""
    groups: dict[Any, list[str]] = {}
    for model_id, value in values.items():
        groups.setdefault(value, []).append(model_id)
    return sorted(groups.items(), key=lambda item: item[0], reverse=descending)
