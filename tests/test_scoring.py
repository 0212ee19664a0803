"""Each answer scored once (stats.scoring): stored per-answer values equal a fresh computation, are keyed by
the answer, its references and the metric's version, and parallel scoring agrees exactly with serial."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from reportgen.stats import metrics, scoring
from reportgen.stats.scoring import ScoreBook, score_columns, version_key
from reportgen.store import Store

NAMES = [
    "exact_match",
    "contains_answer",
    "rouge_l",
    "bleu",
    "chrf",
    "length_words",
    "length_tokens",
    "distinct_2",
    "hit_token_limit",
]
VOCAB = "the running runs ran quickly cats cat's généralement naïve 東京 a b c , . ! 42 organization organizations Paris".split()


def answers(n: int, seed: int = 1) -> tuple[list[str], list[tuple[str, ...]], list[str | None], list[int | None]]:
    rng = random.Random(seed)
    outputs = [" ".join(rng.choices(VOCAB, k=rng.randint(0, 18))) for _ in range(n)]
    refs = [tuple(" ".join(rng.choices(VOCAB, k=rng.randint(1, 12))) for _ in range(rng.randint(1, 2))) for _ in range(n)]
    reasons = [rng.choice(["stop", "length", "error", None]) for _ in range(n)]
    tokens = [rng.choice([None, rng.randint(0, 30)]) for _ in range(n)]
    return outputs, refs, reasons, tokens


def fresh(outputs, refs, reasons, tokens) -> dict[str, np.ndarray]:
    """The values as the metric functions give them, one call per answer, no book, no pool."""
    out = {name: np.full(len(outputs), math.nan) for name in NAMES}
    for i, row in enumerate(zip(outputs, refs, reasons, tokens)):
        if row[2] == "error":
            continue
        for name in NAMES:
            out[name][i] = metrics.get_metric(name).score(row[0], row[1], finish_reason=row[2], output_tokens=row[3])
    return out


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=True), name


def test_library_metrics_equal_the_libraries_own_calls():
    """ROUGE-L with rouge-score's tokenizer remembered, BLEU and chrF with sacrebleu's objects built once:
    the same values as a plain RougeScorer(use_stemmer=True) and sacrebleu.sentence_bleu / sentence_chrf."""
    outputs, refs, _, _ = answers(400, seed=7)
    plain = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for output, (ref, *_) in zip(outputs, refs):
        assert metrics.rouge_l(output, [ref]) == plain.score(ref, output)["rougeL"].fmeasure
        assert metrics.bleu(output, [ref]) == min(100.0, sacrebleu.sentence_bleu(output, [ref]).score)
        assert metrics.chrf(output, [ref]) == min(100.0, sacrebleu.sentence_chrf(output, [ref]).score)


def test_parallel_scoring_agrees_exactly_with_serial(monkeypatch):
    rows = answers(1200)
    monkeypatch.setattr(scoring, "PARALLEL_MIN_VALUES", 1)
    monkeypatch.setattr(scoring, "CHUNK_ROWS", 97)
    parallel = score_columns(*rows, NAMES, book=ScoreBook(), workers=2)
    serial = score_columns(*rows, NAMES, book=ScoreBook(), workers=1)
    same(parallel, serial)
    same(serial, fresh(*rows))


def test_with_another_thread_running_the_workers_are_not_forked_from_it_and_agree(monkeypatch):
    """A render's chart browser runs on a thread of its own: the scoring workers then start from a fork server,
    not from a fork of this process (which copies one thread, and any lock another held), with the same values."""
    import threading

    rows = answers(300, seed=3)
    monkeypatch.setattr(scoring, "PARALLEL_MIN_VALUES", 1)
    monkeypatch.setattr(scoring, "CHUNK_ROWS", 50)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert scoring._start_context().get_start_method() != "fork"
        parallel = score_columns(*rows, NAMES, book=ScoreBook(), workers=2)
    finally:
        stop.set()
        other.join()
    same(parallel, score_columns(*rows, NAMES, book=ScoreBook(), workers=1))


def test_values_stored_in_the_study_store_equal_a_fresh_computation(tmp_path: Path, monkeypatch):
    rows = answers(300)
    book = ScoreBook()
    first = score_columns(*rows, NAMES, book=book, workers=1)
    with Store(tmp_path / "results.sqlite") as store:
        store.save_answer_scores(book.take_added())
    with Store(tmp_path / "results.sqlite", create=False) as store:
        stored = store.answer_scores(scoring.layout(kind)[0] for kind in ("reference", "text"))
    assert stored, "nothing was stored"
    reloaded = ScoreBook()
    reloaded.fill(stored)
    calls = counted(monkeypatch)
    again = score_columns(*rows, NAMES, book=reloaded, workers=1)
    assert calls == []  # every value came from the store
    same(again, first)
    same(again, fresh(*rows))


def counted(monkeypatch) -> list[int]:
    """The rows each scoring call computes."""
    calls: list[int] = []
    real = scoring._score_rows

    def counting(names, chunk):
        calls.append(len(chunk))
        return real(names, chunk)

    monkeypatch.setattr(scoring, "_score_rows", counting)
    return calls


def test_a_changed_answer_reference_or_metric_version_is_scored_again(monkeypatch):
    outputs, refs, reasons, tokens = answers(50)
    reasons = ["stop"] * 50
    book = ScoreBook()
    calls = counted(monkeypatch)
    score_columns(outputs, refs, reasons, tokens, NAMES, book=book, workers=1)
    assert sum(calls) == 2 * 50  # one vector of reference metrics and one of text metrics per answer
    calls.clear()
    score_columns(outputs, refs, reasons, tokens, NAMES, book=book, workers=1)
    assert calls == []  # nothing new

    # one model retrained: three new answers are scored, no other
    changed = list(outputs)
    for i in (3, 17, 40):
        changed[i] = outputs[i] + " Paris"
    values = score_columns(changed, refs, reasons, tokens, NAMES, book=book, workers=1)
    assert sum(calls) == 2 * 3
    assert values["length_words"][17] == len(changed[17].split())

    # a new reference for one prompt: that answer's reference metrics again
    calls.clear()
    new_refs = list(refs)
    new_refs[5] = ("Paris",)
    values = score_columns(outputs, new_refs, reasons, tokens, NAMES, book=book, workers=1)
    assert calls == [1]  # its reference metrics alone
    assert values["exact_match"][5] == float(metrics.normalize_answer(outputs[5]) == "paris")

    # a new finish reason or token count is a new answer for the metrics that read them
    calls.clear()
    new_tokens = list(tokens)
    new_tokens[8] = 999
    values = score_columns(outputs, refs, reasons, new_tokens, NAMES, book=book, workers=1)
    assert sum(calls) == 2 and values["length_tokens"][8] == 999.0  # a new answer: both vectors

    # a new version of the metrics (their code or a library changed): everything again
    calls.clear()
    real_layout = scoring.layout
    monkeypatch.setattr(scoring, "layout", lambda kind: (real_layout(kind)[0] + "-another", real_layout(kind)[1]))
    score_columns(outputs, refs, reasons, tokens, NAMES, book=book, workers=1)
    assert sum(calls) == 2 * 50  # each answer's reference metrics and its text metrics


def test_a_wrong_stored_value_is_what_comes_back_so_the_lookup_is_real():
    """The book is read, not bypassed: vectors planted under an answer's keys are the values returned."""
    outputs, refs, reasons, tokens = ["Paris"], [("Paris",)], ["stop"], [1]
    book = ScoreBook()
    answer, with_refs = scoring.content_keys("Paris", ("Paris",), "stop", 1)
    ref_layout, ref_names = scoring.layout("reference")
    text_layout, text_names = scoring.layout("text")
    book.fill(
        {
            (with_refs, ref_layout): np.arange(len(ref_names), dtype=float) / 10,
            (answer, text_layout): np.full(len(text_names), 7.0),
        }
    )
    values = score_columns(
        outputs, refs, reasons, tokens, ["exact_match", "length_words", "contains_answer"], book=book, workers=1
    )
    assert values["exact_match"][0] == ref_names.index("exact_match") / 10
    assert values["contains_answer"][0] == ref_names.index("contains_answer") / 10
    assert values["length_words"][0] == 7.0


