"""The one place where findings become sentences.

``phrase(finding, names, style)`` looks up the template of the finding's kind (``TEMPLATES``) and writes
it with the values of the finding's ``numbers`` and the names of its models. The style says how text
from a config (model names, notes, values) is made safe, how code and emphasis are written:
``PLAIN`` for the terminal and JSON (the default), a Markdown style for reports (built by the report
from ``report.markdown``: ``Style(escape=md_escape, code=md_inline_code, bold=...)``).

Every number a sentence prints is read from a named field of its finding, and the finding's
``numbers`` travel with the sentence (``Statement.numbers``), so readers and tests can trace it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reportgen.analysis.findings import Finding
from reportgen.format import (
    capital,
    finite,
    human_bytes,
    human_count,
    num,
    p_value,
    percent,
    ratio,
)

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.analysis.claims import ClaimResult
    from reportgen.specs.extract import ModelSpec
    from reportgen.study.config import ModelConfig

__all__ = [
    "PLAIN",
    "TEMPLATES",
    "Statement",
    "Style",
    "claim_lines",
    "claim_sentences",
    "join",
    "phrase",
    "phrase_all",
    "runtime_label",
]


def _plain_text(text: object) -> str:
    return "" if text is None else str(text)


def _plain_code(text: object) -> str:
    return "" if text is None else " ".join(str(text).split())


@dataclass(frozen=True)
class Style:
    """How a sentence writes untrusted text (``escape``), code or identifiers (``code``) and emphasis (``bold``)."""

    escape: Callable[[object], str] = _plain_text
    code: Callable[[object], str] = _plain_code
    bold: Callable[[str], str] = _plain_text


#: The terminal's style: text as it is, no markup.
PLAIN = Style()


@dataclass(frozen=True)
class Statement:
    """One sentence of the analysis in a style. ``numbers``: the finding's named values it was written from.
    ``lead``: for a verdict line, the start of ``text`` that gives the answer (the rest is its evidence; a
    phone shows the answer alone); empty when the whole sentence is the answer."""

    text: str
    numbers: dict[str, Any] = field(default_factory=dict)
    topic: str = ""
    lead: str = ""


#: Where a sentence's answer ends and its evidence begins (``Statement.lead``); never left in a text.
LEAD_END = "\x1e"


def join(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + f" and {items[-1]}"


def _times(value: float | None) -> str:
    """A factor such as "2.5×"; "n/a" when there is none (a ratio to nothing is never "∞×")."""
    return ratio(value) if finite(value) and value > 0 else "n/a"


_NO_THROUGHPUT = {"no_tokens": "generated no tokens", "no_time": "took no measurable generation time"}


def _no_throughput(missing: Mapping[str, str], w: _Writer) -> str:
    """Why models have no throughput (tokens/s) to compare: one clause per reason."""
    by_reason: dict[str, list[str]] = {}
    for model_id, reason in missing.items():
        by_reason.setdefault(reason, []).append(model_id)
    clauses = [f"{w.names(ids)} {_NO_THROUGHPUT.get(reason, reason)}" for reason, ids in by_reason.items()]
    return f"{join(clauses)}, so {'it has' if len(missing) == 1 else 'they have'} no throughput and no ratio (n/a)"


def _label(metric: str) -> str:
    from reportgen.stats.metrics import metric_label

    return metric_label(metric)


def _value(metric: str, value: Any, **kw: Any) -> str:
    from reportgen.stats.metrics import metric_value

    return metric_value(metric, value, **kw)


def _ci(metric: str, low: Any, high: Any) -> str:
    if not (finite(low) and finite(high)):  # fewer than two values, or all the same: nothing to estimate
        return "no interval (too few or identical values)"
    return f"95% CI [{_value(metric, low)}, {_value(metric, high)}]"


class _Writer:
    """A finding's names and style at hand: ``w.name(id)``, ``w.names(ids)`` (joined), ``w.code``, ``w.bold``."""

    def __init__(self, names: Mapping[str, str], style: Style) -> None:
        self._names, self.style = names, style
        self.escape, self.code, self.bold = style.escape, style.code, style.bold

    def name(self, model_id: str) -> str:
        return self.escape(self._names.get(model_id, model_id)).replace("\n", " ")

    def names(self, ids: Iterable[str]) -> str:
        return join([self.name(m) for m in ids])


# ==================================================================================================
# Specs


_COMPARE_WORDS: dict[
    str, tuple[str, str, str, Callable[[Any], str], Callable[[Any], str]]
] = {  # kind: (top phrase, same phrase, what is missing, value text, other text)
    "spec.context": ("the longest context", "the same context length", "context length", lambda v: f"{num(v)} tokens", num),
    "spec.vocabulary": (
        "the largest vocabulary",
        "the same vocabulary size",
        "vocabulary size",
        lambda v: f"{num(v)} tokens",
        num,
    ),
    "spec.parameters": (
        "the most parameters",
        "the same number of parameters",
        "parameter count",
        lambda v: f"{num(v)} ({human_count(v)})",
        lambda v: f"{num(v)}, {human_count(v)}",
    ),
}
_COMPARED_FIELD = {"spec.context": "context_length", "spec.vocabulary": "vocab_size", "spec.parameters": "parameters"}


def _spec_compare(f: Finding, w: _Writer) -> str:
    top_phrase, same_phrase, missing_phrase, value_text, other_text = _COMPARE_WORDS[f.kind]
    n = f.numbers
    values, missing = n[_COMPARED_FIELD[f.kind]], n["missing"]
    tail = f" The {missing_phrase} of {w.names(missing)} is not stated." if missing else ""
    if not values:
        return f"No model states its {missing_phrase}."
    groups = n["groups"]
    top_value, top_ids = groups[0]
    if len(values) == 1:
        return f"{w.name(top_ids[0])} has {value_text(top_value)}.{tail}"
    if len(groups) == 1:
        return f"All {len(values)} models have {same_phrase}, {value_text(top_value)}.{tail}"
    verb = "share" if len(top_ids) > 1 else "has"
    parts = []
    for value, ids in groups[1:]:
        each = " each" if len(ids) > 1 else ""
        words = f"{ratio(n['factor_over'][ids[0]])} that of {w.names(ids)} ({other_text(value)}{each})"
        if f.kind == "spec.vocabulary":
            words += f", {num(n['more_than'][ids[0]])} more tokens"
        parts.append(words)
    return f"{w.names(top_ids)} {verb} {top_phrase}, {value_text(top_value)}: {'; '.join(parts)}.{tail}"


def _spec_memory(f: Finding, w: _Writer) -> str:
    n = f.numbers
    stored, four = n["weight_bytes"], n["weight_bytes_4bit"]
    parts_stored = [f"{w.name(m)} {human_bytes(v)} ({n['dtype'][m]})" for m, v in stored.items()]
    parts_four = []
    for m, v in four.items():
        saving = f" ({ratio(n['saving_4bit'][m])} less)" if m in n["saving_4bit"] else ""
        parts_four.append(f"{w.name(m)} {human_bytes(v)}{saving}")
    text = ""
    if parts_stored:
        text += f"Weight memory at the stored dtype: {join(parts_stored)}."
    if parts_four:
        text += (" " if text else "") + f"Loaded in 4-bit with bitsandbytes (NF4, estimated): {join(parts_four)}."
    if n["size_unknown"]:
        text += f" The stored size of {w.names(n['size_unknown'])} is not known."
    return text


