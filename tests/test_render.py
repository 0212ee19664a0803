"""Rendering: the assignment study as README / HTML / PDF, golden file, escaping, templates, atomic writes.

Refresh the golden README after an intended change with ``python tests/update_golden.py`` and review the
diff: no test writes the golden file, and its key facts are checked against counts made by hand.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import jinja2.meta
import jinja2.nodes
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from reportgen.study.config import load_config  # noqa: E402
from reportgen.errors import ClaimError, RenderError  # noqa: E402
from reportgen.report.assemble import render_in_memory, render_report, replace_between_markers  # noqa: E402
from reportgen.report import context as ctx  # noqa: E402
from reportgen.report.charts import static_charts_available  # noqa: E402
from reportgen.report.formats.html import EXPLORER_DATA_KEYS, EXPLORER_VARIABLES, WRAPPER_VARIABLES  # noqa: E402
from reportgen.report.formats.summary import SUMMARY_VARIABLES, SUMMARY_VIEW_ATTRIBUTES  # noqa: E402
from reportgen.report.markdown import insert_toc, markdown_to_html, md_cell, md_code, md_escape, md_link, slugify  # noqa: E402
from reportgen.report.formats.pdf import ReportFolderFetcher, render_pdf  # noqa: E402
from reportgen.report.templates import FILTERS, default_templates_dir, make_environment  # noqa: E402
from reportgen.util.atomic import write_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = ROOT / "configs" / "assignment.yaml"
GOLDEN = ROOT / "tests" / "golden" / "assignment_README.md"
FALSE_CLAIMS = ROOT / "tests" / "golden" / "seed_false_claims.yaml"
needs_chromium = pytest.mark.skipif(not static_charts_available(), reason="no Chrome/Chromium for kaleido's SVG export")

MODEL_NAMES = ("Llama 2 7B chat finetune App", "Securix Llama 2 Fine Tuning using QLora", "Securix Fine Tune GPT Neo")


@pytest.fixture(scope="module")
def study():
    return load_config(ASSIGNMENT)


@pytest.fixture(scope="module")
def report(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("assignment")
    written = render_report(study, out_dir=out)
    return out, written


def pdf_text(path: Path) -> tuple[str, list, int]:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    return text, reader.outline, len(reader.pages)


def outline_titles(outline) -> list[str]:
    titles = []
    for item in outline:
        if isinstance(item, list):
            titles += outline_titles(item)
        else:
            titles.append(item.title)
    return titles


# ------------------------------------------------------------------------------------------------
# the assignment report


def test_writes_every_format(report):
    out, written = report
    names = sorted(p.relative_to(out).as_posix() for p in written)
    expected = ["README.md", "report.html", "report.pdf"]  # report.html works alone: no plotly.min.js beside it
    if static_charts_available():
        expected.append("charts/spec-size.svg")
    assert names == sorted(expected)
    assert not [p for p in out.rglob("*.tmp")]  # no temp files left behind


@needs_chromium
def test_readme_matches_golden(report):
    out, _ = report
    text = (out / "README.md").read_text(encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), "README changed: review, then run tests/update_golden.py"


# Facts of the assignment's three models counted by hand from their config.json files, not by reportgen:
# Llama 2 7B (vocab 32,000, hidden 4,096, 32 layers, MLP 11,008, untied head): embeddings and head
# 2 x 32,000 x 4,096 = 262,144,000; per layer attention 4 x 4,096^2 = 67,108,864, MLP 3 x 4,096 x 11,008 =
# 135,266,304, two RMSNorms 8,192; 32 layers = 6,476,267,520; final norm 4,096.
LLAMA2_7B = 262_144_000 + 32 * (67_108_864 + 135_266_304 + 8_192) + 4_096
# GPT-2 124M (vocab 50,257, 1,024 positions, width 768, 12 layers, tied head): wte 38,597,376, wpe 786,432;
# per layer two LayerNorms 3,072, c_attn 768 x 2,304 + 2,304, c_proj 768^2 + 768, c_fc 768 x 3,072 + 3,072,
# mlp c_proj 3,072 x 768 + 768; final LayerNorm 1,536.
GPT2_124M = 50_257 * 768 + 1_024 * 768 + 12 * (3_072 + 1_771_776 + 590_592 + 2_362_368 + 2_360_064) + 1_536
# LoRA r = 64 on q_proj and v_proj (4,096 -> 4,096) in each of 32 layers: A (64 x 4,096) + B (4,096 x 64).
QLORA_ADAPTER = 32 * 2 * 64 * (4_096 + 4_096)


def test_golden_readme_states_the_facts_counted_by_hand():
    """The golden file is checked on its own against hand counts, so regenerating it cannot bless a wrong one."""
    assert (LLAMA2_7B, GPT2_124M, QLORA_ADAPTER) == (6_738_415_616, 124_439_808, 33_554_432)
    golden = GOLDEN.read_text(encoding="utf-8")
    lines = golden.splitlines()
    assert f"| Parameters | {LLAMA2_7B:,}<br>(6.74 B) | {LLAMA2_7B:,}<br>(6.74 B) | {GPT2_124M:,}<br>(124.4 M) |" in lines
    assert "| Vocabulary (tokens) | 32,000 | 32,000 | 50,257 |" in lines
    assert f"| Adapter | — | LoRA (r = 64, alpha = 16), {QLORA_ADAPTER:,} trainable (0.50%) | — |" in lines
    assert f"{QLORA_ADAPTER / LLAMA2_7B:.2%}" == "0.50%"
    assert "| Family | Llama | Llama | GPT-2 |" in lines
    assert (
        "- Llama 2 7B chat finetune App has the longest context, 4,096 tokens: 2× that of Securix Llama 2 Fine Tuning "
        "using QLora (2,048); 4× that of Securix Fine Tune GPT Neo (1,024)." in lines
    )
    assert "Text2Text Generation" not in golden and "unknown term" not in golden.lower()


def test_readme_structure_like_the_seed(report):
    text = (report[0] / "README.md").read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [  # the answer first: the glance table under the verdict, then the contents
        "## Specifications at a glance",
        "## Table of contents",
        "## Introduction",
        "## Models",
        "## Comparative analysis",
        "## Conclusion",
        "## Glossary",
        "## Deep details",
    ]
    # the seed's own table-of-contents anchors still resolve
    for anchor in (
        "#model-1-llama-2-7b-chat-finetune-app",
        "#model-2-securix-llama-2-fine-tuning-using-qlora",
        "#model-3-securix-fine-tune-gpt-neo",
        "#comparative-analysis",
        "#conclusion",
        "#introduction",
    ):
        assert f"]({anchor})" in text
    assert "| Parameters | 6,738,415,616<br>(6.74 B) | 6,738,415,616<br>(6.74 B) | 124,439,808<br>(124.4 M) |" in text
    assert '"Authorization": "Bearer " + os.environ["HF_TOKEN"]' in text  # the token is never written out
    assert "https://colab.research.google.com/drive/1wAQ8Kg_0NXH1sChfq_ZF6nrZJAYRYisp?usp=sharing" in text
    assert "| 4-bit quantization type (`bnb_4bit_quant_type`) | `nf4` |" in text
    assert "| Trainable parameters | 33,554,432 (33.55 M) |" in text


def test_toc_links_resolve_in_the_html(report):
    out, _ = report
    readme = (out / "README.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'<h[1-6] id="([^"]+)"', html))
    links = re.findall(r"\]\(#([^)]+)\)", readme)
    assert len(links) >= 15
    assert set(links) <= ids


def test_generated_text_has_none_of_the_seeds_errors(report):
    out, _ = report
    readme = (out / "README.md").read_text(encoding="utf-8")
    pdf, _, _ = pdf_text(out / "report.pdf")
    for text in (readme, (out / "report.html").read_text(encoding="utf-8"), " ".join(pdf.split())):
        lowered = text.lower()
        assert "lower maximum position embedding" not in lowered
        assert "smaller vocabulary" not in lowered
        assert "not a widely recognized term" not in lowered
        assert "not a standard acronym" not in lowered
        assert "family | gpt-neo" not in lowered
    # "GPT Neo" appears only as the model's display name (and in the warning that flags it)
    for line in readme.splitlines():
        if "GPT-Neo" in line and "GPT Neo" not in line and "Kaggle" not in line and "neo-for-stable" not in line:
            pytest.fail(f"GPT-Neo stated outside the name and its warning: {line}")
    assert "Family | Llama | Llama | GPT-2 |" in readme
    assert "the name says “GPT-Neo”, but config.json describes a GPT-2 model" in readme
    assert readme.count("its pipeline tag should be `text-generation`") == 3  # once each, under Consistency checks
    assert readme.count("listed under [Consistency checks](#consistency-checks)") == 3  # each model's card points there
    assert "Quantized LoRA (Dettmers et al., 2023)" in readme and "tensor library by Georgi Gerganov" in readme


def test_pdf_text_outline_and_pages(report):
    text, outline, pages = pdf_text(report[0] / "report.pdf")
    flat = " ".join(text.split())
    for name in MODEL_NAMES:
        assert name in flat
    for number in ("6,738,415,616", "124,439,808", "33,554,432", "50,257"):
        assert number in flat
    for title in (
        "Table of contents",
        "Introduction",
        "Specifications at a glance",
        "Comparative analysis",
        "Consistency checks",
        "Checked claims",
        "Conclusion",
        "Glossary",
        "Deep details",
    ):
        assert title in flat
    assert f"Page 1 of {pages}" in flat and f"Page {pages} of {pages}" in flat
    titles = outline_titles(outline)
    assert titles[0] == "Comparative Study of Language Models"
    assert "Model 3: Securix Fine Tune GPT Neo" in titles and "Checked claims" in titles
    assert not any(t.startswith("Overview of model") for t in titles)  # h4 stays out of the bookmarks


def test_pdf_pages_are_a4_and_tables_fit(report):
    from pypdf import PdfReader

    reader = PdfReader(str(report[0] / "report.pdf"))
    for page in reader.pages:
        width, height = float(page.mediabox.width), float(page.mediabox.height)
        assert (round(width), round(height)) == (595, 842)


def test_rerender_is_byte_identical(study, report, tmp_path):
    out, _ = report
    render_report(study, out_dir=tmp_path)
    for name in ("README.md", "report.html", "report.pdf"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    if static_charts_available():
        assert (tmp_path / "charts/spec-size.svg").read_bytes() == (out / "charts/spec-size.svg").read_bytes()


def test_html_is_offline_and_deterministic(report):
    out, _ = report
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'src="plotly.min.js"' not in html and len(html) > 1_000_000  # plotly.js inline: one file
    assert 'id="chart-spec-size"' in html
    bundle = max(re.findall(r"<script[^>]*>(.*?)</script>", html, re.S), key=len)  # plotly.js names its CDN (geo maps)
    assert "cdn" not in html.replace(bundle, "").lower()
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?:', html)
    assert "<details>" in html and "Raw config.json" in html
    assert not (out / "plotly.min.js").exists()


@needs_chromium
def test_svg_chart_is_deterministic_and_referenced(report):
    out, _ = report
    svg = (out / "charts" / "spec-size.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "Parameters" in svg
    assert "![Parameters and weight memory per model (log scale)](charts/spec-size.svg)" in (out / "README.md").read_text()


def test_two_file_html(study, tmp_path):
    """The small form: report.html loads the plotly.min.js written beside it."""
    written = render_report(study, out_dir=tmp_path, formats=["html"], single_file=False)
    assert sorted(p.name for p in written) == ["plotly.min.js", "report.html"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<script src="plotly.min.js" charset="utf-8"></script>' in html and len(html) < 200_000
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000


# ------------------------------------------------------------------------------------------------
# templates


def test_default_templates_dir():
    folder = default_templates_dir()
    assert (folder / "report.md.j2").is_file() and (folder / "report.html.j2").is_file()


def test_template_override_one_block(study, tmp_path):
    user = tmp_path / "templates"
    user.mkdir()
    (user / "report.md.j2").write_text(
        '{% extends "default:report.md.j2" %}\n'
        "{% block conclusion %}\n## Conclusion\n\nOur own closing words for {{ title }}.\n\n{% endblock %}\n"
    )
    render_report(study, out_dir=tmp_path / "out", formats=["markdown", "html"], templates_dir=user)
    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "Our own closing words for Comparative Study of Language Models." in readme
    assert "Smallest to run" not in readme  # the default block is replaced
    assert "## Glossary" in readme and "## Deep details" in readme and "- [Conclusion](#conclusion)" in readme
    assert "Our own closing words" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_template_error_names_file_and_line_and_keeps_the_old_report(study, report, tmp_path):
    out = tmp_path / "out"
    render_report(study, out_dir=out, formats=["markdown"])
    before = (out / "README.md").read_bytes()
    user = tmp_path / "templates"
    user.mkdir()
    (user / "report.md.j2").write_text(
        '{% extends "default:report.md.j2" %}\n{% block glossary %}\n{{ no_such_key }}\n{% endblock %}\n'
    )
    with pytest.raises(RenderError) as err:
        render_report(study, out_dir=out, formats=["markdown"], templates_dir=user)
    assert f"{user / 'report.md.j2'}:3" in err.value.format_message() and "no_such_key" in err.value.format_message()
    assert (out / "README.md").read_bytes() == before


def test_missing_templates_dir(study, tmp_path):
    with pytest.raises(RenderError, match="no such folder"):
        render_report(study, out_dir=tmp_path, templates_dir=tmp_path / "nope")


def _template_names() -> list[str]:
    return sorted(p.name for p in default_templates_dir().glob("*.j2"))


def _view_classes():
    return (
        ctx.ReportContext,
        ctx.ModelView,
        ctx.Table,
        ctx.ChartView,
        ctx.GlossaryItem,
        ctx.VerdictLine,
        ctx.AnalysisGroup,
        ctx.SampleView,
        ctx.SampleOutput,
        ctx.RetrainingView,
        ctx.JudgedView,
        ctx.CodeView,
    )


def test_every_context_field_is_documented():
    for cls in _view_classes():
        documented = ctx.documented_fields(cls)
        fields = [f.name for f in dataclasses.fields(cls)]
        missing = [f for f in fields if f not in documented]
        assert not missing, f"{cls.__name__}: fields without a doc line: {missing}"
        stale = [d for d in documented if d not in fields]
        assert not stale, f"{cls.__name__}: documented but not fields: {stale}"


def test_templates_use_only_documented_keys():
    env = make_environment()
    top_level = set(ctx.documented_fields(ctx.ReportContext)) | set(WRAPPER_VARIABLES) | set(SUMMARY_VARIABLES)
    top_level |= set(EXPLORER_VARIABLES)
    attributes = set(SUMMARY_VIEW_ATTRIBUTES) | set(EXPLORER_DATA_KEYS)
    for cls in _view_classes():
        attributes |= set(ctx.documented_fields(cls))
    attributes |= {"text", "numbers", "topic"}  # analysis.Statement
    for name in _template_names():
        source = env.loader.get_source(env, name)[0]
        ast = env.parse(source)
        imported = {node.target for node in ast.find_all(jinja2.nodes.Import)}
        undeclared = jinja2.meta.find_undeclared_variables(ast) - imported  # blocks see top-level imports
        assert undeclared <= top_level, f"{name} uses undocumented variables: {sorted(undeclared - top_level)}"
        used = {
            node.attr
            for node in ast.find_all(jinja2.nodes.Getattr)
            if not (isinstance(node.node, jinja2.nodes.Name) and node.node.name in ("loop", "self"))  # self.BLOCK()
        }
        macros_module = {
            "table",
            "bullets",
            "chart",
            "warning",
            "captioned",
            "charts_of",
            "legend",
            "html_block",
        }  # `m.table(...)`: the imported macros
        unknown = used - attributes - macros_module
        assert not unknown, f"{name} reads undocumented attributes: {sorted(unknown)}"
        filters = {node.name for node in ast.find_all(jinja2.nodes.Filter)}
        assert filters <= set(FILTERS) | set(jinja2.filters.FILTERS), name


def test_extra_context_sets_documented_fields_only(study, tmp_path):
    render_report(study, out_dir=tmp_path, formats=["markdown"], extra_context={"conclusion": ["Extra words."]})
    assert "Extra words." in (tmp_path / "README.md").read_text()
    with pytest.raises(RenderError, match="unknown report field"):
        render_report(study, out_dir=tmp_path, formats=["markdown"], extra_context={"nonsense": 1})


# ------------------------------------------------------------------------------------------------
# untrusted text

HOSTILE = "<script>alert(1)</script> | a | b | ![x](file:///etc/passwd) <img src=file:///etc/passwd> [click](javascript:alert(1)) `tick` # not a heading"


def hostile_study(tmp_path: Path):
    folder = tmp_path / "cfg"
    folder.mkdir()
    for name, ctx_len in (("a", 256), ("b", 512)):
        (folder / f"{name}.json").write_text(
            json.dumps(
                {
                    "architectures": ["GPT2LMHeadModel"],
                    "model_type": "gpt2",
                    "n_embd": 64,
                    "n_head": 4,
                    "n_layer": 2,
                    "n_positions": ctx_len,
                    "vocab_size": 500,
                    "torch_dtype": "float32",
                    "bos_token_id": 0,
                    "eos_token_id": 0,
                }
            )
        )
    text = json.dumps(HOSTILE)
    body = f"""
