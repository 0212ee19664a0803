"""run_study with real tiny models and a real SQLite store: caching, cache keys, resume after kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reportgen.study.config import load_config
from reportgen.run.runner import run_study
from reportgen.store import store_path
from reportgen.store import Store

from tiny_models import make_tiny_llama

ROOT = Path(__file__).parent.parent


def write_study(folder: Path, *, prompts: int = 6, batch_size: int | str = 2, max_new_tokens: int = 8) -> Path:
    lines = ["prompts:"]
    for i in range(prompts):
        words = " ".join(["word"] * (i % 5 + 1))
        lines.append(f"  - {{id: p{i:03d}, category: c{i % 2}, prompt: 'Say {words} number {i}.', reference: 'number {i}'}}")
    (folder / "prompts.yaml").write_text("\n".join(lines) + "\n")
    (folder / "study.yaml").write_text(
        f"""title: Tiny study
prompts: prompts.yaml
generation: {{max_new_tokens: {max_new_tokens}}}
output: {{dir: {folder / "report"}}}
models:
  - id: llama
    name: Tiny Llama
    source: {{type: local, path: llama}}
    batch_size: {batch_size}
  - id: gpt2
    name: Tiny GPT-2
    source: {{type: local, path: gpt2}}
    batch_size: {batch_size}
