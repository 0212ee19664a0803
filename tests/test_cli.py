"""The real command line through pipes (not a TTY): data on stdout, messages on stderr, nothing wrapped,
exit codes that tell cases apart, progress while a run is still going, -q silent on success."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fault_server import FaultServer

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = ROOT / "configs" / "assignment.yaml"


def reportgen(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
    )


def tiny_study(folder: Path, llama: Path, gpt2: Path, *, extra_model: str = "", claims: str = "", n: int = 6) -> Path:
    (folder / "prompts.yaml").write_text(
        "prompts:\n" + "".join(f"  - {{id: p{i}, prompt: 'Say the number {i}', reference: '{i}'}}\n" for i in range(n))
    )
    (folder / "study.yaml").write_text(f"""title: Tiny study
prompts: prompts.yaml
generation: {{max_new_tokens: 4}}
output: {{dir: out, formats: [markdown]}}
models:
  - {{id: llama, name: Tiny Llama, source: {{type: local, path: {llama}}}, batch_size: 2}}
  - {{id: gpt2, name: Tiny GPT-2, source: {{type: local, path: {gpt2}}}, batch_size: 2}}
{extra_model}{claims}""")
    return folder / "study.yaml"


def test_specs_puts_data_on_stdout_unwrapped():
    result = reportgen("specs", str(ASSIGNMENT))
    assert result.returncode == 0, result.stderr
    assert "LlamaForCausalLM" in result.stdout and "GPT2LMHeadModel" in result.stdout
    assert "…" not in result.stdout  # nothing cut at 80 columns
    assert max(len(line) for line in result.stdout.splitlines()) > 80  # the table keeps its natural width
    assert result.stderr.strip() == ""


def test_specs_json_is_versioned_on_stdout():
    result = reportgen("specs", str(ASSIGNMENT), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema"] == "reportgen.specs" and data["schema_version"] == 1
    assert data["models"]["llama-2-chat"]["parameters"] == 6_738_415_616


def test_bad_config_exits_2_with_one_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nmodels: [{id: A B}]\n")
    result = reportgen("validate", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    assert str(bad) in result.stderr and "Traceback" not in result.stderr


def test_missing_store_exits_2(tmp_path: Path, tiny_llama_dir: Path, tiny_gpt2_dir: Path):
    result = reportgen("metrics", str(tiny_study(tmp_path, tiny_llama_dir, tiny_gpt2_dir)))
    assert result.returncode == 2 and "no results yet" in result.stderr


def test_run_progress_exit_codes_and_quiet(tmp_path: Path, tiny_llama_dir: Path, tiny_gpt2_dir: Path):
    with FaultServer() as server:
        server.script("number 5", [("slow", 3.0)])  # the last model takes a while: the run is still going
        remote = (
            f'  - {{id: remote, name: Remote, source: {{type: http, url: "{server.hf_url}", protocol: hf-inference, '
            "max_retries: 0, timeout_s: 30}}\n"
        )
        config = tiny_study(tmp_path, tiny_llama_dir, tiny_gpt2_dir, extra_model=remote)
        process = subprocess.Popen(
            [sys.executable, "-m", "reportgen", "run", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        lines, finished_while_reading = [], []
        for line in process.stderr:  # read the pipe incrementally: progress arrives while the run goes on
            lines.append(line)
            finished_while_reading.append(process.poll() is not None)
        process.wait(timeout=300)
    assert process.returncode == 0, "".join(lines)
    progress = [i for i, line in enumerate(lines) if "prompts" in line and "/6" in line]
    assert progress, lines
    assert not finished_while_reading[progress[0]], "the first progress line came only after the run had ended"
    assert any(line.startswith("llama: 6 prompts (6 run") for line in lines)
    assert not any("Loading weights" in line or "\r" in line for line in lines)  # third-party bars silenced
    assert (tmp_path / "out" / "results.sqlite").exists()  # output.dir resolves from the config's folder

    quiet = reportgen("-q", "run", str(config), cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""

    metrics = reportgen("metrics", str(config), "--json")
    data = json.loads(metrics.stdout)
    assert data["schema"] == "reportgen.metrics" and data["schema_version"] == 1
    row = data["tables"]["per_prompt"][0]
    assert isinstance(row["references"], list) and isinstance(row["output_tokens"], int)

    csv_dir = tmp_path / "csv"
    assert reportgen("metrics", str(config), "--csv", str(csv_dir)).returncode == 0
    text = (csv_dir / "per_prompt.csv").read_text()
    assert text.startswith("# reportgen.metrics.per_prompt schema_version 1") and "('" not in text


def test_false_claim_exits_1(tmp_path: Path, tiny_llama_dir: Path, tiny_gpt2_dir: Path):
    claims = 'claims:\n  - text: The Llama is bigger than a billion parameters.\n    check: "llama.parameters > 1000000000"\n'
    config = tiny_study(tmp_path, tiny_llama_dir, tiny_gpt2_dir, claims=claims)
    result = reportgen("render", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "claim" in result.stderr.lower()


def test_failed_prompts_exit_1_unless_allowed(tmp_path: Path, tiny_llama_dir: Path, tiny_gpt2_dir: Path):
    with FaultServer() as server:
        server.script("number 3", ["500"], repeat=True)
        remote = (
            f'  - {{id: remote, name: Remote, source: {{type: http, url: "{server.hf_url}", protocol: hf-inference, '
            "max_retries: 0, timeout_s: 5}}\n"
        )
        config = tiny_study(tmp_path, tiny_llama_dir, tiny_gpt2_dir, extra_model=remote)
        result = reportgen("run", str(config), "--models", "remote", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert "1 of 6 prompts failed" in result.stderr
        allowed = reportgen("run", str(config), "--models", "remote", "--allow-failures", cwd=tmp_path)
        assert allowed.returncode == 0, allowed.stderr


def test_ctrl_c_exits_130_and_keeps_the_store(tmp_path: Path, tiny_llama_dir: Path, tiny_gpt2_dir: Path):
    with FaultServer() as server:
        server.script("number", [("slow", 30.0)], repeat=True)
        remote = (
            f'  - {{id: remote, name: Remote, source: {{type: http, url: "{server.hf_url}", protocol: hf-inference, '
            "max_retries: 0, timeout_s: 60}}\n"
        )
        config = tiny_study(tmp_path, tiny_llama_dir, tiny_gpt2_dir, extra_model=remote)
        process = subprocess.Popen(
            [sys.executable, "-m", "reportgen", "run", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not server.hits("number"):
            time.sleep(0.2)
        assert server.hits("number"), "the remote model was never queried"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    result = reportgen("-q", "metrics", str(config), "--json", cwd=tmp_path)
    rows = json.loads(result.stdout)["tables"]["per_prompt"]
    assert {r["model_id"] for r in rows} == {"llama", "gpt2"}  # the models done before Ctrl-C are kept


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["build", "--help"]])
def test_help_documents_exit_codes_and_options(args):
    result = reportgen(*args)
    assert result.returncode == 0
    if args == ["--help"]:
        assert "130 interrupted" in result.stdout.replace("\n", " ").replace("  ", " ")
    if args[0] == "build":
        assert "--models" in result.stdout and "--into" in result.stdout and "--out" in result.stdout
    if args[0] == "run":
        words = " ".join(result.stdout.split())  # the same text, however the terminal width wraps it
        assert result.stdout.startswith("Usage: reportgen run [OPTIONS] CONFIG\n"), result.stdout
        assert (
            "Exit 1 when a model failed, answered none of its prompts, or some prompts failed (everything else is "
            "saved; the next run retries them)."
        ) in words
        options = re.findall(r"^  (-\S+(?:, -\S+)?(?: [A-Z,]+)?)  ", result.stdout, flags=re.M)
        assert options == [
            "--models A,B",
            "--force",
            "--allow-failures",
            "--execute-code",
            "-q, --quiet",
            "-v, --verbose",
            "-h, --help",
        ], result.stdout
        assert "Exit 2 when the prompt set has code prompts and running model-written code is not allowed" in words
        assert "--allow-failures Exit 0 even when some prompts failed" in words
        assert "a model that answered none still exits 1" in words
    assert result.stderr == ""
