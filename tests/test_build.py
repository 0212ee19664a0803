"""`reportgen build`: only what changed re-runs and re-renders; a retrained model shows its delta."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from reportgen.cli import main
from reportgen.study.config import load_config
from reportgen.build import build_study

from tiny_models import make_tiny_llama


def make_study(folder: Path, tiny_llama_dir: Path, tiny_gpt2_dir: Path) -> Path:
    shutil.copytree(tiny_llama_dir, folder / "llama")
    shutil.copytree(tiny_gpt2_dir, folder / "gpt2")
    prompts = ["prompts:"] + [
        f"  - {{id: p{i}, category: {'ab'[i % 2]}, prompt: 'Count to {i} please.', reference: '{i}'}}" for i in range(8)
    ]
    (folder / "prompts.yaml").write_text("\n".join(prompts) + "\n")
    (folder / "study.yaml").write_text(
        f"""title: Build study
prompts: prompts.yaml
generation: {{max_new_tokens: 6}}
output: {{dir: {folder / "report"}, formats: [markdown, html]}}
models:
  - {{id: llama, name: Tiny Llama, source: {{type: local, path: llama}}}}
  - {{id: gpt2, name: Tiny GPT-2, source: {{type: local, path: gpt2}}}}
"""
    )
    return folder / "study.yaml"


def test_build_reruns_and_rerenders_only_what_changed(tmp_path: Path, tiny_llama_dir: Path, tiny_gpt2_dir: Path, caplog):
    caplog.set_level(logging.INFO, logger="reportgen")
    config = make_study(tmp_path, tiny_llama_dir, tiny_gpt2_dir)
    messages = caplog.messages
    first = build_study(load_config(config))
    assert sorted(first.reran) == ["gpt2", "llama"]
    assert sorted(first.rendered) == ["html", "markdown"]
    readme = tmp_path / "report" / "README.md"
    assert "Tiny Llama" in readme.read_text()

    make_tiny_llama(tmp_path / "llama", seed=11)  # retrain one model
    caplog.clear()
    second = build_study(load_config(config))
    messages = caplog.messages
    assert second.reran == ["llama"]
    assert any("llama" in m and "changed" in m for m in messages), messages
    assert sorted(second.rendered) == ["html", "markdown"]
    text = readme.read_text()
    assert "What retraining changed" in text

    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "report").rglob("*") if p.is_file() and "results.sqlite" not in p.name}
    caplog.clear()
    third = build_study(load_config(config))
    messages = caplog.messages
    assert third.reran == [] and third.rendered == []
    assert any("up to date" in m for m in messages)
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_diff_command_states_the_change(tmp_path: Path, tiny_llama_dir: Path, tiny_gpt2_dir: Path):
    config = make_study(tmp_path, tiny_llama_dir, tiny_gpt2_dir)
    runner = CliRunner()
    assert runner.invoke(main, ["run", str(config)]).exit_code == 0
    result = runner.invoke(main, ["diff", str(config), "--model", "llama"])
    assert result.exit_code == 1 and "a single run (or none) in the store" in result.output  # nothing to compare is not a success
    make_tiny_llama(tmp_path / "llama", seed=12)
    assert runner.invoke(main, ["run", str(config)]).exit_code == 0
    result = runner.invoke(main, ["diff", str(config), "--model", "llama"])
    assert result.exit_code == 0, result.output

    # the change in output length, counted here from the stored answers of the two weights (old, then new)
    with sqlite3.connect(tmp_path / "report" / "results.sqlite") as db:
        rows = db.execute("SELECT fingerprint, text FROM results WHERE model_id = 'llama' ORDER BY created_at").fetchall()
    answers: dict[str, list[str]] = {}
    for fingerprint, text in rows:
        answers.setdefault(fingerprint, []).append(text)
    assert [len(texts) for texts in answers.values()] == [8, 8]
    old, new = (statistics.fmean(len(text.split()) for text in texts) for texts in answers.values())
    assert old != new  # other weights, other answers: a change to state

    payload = json.loads(runner.invoke(main, ["diff", str(config), "--models", "llama", "--json", "-"]).output)
    (llama,) = payload["models"]
    rows_by_metric = {row["metric"]: row for row in llama["quality"]}
    length = rows_by_metric["length_words"]
    assert (length["mean_old"], length["mean_new"]) == (pytest.approx(old), pytest.approx(new))
    assert length["diff"] == pytest.approx(new - old)
    # the table (tab-separated through a pipe): metric, old, new, change, 95% CI, p, verdict
    line = next(line for line in result.output.splitlines() if line.startswith("length_words\t"))
    cells = line.split("\t")
    shown = [float(cell) for cell in cells[1:4]]
    assert shown == [pytest.approx(old, abs=0.05), pytest.approx(new, abs=0.05), pytest.approx(new - old, abs=0.05)], line
    low, high = (float(x) for x in cells[4].strip("[]").split(","))
    assert low <= new - old <= high, line
    result = runner.invoke(main, ["diff", str(config), "--model", "nope"])
    assert result.exit_code == 2 and "Known: llama, gpt2" in result.output
