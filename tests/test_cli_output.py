"""Data commands through a real pipe: plain tab-separated tables (no box drawing, never wrapped), `diff`
between runs (--against, speed and memory, --json), and shell completion of model ids via Click's protocol."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOX = set("─│┃━┏┓┗┛┡┩╇╈┼├┤┬┴╭╮╰╯═║")


def reportgen(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "80", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def assert_plain_tables(text: str) -> None:
    """No box drawing; each table a '# title' line, a header and rows with the header's number of cells."""
    assert text.strip(), "nothing on stdout"
    assert not BOX & set(text), [line for line in text.splitlines() if BOX & set(line)][:3]
    assert "…" not in text  # nothing cut
    blocks = [b for b in text.split("\n\n") if b.strip().startswith("# ")]
    assert blocks, text[:500]
    for block in blocks:
        title, header, *rows = block.strip("\n").split("\n")
        width = len(header.split("\t"))
        assert width >= 2, header
        for row in rows:
            assert len(row.split("\t")) == width, (title, header, row)  # a wrapped line would have fewer cells


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_llama_dir: Path, tiny_gpt2_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("piped")
    shutil.copytree(tiny_llama_dir, folder / "llama")
    (folder / "prompts.yaml").write_text(
        "prompts:\n" + "".join(f"  - {{id: p{i}, prompt: 'Say the number {i}', reference: '{i}'}}\n" for i in range(4))
    )
    (folder / "study.yaml").write_text(f"""title: Piped study
prompts: prompts.yaml
generation: {{max_new_tokens: 4}}
measure: {{warmup: 0, repeats: 1}}
output: {{dir: out, formats: [markdown]}}
models:
  - {{id: llama, name: Tiny Llama with a long display name, source: {{type: local, path: llama}}, batch_size: 2}}
  - {{id: gpt2, name: Tiny GPT-2, source: {{type: local, path: {tiny_gpt2_dir}}}, batch_size: 2}}
""")
    first = reportgen("-q", "run", "study.yaml", cwd=folder)
    assert first.returncode == 0, first.stderr
    return folder


def test_metrics_and_specs_print_plain_tables_into_a_pipe(study: Path):
    for command in ("metrics", "specs"):
        result = reportgen(command, "study.yaml", cwd=study)
        assert result.returncode == 0, result.stderr
        assert_plain_tables(result.stdout)
        assert result.stderr == ""  # data on stdout only
    metrics = reportgen("metrics", "study.yaml", cwd=study).stdout
    assert "# Quality and text metrics per model (mean [95% CI], n)\nmetric\tllama\tgpt2\n" in metrics
    assert "Tiny Llama with a long display name\tTiny GPT-2" in reportgen("specs", "study.yaml", cwd=study).stdout


def test_metrics_for_some_models(study: Path):
    one = reportgen("metrics", "study.yaml", "--models", "gpt2", cwd=study)
    assert one.returncode == 0, one.stderr
    assert "metric\tgpt2\n" in one.stdout and "llama" not in one.stdout
    payload = json.loads(reportgen("metrics", "study.yaml", "--models", "gpt2", "--json", cwd=study).stdout)
    assert "llama" not in json.dumps(payload) and "gpt2" in json.dumps(payload)
    unknown = reportgen("metrics", "study.yaml", "--models", "nope", cwd=study)
    assert unknown.returncode == 2 and "no model with id nope" in unknown.stderr


def test_diff_compares_runs_with_speed_memory_and_json(study: Path, tiny_llama_dir: Path):
    single = reportgen("diff", "study.yaml", cwd=study)
    assert single.returncode == 1 and "a single run (or none) in the store" in single.stderr

    # a second run of the same weights: only speed and memory can differ
    assert reportgen("-q", "run", "study.yaml", "--models", "llama", "--force", cwd=study).returncode == 0
    same = reportgen("diff", "study.yaml", "--models", "llama", "--json", cwd=study)
    assert same.returncode == 0, same.stderr
    data = json.loads(same.stdout)
    assert data["schema"] == "reportgen.diff" and data["schema_version"] == 1
    (entry,) = data["models"]
    assert entry["model_id"] == "llama" and entry["same_weights"] is True and entry["quality"] == []
    measures = {row["measure"] for row in entry["speed"]}
    assert {"load_time_s", "tokens_per_s", "peak_memory_bytes"} <= measures, measures
    first_run, second_run = entry["old"]["run_id"], entry["new"]["run_id"]
    assert first_run != second_run and entry["old"]["fingerprint"] == entry["new"]["fingerprint"]

    from tiny_models import make_tiny_llama

    shutil.rmtree(study / "llama")
    make_tiny_llama(study / "llama", seed=21)  # retrained: new weights
    assert reportgen("-q", "run", "study.yaml", "--models", "llama", cwd=study).returncode == 0
    changed = reportgen("diff", "study.yaml", "--models", "llama", "--against", first_run, "--json", cwd=study)
    assert changed.returncode == 0, changed.stderr
    (entry,) = json.loads(changed.stdout)["models"]
    assert entry["old"]["run_id"] == first_run and entry["same_weights"] is False
    assert {row["metric"] for row in entry["quality"]} >= {"exact_match"}
    assert all({"n", "diff", "ci_low", "ci_high", "p_value", "significant"} <= set(row) for row in entry["quality"])
    by_fingerprint = reportgen(
        "diff", "study.yaml", "--models", "llama", "--against", entry["old"]["fingerprint"][:10], "--json", cwd=study
    )
    assert json.loads(by_fingerprint.stdout)["models"][0]["old"]["fingerprint"] == entry["old"]["fingerprint"]

    table = reportgen("diff", "study.yaml", "--models", "llama", cwd=study)
    assert table.returncode == 0, table.stderr
    assert_plain_tables(table.stdout)
    assert "speed and memory" in table.stdout and "exact_match" in table.stdout

    unknown = reportgen("diff", "study.yaml", "--models", "llama", "--against", "nothing-like-this", cwd=study)
    assert unknown.returncode == 2 and "--against" in unknown.stderr and first_run in unknown.stderr
    nope = reportgen("diff", "study.yaml", "--models", "nope", cwd=study)
    assert nope.returncode == 2 and "Known: llama, gpt2" in nope.stderr

    words = "reportgen diff study.yaml --models llama --against "
    env = {"_REPORTGEN_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": "6"}
    completed = reportgen(cwd=study, env=env).stdout.splitlines()  # the run ids in the store, newest first
    assert f"plain,{first_run}" in completed and f"plain,{second_run}" in completed, completed
    assert completed.index(f"plain,{second_run}") < completed.index(f"plain,{first_run}")