title: {text}
introduction: {text}
conclusion: {text}
models:
  - id: a
    name: {json.dumps("Evil <b>model</b> | x |")}
    config: cfg/a.json
    card:
      description: {text}
      application: {text}
      use: {text}
      limitation: {json.dumps(HOSTILE + chr(10) + "- second line" + chr(10) + chr(10) + "| c | d |")}
      library: {text}
      pipeline_tag: {text}
      tags: [{text}]
      training_procedure: {text}
      notes: [{text}]
      links:
        - title: {text}
          url: "javascript:alert(1)"
        - title: local file
          url: "file:///etc/passwd"
  - id: b
    name: Plain model
    config: cfg/b.json
claims:
  - text: {text}
    check: b.context_length > a.context_length
glossary:
  - term: {text}
    definition: {text}
"""
    path = tmp_path / "hostile.yaml"
    path.write_text(body, encoding="utf-8")
    return load_config(path)


def assert_no_html_injection(html: str, tables: int | None = None) -> None:
    """``tables``: how many tables the template wrote (default: one per table-wrap, as in the HTML)."""
    assert "<script>alert" not in html
    assert not re.search(r"<img[^>]+src=\"?file:", html)
    assert 'href="javascript:' not in html and 'href="file:' not in html
    assert "<b>model</b>" not in html
    # every table is one of ours: hostile pipes made none
    assert len(re.findall(r"<table[ >]", html)) == (html.count('class="table-wrap') if tables is None else tables)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def assert_markdown_is_inert(markdown: str) -> None:
    """Parse as GitHub would: raw HTML only from our templates, links only http(s)/#, images only our charts."""
    from reportgen.report.markdown import _parser

    ours = re.compile(
        r'^(<div class="(table-wrap[^"]*|chart)"( data-chart="[a-z0-9-]+")?>(</div>)?|</div>|<details>|</details>|<summary>Raw config.json</summary>|<summary>The checks as written in the study config</summary>|<!-- reportgen:\w+ -->|<br>)\s*$'
    )
    for token in _parser().parse(markdown):
        if token.type == "html_block":
            for line in token.content.strip().splitlines():
                assert ours.match(line), line
        for child in token.children or []:
            if child.type == "html_inline":
                assert child.content == "<br>", child.content
            if child.type == "link_open":
                assert child.attrGet("href").startswith(("https://", "http://", "#")), child.attrGet("href")
            if child.type == "image":
                assert child.attrGet("src").startswith("charts/"), child.attrGet("src")


