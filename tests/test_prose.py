"""The study author's prose is Markdown in every format; model output stays inert text; control characters
are shown, never emitted raw.

Checked where each format is read: the README through cmark-gfm (GitHub's own renderer, with its tag
filter), the HTML as written, the PDF's text as pdftotext extracts it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import escape as html_escape

import pytest
import yaml

from reportgen.report.assemble import render_in_memory
from reportgen.report.markdown import _parser as report_parser
from reportgen.report.prose import author_blocks, author_inline
from reportgen.stats.tables import compute_tables
from reportgen.store import Store
from reportgen.study.config import load_config
from reportgen.study.prompts import load_prompt_set
from reportgen.util.text import visible_controls
from test_sections import default_outputs, fill_store, write_study

RAW_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

SUBTITLE = "Regenerated with `make report` after every retraining: we **love** it, see [the docs](https://example.org/docs)"
INTRODUCTION = """\
# Not a heading of the report

Three models, one *prompt set*. <script>alert(1)</script> <img src=x onerror=alert(2)>

- a list item with `code`
- a [bad link](javascript:alert(3)) and an image ![secret](file:///etc/passwd) and ![remote](https://example.org/p.png)

> a quote
"""
CONTROL_OUTPUT = "before\x06middle\x17after\x7fdel\x85next\x00end"


# ------------------------------------------------------------------------------------------------
# the rewriting itself


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain words", "plain words"),
        ("we **love** it", "we **love** it"),
        ("`make report`", "`make report`"),
        ("[docs](https://example.org/a_b)", "[docs](https://example.org/a_b)"),
        ("[jump](#results)", "[jump](#results)"),
        ("[bad](javascript:alert(1))", r"\[bad\](javascript:alert(1))"),  # markdown-it refuses the link: text
        ("[bad](ftp://host/x)", "bad"),  # a link of another scheme keeps its text only
        ("![alt](https://example.org/x.png)", "[image: alt](https://example.org/x.png)"),
        ("![alt](local.png)", "alt"),
        ("<b>bold</b>", "&lt;b&gt;bold&lt;/b&gt;"),
        ("# heading", "**heading**"),
        ("- one\n- two", "one; two"),
        ("2024. was a year", r"2024\. was a year"),
        ("3 * 4 = 12", r"3 \* 4 = 12"),
        ("snake_case stays", "snake_case stays"),
        ("a\x06b", "a␆b"),
    ],
)
def test_author_inline(text, expected):
    assert author_inline(text) == expected


def test_author_blocks_keep_structure():
    blocks = author_blocks("para one\nline two\n\n- a\n- b\n  - c\n\n1. x\n2. y\n\n```py\nprint('<b>')\n```")
    assert blocks == ["para one line two", "- a\n- b\n  - c", "1. x\n2. y", "```py\nprint('<b>')\n```"]
    assert author_blocks("") == [] and author_blocks(None) == []


def test_visible_controls():
    assert visible_controls(CONTROL_OUTPUT) == "before␆middle␗after␡del\\x85next␀end"
    assert visible_controls("tab\tand\nnewline") == "tab\tand\nnewline"


# ------------------------------------------------------------------------------------------------
# in every format


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prose")
    path = write_study(folder, samples="all")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(subtitle=SUBTITLE, introduction=INTRODUCTION, conclusion="The adapter **wins**; see `results`.")
    data["models"][0]["card"] = {"description": "A *tiny* base, trained on [TinyStories](https://huggingface.co/datasets/x)."}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    outputs = default_outputs()
    outputs["lora"]["recipe"] = CONTROL_OUTPUT
    study = load_config(path)
    fill_store(folder / "results.sqlite", outputs)
    with Store(folder / "results.sqlite", create=False) as store:
        tables = compute_tables(store, study, load_prompt_set(folder / "prompts.json"), n_boot=200)
    return folder, render_in_memory(study, out_dir=folder / "report", tables=tables)


def _gfm(markdown: str) -> str:
    """HTML as GitHub renders a README: cmark-gfm with GitHub's extensions and its raw-HTML tag filter."""
    if shutil.which("cmark-gfm") is None:
        pytest.skip("cmark-gfm is not installed (make test installs the Debian package)")
    extensions = [arg for ext in ("table", "strikethrough", "autolink", "tagfilter") for arg in ("-e", ext)]
    done = subprocess.run(
        ["cmark-gfm", *extensions, "--unsafe"], input=markdown, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def _check_html(html: str) -> None:
    assert "<strong>love</strong>" in html and "<code>make report</code>" in html
    assert '<a href="https://example.org/docs">the docs</a>' in html
    assert "<em>tiny</em>" in html and '<a href="https://huggingface.co/datasets/x">TinyStories</a>' in html
    assert "<strong>wins</strong>" in html
    assert "<script>alert" not in html and "onerror" not in html.replace("onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html and 'src="file:' not in html
    assert not re.search(r"<img[^>]+src=\"(?!charts/|data:)", html), re.findall(r"<img[^>]+>", html)
    assert "<h1>Not a heading" not in html and "<strong>Not a heading of the report</strong>" in html
    assert "<li>a list item with <code>code</code></li>" in html
    assert "before␆middle␗after␡del\\x85next␀end" in html
    assert not RAW_CONTROLS.search(html), repr(RAW_CONTROLS.search(html))


def test_readme_on_github(report):
    _, rendered = report
    readme = rendered.files["README.md"].decode()
    assert not RAW_CONTROLS.search(readme)
    assert "\\*\\*love\\*\\*" not in readme and "\\`make report\\`" not in readme  # no longer escaped as untrusted text
    _check_html(_gfm(readme))
    assert len([t for t in report_parser().parse(readme) if t.type == "heading_open" and t.tag == "h1"]) == 1


def test_html_report(report):
    _, rendered = report
    html = rendered.files["report.html"].decode()
    main = html.split('<main class="report">', 1)[1].split("</main>")[0]
    # the answers are in the prompt explorer's JSON, which its script shows as text: check them as they are shown
    data = re.search(r'<script type="application/json" id="xp-data">(.*?)</script>', main, flags=re.S)
    assert data is not None and not RAW_CONTROLS.search(data.group(1))
    shown = [html_escape(t) for answers in json.loads(data.group(1))["answers"] for t in answers["t"] if t]
    _check_html(main.replace(data.group(0), "") + "\n".join(shown))


def test_pdf_text(report, tmp_path):
    _, rendered = report
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(rendered.files["report.pdf"])
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    assert "Regenerated with make report after every retraining: we love it" in flat
    assert "`make report`" not in flat and "**" not in flat
    assert "before␆middle␗after␡del\\x85next␀end" in flat
    assert not RAW_CONTROLS.search(text.replace("\x0c", ""))  # form feeds are pdftotext's page breaks
