"""The analysis in the terminal: `reportgen metrics CONFIG --analysis` through a pipe prints the findings the
report writes, phrased plainly (no Markdown escapes, no emphasis markers, names as the config gives them)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from test_sections import NAMES, default_outputs, fill_store, old_lora_outputs, write_study  # noqa: E402

from reportgen import analysis  # noqa: E402
from reportgen.report.markdown import markdown_style  # noqa: E402
from reportgen.specs.study import study_specs  # noqa: E402
from reportgen.stats.tables import compute_tables  # noqa: E402
from reportgen.store import Store, store_path  # noqa: E402
from reportgen.study.config import load_config  # noqa: E402
from reportgen.study.prompts import study_prompt_set  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN_ESCAPE = re.compile(r"\\[*_`|\[\]#<>]")


@pytest.fixture(scope="module")
def study_with_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("terminal")
    config = write_study(folder)
    study = load_config(config)
    store_path(study).parent.mkdir(parents=True, exist_ok=True)
    fill_store(store_path(study), default_outputs(), old_lora=old_lora_outputs())
    return config, study


def test_metrics_prints_the_analysis_plainly(study_with_results):
    config, study = study_with_results
    result = subprocess.run(
        [sys.executable, "-m", "reportgen", "metrics", str(config), "--analysis"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for heading in (
        "Specs",
        "Quality against the references",
        "Speed and memory",
        "Variants of the same model",
        "What retraining changed",
        "Conclusion",
    ):
        assert f"\n{heading}\n" in out, heading
    lines = [line[2:] for line in out.splitlines() if line.startswith("- ")]
    assert lines, out[-2000:]
    # the plain sentences: names as given, no Markdown escapes, no emphasis markers, no HTML entities
    assert any(line.startswith(f"Exact match: {NAMES['lora']} is best") for line in lines)
    assert any(NAMES["q4"] in line for line in lines)  # "<i>llama.cpp</i> | fast", not "&lt;i&gt;… \|"
    assert any("got worse after retraining" in line for line in lines)
    for line in lines:
        assert not MARKDOWN_ESCAPE.search(line), line
        assert "**" not in line and "`" not in line and "&lt;" not in line and "&amp;" not in line, line
    # the same findings the report phrases in Markdown: one plain line per statement, none wrapped
    with Store(store_path(study), create=False) as store:
        tables = compute_tables(store, study, study_prompt_set(study))
    specs = study_specs(study)
    plain = [s.text for s in analysis.result_statements(study, tables, specs)]
    marked = [s.text for s in analysis.result_statements(study, tables, specs, markdown_style())]
    assert len(plain) == len(marked) and all(text in lines for text in plain)
    # the same numbers (compared as JSON, where a missing interval's NaN equals NaN)
    assert json.dumps([s.numbers for s in analysis.result_statements(study, tables, specs)], default=str) == json.dumps(
        [s.numbers for s in analysis.result_statements(study, tables, specs, markdown_style())], default=str
    )


def test_metrics_without_the_flag_prints_no_analysis(study_with_results):
    config, _ = study_with_results
    result = subprocess.run(
        [sys.executable, "-m", "reportgen", "metrics", str(config)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    printed = result.stdout + result.stderr
    assert "Quality and text metrics" in printed and "Quality against the references" not in printed
