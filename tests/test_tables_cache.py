"""Tables without rework: the metric tables and retraining deltas a report reads come back from the user cache
by the digest of what they are computed from (the stored rows, the study, the prompts, the code, the library
versions), equal to a fresh computation; any new stored row is a new key; a cached re-render in a fresh
interpreter scores nothing (no rouge-score, nltk or scipy import)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reportgen.report import inputs
from reportgen.run.runner import run_study
from reportgen.store import Store, store_path
from reportgen.study.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def write_study(folder: Path, prompts: int) -> Path:
    lines = ["prompts:"] + [
        f"  - {{id: p{i}, category: c{i % 2}, prompt: 'Say {i} please.', reference: '{i}'}}" for i in range(prompts)
    ]
    (folder / "prompts.yaml").write_text("\n".join(lines) + "\n")
    (folder / "study.yaml").write_text(
        """title: Cached tables
prompts: prompts.yaml
generation: {max_new_tokens: 4}
measure: {warmup: 0, repeats: 1}
output: {dir: report, formats: [markdown]}
models:
  - {id: llama, name: Tiny Llama, source: {type: local, path: llama}}
  - {id: llama-b, name: Tiny Llama again, source: {type: local, path: llama}, generation: {max_new_tokens: 3}}
"""
    )
    return folder / "study.yaml"


@pytest.fixture
def study_path(tmp_path: Path, tiny_llama_dir: Path, monkeypatch) -> Path:
    shutil.copytree(tiny_llama_dir, tmp_path / "llama")
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    path = write_study(tmp_path, prompts=4)
    run_study(load_config(path))
    return path


def _read(study, on_compute=None):
    with Store(store_path(study), create=False) as store:
        return inputs.read_report_inputs(store, study, on_compute=on_compute)


def test_a_second_read_comes_from_the_cache_and_equals_a_fresh_computation(study_path, tmp_path, monkeypatch):
    study = load_config(study_path)
    computed = []  # on_compute: told when the tables must be computed (a render then starts its chart browser)
    first = _read(study, on_compute=lambda: computed.append("first"))
    assert first.tables is not None and len(list((tmp_path / "cache" / "tables").glob("*.pickle"))) == 1
    assert computed == ["first"]

    def no_recompute(*args, **kwargs):
        raise AssertionError("the tables were computed again")

    monkeypatch.setattr(inputs, "tables_from_frames", no_recompute)
    second = _read(study, on_compute=lambda: computed.append("second"))
    assert computed == ["first"]  # from the cache: nothing computed, no browser started for unchanged charts
    for name in ("per_prompt", "summary", "category_summary", "pairwise", "efficiency", "lm"):
        assert getattr(second.tables, name).to_csv() == getattr(first.tables, name).to_csv(), name
    assert second.tables.model_ids == first.tables.model_ids == ["llama", "llama-b"]


def test_new_stored_rows_and_a_changed_prompt_set_are_new_keys(study_path, tmp_path):
    study = load_config(study_path)
    before = _read(study)
    assert set(before.tables.per_prompt["prompt_id"]) == {"p0", "p1", "p2", "p3"}

    write_study(tmp_path, prompts=5)  # a fifth prompt: the prompt set changed, then the store gets its answers
    study = load_config(study_path)
    assert set(_read(study).tables.per_prompt["prompt_id"]) == {"p0", "p1", "p2", "p3"}  # not run yet: no rows
    run_study(study)
    after = _read(study)
    assert set(after.tables.per_prompt["prompt_id"]) == {"p0", "p1", "p2", "p3", "p4"}
    assert len(list((tmp_path / "cache" / "tables").glob("*.pickle"))) == 3


def test_a_damaged_entry_is_recomputed(study_path, tmp_path):
    study = load_config(study_path)
    first = _read(study)
    (entry,) = (tmp_path / "cache" / "tables").glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    again = _read(study)
    assert again.tables.summary.to_csv() == first.tables.summary.to_csv()


PROBE = """
import json, sys
from reportgen.report.assemble import render_report
from reportgen.report.inputs import read_report_inputs
from reportgen.store import Store, store_path
from reportgen.study.config import load_config
study = load_config(sys.argv[1])
with Store(store_path(study), create=False) as store:
    report = read_report_inputs(store, study)
