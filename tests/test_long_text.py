"""A 100 KB model card field without a space: the report clips it (TEXT_FIELD_LIMIT, a visible "…"), the HTML
and the PDF render in bounded time with the text wrapped inside the page, and a PDF layout that takes too long
stops with a RenderError naming the phase and the likely field (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reportgen.util.text import TEXT_FIELD_LIMIT, clip, clip_strings

ROOT = Path(__file__).parent.parent
BASE_CONFIG = ROOT / "configs" / "assignment" / "llama-2-7b-chat-finetune-app" / "config.json"
LONG = "x" * 100_000


def test_clip():
    assert TEXT_FIELD_LIMIT == 2000
    assert clip("short") == "short" and clip(None) is None
    cut = clip(LONG)
    assert len(cut) == TEXT_FIELD_LIMIT and cut.endswith("…") and cut[:-1] == "x" * (TEXT_FIELD_LIMIT - 1)
    assert clip("x" * TEXT_FIELD_LIMIT) == "x" * TEXT_FIELD_LIMIT  # at the limit: untouched
    nested = clip_strings({"a": [LONG, 1, {"b": LONG}], LONG: None})
    assert nested["a"][0] == cut and nested["a"][1] == 1 and nested["a"][2]["b"] == cut and cut in nested


def long_study(folder: Path, extra_output: str = "") -> Path:
    config = json.loads(BASE_CONFIG.read_text()) | {"_name_or_path": LONG, "reportgen_note": LONG}
    (folder / "config.json").write_text(json.dumps(config))
    card = {"description": LONG, "notes": [LONG], "links": [{"title": LONG, "url": "https://example.org/" + LONG}]}
    path = folder / "study.yaml"
    path.write_text(
        "title: Long card\n"
        f"output: {{dir: out, formats: [html, pdf]{extra_output}}}\n"
        "models:\n"
        "  - id: m\n    name: M\n    config: config.json\n"
        f"    card: {json.dumps(card)}\n"
    )
    return path


def reportgen(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


def test_a_100_kb_card_field_renders_clipped_and_wrapped(tmp_path: Path):
    path = long_study(tmp_path)
    start = time.perf_counter()
    done = reportgen("render", str(path), "-f", "html", "-f", "pdf", cwd=tmp_path, timeout=300)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert elapsed < 150, f"{elapsed:.1f} s"  # about 10 s on two busy cores: a bound 15 times that, for pathologies

    html = (tmp_path / "out" / "report.html").read_text()
    kept = "x" * (TEXT_FIELD_LIMIT - 1) + "…"
    assert "x" * TEXT_FIELD_LIMIT not in html  # nothing longer than the cap got through
    assert html.count(kept) >= 4, html.count(kept)  # description, note, link title, config.json strings
    assert f"its address is longer than {TEXT_FIELD_LIMIT} characters: not linked" in html
    assert "https://example.org/xxx" not in html

    from pypdf import PdfReader

    reader = PdfReader(str(tmp_path / "out" / "report.pdf"))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    assert "…" in text
    runs = [len(run) for line in text.splitlines() for run in line.split() if set(run) <= {"x", "…"}]
    # wrapped inside the page: an A4 line holds about a hundred of these characters, never the 2 000 of a field
    assert runs and max(runs) < 300, max(runs)
    assert len(reader.pages) < 40, len(reader.pages)


def test_a_pdf_layout_past_its_time_stops_with_the_phase_and_the_field(tmp_path: Path):
    path = long_study(tmp_path, extra_output=", pdf_timeout_s: 0.001")
    done = reportgen("render", str(path), "-f", "pdf", cwd=tmp_path)
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    line = lines[0]
    assert "PDF phase (WeasyPrint layout and write_pdf) did not finish within 0.001 s (output.pdf_timeout_s)" in line, line
    assert "models[0].card.description (100,000 characters)" in line and "Fix:" in line, line
    assert not (tmp_path / "out" / "report.pdf").exists()


@pytest.mark.parametrize("timeout", [0, -1])
def test_the_timeout_must_be_positive(tmp_path: Path, timeout: float):
    from reportgen.errors import ConfigError
    from reportgen.study.config import load_config

    with pytest.raises(ConfigError, match="pdf_timeout_s"):
        load_config(long_study(tmp_path, extra_output=f", pdf_timeout_s: {timeout}"))