@pytest.mark.parametrize("command", ["run", "build", "diff"])
def test_models_complete_from_the_config(tmp_path: Path, command: str):
    (tmp_path / "study.yaml").write_text(
        "title: t\nmodels:\n  - {id: llama-7b, source: {type: hub, repo: a/b}}\n  - {id: gpt2, source: {type: hub, repo: a/c}}\n"
    )

    def complete(words: str) -> list[str]:
        env = {"_REPORTGEN_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
        result = reportgen(cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    assert complete(f"reportgen {command} study.yaml --models ") == ["plain,llama-7b", "plain,gpt2"]
    assert complete(f"reportgen {command} study.yaml --models ll") == ["plain,llama-7b"]
    assert complete(f"reportgen {command} study.yaml --models llama-7b,") == ["plain,llama-7b,gpt2"]


def test_bash_completion_script_is_printed(tmp_path: Path):
    result = reportgen(cwd=tmp_path, env={"_REPORTGEN_COMPLETE": "bash_source"})
    assert result.returncode == 0 and "_reportgen_completion()" in result.stdout
    assert "complete -o nosort -F _reportgen_completion reportgen" in result.stdout


def test_validate_reports_every_problem_at_once(tmp_path: Path):
    """A schema error does not hide the file, prompt-file, Hub-cache and claim problems behind it."""
    hf = tmp_path / "hf"
    cached = hf / "hub" / "models--someone--cached" / "snapshots" / ("0" * 40)
    cached.mkdir(parents=True)
    (cached / "config.json").write_text('{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 64}')
    (hf / "hub" / "models--someone--cached" / "refs").mkdir()
    (hf / "hub" / "models--someone--cached" / "refs" / "main").write_text("0" * 40)
    (tmp_path / "prompts.yaml").write_text("prompts:\n  - {id: a, prompt: Hi}\n  - {id: b, prompt: Again, bogus: 1}\n")
    (tmp_path / "study.yaml").write_text("""title: Everything wrong
prompts: prompts.yaml
generation:
  max_new_tokenz: 4
models:
  - id: local
    source: {type: local, path: no-such-folder}
  - id: hub
    name: Hub
    source: {type: hub, repo: nobody/not-cached, revison: main}
  - id: cached
    name: Cached
    source: {type: hub, repo: someone/cached}
claims:
  - text: Syntax.
    check: "local.parameters >> 3"
  - text: Unknown model.
    check: "lokal.parameters > 3"
  - text: Unknown field.
    check: "cached.paramters > 3"
  - text: Fine.
    check: "cached.exact_match > 0.5 and cached.tokens_per_s > 1 and cached.hidden_size == 64"
""")
    result = reportgen("validate", "study.yaml", cwd=tmp_path, env={"HF_HOME": str(hf), "HF_HUB_CACHE": str(hf / "hub")})
    assert result.returncode == 2 and result.stdout == ""
    lines = [line.strip() for line in result.stderr.splitlines()]
    expected = [
        ("study.yaml:4: generation.max_new_tokenz: unknown key", "Did you mean 'max_new_tokens'?"),  # schema
        ("study.yaml:6: models[0].name: required key is missing", "Fix: add it"),  # schema
        ("study.yaml:10: models[1].source.revison: unknown key", "Did you mean 'revision'?"),  # the hub source's keys
        ("study.yaml:7: models[0].source.path: model folder", "Fix:"),  # a missing file
        ("study.yaml:10: models[1].source.repo: 'nobody/not-cached' is not in the local Hugging Face cache", "Fix:"),
        ("prompts.yaml:3: prompts[1].bogus: unknown key 'bogus'", "Known keys here"),  # the prompt file
        ("study.yaml:16: claims[0].check: expected a number or MODEL.FIELD", "Expected comparisons"),  # claim syntax
        ("study.yaml:18: claims[1].check: unknown model 'lokal'", "Did you mean 'local'?"),
        ("study.yaml:20: claims[2].check: unknown field 'cached.paramters'", "Did you mean 'parameters'?"),
    ]
    for start, fix in expected:
        found = [line for line in lines if line.startswith(start)]
        assert found and fix in found[0], (start, result.stderr)
    assert "someone/cached" not in result.stderr and "claims[3]" not in result.stderr  # what is right is not a problem
    assert result.stderr.count("\n  ") == len(expected)  # one line each, nothing else