render_report(study, formats=["markdown"], out_dir=sys.argv[2], **report.as_kwargs())
print(json.dumps(sorted(m for m in ("rouge_score", "nltk", "scipy", "sacrebleu", "choix") if m in sys.modules)))
"""


def test_a_cached_rerender_scores_nothing(study_path, tmp_path):
    env = {**os.environ, "REPORTGEN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}

    def render(out: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, str(study_path), str(tmp_path / out)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert "rouge_score" in render("one")  # the first render scored the answers (ROUGE-L among them)
    assert render("two") == []
    assert (tmp_path / "one" / "README.md").read_bytes() == (tmp_path / "two" / "README.md").read_bytes()


def test_any_change_to_the_stored_rows_by_any_program_is_a_new_key(study_path, tmp_path):
    """The key reads the store's content token, which the file's own triggers draw again on every insert, update
    or delete: a text edited by another program (here the sqlite3 module) is seen; the score cache is not content."""
    import sqlite3

    study = load_config(study_path)
    before = _read(study)
    with Store(store_path(study), create=False) as store:
        token = store.content_token()
    assert token is not None and len(token) == 32
    db = sqlite3.connect(store_path(study))
    with db:
        db.execute("INSERT INTO answer_scores VALUES ('k', 'layout', 'text', x'00')")
    assert db.execute("SELECT value FROM meta WHERE key='content_token'").fetchone()[0] == token
    with db:
        changed = db.execute("UPDATE results SET text='a different answer' WHERE prompt_id='p1' AND model_id='llama'").rowcount
    assert changed >= 1
    edited = db.execute("SELECT value FROM meta WHERE key='content_token'").fetchone()[0]
    assert edited != token
    after = _read(study)
    row = after.tables.per_prompt.set_index(["model_id", "prompt_id"]).loc[("llama", "p1")]
    assert (
        row["output"]
        == "a different answer"
        != before.tables.per_prompt.set_index(["model_id", "prompt_id"]).loc[("llama", "p1")]["output"]
    )
    with db:
        db.execute("DELETE FROM results WHERE prompt_id='p2'")
    assert db.execute("SELECT value FROM meta WHERE key='content_token'").fetchone()[0] not in (token, edited)
    db.close()
    assert "p2" not in set(_read(study).tables.per_prompt["prompt_id"])


def test_a_store_written_before_the_token_gets_one_and_without_one_the_rows_are_read(study_path, monkeypatch):
    import sqlite3

    study = load_config(study_path)
    db = sqlite3.connect(store_path(study))
    with db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
            db.execute(f"DROP TRIGGER {name}")
        db.execute("DELETE FROM meta WHERE key='content_token'")
    db.close()
    with Store(store_path(study), create=False) as store:  # opening brings the triggers and a token back
        assert store.content_token() is not None
        assert len(store.db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall()) == 36

    monkeypatch.setattr(Store, "content_token", lambda self: None)  # no token: the key digests every frame
    first = _read(study)
    db = sqlite3.connect(store_path(study))
    with db:
        db.execute("UPDATE results SET text='edited' WHERE prompt_id='p0' AND model_id='llama-b'")
    db.close()
    edited = _read(study).tables.per_prompt.set_index(["model_id", "prompt_id"])
    assert edited.loc[("llama-b", "p0"), "output"] == "edited"
    assert first.tables.per_prompt.set_index(["model_id", "prompt_id"]).loc[("llama-b", "p0"), "output"] != "edited"


def test_every_table_but_meta_and_the_caches_draws_a_new_token(tmp_path):
    """A table added to the store's schema must join CONTENT_TABLES, or a change to it would not be seen."""
    from reportgen.store import CONTENT_TABLES

    with Store(tmp_path / "results.sqlite") as store:
        tables = {row[0] for row in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables - {"meta", "answer_scores", "stat_values"} == set(CONTENT_TABLES)


def test_the_statistics_are_kept_in_the_store_and_read_back(tmp_path, monkeypatch):
    """A render keeps its resampled statistics in the store (stat_values, stats.memo); the next process that must
    compute the tables again (here: the tables cache emptied) reads them back instead of resampling. The study:
    test_sections' synthetic one (its answers differ enough to be resampled)."""
    import test_sections as ts

    from reportgen.stats import inference
    from reportgen.stats.memo import SHARED_STATS

    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    study = load_config(ts.write_study(tmp_path / "study"))
    ts.fill_store(tmp_path / "study" / "results.sqlite", ts.default_outputs(), old_lora=ts.old_lora_outputs())

    def read():
        with Store(tmp_path / "study" / "results.sqlite", create=False) as store:
            return inputs.read_report_inputs(store, study), store.db.execute("SELECT COUNT(*) FROM stat_values").fetchone()[0]

    calls = []
    resampled = inference.resampled_means
    monkeypatch.setattr(inference, "resampled_means", lambda columns, *a: calls.append(len(columns)) or resampled(columns, *a))
    first, kept = read()
    assert sum(calls) > 0 and kept >= sum(calls)  # intervals and tests resampled, and kept (with the sign-flip tests)
    for entry in (tmp_path / "cache" / "tables").glob("*.pickle"):
        entry.unlink()
    SHARED_STATS.values.clear()  # a fresh process

    def no_resampling(*args, **kwargs):
        raise AssertionError("resampled again")

    monkeypatch.setattr(inference, "resampled_means", no_resampling)
    second, _ = read()
    for name in ("summary", "category_summary", "pairwise"):
        assert getattr(second.tables, name).to_csv() == getattr(first.tables, name).to_csv(), name
    assert [d.model_id for d in second.deltas] == [d.model_id for d in first.deltas] == ["lora"]


def test_a_retraining_delta_is_read_back_until_its_own_models_answers_change(tmp_path, monkeypatch):
    """Each model's retraining delta is remembered on its own (``<cache>/deltas``): after another model's answers
    changed, the tables are computed again but the retrained adapter's history is not rebuilt, and the delta read
    back equals the one computed; a change to the adapter's own answers computes it again."""
    import test_sections as ts

    from reportgen.records import GenerationResult

    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    study = load_config(ts.write_study(tmp_path / "study"))
    path = tmp_path / "study" / "results.sqlite"
    ts.fill_store(path, ts.default_outputs(), old_lora=ts.old_lora_outputs())
    computed: list[str] = []
    real = inputs.retraining_delta
    monkeypatch.setattr(
        inputs,
        "retraining_delta",
        lambda results, runs, prompts, model: computed.append(model) or real(results, runs, prompts, model),
    )

    def read():
        with Store(path, create=False) as store:
            return inputs.read_report_inputs(store, study)

    def answer_again(model: str, fingerprint: str, prompt_id: str, text: str) -> None:
        with Store(path) as store:
            result = GenerationResult(prompt_id, text, 9, len(text.split()), "eos", 0.5, None)
            store.save_results(
                fingerprint=fingerprint, model_id=model, run_id="r1", settings_hash="s1",
                request_hashes={prompt_id: "h"}, results=[result], batch_size=1,
            )  # fmt: skip

    first = read()
    assert computed == ["lora"] and [d.model_id for d in first.deltas] == ["lora"]
    prompt_id = first.tables.per_prompt["prompt_id"].iloc[0]

    answer_again("base", "fp-base", prompt_id, "A different answer from the base model.")
    second = read()
    assert computed == ["lora"]  # the tables were computed again (the base changed), the adapter's delta read back
    assert second.tables.per_prompt.to_csv() != first.tables.per_prompt.to_csv()
    assert second.deltas[0].deltas.to_csv() == first.deltas[0].deltas.to_csv()
    assert second.deltas[0].history.to_csv() == first.deltas[0].history.to_csv()

    answer_again("lora", "fp-lora-2", prompt_id, "The adapter answers this prompt anew.")
    third = read()
    assert computed == ["lora", "lora"]  # its own answers changed: computed again
    assert third.deltas[0].history.to_csv() != first.deltas[0].history.to_csv()
