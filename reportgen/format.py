"""Number formatting shared by the analysis text and the templates: one way to write each kind of number."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

__all__ = ["MISSING", "capital", "finite", "human_bytes", "human_count", "is_missing", "measure", "num", "percent", "ratio"]

MISSING = "—"


def is_missing(value: object) -> bool:
    """None, NaN and pandas' NA all mean: the source does not say."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN; pandas.NA raises TypeError on bool()
    except TypeError:
        return True


def finite(value: object) -> TypeGuard[float]:
    """A real, finite number (not None, NaN, infinity, a bool or a string)."""
    if value is None or isinstance(value, (bool, str)):
        return False
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def capital(label: str) -> str:
    """Sentence case for a label at the start of a sentence: ``exact match`` → ``Exact match``; ``chrF`` stays."""
    return label[:1].upper() + label[1:] if label == label.lower() else label


def num(value: Any, digits: int | None = None) -> str:
    """Thousands separators: ``6738415616`` → ``6,738,415,616``; floats keep ``digits`` decimals."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and digits is None):
        return f"{int(value):,}"
    if digits is None:
        return f"{float(value):,.4g}" if abs(float(value)) < 1000 else f"{float(value):,.0f}"
    return f"{float(value):,.{digits}f}"


def human_count(value: Any) -> str:
    """Short form of a large count: ``6.74 B``, ``124.4 M``, ``33.6 M``, ``8,192``."""
    if is_missing(value):
        return MISSING
    v = float(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(v) >= limit:
            scaled = v / limit
            return f"{scaled:.2f} {suffix}" if scaled < 100 else f"{scaled:.1f} {suffix}"
    return num(int(v))


def human_bytes(value: Any) -> str:
    """Binary units: ``12.55 GiB``, ``474.7 MiB``, ``3.0 KiB``."""
    if is_missing(value):
        return MISSING
    v = float(value)
    if abs(v) >= 1024**4:
        return f"{v / 1024**4:.2f} TiB"
    if abs(v) >= 1024**3:
        return f"{v / 1024**3:.2f} GiB"
    if abs(v) >= 1024**2:
        return f"{v / 1024**2:.1f} MiB"
    if abs(v) >= 1024:
        return f"{v / 1024:.1f} KiB"
    return f"{int(v)} B"


def percent(share: Any) -> str:
    """A share (0..1) as a percentage with enough digits to be non-zero: ``0.50%``, ``0.012%``."""
    if is_missing(share):
        return MISSING
    p = float(share) * 100
    if p == 0:
        return "0%"
    if abs(p) >= 10:
        return f"{p:.1f}%"
    if abs(p) >= 0.1:
        return f"{p:.2f}%"
    return f"{p:.2g}%"


def ratio(value: Any) -> str:
    """A factor: ``4×`` when whole, else ``1.57×`` (three significant digits), ``54.2×``."""
    if is_missing(value):
        return MISSING
    v = float(value)
    if math.isclose(v, round(v), rel_tol=0, abs_tol=1e-9):
        return f"{int(round(v)):,}×"
    if v >= 100:
        return f"{v:,.0f}×"
    if v >= 10:
        return f"{v:.1f}×"
    return f"{v:.2f}×"


# --------------------------------------------------------------------------------------------------
# Measured values: one way to write each unit (stats.metrics maps a metric's name to its unit)


def _fixed(value: float, digits: int, signed: bool) -> str:
    sign = "+" if signed and value > 0 else ""
    if value != 0 and abs(value) < 0.5 * 10**-digits:  # would print as 0.00: keep two significant digits
        return f"{sign}{value:.2g}"
    text = f"{value:,.{digits}f}"
    return sign + ("0" + text[2:] if text.startswith("-0") and float(text) == 0 else text)


def _significant(value: float, signed: bool) -> str:
    sign = "+" if signed and value > 0 else ""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{sign}{value:,.0f}"
    if magnitude >= 10:
        return f"{sign}{value:.1f}"
    if magnitude >= 1:
        return f"{sign}{value:.2f}"
    if magnitude == 0:
        return "0"
    return f"{sign}{value:#.3g}"  # keep trailing zeros: 0.550, not 0.55, next to 0.605


def measure(value: object, unit: str, *, signed: bool = False, show_unit: bool = False) -> str:
    """A measured value in its unit as every output writes it (``—`` when missing).

    Shares and 0–1 scores: two decimals; BLEU/chrF (0–100), lengths: one decimal; bits per byte: three
    decimals; rates and times: three significant digits; bytes: binary units; ``percent``: a share as a
    percentage. ``signed`` prints a ``+`` on positive values (changes); ``show_unit`` appends the unit
    where it is not a plain number.
    """
    if is_missing(value):
        return MISSING
    v = float(value)  # type: ignore[arg-type]
    if unit == "bytes":
        return ("+" if signed and v > 0 else "") + human_bytes(v) if v >= 0 else "-" + human_bytes(-v)
    if unit == "percent":
        return percent(v)
    if unit in ("share", "F1 (0–1)"):
        text = _fixed(v, 2, signed)
    elif unit in ("BLEU (0–100)", "chrF (0–100)", "words", "tokens"):
        text = _fixed(v, 1, signed)
    elif unit == "bits/byte":
        text = _fixed(v, 3, signed)
    else:
        text = _significant(v, signed)
    if show_unit and unit in ("s", "tokens/s", "steps/s", "bits/byte", "words", "tokens"):
        text += f" {unit}"
    return text
