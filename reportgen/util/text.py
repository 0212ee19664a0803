"""Plain-text helpers shared by the report and the judge prompts."""

from __future__ import annotations

import re

__all__ = ["code_fence"]


def code_fence(text: object, info: str = "") -> str:
    """``text`` in a backtick fence that nothing inside can close: at least three backticks, one more than
    its longest run. ``info`` is the fence's info string (only letters, digits and ``_+.-`` are kept)."""
    body = "" if text is None else str(text).replace("\r\n", "\n").rstrip("\n")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{re.sub(r'[^A-Za-z0-9_+.-]', '', info or '')}\n{body}\n{fence}"
