"""Plain-text helpers shared by the report and the judge prompts."""

from __future__ import annotations

import re

__all__ = ["TEXT_FIELD_LIMIT", "clip", "clip_strings", "code_fence", "visible_controls"]

#: The most characters the report shows of one text field from a config or a model's files (a model card
#: field, a string in config.json): longer text is cut there and ends in "…". A 100 KB string without a
#: space would otherwise cost the PDF's line breaking minutes and fill pages.
TEXT_FIELD_LIMIT = 2000
ELLIPSIS = "…"

# C0 controls (tab and line feed excepted) as Unicode's Control Pictures (U+0006 → ␆), DEL as ␡, and C1
# controls (U+0080–U+009F, which no font draws) as their escape \x85: model output can hold any of them, and
# raw they are invalid HTML, .notdef boxes in the PDF and invisible in a README.
_CONTROLS = {code: chr(0x2400 + code) for code in range(0x20) if code not in (0x09, 0x0A)}
_CONTROLS[0x7F] = "\u2421"
_CONTROLS.update({code: f"\\x{code:02x}" for code in range(0x80, 0xA0)})


def visible_controls(text: str) -> str:
    """``text`` with every control character but tab and line feed replaced by a visible stand-in."""
    return text.translate(_CONTROLS)


def clip(text: object, limit: int = TEXT_FIELD_LIMIT) -> str | None:
    """``text`` cut to ``limit`` characters, the last one a visible "…" when it was longer (None stays None)."""
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def clip_strings(value: object, limit: int = TEXT_FIELD_LIMIT) -> object:
    """Every string inside a JSON-like value (dicts, lists) clipped, keys included; other values as they are."""
    if isinstance(value, str):
        return clip(value, limit)
    if isinstance(value, dict):
        return {clip(str(k), limit): clip_strings(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clip_strings(v, limit) for v in value]
    return value


def code_fence(text: object, info: str = "") -> str:
    """``text`` in a backtick fence that nothing inside can close: at least three backticks, one more than
    its longest run. ``info`` is the fence's info string (only letters, digits and ``_+.-`` are kept)."""
    body = "" if text is None else visible_controls(str(text).replace("\r\n", "\n").rstrip("\n"))
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{re.sub(r'[^A-Za-z0-9_+.-]', '', info or '')}\n{body}\n{fence}"
