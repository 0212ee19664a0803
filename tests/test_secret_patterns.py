"""The token is scrubbed by pattern: split, upper-cased, base64- and URL-encoded echoes leave no piece of
8+ characters in the store or any output; a redirect is reported as one, with the target's origin, and
never followed."""

from __future__ import annotations

import base64
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

import fault_server
from fault_server import FaultServer
from reportgen.backends.http.transport import Redactor, token_forms
from reportgen.cli import main

TOKEN = "hf_SECRET/do+not=leak_4f8a9c1eB7"  # '/', '+' and '=' so that URL-encoding changes it


def pieces(token: str = TOKEN, width: int = 8) -> set[str]:
    """Every piece of ``width`` characters of the token and of its encoded forms, lower-cased."""
    return {form[i : i + width] for form in token_forms(token) for i in range(len(form) - width + 1)}


def leaks(data: bytes | str) -> list[str]:
    text = (data.decode("utf-8", "replace") if isinstance(data, bytes) else data).lower()
    return sorted(piece for piece in pieces() if piece in text)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


ECHOES = {
    "split": f"token {TOKEN[:10]} | {TOKEN[10:20]} | {TOKEN[20:]}",
    "upper": f"TOKEN={TOKEN.upper()}",
    "mixed": "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(TOKEN)),
    "base64": f"basic {b64('user:' + TOKEN)} and {b64('Bearer ' + TOKEN)} and {b64(TOKEN)}",
    "urlsafe": base64.urlsafe_b64encode(("x" + TOKEN).encode()).decode(),
    "url": f"https://api.example/?token={quote(TOKEN, safe='')}",
    "header": f"Authorization: Bearer {TOKEN}",
}


@pytest.mark.parametrize("name", sorted(ECHOES))
def test_scrubber_removes_every_piece(name: str):
    redactor = Redactor()
    redactor.token = TOKEN
    echoed = ECHOES[name]
    assert leaks(echoed), "the test text must contain the token in some form"
    scrubbed = redactor.scrub(echoed)
    assert leaks(scrubbed) == [], scrubbed
    assert "***" in scrubbed


def test_scrubber_leaves_other_text_alone():
    redactor = Redactor()
    redactor.token = TOKEN
    text = "The quick brown fox answered HTTP 500: upstream model overloaded, try again later."
    assert redactor.scrub(text) == text
    assert Redactor().scrub(text) == text  # no token: nothing to do
    redactor.token = "short"  # a token under 8 characters is scrubbed whole, in any case
    assert redactor.scrub("a SHORT one") == "a *** one"


def test_scrubbing_is_linear_enough():
    import time

    redactor = Redactor()
    redactor.token = TOKEN
    body = ("lorem ipsum " * 100_000) + TOKEN.upper()
    start = time.perf_counter()
    assert redactor.scrub(body).endswith("***")
    # about 0.4 s on two busy cores; a scrub quadratic in the length would take hours on 1.2 MB
    assert time.perf_counter() - start < 10.0


@pytest.fixture
def echo_faults(monkeypatch: pytest.MonkeyPatch):
    """Extra faults on the real test server: error bodies and answers that echo the token in pieces."""
    original = fault_server._Handler._answer

    def answer(self, kind, body, text, hit):
        token = (hit.authorization or "").removeprefix("Bearer ")
        if hit.fault == "500-echo-pieces":  # split, upper-cased, base64 and URL-encoded
            self._send(
                500,
                {
                    "error": f"bad key {token[:9]}~{token[9:18].upper()}~{token[18:]} "
                    f"b64={b64('Bearer ' + token)} url={quote(token, safe='')}"
                },
            )
            return
        if hit.fault == "200-echo-pieces":
            self._send(200, [{"generated_text": f"your key is {token.upper()[:16]} {token[16:]} {b64(token)}"}])
            return
        if hit.fault == "302":
            self._send(302, b"", {"Location": "https://elsewhere.example:8443/steal?key=" + quote(token, safe="")})
            return
        original(self, kind, body, text, hit)

    monkeypatch.setattr(fault_server._Handler, "_answer", answer)


def test_echoed_pieces_reach_no_output_and_redirects_are_reported(tmp_path: Path, monkeypatch, echo_faults):
    monkeypatch.setenv("MY_API_TOKEN", TOKEN)
    with FaultServer() as server:
        (tmp_path / "prompts.yaml").write_text(
            "prompts:\n"
            "  - {id: ok, prompt: 'plain words here', reference: 'here'}\n"
            "  - {id: err, prompt: 'error-echo please'}\n"
            "  - {id: out, prompt: 'output-echo please'}\n"
            "  - {id: moved, prompt: 'moved-away please'}\n"
        )
        server.script("error-echo", ["500-echo-pieces"], repeat=True)
        server.script("output-echo", ["200-echo-pieces"], repeat=True)
        server.script("moved-away", ["302"], repeat=True)
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
        assert result.exit_code == 1, result.output
        assert leaks(result.output) == [], result.output
        assert len(server.hits("moved-away")) == 1  # not retried, not followed
        result = runner.invoke(main, ["render", str(tmp_path / "study.yaml")])
        assert result.exit_code == 0, result.output
        result = runner.invoke(main, ["metrics", str(tmp_path / "study.yaml"), "--json", str(tmp_path / "report" / "m.json")])
        assert result.exit_code == 0, result.output

    with sqlite3.connect(tmp_path / "report" / "results.sqlite") as db:
        errors = dict(db.execute("SELECT prompt_id, error FROM results WHERE error IS NOT NULL"))
    assert errors["moved"].startswith("redirected (HTTP 302) to https://elsewhere.example:8443;"), errors["moved"]
    assert "steal" not in errors["moved"] and "malformed" not in errors["moved"]
    assert "***" in errors["err"]
    outputs = [p for p in (tmp_path / "report").rglob("*") if p.is_file()]
    assert {p.name for p in outputs} >= {"README.md", "report.html", "report.pdf", "results.sqlite", "m.json"}
    for path in outputs:
        found = leaks(path.read_bytes())
        assert found == [], f"pieces of the token in {path}: {found}"
    pdf_text = subprocess.run(
        ["pdftotext", str(tmp_path / "report" / "report.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "redirected (HTTP 302)" in " ".join(pdf_text.split()) or "redirected" in pdf_text
    assert leaks(pdf_text) == []