def test_version_key_names_the_metric_its_definitions_and_its_libraries():
    from importlib import metadata

    assert version_key("rouge_l").startswith("rouge_l@")
    assert f"rouge-score={metadata.version('rouge-score')}" in version_key("rouge_l")
    assert f"sacrebleu={metadata.version('sacrebleu')}" in version_key("bleu")
    assert ";" not in version_key("exact_match")  # no library defines it


def test_saving_a_new_layout_of_a_kind_drops_that_kinds_old_vectors_only(tmp_path: Path):
    one, two = np.array([1.0, math.nan]), np.array([2.0, 3.0])
    with Store(tmp_path / "results.sqlite") as store:
        store.save_answer_scores({("a", "reference@1"): one, ("b", "reference@1"): two, ("a", "text@1"): two})
        store.save_answer_scores({("a", "reference@2"): two})
        rows = store.db.execute("SELECT content_key, layout, kind FROM answer_scores ORDER BY 2, 1").fetchall()
        assert [tuple(r) for r in rows] == [("a", "reference@2", "reference"), ("a", "text@1", "text")]
        loaded = store.answer_scores(["reference@2", "text@1"])
        assert list(loaded[("a", "reference@2")]) == [2.0, 3.0] and list(loaded[("a", "text@1")]) == [2.0, 3.0]
        store.save_answer_scores({("c", "text@1"): one})
        assert math.isnan(store.answer_scores(["text@1"])[("c", "text@1")][1])  # NaN is kept