def test_hostile_text_is_escaped_everywhere(tmp_path):
    study = hostile_study(tmp_path)
    rendered = render_in_memory(study, out_dir=tmp_path / "out")
    readme = rendered.files["README.md"].decode()
    assert_markdown_is_inert(readme)
    assert "\n# " not in readme.split("\n", 1)[1]  # one h1 only: the title
    # a multi-line card field (author Markdown: a paragraph, a list, a paragraph) stays one list item
    assert "`tick` # not a heading; second line; \\| c \\| d \\|\n" in readme
    assert_no_html_injection(markdown_to_html(readme), tables=len(re.findall(r"^\| (?:---|--:)", readme, re.M)))
    html = rendered.files["report.html"].decode()
    assert_no_html_injection(html.split('<main class="report">', 1)[1].split("</main>")[0])
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # the chart label is escaped for plotly (which reads HTML tags in labels)
    assert '"y":["Evil\\u003cbr\\u003e&lt;b&gt;model&lt;\\u002fb&gt;' in html  # names across, a row per model

    # the PDF shows the text literally and WeasyPrint fetched nothing outside the report folder
    assert rendered.refused == []
    assert all(url.startswith((Path(tmp_path / "out").resolve().as_uri() + "/charts/", "data:")) for url in rendered.fetched)
    path = tmp_path / "hostile.pdf"
    path.write_bytes(rendered.files["report.pdf"])
    text = " ".join(pdf_text(path)[0].split())
    assert "<script>alert(1)</script>" in text and "![x](file:///etc/passwd)" in text


