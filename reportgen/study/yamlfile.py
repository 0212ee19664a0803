"""Load YAML with line numbers and validate it into pydantic models, reporting every error at once.

Errors name the file, the key path and the line: ``configs/demo.yaml:14: models[1].source.path: …``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from reportgen.errors import ConfigError
from reportgen.util.safeio import MAX_YAML_BYTES, compose_yaml, read_text

Loc = tuple[Any, ...]
T = TypeVar("T", bound=BaseModel)


def _record_lines(node: yaml.Node, path: Loc, lines: dict[Loc, int], problems: list[str], file: Path) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            child = (*path, key)
            if key in seen:
                problems.append(f"{file}:{key_node.start_mark.line + 1}: {format_loc(child)}: duplicate key")
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _record_lines(value_node, child, lines, problems, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), lines, problems, file)


def load_yaml(
    path: Path, what: str = "file", *, fix: str = "check the path (a relative path resolves from the current directory)"
) -> tuple[Any, dict[Loc, int]]:
    """Parse ``path``; return the data and a map from key path to line number (``fix``: the hint when it is missing)."""
    if not path.exists():
        raise ConfigError(f"{path}: {what} not found. Fix: {fix}")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML {what}.")
    text = read_text(path, what, MAX_YAML_BYTES)
    try:
        node, data = compose_yaml(text, path)  # aliases bounded before any tree is built or walked
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}. Fix: check indentation and quoting on that line.") from None
    lines: dict[Loc, int] = {}
    problems: list[str] = []
    if node is not None:
        _record_lines(node, (), lines, problems, path)
    if problems:
        raise ConfigError(problems)
    return data, lines


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _data_path(data: Any, loc: Loc) -> Loc:
    """Drop pydantic's union-tag entries from ``loc`` so it matches the YAML structure."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            if part in node:
                out.append(part)
                node = node[part]
            elif isinstance(part, str) and part in (str(node.get("type")), "function-after", "function-before"):
                continue  # discriminator tag or validator wrapper, not a key
            else:
                out.append(part)
                node = None
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(part, str) and not out and node is data:
            out.append(part)
            node = None
        elif isinstance(part, int) or node is None:
            out.append(part)
            node = None
        # else: a tag on a non-container; skip
    return tuple(out)


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _model_at(model: type[BaseModel], loc: Loc, data: Any = None) -> type[BaseModel] | None:
    """The pydantic model class that owns the last key of ``loc`` (for "did you mean"); in a union of
    models told apart by ``type`` (a model's source), the member whose tag the data names."""
    from typing import get_args

    current: Any = model
    node = data
    for part in loc[:-1]:
        node = node[part] if isinstance(node, (dict, list)) and _has(node, part) else None
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        members = _models_in(field.annotation, get_args)
        tag = node.get("type") if isinstance(node, dict) else None
        tagged = [m for m in members if "type" in m.model_fields and tag in get_args(m.model_fields["type"].annotation)]
        current = (tagged or members)[0] if members else None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _has(node: dict[Any, Any] | list[Any], part: Any) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and 0 <= part < len(node)


def _models_in(annotation: Any, get_args: Callable[[Any], tuple[Any, ...]]) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [found for arg in get_args(annotation) for found in _models_in(arg, get_args)]


def _candidate_fields(model: type[BaseModel], data: Any, loc: Loc) -> list[str]:
    owner = _model_at(model, loc, data)
    return list(owner.model_fields) if owner is not None else []


def validate(model: type[T], data: Any, lines: dict[Loc, int], path: Path, context: dict[str, Any] | None = None) -> T:
    """Validate ``data`` into ``model``; on failure raise one ConfigError listing every problem."""
    try:
        return model.model_validate(data if data is not None else {}, context=context)
    except ValidationError as exc:
        problems: list[tuple[int, str]] = []
        errors = [(e, _data_path(data, tuple(e["loc"]))) for e in exc.errors()]
        for error, loc in errors:
            if error["type"] == "too_short" and any(
                other is not error and len(other_loc) > len(loc) and other_loc[: len(loc)] == loc for other, other_loc in errors
            ):
                continue  # a list emptied by its own invalid items: the item errors say it all
            line = _line_for(loc, lines)
            where = f"{path}:{line}" if line else str(path)
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                key = loc[-1] if loc else "?"
                candidates = _candidate_fields(model, data, loc)
                close = difflib.get_close_matches(str(key), candidates, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                known = ", ".join(candidates)
                message = f"unknown key '{key}'.{hint}" + (f" Known keys here: {known}." if known and not close else "")
            elif error["type"] == "missing":
                message = "required key is missing. Fix: add it."
            elif error["type"] == "string_pattern_mismatch" and loc and loc[-1] == "id":
                message = f"'{error['input']}' is not a valid id. Fix: use lowercase letters, digits, '-', '_' or '.'"
            elif error["type"] == "literal_error":
                message = f"{message}, got {error['input']!r}"
            elif message.startswith("Value error, "):
                message = message.removeprefix("Value error, ")
            problems.append((line or 0, f"{where}: {format_loc(loc)}: {message}"))
        problems.sort(key=lambda item: item[0])
        raise ConfigError([text for _, text in problems]) from None
