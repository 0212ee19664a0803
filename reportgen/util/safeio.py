"""Safe reading of every input file: a size limit, strict UTF-8, and YAML with bounded aliases.

Every file reportgen reads as text (study configs, prompt sets, model-card front matter, config.json,
adapter_config.json) goes through ``read_text``: a file over its size limit is refused before it is
read, and bytes that are not UTF-8 are one error naming the file, the byte offset and the line.

YAML is composed to a node graph first (aliases are shared nodes there, so composing is cheap even
for a "billion laughs" file); ``check_yaml_expansion`` counts the nodes the graph would expand to,
memoised per node, and refuses a document whose aliases add more than ``MAX_YAML_NODES`` to it before
anything walks or constructs the tree.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from reportgen.errors import ConfigError

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSONL_BYTES",
    "MAX_YAML_BYTES",
    "MAX_YAML_NODES",
    "check_yaml_expansion",
    "compose_yaml",
    "decode_utf8",
    "read_text",
]

MiB = 1024 * 1024
MAX_YAML_BYTES = 8 * MiB  # study configs, YAML prompt sets, model-card README files
MAX_JSON_BYTES = 16 * MiB  # config.json, adapter_config.json
MAX_JSONL_BYTES = 32 * MiB  # JSONL prompt sets (one prompt a line: the format for big sets)
MAX_YAML_NODES = 100_000  # nodes YAML aliases may add to a document (an alias counted at every use)
_CAP = 10**15
#: where a YAML anchor (``&name``) may start a node; a match inside a quoted string only costs the full check
_ANCHOR = re.compile(r"(?:^|[\s\[{,])&[^\s\[\]{},]", re.MULTILINE)
#: libyaml's parser where PyYAML was built with it (ten times faster: a 100,000-prompt set in a second or two)
FAST_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def decode_utf8(data: bytes, path: Path | str, what: str = "file") -> str:
    """``data`` decoded as UTF-8 (a leading BOM dropped); else one ConfigError with byte offset and line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 1].hex()
        raise ConfigError(
            f"{path}:{line}: {what} is not UTF-8 text (byte 0x{bad} at offset {exc.start}). Fix: save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def read_text(path: Path | str, what: str = "file", limit: int = MAX_YAML_BYTES) -> str:
    """The UTF-8 text of ``path``, refused with one line if it is larger than ``limit`` bytes.

    Missing files raise FileNotFoundError (callers word that error for their kind of file); a file
    that cannot be read is a ConfigError naming it.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = _fstat_size(handle)
            if size > limit:
                raise ConfigError(
                    f"{path}: {what} is {_size(size)}, over the {_size(limit)} limit for this kind of file. "
                    "Fix: check it is the right file, or split it"
                )
            data = handle.read(limit + 1)  # a file that grows while read is still bounded
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConfigError(
            f"{path}: {what} is over the {_size(limit)} limit for this kind of file. Fix: check it is the right file"
        )
    return decode_utf8(data, path, what)


def _fstat_size(handle) -> int:
    return os.fstat(handle.fileno()).st_size


def check_yaml_expansion(node: yaml.Node | None, path: Path | str, limit: int = MAX_YAML_NODES) -> int:
    """The number of nodes ``node`` expands to (an alias counts its target again at every use).

    Raises ConfigError, naming the file and the first anchor used more than once, when the aliases add
    more than ``limit`` nodes to what is written: a big file without aliases (100,000 prompts) is no bomb.
    Memoised per node, so the check itself is linear in the composed graph.
    """
    if node is None:
        return 0
    sizes: dict[int, int] = {}
    uses: dict[int, int] = {}
    shared: list[yaml.Node] = []
    # iterative post-order: no recursion limit, no exponential walk
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if not done:
            uses[key] = uses.get(key, 0) + 1
            if uses[key] == 2:
                shared.append(current)
            if key in sizes:
                continue
            if uses[key] > 1:  # seen, not finished: an alias inside its own anchor
                raise ConfigError(
                    f"{path}:{current.start_mark.line + 1}: a YAML alias refers to the value that contains it "
                    "(a recursive anchor). Fix: write the value out"
                )
            stack.append((current, True))
            for child in _children(current):
                stack.append((child, False))
        else:
            total = 1 + sum(sizes.get(id(child), 0) for child in _children(current))
            sizes[key] = min(total, _CAP)  # a bomb's counts stay small integers
    total = sizes.get(id(node), 0)
    added = total - len(sizes)  # what the aliases add to the nodes written
    if added > limit:
        where = f"{path}:{shared[0].start_mark.line + 1}" if shared else str(path)
        raise ConfigError(
            f"{where}: YAML aliases expand this file by more than {limit} values (an alias bomb?). "
            "Fix: write the values out instead of repeating anchors (*name)"
        )
    return total


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def compose_yaml(text: str, path: Path | str, loader: type = FAST_LOADER) -> tuple[yaml.Node | None, Any]:
    """Compose ``text`` to nodes, bound its alias expansion, then construct it: (node, data).

    YAML syntax errors propagate as ``yaml.YAMLError`` (callers word them with the file's role);
    an expanding document is a ConfigError before any tree is constructed.
    """
    instance = loader(text)
    try:
        node = instance.get_single_node()
        if _ANCHOR.search(text):  # without an anchor there is no alias: nothing to expand (and no graph to walk)
            check_yaml_expansion(node, path)
        data = instance.construct_document(node) if node is not None else None
    finally:
        instance.dispose()
    return node, data


def read_json_object(path: Path | str, what: str = "JSON file", limit: int = MAX_JSON_BYTES) -> dict:
    """A JSON object from a file: size-limited, strict UTF-8; every problem one ConfigError naming the file."""
    import json

    try:
        text = read_text(path, what, limit)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found. Fix: vendor the file there or fix the path") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: invalid JSON in {what}: {exc.msg} (column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # e.g. a 5000-digit number, or nesting thousands deep
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise ConfigError(f"{path}: invalid JSON in {what}: {reason}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a JSON object")
    return data