_DIFF_WORDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "context_length": ("context length", num),
    "dtype": ("stored dtype", str),
    "transformers_version": ("transformers version", str),
    "activation": ("activation", str),
    "tie_word_embeddings": ("tied embeddings", lambda v: "yes" if v else "no"),
}


def _spec_same_shape(f: Finding, w: _Writer) -> str:
    from reportgen.format import is_missing

    n = f.numbers
    shape = (
        f"{w.code(n['architecture'])}, {num(n['num_hidden_layers'])} layers, hidden size {num(n['hidden_size'])}, "
        f"{num(n['num_attention_heads'])} attention heads, {num(n['parameters'])} parameters"
    )
    diffs = []
    for attr in n["differ"]:
        label, show = _DIFF_WORDS[attr]
        shown = " vs ".join("not stated" if is_missing(v) else show(v) for v in n[attr].values())
        diffs.append(f"{label} ({shown})")
    differ = f"; they differ in {join(diffs)}" if diffs else "; their specs are identical"
    return f"{w.names(f.subjects)} have the same architecture and size ({shape}){differ}."


def _spec_adapter(f: Finding, w: _Writer) -> str:
    n = f.numbers
    settings = [
        f"{key} = {num(n[field_])}"
        for key, field_ in (("r", "r"), ("alpha", "alpha"), ("dropout", "dropout"))
        if n[field_] is not None
    ]
    targets = ", ".join(w.code(t) for t in n["target_modules"]) or "no listed modules"
    kind = "LoRA" if n["peft_type"] == "LORA" else w.escape(n["peft_type"])
    text = f"{w.name(f.subjects[0])} adds a {kind} adapter ({', '.join(settings)}) on {targets}"
    if n["trainable_parameters"] is not None:
        text += f": it trains {num(n['trainable_parameters'])} parameters ({human_count(n['trainable_parameters'])})"
        if "base_parameters" in n:
            text += f", {percent(n['share_of_base'])} of the {num(n['base_parameters'])} of its base model"
    else:
        text += "; its trainable parameters are not counted (no base model config)"
    if "scaling" in n:
        text += f". The update is scaled by alpha / r = {num(n['scaling'])}"
    return text + "."


def _spec_quantization(f: Finding, w: _Writer) -> str:
    n = f.numbers
    name = w.name(f.subjects[0])
    if n["load_in_4bit"]:
        double = "with" if n["bnb_4bit_use_double_quant"] else "without"
        text = (
            f"{name} is loaded with bitsandbytes in 4-bit ({n['bnb_4bit_quant_type'].upper()}, "
            f"compute dtype {n['bnb_4bit_compute_dtype']}, {double} double quantization)"
        )
        if "weight_bytes_4bit" in n:
            text += f": an estimated {human_bytes(n['weight_bytes_4bit'])} of weights"
            if "weight_bytes" in n:
                text += f" instead of {human_bytes(n['weight_bytes'])} at {n['dtype']} ({ratio(n['saving'])} less)"
        if n["qlora"]:
            text += ". A frozen 4-bit NF4 base with a trainable LoRA adapter is the QLoRA recipe"
    elif n["load_in_8bit"]:
        text = f"{name} is loaded with bitsandbytes in 8-bit (LLM.int8(), outlier threshold {num(n['llm_int8_threshold'])})"
    else:
        text = f"{name} has a bitsandbytes configuration that loads neither in 4-bit nor in 8-bit"
    return text + "."


def _spec_none(f: Finding, w: _Writer) -> str:
    return f"No spec is available for {w.names(f.subjects)}: give a vendored {w.code('config')} (config.json) or a local source."


def _spec_note(f: Finding, w: _Writer) -> str:
    return f"{w.name(f.subjects[0])}: {w.escape(f.numbers['note'])}."


def _conclusion_smallest(f: Finding, w: _Writer) -> str:
    n = f.numbers
    text = f"{w.bold('Smallest to run:')} {w.names(f.subjects)}: {human_bytes(n['weight_bytes'])} of weights at {n['dtype']}" + (
        f", about {human_bytes(n['weight_bytes_4bit'])} in 4-bit" if "weight_bytes_4bit" in n else ""
    )
    if "largest_parameters" in n:
        text += f"; {ratio(n['fewer_parameters'])} fewer parameters than {w.names(n['largest'])}"
    return text + "."


def _conclusion_largest(f: Finding, w: _Writer) -> str:
    value = f.numbers["parameters"]
    return f"{w.bold('Largest:')} {w.names(f.subjects)}, {num(value)} parameters ({human_count(value)})."


def _conclusion_longest_context(f: Finding, w: _Writer) -> str:
    return f"{w.bold('Longest context:')} {w.names(f.subjects)}, {num(f.numbers['context_length'])} tokens."


def _conclusion_largest_vocabulary(f: Finding, w: _Writer) -> str:
    return f"{w.bold('Largest vocabulary:')} {w.names(f.subjects)}, {num(f.numbers['vocab_size'])} tokens."


def _conclusion_cheapest(f: Finding, w: _Writer) -> str:
    n = f.numbers
    return (
        f"{w.bold('Cheapest to fine-tune again:')} {w.name(f.subjects[0])}{LEAD_END} trains only its adapter, "
        f"{num(n['trainable_parameters'])} parameters ({percent(n['share_of_base'])} of the base model)."
    )


# ==================================================================================================
# Consistency warnings


def _source(n: Mapping[str, Any]) -> str:
    if n["source"] is None:
        return "the spec"
    return "config.json" if n["source"] == "config.json" else "the GGUF metadata"


def _what(n: Mapping[str, Any]) -> str:
    bits = [b for b in (n["architecture"], f"model_type {n['model_type']}" if n["model_type"] else None) if b]
    return f"{n['family'] or n['model_type'] or 'an unknown'} model ({', '.join(bits)})" if bits else "model"


def _warning_name_family(f: Finding, w: _Writer) -> str:
    n = f.numbers
    said = join([f"“{label}”" for label in n["name_says"]])
    return (
        f"{w.name(f.subjects[0])}: the name says {said}, but {_source(n)} describes a {_what(n)}. "
        "The report uses the architecture from the config; the name is kept as given."
    )


def _warning_tag(f: Finding, w: _Writer) -> str:
    n = f.numbers
    what = "a causal (decoder-only) language model" if f.kind == "warning.seq2seq_tag" else "an encoder-decoder (seq2seq) model"
    return (
        f"{w.name(f.subjects[0])}: the card's pipeline tag is {w.code(n['pipeline_tag'])}, but {_source(n)} describes "
        f"{what} ({w.code(n['architecture'] or n['model_type'])}); its pipeline tag should be {w.code(n['expected_tag'])}."
    )


def _warning_peft(f: Finding, w: _Writer) -> str:
    return (
        f"{w.name(f.subjects[0])}: the card names the library PEFT, but the study configures no adapter for it: "
        f"{_source(f.numbers)} describes full model weights, which load with transformers alone."
    )


