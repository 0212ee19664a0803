"""Truthful automation with an endpoint that fails (issue 27, items 1, 2, 4, 5 and 15), through the real
command line in a subprocess against a real HTTP server on 127.0.0.1 (tests/fault_server.py) that answers,
answers 501, or is not there at all (a refused port).

- ``build`` exits 1 when every prompt of a model failed, and renders the report first;
- a model whose endpoint fails each request of its first wave is stopped there: the other prompts are
  marked failed with that reason, without a request;
- each distinct reason a prompt failed is printed once, in the run's output;
- 501 and the other answers that will never pass fail the prompt at once, and the request shapes
  (streaming, non-standard fields) are probed once per model, not per prompt;
- an HTTP model is never planned for bits per byte, so ``check`` right after ``build`` says up to date and
  a second build stores no empty run (``diff`` and the retraining section show none);
- a model interrupted while loading runs as a first run on resume; a throughput is never shown from an
  older run beside current answers that all failed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from fault_server import FaultServer

ROOT = Path(__file__).resolve().parents[1]


def reportgen(*args: str, cwd: Path, script: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "tests" / script)] if script else [sys.executable, "-m", "reportgen"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def refused_url() -> str:
    """The URL of a port nothing listens on (the connection is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def http_study(
    folder: Path, url: str, *, n: int = 6, source: str = "", corpus: bool = False, prompt: str = "Say the number {i}"
) -> Path:
    """A study of one OpenAI-compatible endpoint over ``n`` prompts (Markdown only: nothing but the run is slow)."""
    lines = ["prompts:"] + [f"  - {{id: p{i}, prompt: '{prompt.format(i=i)}', reference: '{i}'}}" for i in range(n)]
    if corpus:
        lines += [
            "lm_corpus:",
            "  - {id: rain, text: 'The morning was cool and grey, and a light rain fell on the town.'}",
            "  - {id: sun, text: 'By noon the clouds had broken up, and people walked along the river.'}",
        ]
    (folder / "prompts.yaml").write_text("\n".join(lines) + "\n")
    (folder / "study.yaml").write_text(f"""title: Endpoint study
prompts: prompts.yaml
generation: {{max_new_tokens: 4}}
output: {{dir: out, formats: [markdown]}}
models:
  - {{id: served, name: Served model, source: {{type: http, url: "{url}", protocol: openai-completions, model: m{source}}}}}
""")
    return folder / "study.yaml"


def stored(folder: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(folder / "out" / "results.sqlite") as db:
        return db.execute(sql).fetchall()


def test_refused_endpoint_fails_build_stops_early_and_says_why(tmp_path: Path):
    config = http_study(tmp_path, refused_url(), n=20, source=", concurrency: 1, max_retries: 1")
    result = reportgen("build", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    err = result.stderr
    # the first wave (two requests at concurrency 1) failed: the model stopped, each reason printed once
    refused = [line for line in err.splitlines() if "failed: connection failed" in line]
    assert len(refused) == 1 and refused[0].startswith("served: prompt p0 failed: connection failed (ConnectError"), err
    assert refused[0].endswith("after 1 retry")
    assert "served: the endpoint failed each of its first 2 requests: the model's other prompts are not sent" in err
    skipped = [line for line in err.splitlines() if "failed: not sent" in line]
    assert len(skipped) == 1 and "not sent: the endpoint failed each of the first 2 requests (connection failed" in skipped[0]
    assert "Error: served: FAILED — every prompt failed (20 of 20; retried on the next run)" in err
    assert "(everything else is saved and rendered)" in err
    assert "Failed" in (tmp_path / "out" / "README.md").read_text()  # rendered before the exit
    rows = stored(tmp_path, "SELECT prompt_id, error, extra FROM results ORDER BY prompt_id")
    assert len(rows) == 20 and all(error for _, error, _ in rows)
    sent = sorted(prompt for prompt, _, extra in rows if json.loads(extra)["attempts"] > 0)
    assert sent == ["p0", "p1"]  # shards run shortest first: p0, p1, then p10…; only the first wave was sent
    assert all(error.startswith("not sent: ") for prompt, error, _ in rows if prompt not in sent)

    allowed = reportgen("build", str(config), "--allow-failures", cwd=tmp_path)  # no answer at all is never allowed
    assert allowed.returncode == 1 and "every prompt failed (20 of 20" in allowed.stderr


def test_501_costs_one_request_per_prompt_and_some_failures_exit_1(tmp_path: Path):
    with FaultServer() as server:
        server.script("never", ["501"], repeat=True)
        config = http_study(tmp_path, server.url, n=6, prompt="Say {i}", source=", concurrency: 1")
        text = (tmp_path / "prompts.yaml").read_text()
        (tmp_path / "prompts.yaml").write_text(text.replace("Say 0", "Hi").replace("Say ", "Say never "))
        result = reportgen("run", str(config), cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        # p0 answered first (shortest) while streaming with the extra fields; each other prompt got one request
        assert len(server.hits("never")) == 5 and len(server.requests) == 6
        failed = [line for line in result.stderr.splitlines() if "failed: HTTP 501" in line]
        assert failed == ["served: prompt p1 failed: HTTP 501: 'status 501 from the test server'"], result.stderr
        assert "served: 5 of 6 prompts failed (stored as failures and retried on the next run" in result.stderr
        allowed = reportgen("run", str(config), "--allow-failures", cwd=tmp_path)
        assert allowed.returncode == 0, allowed.stderr
        assert "re-ran because retrying 5 failed prompts" not in allowed.stderr
        assert "retrying 5 failed prompts" in allowed.stderr
        # nothing answered in this process yet: p1 probes the four shapes, p2 gets one request, then the breaker
        # (two failures at concurrency 1) keeps p3 to p5 from being sent
        assert len(server.hits("never")) == 5 + 4 + 1


def test_501_everywhere_probes_the_request_shapes_once(tmp_path: Path):
    with FaultServer() as server:
        server.script("", ["501"], repeat=True)
        config = http_study(tmp_path, server.url, n=6, source=", concurrency: 1, max_retries: 4")
        result = reportgen("run", str(config), cwd=tmp_path)
        assert result.returncode == 1 and "every prompt failed (6 of 6" in result.stderr, result.stderr
        shapes = [(bool(h.body.get("stream")), "repeat_penalty" in h.body) for h in server.requests]
        # p0: streaming with the extra fields, without them, plainly with them, plainly; p1: once; then the breaker
        assert shapes == [(True, True), (True, False), (False, True), (False, False), (True, True)]
        assert [h.text for h in server.requests] == ["Say the number 0"] * 4 + ["Say the number 1"]


def test_http_model_settles_check_after_build_and_no_phantom_run(tmp_path: Path):
    with FaultServer() as server:
        config = http_study(tmp_path, server.url, n=4, corpus=True)
        first = reportgen("build", str(config), cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        check = reportgen("check", str(config), cwd=tmp_path)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout == f"{config}: the report is up to date\n"
        runs = stored(tmp_path, "SELECT run_id FROM runs")
        second = reportgen("build", str(config), cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert "every stored result is current: no model re-ran" in second.stderr
        assert "the report is up to date; nothing rendered" in second.stderr
        assert stored(tmp_path, "SELECT run_id FROM runs") == runs and len(runs) == 1
        assert len(server.requests) == 4
    diff = reportgen("diff", str(config), cwd=tmp_path)
    assert diff.returncode == 1 and "served: a single run (or none) in the store" in diff.stderr + diff.stdout
    assert "What retraining changed" not in (tmp_path / "out" / "README.md").read_text()


def test_failed_answers_never_sit_beside_an_older_runs_throughput(tmp_path: Path):
    with FaultServer() as server:
        config = http_study(tmp_path, server.url, n=4)
        assert reportgen("build", str(config), cwd=tmp_path).returncode == 0
        url = server.url
    before = json.loads(reportgen("metrics", str(config), "--json", cwd=tmp_path).stdout)["tables"]["efficiency"]
    assert before[0]["tokens_per_s"] > 0 and before[0]["n_failed"] == 0
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(prompts.read_text().replace("Say the number", "Now say the number"))
    assert url in config.read_text()  # the same endpoint (the same fingerprint), now refusing every connection
    config.write_text(config.read_text().replace("model: m}", "model: m, max_retries: 0}"))
    failed = reportgen("build", str(config), cwd=tmp_path)
    assert failed.returncode == 1 and "every prompt failed (4 of 4" in failed.stderr, failed.stderr
    after = json.loads(reportgen("metrics", str(config), "--json", cwd=tmp_path).stdout)["tables"]["efficiency"]
    assert after[0]["n_failed"] == 4 and after[0]["n_prompts"] == 4
    assert after[0]["tokens_per_s"] is None and after[0]["throughput_source"] is None, after[0]


def test_a_model_interrupted_while_loading_is_a_first_run_on_resume(tmp_path: Path):
    config = http_study(tmp_path, "http://127.0.0.1:9", n=3)  # the test backend replaces the endpoint
    command = [sys.executable, str(ROOT / "tests" / "hang_load_cli.py"), "run", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REPORTGEN_TEST_HANG_LOAD": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    assert process.stderr is not None
    for line in process.stderr:
        if "loading (hangs)" in line:
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 130, rest
    assert stored(tmp_path, "SELECT model_id, prompts_run, load_time_s FROM model_runs") == [("served", 0, None)]
    resumed = reportgen("run", str(config), cwd=tmp_path, script="hang_load_cli.py")
    assert resumed.returncode == 0, resumed.stderr
    assert "served: 3 prompts (3 run, 0 cached) · first run · " in resumed.stderr, resumed.stderr