@pytest.mark.parametrize("workers", [1, 2])
def test_failed_answers_are_nan_and_never_scored(monkeypatch, workers):
    monkeypatch.setattr(scoring, "PARALLEL_MIN_VALUES", 1)
    calls = counted(monkeypatch) if workers == 1 else []  # a pool's workers pickle the function by name
    values = score_columns(
        ["x", "y"], [("x",), ("y",)], ["error", "stop"], [1, 1], ["exact_match"], book=ScoreBook(), workers=workers
    )
    assert math.isnan(values["exact_match"][0]) and values["exact_match"][1] == 1.0
    if workers == 1:
        assert calls == [1]  # the answer that did not fail, its reference metrics alone


def test_bit_parallel_lcs_length_equals_rouge_scores_table():
    """ROUGE-L's LCS length, bit-parallel, against rouge-score's own dynamic-programming table (what
    ``_score_lcs`` reads), on token lists with many repeats, empty ones and lists longer than 64 tokens."""
    rng = random.Random(5)
    vocab = ["a", "b", "c", "run", "ran", "the", "x"]
    for _ in range(3000):
        a = rng.choices(vocab, k=rng.randint(0, 90))
        b = rng.choices(vocab, k=rng.randint(0, 90))
        expected = rouge_scorer._lcs_table(a, b)[-1][-1] if a and b else 0
        assert metrics.lcs_length(a, b) == expected


def test_ascii_punctuation_fast_path_equals_the_unicode_rule():
    import unicodedata

    for code in range(128):
        text = f"x{chr(code)}y"
        slow = "".join(ch for ch in text if ch not in metrics._SQUAD_PUNCTUATION and not unicodedata.category(ch).startswith("P"))
        assert metrics._strip_punctuation(text) == slow


def test_run_scores_its_answers_once_and_the_render_reads_them(tmp_path: Path, monkeypatch):
    """The real CLI against a real HTTP server: ``run`` stores every shown value of every new answer; the
    render after it scores nothing (the store's values are what it shows); a second model's answers
    changing (a retrained model) adds the values of its answers alone."""
    import os
    import subprocess
    import sys

    from fault_server import FaultServer

    def cli(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HF_HUB_OFFLINE": "1"}
        env["REPORTGEN_CACHE"] = str(tmp_path / "cache")
        done = subprocess.run([sys.executable, "-m", "reportgen", *args], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done

    def study(served_b: str) -> Path:
        (tmp_path / "study.yaml").write_text(
            "title: Scored once\nprompts: prompts.yaml\ngeneration: {max_new_tokens: 6}\n"
            "output: {dir: out, formats: [markdown]}\nmodels:\n"
            f"  - {{id: a, name: A, source: {{type: http, url: '{server.url}', protocol: openai-completions, model: a}}}}\n"
            f"  - {{id: b, name: B, source: {{type: http, url: '{server.url}', protocol: openai-completions, model: {served_b}}}}}\n"
        )
        return tmp_path / "study.yaml"

    def stored() -> int:
        with Store(tmp_path / "out" / "results.sqlite", create=False) as store:
            return int(store.db.execute("SELECT COUNT(*) FROM answer_scores").fetchone()[0])

    lines = ["prompts:"] + [
        f"  - {{id: p{i}, prompt: 'tell me {i} things about {i}', reference: '{i} things'}}" for i in range(8)
    ]
    (tmp_path / "prompts.yaml").write_text("\n".join(lines) + "\n")
    answer = lambda body, text: f"{body.get('model')} says {text.split()[2]} things"  # noqa: E731 (each model its own words)
    per_answer = 2  # a vector of reference metrics and one of text metrics
    with FaultServer(responder=answer) as server:
        cli("run", str(study("b")))
        assert stored() == 2 * 8 * per_answer  # every value of every answer of a and b
        cli("render", str(tmp_path / "study.yaml"))
        assert stored() == 2 * 8 * per_answer  # the render scored nothing new
        assert "a says 3 things" in (tmp_path / "out" / "README.md").read_text()

        # the values a render shows are the stored ones: plant another value and compute the tables afresh
        from reportgen.report.inputs import study_tables
        from reportgen.study.config import load_config

        text_layout, text_names = scoring.layout("text")
        planted = np.zeros(len(text_names))
        planted[text_names.index("length_words")] = 0.25
        with Store(tmp_path / "out" / "results.sqlite") as store:
            store.db.execute("UPDATE answer_scores SET scores = ? WHERE layout = ?", (planted.tobytes(), text_layout))
            monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "another-cache"))
            tables = study_tables(store, load_config(tmp_path / "study.yaml"))
        assert set(tables.per_prompt["length_words"]) == {0.25}

        # b retrained: another served model (a new fingerprint) whose answers are other words
        study("b-v2")
        cli("run", str(tmp_path / "study.yaml"))
        assert stored() == 3 * 8 * per_answer  # b's new answers alone were scored