def _warning_adapter_task(f: Finding, w: _Writer) -> str:
    n = f.numbers
    return (
        f"{w.name(f.subjects[0])}: the adapter's task_type is {w.code(n['task_type'])}, but the base model "
        f"is a {n['task']} model."
    )


def _warning_size(f: Finding, w: _Writer) -> str:
    n = f.numbers
    return (
        f"{w.name(f.subjects[0])}: the name says {w.escape(n['name_size'])} parameters, but the architecture "
        f"has {num(n['parameters'])} ({human_count(n['parameters'])})."
    )


def _warning_gguf(f: Finding, w: _Writer) -> str:
    return (
        f"{w.name(f.subjects[0])}: a bitsandbytes {w.code('quantization:')} is configured, but the model is a GGUF "
        f"file, already quantized ({w.escape(f.numbers['dtype'])}); bitsandbytes does not apply."
    )


# ==================================================================================================
# Results


def _paired(
    metric: str,
    diff: Any,
    low: Any,
    high: Any,
    *,
    n: Any = None,
    p: Any = None,
    comparisons: Any = None,
    word: str = "diff",
    signed: bool = False,
) -> str:
    """A paired comparison of two models as its verdict was made: ``diff +0.039, unadjusted 95% CI [0.0031,
    0.1], Holm-adjusted p = 0.120 over 10 comparisons``.

    A verdict on a difference between models ("significantly better", "not significantly different",
    "changed") rests on the Holm-adjusted p-value of the paired test (significant: below 0.05;
    stats.frames.paired_comparisons), never on the interval: the paired-bootstrap interval is not adjusted
    for the other comparisons, and can exclude 0 for a difference that is not significant after the
    adjustment. So the p-value the verdict used (``p``: Holm-adjusted over ``comparisons`` pairs) is always
    printed beside it, and the interval is labelled unadjusted when the adjustment is over more than one
    comparison (with one, or a test that is not adjusted, both are plain).
    """
    text = f"{word} {_value(metric, diff, signed=signed)}"
    if finite(n) and int(n) < 2:
        return f"{text}, no interval and no test: fewer than two shared prompts"
    several = finite(comparisons) and int(comparisons) > 1
    interval = _ci(metric, low, high)
    text += f", {'unadjusted ' if several and finite(low) and finite(high) else ''}{interval}"
    tested = _tested(p, comparisons)
    return text + (f", {tested}" if tested else "")


def _tested(p: Any, comparisons: Any) -> str:
    """``Holm-adjusted p = 0.120 over 10 comparisons`` (or ``p = 0.2`` for one comparison); "" without a p-value."""
    if not finite(p):
        return ""
    if finite(comparisons) and int(comparisons) > 1:
        return f"Holm-adjusted p {p_value(p)} over {int(comparisons)} comparisons"
    return f"p {p_value(p)}"


def _not_beaten_by(n: Mapping[str, Any], w: "_Writer") -> str:
    """Whom the best model is not significantly ahead of: "any other model" when that is all of them."""
    beaten_by_none = n["not_better_than"]
    return "any other model" if len(beaten_by_none) > 1 and beaten_by_none == n.get("others") else w.names(beaten_by_none)


def _best_test(n: Mapping[str, Any]) -> str:
    """The paired comparison of the best model and the runner-up (a result.best finding's numbers)."""
    return _paired(
        n["metric"],
        n["diff"],
        n["diff_ci_low"],
        n["diff_ci_high"],
        n=n.get("n_paired"),
        p=n.get("p_holm"),
        comparisons=n.get("comparisons"),
    )


def _result_best(f: Finding, w: _Writer) -> str:
    n = f.numbers
    metric, verdict = n["metric"], n["verdict"]
    label = _label(metric)
    best = w.name(n["best"])
    shown = f"{_value(metric, n['mean'])} ({_ci(metric, n['ci_low'], n['ci_high'])}, n = {n['n']})"
    heading = w.bold(f"{capital(label)}:")
    if verdict == "only":
        return f"{heading} only {best} has a score: {shown}."
    runner = w.name(n["runner_up"])
    if verdict == "no_test":
        return (
            f"{heading} {best} has the best mean, {shown}; the runner-up {runner} has "
            f"{_value(metric, n['runner_up_mean'])}. No paired test is available for the two."
        )
    diff = _best_test(n)
    if verdict == "all_tied":
        every = "both models score" if len(n["tied"]) == 2 else f"all {len(n['tied'])} models score"
        return f"{heading} {every} {_value(metric, n['mean'])} (n = {n['n']}): {label} does not separate them here."
    if verdict == "tie":
        return (
            f"{heading} {w.names(n['tied'])} tie at {_value(metric, n['mean'])}; "
            f"{best} and {runner} are not significantly different on {label} ({diff})."
        )
    if verdict == "significant":
        return (
            f"{heading} {best} is best, {shown}, significantly better than the runner-up {runner} "
            f"({_value(metric, n['runner_up_mean'])}; {diff})."
        )
    return (
        f"{heading} {best} has the best mean, {shown}, but {best} and {runner} are not "
        f"significantly different on {label} ({diff})."
    )


#: How a trade-off names the measured axes (analysis.measured.TRADEOFF_AXES) and shows a model's figure on each.
_TRADEOFF_AXIS_WORDS = {
    "tokens_per_s": "batched throughput",
    "latency_p50_s": "single-stream latency",
    "peak_memory_bytes": "peak memory",
}


