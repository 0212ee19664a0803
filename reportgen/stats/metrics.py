"""Metric functions, registered by name.

Every number the report shows comes from a metric registered here, so its unit, its direction and its
description live in one place (``METRICS.get(name)``). Kinds:

``reference``   per prompt; ``fn(output, references) -> float``. The score is the best (max) over the
                acceptable references. A prompt without references gets NaN: the metric does not apply
                (NaN values are left out of means, so ``n`` in a summary counts the prompts scored).
``text``        per prompt; ``fn(output) -> float``, or ``fn(output, *, finish_reason, output_tokens)``
                for the two that need the generation record.
``lm``          per model, from the ``loglik`` table (summed over texts).
``choice``      per multiple-choice item, from the stored log-likelihoods of its choices (the ``choice_loglik``
                table, not the answer text): ``fn(logprobs, lengths, gold) -> float``, 1 or 0 per item
                (stats.choice builds the per-item frame; the usual summaries and paired tests read it).
``efficiency``  per model, from ``model_runs`` and the results' timings (see aggregate.efficiency_frame).
``imported``    per sample, a value another tool stored in its log (lm-eval's ``acc``, an Inspect scorer's value),
                named ``<task>/<metric>``; registered from the stored imports (``register_imported``), never
                computed here: ``fn`` only says so.
``record``      per prompt, from stored records rather than the answer's text (``code_pass``: the sandbox's
                verdict stored by ``run``, joined by ``stats.code``); ``fn`` is never called. Their column
                is added to the per-prompt frame, so summaries, intervals and paired tests treat them
                like any other per-prompt metric.

Scales: BLEU and chrF are sacrebleu's 0–100 scale; ROUGE-L F1, exact match, contains-answer, distinct-n,
the repeated-4-gram rate and hit-token-limit are 0–1 (the last three are shares, exact match and
contains-answer are 0/1 per prompt, so their mean is a share of prompts).

Empty inputs get defined values, never exceptions: an empty output scores 0 on every reference metric
(unless a reference normalises to empty too), 0 distinct-n and 0 repeated-4-gram rate; an output with
fewer than n words has no n-grams and scores 0 on distinct-n. References that are empty or blank are
ignored; with none left the reference metrics are NaN.
"""

from __future__ import annotations

import inspect
import math
import re
import string
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Literal, Sequence

from reportgen import format as fmt
from reportgen.util.registry import Registry

Kind = Literal["reference", "text", "lm", "efficiency", "imported", "record", "choice"]
KINDS: tuple[str, ...] = ("reference", "text", "lm", "efficiency", "imported", "record", "choice")
PER_PROMPT_KINDS: tuple[str, ...] = ("reference", "text")

NAN = float("nan")


@dataclass(frozen=True)
class Metric:
    """A registered metric: the function and what a reader needs to read its number."""

    name: str
    kind: Kind
    higher_is_better: bool | None  # None: no better direction (e.g. output length)
    unit: str
    description: str
    label: str  # how every output names it: short, lower case (tables capitalise)
    fn: Callable[..., float] = field(repr=False, compare=False)
    # the optional keyword arguments a text metric wants from the generation record
    wants: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    # 1 or 0 per prompt: its mean is a proportion (interval: Wilson; paired test: McNemar)
    binary: bool = False
    # the packages whose code defines the value (their versions are part of a stored score's key)
    libraries: tuple[str, ...] = ()

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        return self.fn(*args, **kwargs)

    def score(
        self,
        output: str,
        references: Sequence[str] = (),
        *,
        finish_reason: str | None = None,
        output_tokens: int | None = None,
    ) -> float:
        """Score one generation (per-prompt kinds only), whatever this metric needs from it."""
        if self.kind == "reference":
            return self.fn(output, references)
        if self.kind == "text":
            extra = {"finish_reason": finish_reason, "output_tokens": output_tokens}
            return self.fn(output, **{key: extra[key] for key in self.wants})
        raise TypeError(f"metric '{self.name}' is a per-model ({self.kind}) metric, computed in aggregate")

    def better(self, a: float, b: float) -> int:
        """1 if a is better than b, -1 if worse, 0 if equal or the metric has no direction."""
        if self.higher_is_better is None or a == b or math.isnan(a) or math.isnan(b):
            return 0
        return 1 if (a > b) == self.higher_is_better else -1