def test_weasyprint_fetcher_refuses_everything_outside_the_folder(tmp_path):
    (tmp_path / "inside.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    html = (
        '<html><body><img src="file:///etc/passwd"><img src="http://127.0.0.1:9/x.png">'
        '<img src="../outside.svg"><img src="inside.svg"><img src="pending.svg">'
        '<link rel="stylesheet" href="https://example.com/x.css">'
        '<img src="data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22/%3E"></body></html>'
    )
    pending = {"pending.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="5" height="5"/>'}
    pdf, fetcher = render_pdf(html, tmp_path, pending)
    assert pdf.startswith(b"%PDF")
    base = tmp_path.resolve().as_uri()
    assert sorted(fetcher.refused) == sorted(
        [
            "file:///etc/passwd",
            "http://127.0.0.1:9/x.png",
            tmp_path.parent.resolve().as_uri() + "/outside.svg",
            "https://example.com/x.css",
        ]
    )
    served = [u for u in fetcher.requested if u not in fetcher.refused]
    assert sorted(served) == sorted(
        [f"{base}/inside.svg", f"{base}/pending.svg", "data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22/%3E"]
    )
    assert ReportFolderFetcher(tmp_path).resolve(f"{base}/../../etc/passwd") is None


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "| a | b |\n|---|---|\n| c | d |",
        "![x](file:///etc/passwd)",
        "[x](javascript:alert(1))",
        "<https://example.com>",
        "&lt;script&gt;",
        "# h1\n## h2",
        "- a\n* b\n+ c\n1. d\n2) e",
        "    indented code",
        "```\nfence\n```",
        "> quote",
        "***",
        "a\n===",
        "~~strike~~",
        "<!-- comment -->",
        "**bold** _em_ __strong__",
        "line  \nbreak\\",
        "<details open>x</details>",
    ],
)
def test_md_escape_leaves_only_a_paragraph(text):
    html = markdown_to_html(md_escape(text))
    assert re.fullmatch(r"(<p>[^<]*(<br />\n)?[^<]*</p>\n)*", html), html
    assert "<script" not in html and "<img" not in html and "<a " not in html


