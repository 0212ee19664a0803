"""Number formatting shared by the analysis text and the templates: one way to write each kind of number."""

from __future__ import annotations

import math

__all__ = ["human_bytes", "human_count", "num", "percent", "ratio", "is_missing"]

MISSING = "—"


def is_missing(value: object) -> bool:
    """None, NaN and pandas' NA all mean: the source does not say."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN; pandas.NA raises TypeError on bool()
    except TypeError:
        return True


def num(value: object, digits: int | None = None) -> str:
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


def human_count(value: object) -> str:
    """Short form of a large count: ``6.74 B``, ``124.4 M``, ``33.6 M``, ``8,192``."""
    if is_missing(value):
        return MISSING
    v = float(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(v) >= limit:
            scaled = v / limit
            return f"{scaled:.2f} {suffix}" if scaled < 100 else f"{scaled:.1f} {suffix}"
    return num(int(v))


def human_bytes(value: object) -> str:
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


def percent(share: object) -> str:
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


def ratio(value: object) -> str:
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
