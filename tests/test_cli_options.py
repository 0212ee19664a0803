"""Options and messages of the real command line (issue 27, items 9, 10 and 13): -q/-v on either side of
the command, each message once; path hints that say where paths resolve from; every config problem of a
build at once; TODO placeholders warned about and counted; build and render agree on their argument."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPT2_CONFIG = ROOT / "configs" / "assignment" / "securix-gpt2" / "config.json"
PLACEHOLDER = "placeholder left by `reportgen init`"


def reportgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def spec_study(folder: Path, *, extra: str = "") -> Path:
    """A spec-only study (a vendored GPT-2 config.json) whose introduction is still a TODO placeholder."""
    shutil.copy(GPT2_CONFIG, folder / "gpt2.json")
    (folder / "study.yaml").write_text(
        f"""title: Options
introduction: TODO
output: {{dir: out, formats: [markdown]}}
models:
  - {{id: gpt2, name: GPT-2, config: gpt2.json}}
{extra}"""
    )
    return folder / "study.yaml"


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_before_or_after_the_command(tmp_path: Path, where: str):
    spec_study(tmp_path)
    args = ["-q", "validate", "study.yaml"] if where == "before" else ["validate", "study.yaml", "-q"]
    result = reportgen(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the placeholder warning is a message: -q silences it
    assert result.stdout == "study.yaml: OK — 1 models; 1 placeholders to write (warnings above)\n"


@pytest.mark.parametrize(
    "args", [["-v", "validate", "study.yaml"], ["validate", "study.yaml", "-v"], ["validate", "-v", "study.yaml"]]
)
def test_verbose_prints_each_message_once(tmp_path: Path, args: list[str]):
    spec_study(tmp_path)
    result = reportgen(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(PLACEHOLDER) == 1, result.stderr
    assert "warning: study.yaml:2: introduction: placeholder left by `reportgen init`. Fix: write it\n" in result.stderr


def test_build_warns_about_placeholders_and_counts_them(tmp_path: Path):
    spec_study(tmp_path)
    result = reportgen("build", "study.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "warning: study.yaml:2: introduction: placeholder left by `reportgen init`. Fix: write it"
    assert lines[-1] == "1 TODO placeholder is in the report (warning above). Fix: write it in study.yaml"
    assert "TODO" in (tmp_path / "out" / "README.md").read_text()
    render = reportgen("render", "study.yaml", cwd=tmp_path)
    assert render.returncode == 0 and render.stderr.count(PLACEHOLDER) == 1, render.stderr


@pytest.mark.parametrize("command", ["build", "render"])
def test_build_and_render_both_need_the_config(tmp_path: Path, command: str):
    result = reportgen(command, cwd=tmp_path)
    assert result.returncode == 2
    assert "Missing argument 'CONFIG'" in result.stderr


def test_build_lists_every_config_problem_at_once(tmp_path: Path):
    spec_study(tmp_path, extra="prompts: prompts-not-here.yaml\n")
    text = (tmp_path / "study.yaml").read_text().replace("formats: [markdown]", "formats: [markdown, docx]")
    (tmp_path / "study.yaml").write_text(text)
    validate = reportgen("validate", "study.yaml", cwd=tmp_path)
    build = reportgen("build", "study.yaml", cwd=tmp_path)
    assert validate.returncode == build.returncode == 2
    problems = [line.strip() for line in build.stderr.splitlines() if line.startswith("  ")]
    assert len(problems) == 2, build.stderr
    assert build.stderr.startswith("Error: 2 problems:\n")
    assert problems[0] == (
        "study.yaml:6: prompts: prompt set 'prompts-not-here.yaml' does not exist. "
        "Fix: point 'prompts' at a YAML or JSONL prompt set (a relative path resolves from the config file's folder)"
    )
    assert "output.formats" in problems[1] and "docx" in problems[1]
    assert all(p in validate.stderr for p in problems)
    assert not (tmp_path / "out").exists()  # nothing ran, nothing rendered


def test_a_missing_prompt_set_says_paths_resolve_from_the_config_folder(tmp_path: Path, tiny_gpt2_dir: Path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "study.yaml").write_text(
        f"title: Hint\nprompts: prompts.yaml\nmodels:\n  - {{id: gpt2, name: GPT-2, source: {{type: local, path: {tiny_gpt2_dir}}}}}\n"
    )
    (tmp_path / "prompts.yaml").write_text("prompts: [{id: a, prompt: A}]\n")  # beside the current directory: not the one meant
    result = reportgen("run", "configs/study.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "Error: configs/prompts.yaml: prompt set not found. "
        "Fix: check the study's 'prompts' key (a relative path resolves from the config file's folder)\n"
    )
