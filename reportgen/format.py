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


# --------------------------------------------------------------------------------------------------
# Measured values: one way to write each metric, from its registered unit

#: How the report names each metric and measurement (short, lower case; the tables capitalise).
METRIC_LABELS = {
    "exact_match": "exact match",
    "contains_answer": "contains answer",
    "rouge_l": "ROUGE-L",
    "bleu": "BLEU",
    "chrf": "chrF",
    "length_words": "length (words)",
    "length_tokens": "length (tokens)",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "repeated_4gram_rate": "repeated 4-grams",
    "hit_token_limit": "hit token limit",
    "bits_per_byte": "bits per byte",
    "perplexity": "perplexity",
    "load_time_s": "load time",
    "ttft_p50_s": "time to first token p50",
    "ttft_p95_s": "time to first token p95",
    "latency_p50_s": "latency p50",
    "latency_p95_s": "latency p95",
    "tokens_per_s": "throughput",
    "decode_steps_per_s": "decode steps/s",
    "peak_memory_bytes": "peak memory",
    "weight_bytes": "weight memory",
    "bandwidth_share": "memory-bandwidth share",
}


def metric_label(name: str) -> str:
    """``exact_match`` → ``exact match``; unknown names are shown with spaces for underscores."""
    return METRIC_LABELS.get(name, name.replace("_", " "))


def _unit(name: str) -> str:
    from reportgen.stats.metrics import METRICS

    metric = METRICS.get(name)
    if metric is not None:
        return metric.unit
    return {"weight_bytes": "bytes"}.get(name, "")


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


def metric_value(name: str, value: object, *, signed: bool = False, unit: bool = False) -> str:
    """A metric's value as the report writes it everywhere (``—`` when missing).

    Shares and 0–1 scores: two decimals; BLEU/chrF (0–100), lengths: one decimal; bits per byte: three
    decimals; rates and times: three significant digits; bytes: binary units. ``signed`` prints a
    ``+`` on positive values (changes); ``unit`` appends the unit where it is not a plain number.
    """
    if is_missing(value):
        return MISSING
    v = float(value)  # type: ignore[arg-type]
    kind = _unit(name)
    if kind == "bytes":
        text = ("+" if signed and v > 0 else "") + human_bytes(v) if v >= 0 else "-" + human_bytes(-v)
        return text
    if name == "bandwidth_share":
        return percent(v)
    if kind in ("share", "F1 (0–1)"):
        text = _fixed(v, 2, signed)
    elif kind in ("BLEU (0–100)", "chrF (0–100)", "words", "tokens"):
        text = _fixed(v, 1, signed)
    elif kind == "bits/byte":
        text = _fixed(v, 3, signed)
    else:
        text = _significant(v, signed)
    if unit and kind in ("s", "tokens/s", "steps/s", "bits/byte", "words", "tokens"):
        text += f" {kind}"
    return text


def metric_ci(name: str, mean: object, low: object, high: object, *, unit: bool = False) -> str:
    """``0.62 [0.45, 0.78]``: a mean and its 95% interval (the interval left out when unknown)."""
    text = metric_value(name, mean, unit=unit)
    if is_missing(low) or is_missing(high):
        return text
    if unit and " " in text:
        value, _, suffix = text.partition(" ")
        return f"{value} [{metric_value(name, low)}, {metric_value(name, high)}] {suffix}"
    return f"{text} [{metric_value(name, low)}, {metric_value(name, high)}]"
