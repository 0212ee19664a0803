"""Metric functions on hand-computed cases, their edge cases, and the registry."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from reportgen.stats import metrics as M
from reportgen.stats.metrics import METRICS

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# normalisation, exact match, contains-answer
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Paris.", "paris"),
        ("  An   apple, a day! ", "apple day"),
        ("“Theatre” — the end", "theatre end"),  # unicode punctuation; 'the' inside a word survives
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert M.normalize_answer(text) == expected


def squad_v1_normalize_answer(s):
    """The official SQuAD v1.1 evaluation script's rule, verbatim (evaluate-v1.1.py)."""
    import re
    import string

    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def _ascii_samples(n=3000, seed=0):
    import random
    import string

    rng = random.Random(seed)
    pieces = list(string.printable) + ["the", "The", "a", "An", "an", "theatre", "`code`", "$5", "x+y=z", "<b>", "~", "|"]
    return [" ".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def test_normalize_answer_agrees_with_squad_v1_on_ascii():
    for text in _ascii_samples() + [c for c in map(chr, range(128))]:
        assert M.normalize_answer(text) == squad_v1_normalize_answer(text), repr(text)


def test_normalize_answer_beyond_ascii_drops_unicode_punctuation_too():
    import unicodedata

    for text in ["“Theatre” — the end", "¿Qué?", "Paris。", "«the» cat…", "naïve ‘a’ café"]:
        without_p = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
        assert M.normalize_answer(text) == squad_v1_normalize_answer(without_p)


def test_backticks_and_ascii_symbols_are_stripped_like_squad():
    assert M.contains_answer("The answer is `42`.", ["42"]) == 1.0
    assert M.exact_match("`print`", ["print"]) == 1.0
    assert M.exact_match("$5", ["5"]) == 1.0  # SQuAD strips $ + < = > ^ ` | ~ as well


def test_exact_match_squad_normalisation():
    assert M.exact_match("The Paris.", ["paris"]) == 1.0
    assert M.exact_match("Paris, France", ["paris"]) == 0.0
    assert M.exact_match("London", ["Paris", "london!"]) == 1.0  # max over references


def test_contains_answer_whole_words():
    assert M.contains_answer("I think it is Paris, France.", ["paris"]) == 1.0
    assert M.contains_answer("concatenate", ["cat"]) == 0.0
    assert M.contains_answer("New York City", ["new york"]) == 1.0
    assert M.contains_answer("nothing", ["x", "nothing here", "Nothing"]) == 1.0


def test_reference_metrics_without_references_are_nan():
    for name in ("exact_match", "contains_answer", "rouge_l", "bleu", "chrf"):
        assert math.isnan(METRICS.get(name)("Paris", [])), name
        assert math.isnan(METRICS.get(name)("Paris", ["", "   "])), name  # blank references are ignored
        assert math.isnan(METRICS.get(name)("Paris", None)), name


def test_lone_string_reference_is_one_reference():
    assert M.exact_match("paris", "Paris") == 1.0


def test_empty_output_scores_zero():
    for name in ("exact_match", "contains_answer", "rouge_l", "bleu", "chrf"):
        assert METRICS.get(name)("", ["Paris"]) == 0.0, name
    # a reference that normalises to nothing matches only an output that does too
    assert M.exact_match("", ["The."]) == 1.0
    assert M.contains_answer("Paris", ["the"]) == 0.0


# ------------------------------------------------------------------------------------------------
# ROUGE-L, BLEU, chrF (library-backed)
# ------------------------------------------------------------------------------------------------


def test_rouge_l_hand_cases():
    # LCS "the cat on the mat" = 5 of 6 words each side: P = R = F = 5/6
    assert M.rouge_l("the cat was on the mat", ["the cat sat on the mat"]) == pytest.approx(5 / 6)
    # LCS 2: precision 2/2, recall 2/6, F1 = 2PR/(P+R) = 0.5
    assert M.rouge_l("the cat", ["the cat sat on the mat"]) == pytest.approx(0.5)
    assert M.rouge_l("the cat", ["dog", "the cat"]) == pytest.approx(1.0)


def test_bleu_identical_is_100_and_disjoint_is_0():
    text = "the quick brown fox jumps over the lazy dog"
    assert M.bleu(text, [text]) == 100.0
    assert M.bleu("alpha beta gamma delta", [text]) == 0.0
    # the best reference counts, not an average
    assert M.bleu(text, ["completely unrelated words here", text]) == 100.0


def test_bleu_partial_is_between():
    score = M.bleu("the quick brown fox jumps over a lazy dog", ["the quick brown fox jumps over the lazy dog"])
    assert 30 < score < 100


# Real sentences with the scores sacrebleu's own test suite pins for them (sacrebleu's test/test_sentence_bleu.py:
# sentence BLEU, exponential smoothing, 13a tokens; test/test_chrf.py: sentence chrF, character 6-grams, beta 2).
# reportgen calls sacrebleu, so these check that it calls it with the defaults its docs name and takes the best
# reference, against numbers written down by sacrebleu's authors, not computed by this test.
BLEU_REFERENCE = ("producţia de zahăr brut se exprimă în zahăr alb;", 8.493)
BLEU_OUTPUT = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"
CHRF_CASES = [
    (
        "Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
        "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře.",
        39.14078509,
    ),
    (
        "Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.",
        "A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři.",
        31.22557079,
    ),
    (
        "Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.",
        "Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli.",
        57.15704367,
    ),
]


def test_bleu_on_real_text_is_sacrebleus_published_number():
    reference, expected = BLEU_REFERENCE
    assert M.bleu(BLEU_OUTPUT, [reference]) == pytest.approx(expected, abs=1e-3)
    # with a worse reference beside it, the best one still counts (not the mean, not the first)
    assert M.bleu(BLEU_OUTPUT, ["okay thanks", reference]) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("output, reference, expected", CHRF_CASES, ids=["chrf-1", "chrf-2", "chrf-3"])
def test_chrf_on_real_text_is_sacrebleus_published_number(output, reference, expected):
    # sacrebleu's numbers were computed with epsilon smoothing, reportgen uses sacrebleu's default (effective
    # order); on these sentences, where every order has matches, the two agree to within 5e-4
    assert M.chrf(output, [reference]) == pytest.approx(expected, abs=1e-3)
    others = [ref for _, ref, _ in CHRF_CASES if ref != reference]
    assert M.chrf(output, [*others, reference]) == pytest.approx(expected, abs=1e-3)  # the best reference counts


def test_chrf_sanity():
    ref = ["the quick brown fox"]
    assert M.chrf("the quick brown fox", ref) == 100.0
    close = M.chrf("the quick brown fax", ref)
    far = M.chrf("a slow red dog", ref)
    assert 0.0 <= far < close < 100.0


# ------------------------------------------------------------------------------------------------
# text metrics
# ------------------------------------------------------------------------------------------------


def test_distinct_n():
    assert M.distinct_2("a b a b") == pytest.approx(2 / 3)
    assert M.distinct_1("a b a b") == pytest.approx(0.5)
    assert M.distinct_1("A a") == pytest.approx(0.5)  # lowercased
    assert M.distinct_1("") == 0.0
    assert M.distinct_2("Paris") == 0.0  # no bigrams


def test_repeated_4gram_rate():
    looping = "a b c d a b c d a b c d"  # 9 four-grams, 4 distinct: 5 repeat an earlier one
    assert M.repeated_4gram_rate(looping) == pytest.approx(5 / 9)
    assert M.repeated_4gram_rate("one two three four five six") == 0.0
    assert M.repeated_4gram_rate("go go go go go go go go go go go") == pytest.approx(7 / 8)
    assert M.repeated_4gram_rate("") == 0.0
    assert M.repeated_4gram_rate("too short") == 0.0


def test_lengths():
    assert M.length_words("  two   words\n") == 2.0
    assert M.length_words("") == 0.0
    assert METRICS.get("length_tokens").score("whatever", output_tokens=7) == 7.0
    assert math.isnan(METRICS.get("length_tokens").score("whatever"))


def test_hit_token_limit_reads_finish_reason():
    m = METRICS.get("hit_token_limit")
    assert m.score("cut off mid", finish_reason="length") == 1.0
    assert m.score("done.", finish_reason="eos") == 0.0
    assert m.score("", finish_reason=None) == 0.0


def test_score_all_covers_every_per_prompt_metric():
    scores = M.score_all("The Paris.", ["paris"], finish_reason="eos", output_tokens=3)
    assert set(scores) == {m.name for m in M.metrics_of_kind("reference", "text")}
    assert scores["exact_match"] == 1.0 and scores["length_tokens"] == 3.0 and scores["hit_token_limit"] == 0.0


# ------------------------------------------------------------------------------------------------
# language modelling
# ------------------------------------------------------------------------------------------------


def test_bits_per_byte_and_perplexity():
    assert M.bits_per_byte(100 * math.log(2), 50) == pytest.approx(2.0)
    assert M.perplexity(10 * math.log(4), 10) == pytest.approx(4.0)
    assert math.isnan(M.bits_per_byte(1.0, 0))
    assert math.isnan(M.perplexity(1.0, 0))
    assert M.perplexity(1e6, 1) == math.inf


# ------------------------------------------------------------------------------------------------
# efficiency helpers
# ------------------------------------------------------------------------------------------------


def test_efficiency_metric_arithmetic():
    assert M.tokens_per_s(100, 4) == 25.0
    assert math.isnan(M.tokens_per_s(100, 0))
    assert M.bandwidth_share(1e9, 15.0, 30e9) == pytest.approx(0.5)
    assert math.isnan(M.bandwidth_share(None, 15.0, 30e9))
    assert M.latency_p50_s([1.0, 2.0, None, float("nan"), 3.0]) == 2.0
    assert math.isnan(M.ttft_p95_s([None]))


# ------------------------------------------------------------------------------------------------
# the registry
# ------------------------------------------------------------------------------------------------


def test_registry_entries_are_documented():
    assert {
        "exact_match",
        "contains_answer",
        "rouge_l",
        "bleu",
        "chrf",
        "distinct_1",
        "distinct_2",
        "repeated_4gram_rate",
        "hit_token_limit",
        "length_words",
        "length_tokens",
        "bits_per_byte",
        "perplexity",
        "tokens_per_s",
        "bandwidth_share",
    } <= set(METRICS)
    for name, m in METRICS.items():
        assert m.name == name
        assert m.kind in M.KINDS
        assert m.unit and len(m.description) > 20, name
        assert m.higher_is_better in (True, False, None)
    assert METRICS.get("bleu").unit.endswith("(0–100)") and METRICS.get("hit_token_limit").higher_is_better is False


def test_metric_direction():
    assert METRICS.get("bleu").better(50, 40) == 1
    assert METRICS.get("bits_per_byte").better(0.9, 1.1) == 1
    assert METRICS.get("length_words").better(5, 10) == 0


def test_duplicate_and_unknown_names_fail():
    with pytest.raises(ValueError, match="twice"):
        M.metric("bleu", "reference", True, "x", "again")(lambda o, r: 0.0)
    with pytest.raises(KeyError, match="Did you mean 'bleu'.*Known metrics: .*bits_per_byte"):
        M.get_metric("blue")
    with pytest.raises(TypeError, match="per-model"):
        METRICS.get("bits_per_byte").score("text")


def test_import_is_light():
    code = (
        "import sys, reportgen.stats.metrics; "
        "print(sorted(m for m in ('torch', 'rouge_score', 'nltk', 'sacrebleu', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