"""
    )
    return folder / "study.yaml"


@pytest.fixture
def study_folder(tmp_path: Path, tiny_llama_dir: Path, tiny_gpt2_dir: Path) -> Path:
    import shutil

    shutil.copytree(tiny_llama_dir, tmp_path / "llama")
    shutil.copytree(tiny_gpt2_dir, tmp_path / "gpt2")
    return tmp_path


def rows(study) -> list[sqlite3.Row]:
    with Store(store_path(study)) as store:
        return store.db.execute("SELECT * FROM results").fetchall()


def quiet(_: str) -> None:
    pass


def test_second_run_reuses_everything_and_batch_size_is_not_in_the_key(study_folder: Path):
    study = load_config(write_study(study_folder))
    first = run_study(study)
    assert [m.prompts_run for m in first.models] == [6, 6]
    assert {m.reason for m in first.models} == {"first run"}
    assert len(rows(study)) == 12

    again = run_study(study)
    assert [m.prompts_run for m in again.models] == [0, 0]
    assert [m.load_time_s for m in again.models] == [None, None]  # not even loaded
    assert again.run_id is None  # nothing to do is not recorded as a run
    with Store(store_path(study)) as store:
        assert store.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1

    rebatched = load_config(write_study(study_folder, batch_size=5))
    assert [m.prompts_run for m in run_study(rebatched).models] == [0, 0]
    assert len(rows(study)) == 12


def test_changed_weights_rerun_only_that_model(study_folder: Path):
    study = load_config(write_study(study_folder))
    run_study(study)
    make_tiny_llama(study_folder / "llama", seed=7)  # "retrained": same file names, new weights
    summary = run_study(study)
    by_id = {m.model_id: m for m in summary.models}
    assert by_id["llama"].prompts_run == 6 and by_id["gpt2"].prompts_run == 0
    assert "weights" in by_id["llama"].reason and "changed" in by_id["llama"].reason
    # Both versions are kept: the history of the model.
    assert len({r["fingerprint"] for r in rows(study) if r["model_id"] == "llama"}) == 2


def test_changed_prompt_or_settings_rerun_only_what_changed(study_folder: Path):
    config = write_study(study_folder)
    study = load_config(config)
    run_study(study)
    text = (study_folder / "prompts.yaml").read_text().replace("number 3.", "number three.")
    (study_folder / "prompts.yaml").write_text(text)
    summary = run_study(load_config(config))
    assert [m.prompts_run for m in summary.models] == [1, 1]
    longer = load_config(write_study(study_folder, max_new_tokens=9))
    (study_folder / "prompts.yaml").write_text(text)
    assert [m.prompts_run for m in run_study(longer).models] == [6, 6]


def test_a_rerun_of_failed_prompts_says_so(study_folder: Path):
    study = load_config(write_study(study_folder))
    run_study(study)
    with Store(store_path(study)) as store, store.transaction() as db:  # three of llama's prompts failed last time
        db.execute(
            "UPDATE results SET finish_reason='error', error='boom' WHERE model_id='llama' AND prompt_id IN ('p000', 'p002', 'p004')"
        )
    summary = run_study(study)
    by_id = {m.model_id: m for m in summary.models}
    assert by_id["llama"].prompts_run == 3 and by_id["gpt2"].prompts_run == 0
    assert by_id["llama"].reason == "retrying 3 failed prompts", by_id["llama"].reason
    assert "retrying 3 failed prompts" in by_id["llama"].line()

    with Store(store_path(study)) as store, store.transaction() as db:  # one failure and one changed prompt
        db.execute("UPDATE results SET finish_reason='error', error='boom' WHERE model_id='llama' AND prompt_id='p001'")
    (study_folder / "prompts.yaml").write_text((study_folder / "prompts.yaml").read_text().replace("number 3.", "number three."))
    by_id = {m.model_id: m for m in run_study(load_config(study_folder / "study.yaml")).models}
    assert by_id["llama"].reason == "retrying 1 failed prompt; 1 of 6 prompts are new, changed or unfinished"
    assert by_id["gpt2"].reason == "1 of 6 prompts are new, changed or unfinished"


def test_rerun_reason_words():
    from reportgen.run.plan import rerun_reason

    parts = {"weights": "a", "tokenizer": "b"}
    assert rerun_reason(parts, parts, 2, 6, False, retrying=2) == "retrying 2 failed prompts"
    assert rerun_reason(parts, parts, 6, 6, False, retrying=6) == "retrying 6 failed prompts"
    assert rerun_reason(parts, parts, 6, 6, False) == "the prompts or generation settings changed"
    assert rerun_reason(parts, parts, 0, 6, False, corpus_pending=2) == "2 reference texts are new or changed (bits per byte)"
    assert rerun_reason(parts, {**parts, "weights": "c"}, 6, 6, False, retrying=1) == "weights changed"
    assert rerun_reason(parts, parts, 3, 6, True, retrying=3) == "--force was given"


def test_force_reruns_without_duplicating_rows(study_folder: Path):
    study = load_config(write_study(study_folder))
    run_study(study)
    summary = run_study(study, force=True)
    assert [m.prompts_run for m in summary.models] == [6, 6]
    assert len(rows(study)) == 12


def test_only_selected_models_run(study_folder: Path):
    study = load_config(write_study(study_folder))
    summary = run_study(study, model_ids=["gpt2"])
    assert [m.model_id for m in summary.models] == ["gpt2"]


def test_a_broken_model_does_not_lose_the_others(study_folder: Path):
    study = load_config(write_study(study_folder))
    (study_folder / "llama" / "model.safetensors").write_bytes(b"not a safetensors file")
    summary = run_study(study)
    by_id = {m.model_id: m for m in summary.models}
    assert by_id["llama"].error and "llama" in by_id["llama"].error
    assert by_id["gpt2"].prompts_run == 6
    assert len(rows(study)) == 6


def test_kill_9_mid_run_then_resume_gives_a_complete_store(study_folder: Path):
    config = write_study(study_folder, prompts=60, batch_size=1, max_new_tokens=24)
    study = load_config(config)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "reportgen", "run", str(config), "--models", "llama"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    database = store_path(study)
    deadline = time.time() + 120
    count = 0
    try:
        while time.time() < deadline:
            if database.exists():
                try:
                    with sqlite3.connect(database, timeout=1) as db:
                        count = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                except sqlite3.OperationalError:
                    count = 0
                if count >= 5:
                    break
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert 5 <= count < 60, f"the run was not interrupted mid-way ({count} rows)"
    done_before = len(rows(study))
    assert done_before < 60

    summary = run_study(study, model_ids=["llama"])
    assert summary.models[0].prompts_run == 60 - done_before  # finished batches are not redone
    final = rows(study)
    assert len(final) == 60
    assert len({r["prompt_id"] for r in final}) == 60