METRICS: Registry[Metric] = Registry("metric")


def metric(
    name: str,
    kind: Kind,
    higher_is_better: bool | None,
    unit: str,
    description: str,
    *,
    label: str | None = None,
    binary: bool = False,
    libraries: tuple[str, ...] = (),
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register a metric function under ``name``; ``label`` is how the report and the terminal name it;
    ``binary``: the metric is 1 or 0 per prompt; ``libraries``: the packages that define its value."""
    if kind not in KINDS:
        raise ValueError(f"metric kind must be one of {KINDS}, not {kind!r}")

    def register(fn: Callable[..., float]) -> Callable[..., float]:
        params = inspect.signature(fn).parameters
        wants = frozenset(p for p in ("finish_reason", "output_tokens") if p in params)
        METRICS.register(
            name,
            Metric(
                name, kind, higher_is_better, unit, description, label or name.replace("_", " "), fn, wants, binary, libraries
            ),
        )
        return fn

    return register


def _stored(*_: Any, **__: Any) -> float:
    raise TypeError("an imported metric's values come from the tool's log, not from scoring an answer")


def register_imported(name: str, *, binary: bool, higher_is_better: bool | None, description: str) -> Metric:
    """Register (once; again is a no-op) a per-sample value imported from another tool's log."""
    known = METRICS.find(name)
    if known is not None:
        return known
    entry = Metric(name, "imported", higher_is_better, "share" if binary else "value", description, name, _stored, binary=binary)
    METRICS.register(name, entry)
    return entry


def metrics_of_kind(*kinds: str) -> list[Metric]:
    """Registered metrics of the given kinds, in registration order."""
    return [m for m in METRICS.values() if m.kind in kinds]


def get_metric(name: str) -> Metric:
    return METRICS.get(name)


# ---------------------------------------------------------------------------------------------
# Normalisation (SQuAD-style) and tokenisation

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_WORD = re.compile(r"\w+|[^\w\s]")


#: SQuAD v1.1 strips ``string.punctuation``, which holds ASCII symbols that Unicode does not class as
#: punctuation: ``$ + < = > ^ ` | ~`` (categories Sc, Sm, Sk).
_SQUAD_PUNCTUATION = frozenset(string.punctuation)


_DROP_ASCII_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _strip_punctuation(text: str) -> str:
    # SQuAD's ASCII set, plus Unicode punctuation (category P*): curly quotes and dashes are punctuation too.
    if text.isascii():  # every ASCII character of category P* is in string.punctuation
        return text.translate(_DROP_ASCII_PUNCTUATION)
    return "".join(ch for ch in text if ch not in _SQUAD_PUNCTUATION and not unicodedata.category(ch).startswith("P"))


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's ``normalize_answer``: lowercase, drop punctuation, drop the articles a/an/the, collapse
    whitespace. Identical to the official script on ASCII text; beyond ASCII, Unicode punctuation
    (category P: curly quotes, dashes, CJK full stops) is dropped as well."""
    text = _strip_punctuation(text.lower())
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


#: normalised texts remembered: exact match and contains-answer both normalise each answer, and every model's
#: answer to a prompt is compared with the same references
_normalized = lru_cache(maxsize=65536)(normalize_answer)


def words(text: str) -> list[str]:
    """Lowercased word and punctuation tokens, for the diversity and repetition metrics."""
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _usable(references: Iterable[str] | None) -> list[str]:
    if references is None:
        return []
    if isinstance(references, str):  # a lone string is one reference, not a list of characters
        references = [references]
    return [r for r in references if r is not None and r.strip()]


def _best(output: str, references: Iterable[str] | None, score: Callable[[str, str], float]) -> float:
    refs = _usable(references)
    if not refs:
        return NAN
    return max(score(output or "", ref) for ref in refs)


# ---------------------------------------------------------------------------------------------
# Reference metrics (per prompt; max over the acceptable references)


@metric(
    "exact_match",
    "reference",
    True,
    "share",
    "Output equals a reference after SQuAD normalisation (lowercase, no punctuation, no a/an/the, "
    "collapsed whitespace); 1 or 0 per prompt.",
    label="exact match",
    binary=True,
)
def exact_match(output: str, references: Sequence[str]) -> float:
    return _best(output, references, lambda out, ref: float(_normalized(out) == _normalized(ref)))


def _contains(output: str, reference: str) -> float:
    ref = _normalized(reference)
    out = _normalized(output)
    if not ref:  # a reference that is only punctuation/articles: only an equally empty output matches
        return float(not out)
    # whole words only: "cat" is not in "concatenate"
    return float(f" {ref} " in f" {out} ")


@metric(
    "contains_answer",
    "reference",
    True,
    "share",
    "The normalised reference appears, as whole words, in the normalised output; 1 or 0 per prompt.",
    label="contains answer",
    binary=True,
)
def contains_answer(output: str, references: Sequence[str]) -> float:
    return _best(output, references, _contains)


class _StemmedWords:
    """rouge-score's own tokenizer (``DefaultTokenizer(use_stemmer=True)``: lowercase, [a-z0-9] words, Porter
    stems of words over 3 letters), remembering what it did: each distinct word is stemmed once and each
    distinct text tokenised once per process (a reference is shared by every model's answer). The tokens
    are the library's; a test compares the scores with a plain ``RougeScorer(["rougeL"], use_stemmer=True)``."""

    def __init__(self) -> None:
        from nltk.stem import porter  # the stemmer rouge-score's DefaultTokenizer builds
        from rouge_score import tokenize

        self._split = tokenize.tokenize
        self.stem = lru_cache(maxsize=None)(porter.PorterStemmer().stem)

    @lru_cache(maxsize=65536)  # noqa: B019 (one instance per process, kept for its life)
    def tokenize(self, text: str) -> list[str]:
        return list(self._split(text, self))


@lru_cache(maxsize=1)
def _rouge_words() -> _StemmedWords:
    return _StemmedWords()  # imports nltk (~0.7 s): only when a score is asked for


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """The length of the longest common subsequence of two token lists: the number rouge-score's
    ``_lcs_table`` ends with, computed bit-parallel (Hyyrö 2004, "Bit-parallel LCS-length computation
    revisited") — one pass over ``b`` of integer operations on bit masks of ``a``'s positions, instead of
    filling the len(a) × len(b) table in Python. A test compares it with rouge-score's table."""
    positions: dict[str, int] = {}
    for i, token in enumerate(a):
        positions[token] = positions.get(token, 0) | (1 << i)
    ones = (1 << len(a)) - 1
    v = ones
    for token in b:
        u = v & positions.get(token, 0)
        v = ((v + u) | (v - u)) & ones
    return len(a) - v.bit_count()


def _rouge_l_f1(output: str, reference: str) -> float:
    """rouge-score's ``_score_lcs(target, prediction)`` F-measure on its own tokens: LCS length over the
    prediction's and the target's lengths, combined by ``rouge_score.scoring.fmeasure``."""
    from rouge_score.scoring import fmeasure

    target, prediction = _rouge_words().tokenize(reference), _rouge_words().tokenize(output)
    if not target or not prediction:
        return 0.0
    common = lcs_length(target, prediction)
    return float(fmeasure(common / len(prediction), common / len(target)))


@metric(
    "rouge_l",
    "reference",
    True,
    "F1 (0–1)",
    "ROUGE-L F1 (longest common subsequence of words, Porter-stemmed; rouge-score package). "
    "Its tokenizer keeps only [a-z0-9] words, so non-Latin text scores 0.",
    label="ROUGE-L",
    libraries=("rouge-score", "nltk"),
)
def rouge_l(output: str, references: Sequence[str]) -> float:
    return _best(output, references, _rouge_l_f1)


@lru_cache(maxsize=1)
def _sacrebleu_scorers() -> tuple[Any, Any]:
    """The BLEU and chrF objects ``sacrebleu.sentence_bleu`` / ``sentence_chrf`` build on every call, with
    their defaults (13a tokenizer, exponential smoothing, effective order; character 6-grams, beta 2),
    built once: a sentence score keeps no state in them."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu = BLEU(
        lowercase=False,
        tokenize=BLEU.TOKENIZER_DEFAULT,
        force=False,
        smooth_method="exp",
        smooth_value=None,
        effective_order=True,
    )
    chrf = CHRF(char_order=6, word_order=0, beta=2, whitespace=False, eps_smoothing=False)
    return bleu, chrf


def _clip100(value: float) -> float:
    # sacrebleu returns 100.00000000000004 for identical text
    return min(100.0, max(0.0, float(value)))


@metric(
    "bleu",
    "reference",
    True,
    "BLEU (0–100)",
    "Sentence BLEU (sacrebleu defaults: 13a tokenizer, exponential smoothing), 0–100 scale; the best single reference counts.",
    label="BLEU",
    libraries=("sacrebleu",),
)
def bleu(output: str, references: Sequence[str]) -> float:
    scorer = _sacrebleu_scorers()[0]
    return _best(output, references, lambda out, ref: _clip100(scorer.sentence_score(out, [ref]).score))


@metric(
    "chrf",
    "reference",
    True,
    "chrF (0–100)",
    "Sentence chrF (character 6-grams, beta 2; sacrebleu), 0–100 scale; the best single reference counts.",
    label="chrF",
    libraries=("sacrebleu",),
)
def chrf(output: str, references: Sequence[str]) -> float:
    scorer = _sacrebleu_scorers()[1]
    return _best(output, references, lambda out, ref: _clip100(scorer.sentence_score(out, [ref]).score))


# ---------------------------------------------------------------------------------------------
# Text metrics (per prompt, output only)


@metric("length_words", "text", None, "words", "Length of the output in whitespace-separated words.", label="length (words)")
def length_words(output: str) -> float:
    return float(len((output or "").split()))


@metric(
    "length_tokens",
    "text",
    None,
    "tokens",
    "Length of the output in the model's own tokens (as the backend counted them); NaN when unknown.",
    label="length (tokens)",
)
def length_tokens(output: str, *, output_tokens: int | None = None) -> float:
    if output_tokens is None or (isinstance(output_tokens, float) and math.isnan(output_tokens)):
        return NAN
    return float(output_tokens)


def distinct_n(output: str, n: int) -> float:
    grams = ngrams(words(output or ""), n)
    return len(set(grams)) / len(grams) if grams else 0.0


@metric(
    "distinct_1",
    "text",
    True,
    "share",
    "Unique words / words in the output (lowercased word and punctuation tokens); 0 for an empty output.",
    label="distinct-1",
)
def distinct_1(output: str) -> float:
    return distinct_n(output, 1)


@metric(
    "distinct_2",
    "text",
    True,
    "share",
    "Unique word bigrams / bigrams in the output; 0 when the output has fewer than two words.",
    label="distinct-2",
)
def distinct_2(output: str) -> float:
    return distinct_n(output, 2)


@metric(
    "repeated_4gram_rate",
    "text",
    False,
    "share",
    "Share of the output's word 4-grams that repeat an earlier 4-gram of the same output "
    "(a looping text approaches 1); 0 when there are no 4-grams.",
    label="repeated 4-grams",
)
def repeated_4gram_rate(output: str) -> float:
    grams = ngrams(words(output or ""), 4)
    if not grams:
        return 0.0
    return (len(grams) - len(set(grams))) / len(grams)


@metric(
    "hit_token_limit",
    "text",
    False,
    "share",
    "The generation stopped at max_new_tokens (finish_reason 'length'), so the answer may be cut off; 1 or 0.",
    label="hit token limit",
    binary=True,
)
def hit_token_limit(output: str, *, finish_reason: str | None = None) -> float:
    return float(finish_reason == "length")


# ---------------------------------------------------------------------------------------------
# Language-modelling metrics (per model, from summed log-likelihoods)

LN2 = math.log(2.0)


@metric(
    "bits_per_byte",
    "lm",
    False,
    "bits/byte",
    "Total negative log-likelihood over the corpus in bits, divided by its UTF-8 bytes: "
    "nats / (ln 2 × bytes). Comparable across tokenizers.",
    label="bits per byte",
)
def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    if not n_bytes or n_bytes <= 0:
        return NAN
    return float(nll_nats) / (LN2 * float(n_bytes))


@metric(
    "mc_acc",
    "choice",
    True,
    "share",
    "Multiple choice: 1 when the correct choice has the highest summed log-probability as a continuation of "
    "the context (lm-evaluation-harness's acc), else 0.",
    label="MC accuracy",
    binary=True,
)
def mc_acc(logprobs: Sequence[float], lengths: Sequence[int], gold: int) -> float:
    return float(_first_best(list(logprobs)) == gold)


@metric(
    "mc_acc_norm",
    "choice",
    True,
    "share",
    "Multiple choice: 1 when the correct choice has the highest log-probability per character of the choice's "
    "text (lm-evaluation-harness's acc_norm: longer choices are not penalised for their length), else 0.",
    label="MC accuracy (length-normalised)",
    binary=True,
)
def mc_acc_norm(logprobs: Sequence[float], lengths: Sequence[int], gold: int) -> float:
    return float(_first_best([lp / max(n, 1) for lp, n in zip(logprobs, lengths)]) == gold)


def _first_best(values: list[float]) -> int:
    """The index of the largest value, the first on a tie (numpy's argmax, as lm-eval picks)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


@metric(
    "perplexity",
    "lm",
    False,
    "per token",
    "exp(total NLL nats / total tokens scored). Depends on the tokenizer: compare only models that share one.",
    label="perplexity",
)
def perplexity(nll_nats: float, n_tokens: int) -> float:
    if not n_tokens or n_tokens <= 0:
        return NAN
    try:
        return math.exp(float(nll_nats) / float(n_tokens))
    except OverflowError:
        return math.inf


# ---------------------------------------------------------------------------------------------
# Efficiency metrics (per model; computed in aggregate.efficiency_frame, registered for their units)


def _ratio(num: float | None, den: float | None) -> float:
    if num is None or den is None or not den or den <= 0 or math.isnan(num) or math.isnan(den):
        return NAN
    return float(num) / float(den)


# ---------------------------------------------------------------------------------------------
# Per-prompt values from stored records


@metric(
    "code_pass",
    "record",
    True,
    "share",
    "The answer's code passed the prompt's tests in the sandbox (code prompts only); 1 or 0 per prompt: its mean "
    "is pass@1 of the study's own answers.",
    label="pass@1",
    binary=True,
)
def code_pass(*_: object) -> float:
    raise TypeError("code_pass comes from the stored sandbox verdicts (reportgen.stats.code), not from the answer text")


@metric("load_time_s", "efficiency", False, "s", "Time to load the model, from the latest run that loaded it.", label="load time")
def load_time_s(value: float | None) -> float:
    return NAN if value is None else float(value)


@metric("ttft_p50_s", "efficiency", False, "s", "Median time to first token over the prompts.", label="time to first token p50")
def ttft_p50_s(values: Sequence[float]) -> float:
    return _quantile(values, 0.5)


@metric(
    "ttft_p95_s",
    "efficiency",
    False,
    "s",
    "95th-percentile time to first token over the prompts.",
    label="time to first token p95",
)
def ttft_p95_s(values: Sequence[float]) -> float:
    return _quantile(values, 0.95)


@metric(
    "latency_p50_s",
    "efficiency",
    False,
    "s",
    "Median time per prompt, from the start of its batch to its own last token (so batched and sequential "
    "backends compare). With timed passes (measure.repeats): the median over the passes of each pass's median, "
    "with the passes' range.",
    label="latency p50",
)
def latency_p50_s(values: Sequence[float]) -> float:
    return _quantile(values, 0.5)


@metric(
    "latency_p95_s",
    "efficiency",
    False,
    "s",
    "95th-percentile time per prompt (to its own last token); with timed passes, the median of the passes' 95th percentiles.",
    label="latency p95",
)
def latency_p95_s(values: Sequence[float]) -> float:
    return _quantile(values, 0.95)


@metric(
    "tokens_per_s",
    "efficiency",
    True,
    "tokens/s",
    "Generated tokens / generation time (all sequences of a batch count). With timed passes (measure.repeats): "
    "the median over the batched passes of the fixed workload, with their range (lowest–highest); else the latest "
    "run that generated (which depends on the answers).",
    label="throughput",
)
def tokens_per_s(tokens: float | None, seconds: float | None) -> float:
    return _ratio(tokens, seconds)


@metric(
    "decode_steps_per_s",
    "efficiency",
    True,
    "steps/s",
    "Forward passes of the decoder per second: one step yields one token for every sequence of a batch. "
    "Measured over the whole generation time, prefill included, so a lower bound on the decode rate.",
    label="decode steps/s",
)
def decode_steps_per_s(steps: float | None, seconds: float | None) -> float:
    return _ratio(steps, seconds)


@metric(
    "peak_memory_bytes", "efficiency", False, "bytes", "Peak memory the backend reported while generating.", label="peak memory"
)
def peak_memory_bytes(value: float | None) -> float:
    return NAN if value is None else float(value)


@metric(
    "bandwidth_share",
    "efficiency",
    True,
    "share",
    "Achieved share of the measured memory bandwidth: weight bytes × decode steps/s ÷ bandwidth. "
    "Assumes each decode step reads every weight once (a batch shares that read, hence steps, not tokens), "
    "ignores KV-cache and activation traffic; near 1 means generation is memory-bound at the hardware limit.",
    label="memory-bandwidth share",
)
def bandwidth_share(weight_bytes: float | None, steps_per_s: float | None, bandwidth_bytes_per_s: float | None) -> float:
    if weight_bytes is None or steps_per_s is None:
        return NAN
    return _ratio(float(weight_bytes) * float(steps_per_s), bandwidth_bytes_per_s)


def _quantile(values: Iterable[float | None], q: float) -> float:
    clean = sorted(float(v) for v in values if v is not None and not math.isnan(float(v)))
    if not clean:
        return NAN
    import numpy as np

    return float(np.quantile(np.asarray(clean), q))


# ---------------------------------------------------------------------------------------------


def score_all(
    output: str,
    references: Sequence[str] = (),
    *,
    finish_reason: str | None = None,
    output_tokens: int | None = None,
    names: Iterable[str] | None = None,
) -> dict[str, float]:
    """Every per-prompt metric (or the named ones) for one generation."""
    chosen = [get_metric(n) for n in names] if names is not None else metrics_of_kind(*PER_PROMPT_KINDS)
    return {m.name: m.score(output, references, finish_reason=finish_reason, output_tokens=output_tokens) for m in chosen}


# ---------------------------------------------------------------------------------------------
# How each metric (and the spec measure shown beside them) is written: its registered unit and label

_OTHER_MEASURES = {  # shown with the metrics: computed from specs, or speed read per regime (stats.efficiency)
    "weight_bytes": ("weight memory", "bytes"),
    "single_tokens_per_s": ("single-stream throughput", "tokens/s"),
    "answer_tokens_per_s": ("answer-run throughput", "tokens/s"),
}
_SHOWN_AS = {"bandwidth_share": "percent"}  # a share read as a percentage


def metric_label(name: str) -> str:
    """``exact_match`` → ``exact match``; unknown names are shown with spaces for underscores."""
    known = METRICS.find(name)
    if known is not None:
        return known.label
    return _OTHER_MEASURES.get(name, (name.replace("_", " "), ""))[0]


def metric_unit(name: str) -> str:
    known = METRICS.find(name)
    unit = known.unit if known is not None else _OTHER_MEASURES.get(name, ("", ""))[1]
    return _SHOWN_AS.get(name, unit)


def metric_value(name: str, value: object, *, signed: bool = False, unit: bool = False) -> str:
    """A metric's value as the report and the terminal write it (``—`` when missing); see format.measure."""
    return fmt.measure(value, metric_unit(name), signed=signed, show_unit=unit)


def metric_range(name: str, low: object, high: object) -> str:
    """``97.7–104``: the lowest and highest of a metric's measurements (timed passes), or ``""`` when unknown."""
    if fmt.is_missing(low) or fmt.is_missing(high):
        return ""
    return f"{metric_value(name, low)}–{metric_value(name, high)}"


def metric_ci(name: str, mean: object, low: object, high: object, *, unit: bool = False) -> str:
    """``0.62 [0.45, 0.78]``: a mean and its 95% interval (the interval left out when unknown)."""
    text = metric_value(name, mean, unit=unit)
    if fmt.is_missing(low) or fmt.is_missing(high):
        return text
    if unit and " " in text:
        value, _, suffix = text.partition(" ")
        return f"{value} [{metric_value(name, low)}, {metric_value(name, high)}] {suffix}"
    return f"{text} [{metric_value(name, low)}, {metric_value(name, high)}]"
