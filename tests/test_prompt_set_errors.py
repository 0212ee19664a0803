"""Prompt sets, bad and big (issue 27, items 11 and 16): a duplicate id names the duplicate's own line,
JSONL problems name their line and the fix; aliases are counted by what they add, so a big file without
aliases is no alias bomb and a 100,000-prompt YAML set validates in seconds; a JSONL set over the limit is
refused with its size and the limit, before it is read."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reportgen.errors import ConfigError
from reportgen.study.config import load_config
from reportgen.study.prompts import load_prompt_set

ROOT = Path(__file__).resolve().parents[1]


def reportgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_prompt_set(path)
    return info.value.problems


def test_a_duplicate_prompt_id_points_at_the_duplicate(tmp_path: Path):
    path = tmp_path / "prompts.yaml"
    path.write_text(
        "name: dup\nprompts:\n  - id: a\n    prompt: First\n  - id: b\n    prompt: Second\n  - id: a\n    prompt: Third\n"
    )
    assert problems(path) == [
        f"{path}:7: prompts[2].id: prompt id 'a' appears twice (first at line 3). Fix: give each prompt a unique id"
    ]


def test_jsonl_problems_name_their_line_and_the_fix(tmp_path: Path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(
        '{"id": "a", "prompt": "First"}\n'
        '{"id": "b"}\n'
        '\n'
        '{"id": "a", "prompt": "Again"}\n'
    )  # fmt: skip
    assert problems(path) == [
        f"{path}:2: prompts[1]: give exactly one of 'prompt' (text) and 'messages' (chat). Fix: keep one of the two",
        f"{path}:4: prompts[2].id: prompt id 'a' appears twice (first at line 1). Fix: give each prompt a unique id",
    ]
    path.write_text('{"id": "a", "prompt": "First"}\n{"id": "b", "prompt": "Second",}\n')
    assert problems(path) == [
        f"{path}:2: invalid JSON: Expecting property name enclosed in double quotes. Fix: one JSON object per line"
    ]


def test_a_big_config_without_aliases_is_no_alias_bomb(tmp_path: Path):
    entries = "".join(f"  - {{term: t{i}, definition: d{i}}}\n" for i in range(150_000))
    config = tmp_path / "study.yaml"
    config.write_text("title: Big glossary\nmodels: [{id: m, name: M, config: config.json}]\nglossary:\n" + entries)
    started = time.perf_counter()
    study = load_config(config)
    elapsed = time.perf_counter() - started
    assert len(study.glossary) == 150_000 and study.glossary[-1].term == "t149999"
    assert elapsed < 60, f"{elapsed:.1f} s"  # about 3 s on a busy 2-core machine


def test_a_100000_prompt_yaml_set_validates_in_seconds(tmp_path: Path, tiny_gpt2_dir: Path):
    lines = "".join(f"  - {{id: p{i:06d}, prompt: 'Say the number {i}', reference: '{i}'}}\n" for i in range(100_000))
    (tmp_path / "prompts.yaml").write_text("name: big\nprompts:\n" + lines)
    (tmp_path / "study.yaml").write_text(
        f"title: Big\nprompts: prompts.yaml\nmodels:\n  - {{id: gpt2, name: GPT-2, source: {{type: local, path: {tiny_gpt2_dir}}}}}\n"
    )
    started = time.perf_counter()
    result = reportgen("validate", "study.yaml", cwd=tmp_path)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"study.yaml: OK — 1 models, prompt set {Path('prompts.yaml')}\n"
    assert elapsed < 120, f"{elapsed:.1f} s"  # about 8 s on a busy 2-core machine


def test_an_alias_bomb_is_still_refused_by_what_it_adds(tmp_path: Path):
    path = tmp_path / "prompts.yaml"
    path.write_text(
        "x: &x [" + ", ".join(["a"] * 400) + "]\n"
        "y: &y [" + ", ".join(["*x"] * 400) + "]\n"  # 160,400 values from 802 written
        "prompts: [{id: a, prompt: A}]\n"
    )
    (msg,) = problems(path)
    assert msg == (
        f"{path}:1: YAML aliases expand this file by more than 100000 values (an alias bomb?). "
        "Fix: write the values out instead of repeating anchors (*name)"
    )


@pytest.mark.parametrize("command", ["validate", "build"])
def test_a_1_gb_jsonl_set_is_refused_with_its_size_and_the_limit(tmp_path: Path, tiny_gpt2_dir: Path, command: str):
    with open(tmp_path / "prompts.jsonl", "wb") as handle:
        handle.truncate(1024**3)  # sparse: a gigabyte without writing one
    (tmp_path / "study.yaml").write_text(
        f"title: Huge\nprompts: prompts.jsonl\nmodels:\n  - {{id: gpt2, name: GPT-2, source: {{type: local, path: {tiny_gpt2_dir}}}}}\n"
    )
    started = time.perf_counter()
    result = reportgen(command, "study.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "Error: prompts.jsonl: prompt set is 1024.0 MiB, over the 32.0 MiB limit for this kind of file. "
        "Fix: check it is the right file, or split it\n"
    )
    assert time.perf_counter() - started < 60
