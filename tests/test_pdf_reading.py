"""The PDF as a reader's viewer sees it: tagged (PDF/UA-1), with the study's metadata, one font family,
the configured page size, every model name and architecture unbroken in its text, and no heading left
alone at the bottom of a page."""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from reportgen.report.assemble import render_in_memory
from reportgen.specs.study import study_specs
from reportgen.study.config import load_config

ROOT = Path(__file__).parent.parent

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils (make test installs it)")


@pytest.fixture(scope="module")
def assignment():
    study = load_config(ROOT / "configs" / "assignment.yaml")
    return study.model_copy(update={"authors": ("A. Author", "B. Author"), "date": datetime.date(2026, 12, 1)})


def _pdf(study, folder: Path) -> Path:
    rendered = render_in_memory(study, out_dir=folder, formats=["pdf"])
    path = folder / "report.pdf"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rendered.files["report.pdf"])
    return path


def test_tagged_with_metadata_and_a4(assignment, tmp_path):
    reader = PdfReader(str(_pdf(assignment, tmp_path)))
    meta = reader.metadata
    assert meta["/Title"] == "Comparative Study of Language Models"
    assert meta["/Author"] == "A. Author, B. Author"
    assert meta["/Subject"].startswith("Ass1 — Classification Algorithm")
    assert all(m.id in meta["/Keywords"] for m in assignment.models)  # the default keywords: the model ids
    assert meta["/CreationDate"].startswith("D:20261201")
    root = reader.trailer["/Root"]
    assert bool(root["/MarkInfo"]["/Marked"]) and "/StructTreeRoot" in root and root["/Lang"] == "en"
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 in points


def test_letter_page_size(assignment, tmp_path):
    study = assignment.model_copy(update={"output": assignment.output.model_copy(update={"page_size": "Letter"})})
    box = PdfReader(str(_pdf(study, tmp_path))).pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (612, 792)


def test_fonts_names_and_headings(assignment, tmp_path):
    path = _pdf(assignment, tmp_path)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout.splitlines()[2:]
    families = {re.sub(r"^[A-Z]{6}\+", "", line.split()[0]) for line in fonts if line.strip()}
    assert families and all(f.startswith(("DejaVu-Sans", "DejaVuSans")) for f in families), families  # no serif footer
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    specs = study_specs(assignment)
    for model in assignment.models:
        assert model.name in flat, f"{model.name!r} is broken or hyphenated in the PDF text"
        architecture = specs[model.id].architecture
        if architecture:
            assert architecture in flat, architecture
    headings = [
        line.lstrip("#").strip()
        for line in render_in_memory(assignment, out_dir=tmp_path / "md", formats=["markdown"]).markdown.splitlines()
        if re.match(r"^#{2,4} ", line)
    ]
    for number, page in enumerate(text.split("\f"), 1):
        lines = [line.strip() for line in page.splitlines() if line.strip() and not line.strip().startswith("Page ")]
        if lines:
            assert not any(lines[-1] == h for h in headings), f"page {number} ends with the heading {lines[-1]!r}"


def _page_lines(text: str) -> list[list[str]]:
    """The non-empty lines of each page of ``pdftotext -layout`` output, the page-number footer left out."""
    return [
        [line.strip() for line in page.splitlines() if line.strip() and not re.match(r"^Page \d+ of \d+$", line.strip())]
        for page in text.split("\f")
    ]


def test_results_pdf_flow(tmp_path):
    """The results study as page text: no page starts with a table's legend (it stays with its table), no page
    ends with a heading (it stays with what follows), and the run's notes keep "3. Name" as written (it was an
    ordered list starting at 1)."""
    from html import unescape

    from test_sections import MANIFEST, make_study, old_lora_outputs

    study, tables, deltas = make_study(tmp_path / "study", old_lora=old_lora_outputs(), samples="all")
    rendered = render_in_memory(
        study, out_dir=tmp_path / "out", formats=["pdf", "markdown"], tables=tables, deltas=deltas, manifest=MANIFEST
    )
    path = tmp_path / "report.pdf"
    path.write_bytes(rendered.files["report.pdf"])
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    pages = _page_lines(text)
    assert len(pages) > 5
    html = render_in_memory(study, out_dir=tmp_path / "html", formats=["html"], tables=tables, deltas=deltas, manifest=MANIFEST)
    page_html = html.files["report.html"].decode()
    legends = [
        " ".join(unescape(re.sub(r"<[^>]+>", "", m)).split())[:24]
        for m in re.findall(r'<div class="legend">\s*<p>(.*?)</p>', page_html, flags=re.S)
    ]
    assert len(legends) >= 4
    for number, lines in enumerate(pages, 1):
        if lines:
            first = " ".join(lines[0].split())
            assert not any(first.startswith(start[:16]) for start in legends), f"page {number} starts with a legend: {first!r}"
    headings = [line.lstrip("#").strip() for line in rendered.markdown.splitlines() if re.match(r"^#{2,4} ", line)]
    for number, lines in enumerate(pages, 1):
        if lines:
            assert not any(" ".join(lines[-1].split()) == h for h in headings), (
                f"page {number} ends with the heading {lines[-1]!r}"
            )
    flat = " ".join(text.split())
    assert "3. Tiny Q4_1 <i>llama.cpp</i> | fast: llama.cpp ran with 4 threads" in flat