def _tradeoff_axes(metric: str, figures: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The axes a trade-off was read on, as words: the quality metric, then each measured axis some model has."""
    present = [a for a in _TRADEOFF_AXIS_WORDS if any(a in f for f in figures.values())] if figures else ["tokens_per_s"]
    return [_label(metric)] + [_TRADEOFF_AXIS_WORDS[a] for a in present]


def _tradeoff_figures(metric: str, quality: float, figures: Mapping[str, float]) -> str:
    shown = [f"{_label(metric)} {_value(metric, quality)}"]
    if "tokens_per_s" in figures:
        shown.append(f"{_value('tokens_per_s', figures['tokens_per_s'], unit=True)} batched")
    if "latency_p50_s" in figures:
        shown.append(f"{_value('latency_p50_s', figures['latency_p50_s'], unit=True)} per prompt")
    if "peak_memory_bytes" in figures:
        shown.append(f"{human_bytes(figures['peak_memory_bytes'])} at peak")
    return ", ".join(shown)


def _result_tradeoff(f: Finding, w: _Writer) -> str:
    n = f.numbers
    metric, front, points = n["metric"], n["front"], n["points"]
    figures = n.get("figures") or {m: {"tokens_per_s": points[m][0]} for m in points}
    axes = join(_tradeoff_axes(metric, figures))
    shown = [f"{w.name(m)} ({_tradeoff_figures(metric, points[m][1], figures.get(m, {}))})" for m in front]
    evidence = (
        f"{_label(metric)}: a significant paired test; speed: ranges of the timed passes apart; memory: beyond the "
        "noise threshold"
    )
    if len(front) == 1:
        text = (
            f"On {axes}, {shown[0]} clearly dominates every other model: clearly ahead on at least one and clearly "
            f"behind on none ({evidence})."
        )
    else:
        text = (
            f"On {axes}, {join(shown)} are Pareto-optimal: none of them is clearly beaten on one without being clearly "
            f"ahead on another ({evidence}), so choosing between them is a trade-off."
        )
        dominated = [
            f"{w.name(m)} is dominated by {w.names(by)} ({'each ' if len(by) > 1 else ''}clearly ahead on at least "
            "one, clearly behind on none)"
            for m, by in n["dominated_by"].items()
        ]
        if dominated:
            text += " " + "; ".join(dominated) + "."
    return text + " Quality means have CIs (see above); a difference inside them can swap the order."


def _spans(metric: str, ranges: Mapping[str, tuple[float, float]], models: Sequence[str], w: _Writer) -> str:
    return ", ".join(
        f"{w.name(m)} {_value(metric, ranges[m][0])}–{_value(metric, ranges[m][1], unit=True)}" for m in models if m in ranges
    )


def _separation(n: Mapping[str, Any], metric: str, w: _Writer, what: str) -> str:
    """The evidence behind a speed winner: the passes' ranges, and whether they separate."""
    fast, slow, ranges, passes = n["fastest"], n["slowest"], n.get("ranges") or {}, n.get("passes") or []
    if not ranges or fast not in ranges:
        return ". No timed passes (measure.repeats: 0): these are the answer runs' own figures, which depend on the answers, so no model is called faster."
    text = f". Medians of {' or '.join(map(str, passes))} timed passes; their ranges: {_spans(metric, ranges, [fast, slow], w)}"
    if n.get("busy"):
        return text + f"; {_busy_machine(n['busy'], w)}, so there is no clear difference in {what}."
    if n.get("separated") is True:
        return text + f"; {w.name(fast)}'s slowest pass beats every other model's fastest."
    return text + f"; the ranges overlap, so there is no clear difference in {what}."


def _busy_machine(busy: Mapping[str, float], w: _Writer, timed: Iterable[str] = ()) -> str:
    """``other processes used up to 35.0% of the machine's CPU while A and B were timed`` (``every model was
    timed`` when the busy ones are all of ``timed``, two or more)."""
    timed = list(timed)
    if len(timed) > 1 and set(timed) <= set(busy):
        who = "every model was"
    else:
        who = f"{w.names(list(busy))} {'was' if len(busy) == 1 else 'were'}"
    return f"other processes used up to {_pct(max(busy.values()))} of the machine's CPU while {who} timed"


def _result_throughput(f: Finding, w: _Writer) -> str:
    n = f.numbers
    speed, fast, slow, missing = n["tokens_per_s"], n["fastest"], n["slowest"], n.get("no_throughput") or {}
    if n.get("winner"):
        text = f"{w.bold('Batched throughput:')} {w.name(fast)} is the fastest, {_value('tokens_per_s', speed[fast], unit=True)}"
    else:
        text = f"{w.bold('Batched throughput:')} highest median {w.name(fast)}, {_value('tokens_per_s', speed[fast], unit=True)}"
    if slow is not None:
        text += (
            f", {_times(n['ratio'])} the throughput of the slowest, {w.name(slow)} "
            f"({_value('tokens_per_s', speed[slow], unit=True)})"
        )
    if missing:
        text += f"; {_no_throughput(missing, w)}"
    return text + _separation(n, "tokens_per_s", w, "batched throughput")


def _result_latency(f: Finding, w: _Writer) -> str:
    n = f.numbers
    latency, quick = n["latency_p50_s"], n["fastest"]
    parts = [f"{w.name(m)} {_value('latency_p50_s', v, unit=True)}" for m, v in latency.items()]
    lead = "answers fastest" if n.get("winner") else "has the lowest median"
    text = (
        f"{w.bold('Single stream:')} one prompt at a time, {w.name(quick)} {lead}, median "
        f"{_value('latency_p50_s', latency[quick], unit=True)} per prompt"
        + (f" (p95 {_value('latency_p95_s', n['latency_p95_s'], unit=True)})" if "latency_p95_s" in n else "")
        + f"; medians: {join(parts)}"
    )
    text += _separation(n, "latency_p50_s", w, "single-stream latency")
    streams = n.get("single_tokens_per_s") or {}
    if streams:
        text += (
            " Tokens/s of one stream: "
            + join([f"{w.name(m)} {_value('tokens_per_s', v, unit=True)}" for m, v in streams.items()])
            + "."
        )
    if n.get("batched"):
        text += (
            f" {w.names(n['batched'])} ran prompts in batches: a batched prompt is timed from its batch's start to its own "
            "last token, so its latency includes the decoding steps it shared with the other prompts of its batch."
        )
    return text


def _memory_noise(n: dict[str, Any]) -> str:
    """The noise within which two peaks are the same: "10%" or "10% or 16.0 MiB" (stats.efficiency)."""
    floor = n.get("floor") or 0
    return percent(n.get("threshold", 0)) + (f" or {human_bytes(floor)}" if floor else "")


def _result_memory(f: Finding, w: _Writer) -> str:
    n = f.numbers
    memory, small, big = n["peak_memory_bytes"], n["least"], n["most"]
    threshold = _memory_noise(n)
    if not n.get("clear", True):
        tied = n.get("tied") or [small]
        if len(tied) == len(memory):
            return (
                f"{w.bold('Memory:')} no clear difference: every model's peak is within {threshold} of the least "
                f"({human_bytes(memory[small])} to {human_bytes(memory[big])})."
            )
        return (
            f"{w.bold('Memory:')} {w.names(tied)} need the least, within {threshold} of each other "
            f"({human_bytes(min(memory[m] for m in tied))} to {human_bytes(max(memory[m] for m in tied))} at peak), "
            f"so none of them is clearly lighter; {w.name(big)} needs the most, {human_bytes(memory[big])}."
        )
    return (
        f"{w.bold('Memory:')} {w.name(small)} needs the least, {human_bytes(memory[small])} at peak; {w.name(big)} the most, "
        f"{human_bytes(memory[big])}, {_times(n['ratio'])} as much."
    )


def _result_devices(f: Finding, w: _Writer) -> str:
    shown = [f"{w.name(m)} on {w.code(d)}" for m, d in f.numbers["devices"].items()]
    return (
        f"{w.bold('Caution:')} the models ran on different devices ({join(shown)}): their speed and memory compare the "
        "hardware as much as the models."
    )


def _result_per_stream(f: Finding, w: _Writer) -> str:
    return (
        f"Throughput of {w.names(f.numbers['per_stream'])} is per request stream (output tokens over the "
        "request times), not the whole run's rate."
    )


def _result_lm(f: Finding, w: _Writer) -> str:
    n = f.numbers
    bpb, low, high = n["bits_per_byte"], n["bpb_ci_low"], n["bpb_ci_high"]
    parts = [
        f"{w.name(m)} {_value('bits_per_byte', bpb[m])} [{_value('bits_per_byte', low[m])}, {_value('bits_per_byte', high[m])}]"
        for m in f.subjects
    ]
    text = f"{w.bold('Bits per byte')} on the reference texts (lower is better, 95% CI over texts): {join(parts)}. "
    tied, uncertain, worse = n["tied"], n["uncertain"], n["clearly_worse"]
    text += f"{w.names(tied)} {'score' if len(tied) > 1 else 'scores'} lowest" + (" (the same value)" if len(tied) > 1 else "")
    if uncertain:
        text += (
            f"; the intervals of {w.names(uncertain)} overlap "
            f"{'theirs' if len(tied) > 1 else 'its'}, so those differences are not certain"
        )
    if worse:
        text += f"; {w.names(worse)} {'are' if len(worse) > 1 else 'is'} clearly worse (intervals apart)"
    if len(set(n["n_texts"].values())) > 1:
        text += ". The models scored different numbers of texts, so the figures do not compare directly"
    return text + "."


def _change(c: Mapping[str, Any], w: _Writer) -> str:
    """``Exact match 0.27 → 0.73 (change +0.47, unadjusted 95% CI [...], Holm-adjusted p = 0.002 over 3
    comparisons: significantly better)`` (variants.change)."""
    metric = c["metric"]
    text = f"{_label(metric)} {_value(metric, c['base'])} → {_value(metric, c['variant'])}"
    if "diff" not in c:
        return text
    if c["diff"] == 0 and not (finite(c["ci_low"]) and finite(c["ci_high"])):
        return f"{text} (the same on every prompt both answered)"
    change = _paired(
        metric,
        c["diff"],
        c["ci_low"],
        c["ci_high"],
        n=c.get("n_paired"),
        p=c.get("p_holm"),
        comparisons=c.get("comparisons"),
        word="change",
        signed=True,
    )
    verdict = {"better": "significantly better", "worse": w.bold("significantly worse")}.get(c["verdict"], c["verdict"])
    return f"{text} ({change}: {verdict})"


def _variant_lead(f: Finding, w: _Writer) -> str:
    n = f.numbers
    base, variant = w.name(n["base"]), w.name(n["variant"])
    if f.kind == "variant.adapter":
        kind = "LoRA adapter" if n["peft_type"] == "LORA" else "adapter"
        return f"{w.bold(f'The {kind}:')} {variant} against its base {base}"
    if f.kind == "variant.runtime":
        return (
            f"{w.bold('Backend and precision:')} {variant} ({_runtime_words(n['variant_runtime'], w.style)}) "
            f"against {base} ({_runtime_words(n['base_runtime'], w.style)})"
        )
    how = (
        f"sampling at temperature {num(n['temperature'])}, top-p {num(n['top_p'])}"
        if n["variant_sampling"]
        else "greedy decoding"
    )
    return f"{w.bold('Decoding:')} {variant} ({how}) against {base} ({'sampling' if n['base_sampling'] else 'greedy decoding'})"


def _variant(f: Finding, w: _Writer) -> str:
    n = f.numbers
    parts = [_change(n[m], w) for m in n["changes"]]
    if n["unchanged"]:
        parts.append(f"no significant change on {join([_label(m) for m in n['unchanged']])}")
    parts += [_change(n[m], w) for m in n["diversity_changes"]]
    if "speed_ratio" in n and n.get("speed_clear", True):
        parts.append(
            f"batched throughput {ratio(n['speed_ratio'])} ({_value('tokens_per_s', n['speed_variant'])} vs "
            f"{_value('tokens_per_s', n['speed_base'], unit=True)})"
        )
    elif "speed_ratio" in n:
        parts.append(
            f"no clear difference in batched throughput ({_value('tokens_per_s', n['speed_variant'])} vs "
            f"{_value('tokens_per_s', n['speed_base'], unit=True)})"
        )
    elif n.get("speed_missing"):
        parts.append(f"throughput ratio n/a ({_no_throughput(n['speed_missing'], w)})")
    if "memory_ratio" in n and n.get("memory_clear", True):
        parts.append(
            f"peak memory {ratio(n['memory_ratio'])} ({human_bytes(n['memory_variant'])} vs {human_bytes(n['memory_base'])})"
        )
    elif "memory_ratio" in n:
        parts.append(
            f"no clear difference in peak memory ({human_bytes(n['memory_variant'])} vs {human_bytes(n['memory_base'])})"
        )
    same, shared = n["identical_outputs"], n["shared_prompts"]
    if shared:
        kind_of = "identical greedy output" if n["greedy"] else "identical output"
        parts.append(f"{kind_of} on {same} of {shared} prompts ({percent(same / shared)})")
    return f"{_variant_lead(f, w)}: {'; '.join(parts)}."


def _behaviour_limit(f: Finding, w: _Writer) -> str:
    n = f.numbers
    limit_text = f"the {num(n['limit'])}-token limit" if n["limit"] else "the token limit"
    text = f"{w.name(n['model'])} hit {limit_text} on {n['hits']} of {n['answered']} prompts ({percent(n['share'])})"
    if n["rambles"]:
        return (
            w.bold(text + ": it rambles, and its answers are cut off")
            + f" (median output {num(n['median_output_tokens'])} tokens)."
        )
    return text + ": those answers may be cut off."


def _behaviour_loops(f: Finding, w: _Writer) -> str:
    n = f.numbers
    return (
        f"{w.bold(w.name(n['model']) + ' loops:')} on average {percent(n['mean_repeated_4gram_rate'])} of its word 4-grams "
        f"repeat an earlier one; on {n['looping_prompts']} of {n['scored_prompts']} prompts more than half do (worst: "
        f"{w.code(n['worst_prompt'])}, {percent(n['worst'])})."
    )


def _behaviour_no_limit(f: Finding, w: _Writer) -> str:
    return "No model hit the token limit: every answer ended on its own."


def _behaviour_no_loops(f: Finding, w: _Writer) -> str:
    return f"No model loops: no answer repeats more than {percent(f.numbers['loop_prompt'])} of its word 4-grams."


def _behaviour_failed(f: Finding, w: _Writer) -> str:
    n = f.numbers
    first = n["first_error"]
    example = f"; first error: {w.code(first[:160])}" if first else ""
    failed = w.bold(f"{w.name(n['model'])} failed on {n['failed']} of {n['prompts']} prompts")
    return f"{failed}{example}. Failed prompts are left out of its quality means and retried on the next run."


def _behaviour_no_failures(f: Finding, w: _Writer) -> str:
    n = f.numbers
    return f"No generation failed ({n['generations']} generations over {n['models']} models)."


# ==================================================================================================
# Conclusion from the results, and retraining


def _conclusion_best(f: Finding, w: _Writer) -> str:
    n = f.numbers
    metric, label = n["metric"], _label(n["metric"])
    best, runner = w.name(n["best"]), w.name(n["runner_up"])
    test = n["test"]
    evidence = (
        _paired(
            metric,
            test["diff"],
            test["ci_low"],
            test["ci_high"],
            n=test.get("n"),
            p=test.get("p_holm"),
            comparisons=test.get("comparisons"),
        )
        if test is not None
        else ""
    )
    if n["significant"]:
        return (
            f"{w.bold(f'Best {label}:')} {best}, {_value(metric, n['mean'])}{LEAD_END} "
            f"({_ci(metric, n['ci_low'], n['ci_high'])}), significantly ahead of {runner} ({evidence})."
        )
    against = f" (against {runner}: {evidence})" if test is not None else ""
    tied = n.get("tied") or [n["best"]]
    if len(tied) > 1:
        rest = [m for m in n["not_better_than"] if m not in tied]
        text = (
            f"{w.bold(f'Best {label}: no clear winner.')}{LEAD_END} {w.names(tied)} share the highest mean "
            f"({_value(metric, n['mean'])})"
        )
        if rest:
            text += f", and none of them is significantly better than {w.names(rest)}"
        return text + "."
    return (
        f"{w.bold(f'Best {label}: no clear winner.')} {best} has the highest mean ({_value(metric, n['mean'])}), "
        f"but it is not significantly better than {_not_beaten_by(n, w)}{against}."
    )


def _conclusion_only_score(f: Finding, w: _Writer) -> str:
    n = f.numbers
    return f"{w.bold(capital(_label(n['metric'])) + ':')} {w.name(f.subjects[0])}, {_value(n['metric'], n['mean'])}."


def _conclusion_fastest(f: Finding, w: _Writer) -> str:
    n = f.numbers
    regime = n.get("regime", "batched")
    if regime == "single":
        label, metric, values = "Fastest single stream:", "latency_p50_s", n["latency_p50_s"]
    else:
        label, metric, values = "Highest batched throughput:", "tokens_per_s", n["tokens_per_s"]
    if not n.get("winner"):
        why = "no timed passes" if not n.get("ranges") else "the timed passes' ranges overlap"
        if n.get("busy"):
            why = _busy_machine(n["busy"], w, timed=values)
        return f"{w.bold(label)} no clear difference{LEAD_END} ({why})."
    best = n["fastest"]
    text = f"{w.bold(label)} {w.name(best)}, {_value(metric, values[best], unit=True)}"
    if regime == "single":
        text += " per prompt"
    text += LEAD_END
    if n["slowest"] is not None:
        ratio = _times(n["ratio"])
        text += (
            f", {ratio} the throughput of {w.name(n['slowest'])}"
            if regime != "single"
            else f", {ratio} as quick as {w.name(n['slowest'])}"
        )
    missing = n.get("no_throughput") or {}
    if missing:
        text += f" ({_no_throughput(missing, w)})"
    return text + "."


def _conclusion_least_memory(f: Finding, w: _Writer) -> str:
    n = f.numbers
    if not n.get("clear", True):
        if n.get("all_tied"):
            return (
                f"{w.bold('Least memory:')} no clear difference{LEAD_END} (every model's peak is within {_memory_noise(n)} of "
                "the least)."
            )
        return (
            f"{w.bold('Least memory:')} {w.names(n['tied'])}, {human_bytes(n['peak_memory_bytes'])} at peak and "
            f"within {_memory_noise(n)} of each other: no clear difference between them."
        )
    return f"{w.bold('Least memory:')} {w.name(n['least_memory'])}, {human_bytes(n['peak_memory_bytes'])} at peak."


def _conclusion_tradeoffs(f: Finding, w: _Writer) -> str:
    n = f.numbers
    axes = join(_tradeoff_axes(n["metric"], n.get("figures") or {}))
    return f"{w.bold('Best trade-offs')} (Pareto-optimal on {axes}, each beyond its noise): {w.names(n['front'])}."


def _conclusion_adapter(f: Finding, w: _Writer) -> str:
    return f"{w.bold('Adapter:')} {w.name(f.subjects[0])} against its base: {_change(f.numbers, w)}."


def _conclusion_watch_out(f: Finding, w: _Writer) -> str:
    words = {
        "rambles": lambda name, v: f"{name} rambles (token limit on {percent(v)} of prompts)",
        "loops": lambda name, v: f"{name} loops",
        "failed": lambda name, v: f"{name} failed on {v} prompts",
    }
    return f"{w.bold('Watch out:')} {join([words[kind](w.name(m), v) for kind, m, v in f.numbers['items']])}."


def _conclusion_retraining(f: Finding, w: _Writer) -> str:
    n = f.numbers
    name = w.name(n["model"])
    if n["verdict"] == "worse":
        return f"{w.bold(f'{name} got worse after retraining')} on {join([_label(m) for m in n['worse']])}."
    if n["verdict"] == "better":
        return f"{w.bold(f'Retraining improved {name}')} on {join([_label(m) for m in n['better']])}."
    return f"{w.bold(f'Retraining {name}')} changed no metric significantly."


def _retraining(f: Finding, w: _Writer) -> str:
    n = f.numbers
    name = w.name(n["model"])

    def changes(metrics: list[str]) -> str:
        # one test per metric, not adjusted (significant: p < 0.05), so the interval and p are plain
        return "; ".join(
            f"{_label(m)} {_value(m, c['mean_old'])} → {_value(m, c['mean_new'])} "
            f"({_paired(m, c['diff'], c['ci_low'], c['ci_high'], n=c.get('n'), p=c.get('p_value'), word='change', signed=True)})"
            for m, c in ((m, n["changes"][m]) for m in metrics)
        )

    if n["verdict"] == "worse":
        text = w.bold(f"{name} got worse after retraining: {changes(n['worse'])}.")
        if n["better"]:
            text += f" It improved on {changes(n['better'])}."
        return text
    if n["verdict"] == "better":
        return f"{name} improved after retraining: {changes(n['better'])}. No metric got significantly worse."
    return f"Retraining changed no metric of {name} significantly (McNemar exact / sign-flip permutation test, p < 0.05)."


# ==================================================================================================
# Judged comparisons


def _pct(value: Any) -> str:
    return percent(value) if not (isinstance(value, float) and math.isnan(value)) else "not measured"


def _judge(n: Mapping[str, Any], w: _Writer) -> str:
    return f"judge {w.escape(n['judge_name'])}"


def _judged_none(f: Finding, w: _Writer) -> str:
    n = f.numbers
    return f"The {_judge(n, w)} has no stored verdict on the current answers yet ({n['expected']} expected): run {w.code('reportgen judge')}."


def _judged_problems(f: Finding, w: _Writer) -> str:
    n = f.numbers
    return (
        f"Of the {n['expected']} judgements the {_judge(n, w)} owes, {n['unparsed']} gave no verdict in the required format "
        f"and {n['failed']} failed; they are kept with the judge's raw text and asked again on the next run."
    )


def _judged_unreliable(f: Finding, w: _Writer) -> str:
    n = f.numbers
    if n.get("consistent") and n.get("position_biased"):
        text = (
            f"The {_judge(n, w)} is unreliable: it chose the answer shown first in {_pct(n['first_position_rate'])} of its "
            f"{n['first_position_n']} decisive verdicts, where a fair judge, shown every pair in both orders, chooses it "
            f"about half the time (exact binomial test p {p_value(n['first_position_p'])}). Its verdict survived swapping the "
            f"answers' order on {_pct(n['consistency'])} of {n['consistency_n']} answer pairs (required: "
            f"{_pct(n['min_consistency'])}), but it called {_pct(n['tie_rate'])} of its verdicts a tie"
        )
        return w.bold(text + ". Nothing is called better or worse on its evidence.")
    text = (
        f"The {_judge(n, w)} is unreliable: its verdict survives swapping the two answers' order on only "
        f"{_pct(n['consistency'])} of {n['consistency_n']} answer pairs (required: {_pct(n['min_consistency'])})"
    )
    if not math.isnan(n["first_position_rate"]):
        text += f", and it chose the answer shown first in {_pct(n['first_position_rate'])} of its decisive verdicts"
    return w.bold(text + ". Nothing is called better or worse on its evidence.")


def _code_best(f: Finding, w: _Writer) -> str:
    n = f.numbers
    interval = (
        f"95% CI {_pct(n['ci_low'])}–{_pct(n['ci_high'])}" if finite(n["ci_low"]) and finite(n["ci_high"]) else "no interval"
    )
    text = (
        f"{w.bold('Code:')} {w.name(f.subjects[0])}'s code passes its tests on {_pct(n['mean'])} of {n['n']} code prompts "
        f"(pass@1, {interval})"
    )
    if len(f.subjects) < 2:
        return text + "."
    other = w.name(f.subjects[1])
    if n["tied"]:
        return text + f", as many as {other}'s."
    if n["significant"]:
        return text + f", more than {other}'s {_pct(n['runner_up_mean'])} (McNemar, Holm-adjusted p {p_value(n['p_holm'])})."
    return text + (
        f"; {other}'s passes on {_pct(n['runner_up_mean'])}, a difference the prompts cannot tell from noise "
        f"(McNemar, Holm-adjusted p {p_value(n['p_holm'])})."
    )


def _judged_compare(f: Finding, w: _Writer) -> str:
    n = f.numbers
    model, base = w.name(n["model_id"]), w.name(n["baseline"])
    rates = (
        f"wins {_pct(n['win'])}, ties {_pct(n['tie'])}, loses {_pct(n['loss'])} of the judgements; "
        f"score {_pct(n['score'])}, 95% CI [{_pct(n['score_low'])}, {_pct(n['score_high'])}], over {n['n']} prompts"
    )
    if f.kind == "judged.better":
        return f"The {_judge(n, w)} prefers {model} to {base}: it {rates}."
    if f.kind == "judged.worse":
        return f"The {_judge(n, w)} prefers {base} to {model}: {model} {rates}."
    return (
        f"The {_judge(n, w)} finds no clear difference between {model} and {base}: {model} {rates} (the interval includes 50%)."
    )


def _judged_reliable(f: Finding, w: _Writer) -> str:
    n = f.numbers
    return (
        f"The {_judge(n, w)} kept its verdict when the answers' order was swapped on {_pct(n['consistency'])} of "
        f"{n['consistency_n']} answer pairs (required: {_pct(n['min_consistency'])}); it called {_pct(n['tie_rate'])} of its "
        f"verdicts a tie and chose the longer answer in {_pct(n['longer_wins_rate'])} of its decisive ones."
    )


def _judged_rubric(f: Finding, w: _Writer) -> str:
    n = f.numbers
    scores = "; ".join(
        f"{w.name(r['model_id'])} {num(r['mean'], 2)} [{num(r['ci_low'], 2)}, {num(r['ci_high'], 2)}]" for r in n["scores"]
    )
    lead = (
        f"The {_judge(n, w)} scores {w.name(n['best'])} highest, clear of every other model's 95% interval"
        if n["clear"]
        else f"The {_judge(n, w)}'s rubric scores (mean, 95% CI) do not separate the models clearly"
    )
    return f"{lead}: {scores}."


#: Finding kind → the template that writes it.
TEMPLATES: dict[str, Callable[[Finding, _Writer], str]] = {
    "judged.none": _judged_none,
    "judged.problems": _judged_problems,
    "code.best": _code_best,
    "judged.unreliable": _judged_unreliable,
    "judged.better": _judged_compare,
    "judged.worse": _judged_compare,
    "judged.even": _judged_compare,
    "judged.reliable": _judged_reliable,
    "judged.rubric": _judged_rubric,
    "spec.context": _spec_compare,
    "spec.vocabulary": _spec_compare,
    "spec.parameters": _spec_compare,
    "spec.memory": _spec_memory,
    "spec.same_shape": _spec_same_shape,
    "spec.adapter": _spec_adapter,
    "spec.quantization": _spec_quantization,
    "spec.none": _spec_none,
    "spec.note": _spec_note,
    "conclusion.smallest": _conclusion_smallest,
    "conclusion.largest": _conclusion_largest,
    "conclusion.longest_context": _conclusion_longest_context,
    "conclusion.largest_vocabulary": _conclusion_largest_vocabulary,
    "conclusion.cheapest_to_finetune": _conclusion_cheapest,
    "warning.name_family": _warning_name_family,
    "warning.seq2seq_tag": _warning_tag,
    "warning.causal_tag": _warning_tag,
    "warning.peft_without_adapter": _warning_peft,
    "warning.adapter_task": _warning_adapter_task,
    "warning.size_in_name": _warning_size,
    "warning.bitsandbytes_on_gguf": _warning_gguf,
    "result.best": _result_best,
    "result.tradeoff": _result_tradeoff,
    "result.throughput": _result_throughput,
    "result.latency": _result_latency,
    "conclusion.fastest_single": _conclusion_fastest,
    "result.memory": _result_memory,
    "result.devices": _result_devices,
    "result.per_stream": _result_per_stream,
    "result.lm": _result_lm,
    "variant.adapter": _variant,
    "variant.runtime": _variant,
    "variant.decoding": _variant,
    "behaviour.limit": _behaviour_limit,
    "behaviour.loops": _behaviour_loops,
    "behaviour.no_limit": _behaviour_no_limit,
    "behaviour.no_loops": _behaviour_no_loops,
    "behaviour.failed": _behaviour_failed,
    "behaviour.no_failures": _behaviour_no_failures,
    "conclusion.best": _conclusion_best,
    "conclusion.only_score": _conclusion_only_score,
    "conclusion.best_choice": _conclusion_best,
    "conclusion.only_choice": _conclusion_only_score,
    "conclusion.fastest": _conclusion_fastest,
    "conclusion.least_memory": _conclusion_least_memory,
    "conclusion.tradeoffs": _conclusion_tradeoffs,
    "conclusion.adapter": _conclusion_adapter,
    "conclusion.watch_out": _conclusion_watch_out,
    "conclusion.retraining": _conclusion_retraining,
    "retraining": _retraining,
}


def _verdict_judge(f: Finding, w: _Writer) -> str:
    """The verdict's line on an unreliable judge: the one reason, short (the analysis gives the evidence)."""
    n = f.numbers
    if n.get("consistent") and n.get("position_biased"):
        why = f"it chose the answer shown first in {_pct(n['first_position_rate'])} of its {n['first_position_n']} decisive verdicts"
    else:
        why = f"its verdict survives swapping the answers' order on only {_pct(n['consistency'])} of {n['consistency_n']} pairs"
    return (
        f"{w.bold('Judge:')} the {_judge(n, w)} is unreliable{LEAD_END} ({why}); nothing is called better or worse on "
        "its evidence."
    )


def _verdict_best(f: Finding, w: _Writer) -> str:
    """The verdict's line on the best model of the headline metric: the mean and the p-value the call rests
    on (the interval and the difference are in the analysis the line links to)."""
    n = f.numbers
    metric, label = n["metric"], _label(n["metric"])
    test = n["test"]
    tested = _tested(test.get("p_holm"), test.get("comparisons")) if test is not None else ""
    tied = n.get("tied") or [n["best"]]
    if len(tied) > 2:  # many names would fill the screen: count them (the section names them)
        rest = [m for m in n["not_better_than"] if m not in tied]
        text = (
            f"{w.bold(f'Best {label}: no clear winner.')}{LEAD_END} {len(tied)} models share the highest mean "
            f"({_value(metric, n['mean'])})"
        )
        return text + (f", none significantly ahead of {w.names(rest)}." if rest else ".")
    if n["significant"] or len(tied) > 1 or not tested:
        return _conclusion_best(f, w)
    return (
        f"{w.bold(f'Best {label}: no clear winner.')}{LEAD_END} {w.name(n['best'])} has the highest mean "
        f"({_value(metric, n['mean'])}), not significantly ahead of {_not_beaten_by(n, w)} (against "
        f"{w.name(n['runner_up'])}: {tested})."
    )


def _verdict_code(f: Finding, w: _Writer) -> str:
    """The verdict's line on code: who passes most of the code prompts (pass@1), and whether that is a clear lead."""
    n = f.numbers
    best = w.name(f.subjects[0])
    passes = f"{_pct(n['mean'])} of {n['n']} code prompts (pass@1)"
    if len(f.subjects) < 2:
        return f"{w.bold('Code:')} {best} passes {passes}."
    other = w.name(f.subjects[1])
    if n["tied"]:
        return f"{w.bold('Code:')} no clear winner{LEAD_END}: {best} and {other} both pass {passes}."
    test = f"McNemar, Holm-adjusted p {p_value(n['p_holm'])}"
    if n["significant"]:
        return f"{w.bold('Code:')} {best} passes {passes}{LEAD_END}, ahead of {other} ({_pct(n['runner_up_mean'])}; {test})."
    return f"{w.bold('Code:')} no clear winner{LEAD_END}: {best} passes {passes}, {other} {_pct(n['runner_up_mean'])} ({test})."


#: Verdict lines phrased apart from the finding they come from (shorter: the verdict is read first, on one screen).
VERDICT_TEMPLATES: dict[str, Callable[[Finding, _Writer], str]] = {
    "judged.unreliable": _verdict_judge,
    "conclusion.best": _verdict_best,
    "conclusion.best_choice": _verdict_best,
    "code.best": _verdict_code,
}


def phrase(finding: Finding, names: Mapping[str, str], style: Style = PLAIN) -> Statement:
    """The sentence of ``finding``; ``names``: model id → display name (raw: the style escapes it).
    A verdict line (``verdict.*``, analysis.verdict) is the sentence of the finding it was made from (shorter
    for the kinds in ``VERDICT_TEMPLATES``)."""
    if finding.kind.startswith("verdict."):
        source = finding.numbers["source"]
        template = VERDICT_TEMPLATES.get(source, TEMPLATES[source])
        lead, marked, rest = template(finding, _Writer(names, style)).partition(LEAD_END)
        return Statement(lead + rest, finding.numbers, finding.topic, lead if marked else "")
    text = TEMPLATES[finding.kind](finding, _Writer(names, style)).replace(LEAD_END, "")
    return Statement(text, finding.numbers, finding.topic)


def phrase_all(findings: Iterable[Finding], names: Mapping[str, str], style: Style = PLAIN) -> list[Statement]:
    return [phrase(f, names, style) for f in findings]


# ==================================================================================================
# Words that are not whole findings: how a model ran, checked claims


BACKEND_NAMES = {"llamacpp": "llama.cpp", "transformers": "transformers", "http": "HTTP endpoint"}


def _runtime_words(runtime: Mapping[str, Any], style: Style) -> str:
    backend = BACKEND_NAMES.get(runtime["backend"] or "", runtime["backend"] or "?")
    detail = runtime["precision"] or (f"bitsandbytes {runtime['bits']}-bit" if runtime["bits"] else "")
    return f"{backend}, {style.escape(detail)}" if detail else backend


def runtime_label(model: ModelConfig, spec: ModelSpec | None = None, precision: str | None = None, style: Style = PLAIN) -> str:
    """How a model ran, in words: ``llama.cpp, Q4_1``, ``transformers, float32``, ``transformers, bitsandbytes 4-bit``."""
    from reportgen.analysis.variants import runtime

    return _runtime_words(runtime(model, spec, precision), style)


def claim_lines(results: Iterable[ClaimResult], style: Style = PLAIN) -> list[str]:
    """Checked claims, one line each: the claim, then the check and the values it was checked with."""
    lines = []
    for r in results:
        text = " ".join(line for line in style.escape(r.claim.text).split("\n") if line)
        if r.pending:
            lines.append(
                f"… {text} — not checked yet: {style.code(r.claim.check)} names measured results, and this "
                f"report has none. Run the study ({style.code('reportgen run')}) and render again."
            )
            continue
        values = ", ".join(f"{style.code(ref)} = {num(v)}" for ref, v in r.values.items())
        mark = "✓" if r.passed else "✗"
        lines.append(f"{mark} {text} — checked: {style.code(r.claim.check)} with {values}.")
    return lines


def _claim_field_label(name: str) -> str:
    """A claim's field in words: a spec field's label (``context length``), else the metric's (``exact match``)."""
    from reportgen.specs import fields as spec_fields
    from reportgen.stats.metrics import metric_label

    try:
        label = spec_fields.field(name).label
    except KeyError:
        label = metric_label(name)
    return label[:1].lower() + label[1:] if label[1:2].islower() or len(label) == 1 else label


def claim_sentences(results: Iterable[ClaimResult], names: Mapping[str, str], style: Style = PLAIN) -> list[str]:
    """Checked claims as a reader reads them, one line each: the claim and the numbers it was checked with, in
    words (``context length: Model A 4,096, Model B 1,024``). The check expressions stay in ``claim_lines``
    (the terminal and the JSON) and in the report's details block."""
    lines = []
    for r in results:
        text = " ".join(line for line in style.escape(r.claim.text).split("\n") if line)
        if r.pending:
            lines.append(
                f"… {text} — not checked yet: it names measured results, and this report has none. "
                f"Run the study ({style.code('reportgen run')}) and render again."
            )
            continue
        by_field: dict[str, list[str]] = {}
        for ref, value in r.values.items():
            model, _, name = str(ref).rpartition(".")
            by_field.setdefault(name, []).append(f"{style.escape(names.get(model, model))} {num(value)}")
        evidence = "; ".join(f"{_claim_field_label(name)}: {', '.join(values)}" for name, values in by_field.items())
        mark = "✓" if r.passed else "✗"
        lines.append(f"{mark} {text} ({evidence})" if evidence else f"{mark} {text}")
    return lines