def test_md_cell_keeps_one_row():
    cell = md_cell("a | b\nc <br> d")
    assert cell == "a \\| b<br>c &lt;br&gt; d"
    html = markdown_to_html(f"| h |\n| --- |\n| {cell} |\n")
    assert html.count("<td>") == 1


def test_md_code_fence_is_longer_than_any_backtick_run():
    block = md_code("a ``` b\n````\nc", "python")
    assert block.startswith("`````python\n") and block.endswith("\n`````")
    assert markdown_to_html(block).count("<pre>") == 1


def test_md_link_schemes():
    assert md_link("https://x.org/a b(c)", "T") == "[T](https://x.org/a%20b%28c%29)"
    assert md_link("javascript:alert(1)", "T") == "T (javascript:alert(1))"
    assert "](" not in md_link("file:///etc/passwd", "x")


@pytest.mark.parametrize(
    "heading, slug",
    [
        ("Model 1: Llama 2 7B chat finetune App", "model-1-llama-2-7b-chat-finetune-app"),
        ("Model 2: Securix Llama 2 Fine Tuning using QLora", "model-2-securix-llama-2-fine-tuning-using-qlora"),
        ("What's new? (v1.2)", "whats-new-v12"),
        ("A — B", "a--b"),
        ("snake_case & C++", "snake_case--c"),
        ("Überblick", "überblick"),
    ],
)
def test_slugify_matches_github(heading, slug):
    assert slugify(heading) == slug


