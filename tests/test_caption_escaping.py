"""A chart caption is escaped once in every format (issue 27, item 14): `p < 0.05` in the retraining chart's
caption reads `p < 0.05` on GitHub (README.md holds `p &lt; 0.05`), in the HTML and in the PDF's text."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_models import make_tiny_llama

ROOT = Path(__file__).resolve().parents[1]


def reportgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (make test installs it)")
def test_the_retraining_caption_is_escaped_once_in_every_format(tmp_path: Path, tiny_llama_dir: Path):
    shutil.copytree(tiny_llama_dir, tmp_path / "llama")
    (tmp_path / "prompts.yaml").write_text(
        "prompts:\n" + "".join(f"  - {{id: p{i}, prompt: 'Count to {i}.', reference: '{i}'}}\n" for i in range(6))
    )
    (tmp_path / "study.yaml").write_text(
        """title: Captions
prompts: prompts.yaml
generation: {max_new_tokens: 4}
output: {dir: out, formats: [markdown, html, pdf]}
models:
  - {id: llama, name: Tiny Llama, source: {type: local, path: llama}}
"""
    )
    assert reportgen("build", "study.yaml", cwd=tmp_path).returncode == 0
    make_tiny_llama(tmp_path / "llama", seed=11)  # retrained: the report gets its retraining chart
    result = reportgen("build", "study.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    readme = (tmp_path / "out" / "README.md").read_text()
    caption = "sign-flip permutation test otherwise, p &lt; 0.05).*"  # Markdown: the entity GitHub shows as <
    assert caption in readme and "&amp;lt;" not in readme
    html = (tmp_path / "out" / "report.html").read_text()
    assert "sign-flip permutation test otherwise, p &lt; 0.05).</figcaption>" in html and "&amp;lt;" not in html
    pdf = subprocess.run(["pdftotext", str(tmp_path / "out" / "report.pdf"), "-"], capture_output=True, text=True, check=True)
    text = " ".join(pdf.stdout.split())
    assert "permutation test otherwise, p < 0.05)." in text and "&lt;" not in text
