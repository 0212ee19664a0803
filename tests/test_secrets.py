"""A full run + render against a real HTTP server: the token never reaches any output, and failures are
recorded, shown, and retried on the next run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fault_server import FaultServer
from reportgen.cli import main

TOKEN = "hf_SECRET_do_not_leak_4f8a9c1e"


def test_token_never_written_and_failures_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MY_API_TOKEN", TOKEN)
    with FaultServer() as server:
        (tmp_path / "prompts.yaml").write_text(
            "prompts:\n"
            + "".join(f"  - {{id: p{i}, prompt: 'echo these words {i}', reference: '{i}'}}\n" for i in range(5))
            + "  - {id: flaky, prompt: 'always-fails please'}\n"
        )
        server.script("always-fails", ["500-echo-auth"], repeat=True)  # a server that echoes the auth header back
        (tmp_path / "study.yaml").write_text(
            f"""title: Remote study
prompts: prompts.yaml
generation: {{max_new_tokens: 8}}
output: {{dir: {tmp_path / "report"}}}
models:
  - id: remote
    name: Remote model
    source: {{type: http, url: "{server.hf_url}", protocol: hf-inference, token_env: MY_API_TOKEN, max_retries: 1, timeout_s: 5}}
"""
        )
        runner = CliRunner()
        result = runner.invoke(main, ["run", str(tmp_path / "study.yaml")])
        assert result.exit_code == 1, result.output  # the job ran, but a prompt failed
        assert "1 failed" in result.output and "1 of 6 prompts failed" in result.output
        assert TOKEN not in result.output
        assert any(hit.authorization == f"Bearer {TOKEN}" for hit in server.hits("echo these"))

        result = runner.invoke(main, ["render", str(tmp_path / "study.yaml")])
        assert result.exit_code == 0, result.output
        result = runner.invoke(main, ["metrics", str(tmp_path / "study.yaml"), "--json", str(tmp_path / "report" / "m.json")])
        assert result.exit_code == 0, result.output

        outputs = [p for p in (tmp_path / "report").rglob("*") if p.is_file()]
        assert {p.name for p in outputs} >= {"README.md", "report.html", "report.pdf", "results.sqlite", "m.json"}
        for path in outputs:
            data = path.read_bytes()
            assert TOKEN.encode() not in data, f"token leaked into {path}"
            assert TOKEN[-12:].encode() not in data, f"part of the token leaked into {path}"
        readme = (tmp_path / "report" / "README.md").read_text()
        assert "MY_API_TOKEN" in readme  # the snippet names the variable

        # The next run retries only the failed prompt.
        server.script("always-fails", [200], repeat=True)
        before = len(server.hits("echo these"))
        result = runner.invoke(main, ["run", str(tmp_path / "study.yaml")])
        assert result.exit_code == 0, result.output
        assert "1 run, 5 cached" in result.output
        assert len(server.hits("echo these")) == before