def test_toc_deduplicates_like_github():
    md = "# T\n\n## Table of contents\n\n<!-- reportgen:toc -->\n\n## Overview\n\n### Overview\n\n## Overview\n"
    toc = insert_toc(md)
    assert "- [Overview](#overview)\n  - [Overview](#overview-1)\n- [Overview](#overview-2)" in toc
    assert 'id="overview-2"' in markdown_to_html(toc)


# ------------------------------------------------------------------------------------------------
# claims stop the render; writes are atomic; README markers


def test_false_claims_stop_the_render(tmp_path):
    study = load_config(FALSE_CLAIMS)
    with pytest.raises(ClaimError) as err:
        render_report(study, out_dir=tmp_path / "out", formats=["markdown"])
    assert "llama-2-chat.context_length = 4096, securix-gpt2.context_length = 1024" in err.value.format_message()
    assert not (tmp_path / "out").exists()


def test_write_files_refuses_escapes(tmp_path):
    with pytest.raises(RenderError, match="outside the report folder"):
        write_files(tmp_path / "out", {"../evil.txt": b"x"})
    assert write_files(tmp_path / "out", {"a/b.txt": "é"})[0].read_bytes() == "é".encode()


def test_replace_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    original = "# Project\r\n\r\nIntro  \r\n<!-- reportgen:start -->\r\nold\r\n<!-- reportgen:end -->\r\ntail\twith tab\r\n"
    readme.write_bytes(original.encode())
    replace_between_markers(readme, "new report\n")
    data = readme.read_bytes().decode()
    assert (
        data == "# Project\r\n\r\nIntro  \r\n<!-- reportgen:start -->\r\nnew report\n<!-- reportgen:end -->\r\ntail\twith tab\r\n"
    )


