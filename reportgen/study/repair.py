"""A study config with schema errors, repaired just enough that `reportgen validate` can check the rest.

`load_config` stops at the schema: one ConfigError with every schema problem. `validate` must also find
the problems behind them (missing files, prompt files, Hub cache lookups, claims), so here the parts the
schema rejects are set aside (an unknown key deleted, an invalid optional key dropped, a model's invalid
source made spec-only, an invalid top-level section left at its default) and the config is validated
again. List positions are kept, so every later problem still names the right ``models[i]``/``claims[i]``
and line. What was set aside is never checked further: its schema problem already names it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reportgen.errors import ConfigError
from reportgen.study.config import Study, _resolve_paths, load_config
from reportgen.study.yamlfile import _data_path, load_yaml

__all__ = ["load_config_with_problems"]

ROUNDS = 8


def _pop(data: Any, loc: tuple[Any, ...]) -> bool:
    """Delete the key or list item at ``loc`` (a list item only at its end: positions are kept otherwise)."""
    node = data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, dict) and loc[-1] in node:
        del node[loc[-1]]
        return True
    return False


def _repair_model(data: dict[str, Any], index: int, rest: tuple[Any, ...]) -> bool:
    models = data["models"]
    model = models[index]
    if not isinstance(model, dict) or not rest:
        models[index] = {"id": f"invalid-model-{index + 1}", "name": "invalid model"}
        return True
    key = rest[0]
    if key == "id":
        model["id"] = f"invalid-model-{index + 1}"
        return True
    if key == "name":
        model["name"] = str(model.get("id") or "model")
        return True
    if key in model:  # every other key is optional; an invalid source leaves a spec-only model
        del model[key]
        return True
    return False


def _repair_claim(data: dict[str, Any], index: int, rest: tuple[Any, ...]) -> bool:
    claim = data["claims"][index]
    if not isinstance(claim, dict):
        data["claims"][index] = {"text": "-", "check": str(claim)}
        return True
    if rest and rest[0] == "text":
        claim["text"] = "-"
        return True
    if rest and rest[0] == "check" and claim.get("check") is not None:
        claim["check"] = str(claim["check"])
        return True
    return False


def _repair(data: dict[str, Any], loc: tuple[Any, ...], kind: str) -> bool:
    if kind == "extra_forbidden":
        return _pop(data, loc)
    if not loc:  # a check across sections (judges and execution.resources name models)
        return any([data.pop("judges", None) is not None, data.pop("execution", None) is not None])
    top = loc[0]
    if top == "models" and len(loc) >= 2 and isinstance(loc[1], int) and isinstance(data.get("models"), list):
        return _repair_model(data, loc[1], loc[2:])
    if top == "claims" and len(loc) >= 2 and isinstance(loc[1], int) and isinstance(data.get("claims"), list):
        return _repair_claim(data, loc[1], loc[2:])
    if top == "title":
        data["title"] = "(invalid title)"
        return True
    if top == "models":
        return False  # no usable list of models: nothing further can be checked
    return _pop(data, (top,))  # any other section: its defaults


def load_config_with_problems(path: str | Path) -> tuple[Study | None, list[str]]:
    """The study and its schema problems: ``(study, [])`` for a valid config; ``(repaired study, problems)``
    when the rest can still be checked; ``(None, problems)`` when it cannot."""
    path = Path(path)
    try:
        return load_config(path), []
    except ConfigError as exc:
        problems = list(exc.problems)
    try:
        data, lines = load_yaml(path, what="study config")
    except ConfigError:
        return None, problems
    if not isinstance(data, dict):
        return None, problems
    data = _resolve_paths(copy.deepcopy(data), path.parent)
    for _ in range(ROUNDS):
        try:
            study = Study.model_validate(data)
        except ValidationError as exc:
            errors = [(_data_path(data, tuple(e["loc"])), e["type"]) for e in exc.errors()]
            # deepest first, so that deleting a key does not move the place of another error
            if not [_repair(data, loc, kind) for loc, kind in sorted(errors, key=lambda e: -len(e[0]))].count(True):
                return None, problems
            continue
        study._path = path
        study._lines = lines
        return study, problems
    return None, problems