@pytest.mark.parametrize(
    "content, problem",
    [
        ("no markers\n", "appears 0 times"),
        ("<!-- reportgen:start -->\n<!-- reportgen:start -->\n<!-- reportgen:end -->\n", "appears 2 times"),
        ("<!-- reportgen:end -->\nx\n<!-- reportgen:start -->\n", "comes before"),
        ("<!-- reportgen:start -->\n", "<!-- reportgen:end --> appears 0 times"),
    ],
)
def test_replace_between_markers_refuses(tmp_path, content, problem):
    readme = tmp_path / "README.md"
    readme.write_text(content)
    with pytest.raises(RenderError, match=re.escape(problem)):
        replace_between_markers(readme, "new")
    assert readme.read_text() == content


def test_unknown_format(study, tmp_path):
    with pytest.raises(RenderError, match="unknown output format"):
        render_report(study, out_dir=tmp_path, formats=["docx"])


def test_timestamp_only_when_asked(tmp_path, monkeypatch):
    config = tmp_path / "cfg.json"
    config.write_text(
        json.dumps(
            {
                "architectures": ["GPT2LMHeadModel"],
                "model_type": "gpt2",
                "n_embd": 32,
                "n_head": 2,
                "n_layer": 1,
                "n_positions": 64,
                "vocab_size": 100,
                "bos_token_id": 0,
                "eos_token_id": 0,
            }
        )
    )
    path = tmp_path / "s.yaml"
    body = "title: T\nmodels:\n  - {id: a, name: A, config: cfg.json}\noutput: {timestamp: %s}\n"
    path.write_text(body % "false")
    plain = render_in_memory(load_config(path), out_dir=tmp_path / "o", formats=["markdown"]).markdown
    assert "Generated by reportgen" in plain and " on 19" not in plain
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    path.write_text(body % "true")
    stamped = render_in_memory(load_config(path), out_dir=tmp_path / "o", formats=["markdown"]).markdown
    assert "Generated by reportgen 0.1.0 on 1970-01-01T00:00:00+00:00" in stamped


def test_write_plotly_js_once(tmp_path):
    from reportgen.report.charts import write_plotly_js

    first = write_plotly_js(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert write_plotly_js(tmp_path).stat().st_mtime_ns == stamp  # identical: not rewritten
    assert first.read_bytes().startswith(b"/**") or b"plotly" in first.read_bytes()[:2000].lower()


def test_chart_trace_ids_are_stable_across_processes():
    """plotly gives traces random uids, which end up in the SVG and the HTML; ChartSet fixes them by name: two
    fresh interpreters (different hash seeds, so different random state) give the same uids."""
    probe = (
        "import json, plotly.graph_objects as go\n"
        "from reportgen.report.charts import ChartSet\n"
        "charts = ChartSet()\n"
        "charts.add('speed', go.Figure([go.Bar(x=[1], y=[2]), go.Bar(x=[1], y=[3])]), 'Speed')\n"
        "print(json.dumps([trace.uid for trace in charts['speed'].figure.data]))\n"
    )

    def uids(seed: str) -> list[str]:
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120, check=True)
        return json.loads(done.stdout)

    first, second = uids("1"), uids("2")
    assert first == second and len(set(first)) == 2 and all(first), (first, second)
