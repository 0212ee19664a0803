"""The "pdf" format, report.pdf: WeasyPrint prints an HTML variant of the report (static SVG charts, print CSS).

The printing itself, and what WeasyPrint may fetch while it prints (files inside the report folder and
``data:`` URIs, nothing else), is :mod:`reportgen.report.printer`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from reportgen.errors import RenderError
from reportgen.report.formats import FORMATS, Format, FormatInput, FormatOutput
from reportgen.report.printer import PrintResult, ReportFolderFetcher, pdf_css, print_pdf, start_printer

__all__ = ["PdfFormat", "ReportFolderFetcher", "longest_text", "pdf_css", "render_pdf"]

log = logging.getLogger(__name__)


def render_pdf(
    html: str,
    folder: Path,
    pending: Mapping[str, bytes] | None = None,
    *,
    timeout_s: float | None = None,
    suspect: str = "",
    page_size: str = "A4",
) -> tuple[bytes, PrintResult]:
    """Print ``html`` to PDF bytes; relative URLs resolve inside ``folder`` (from ``pending`` first).

    The PDF is tagged (PDF/UA-1: a structure tree, the document's language and title) so that screen
    readers and reflowing viewers can read it; ``page_size`` (``output.page_size``) overrides the
    stylesheet's A4. WeasyPrint runs in the printer process (``report.printer``).

    Watchdog: when the layout has not finished after ``timeout_s`` seconds (``output.pdf_timeout_s``) the
    printer is killed and the render stops with a RenderError naming the phase and ``suspect`` (the likely
    cause, e.g. the longest text field).
    """
    try:
        printed = print_pdf(html, folder, pending, timeout_s=timeout_s, page_size=page_size)
    except TimeoutError:
        likely = f"; the likely cause is {suspect}" if suspect else ""
        raise RenderError(
            f"the PDF phase (WeasyPrint layout and write_pdf) did not finish within {timeout_s:g} s (output.pdf_timeout_s)"
            f"{likely}. Fix: shorten that text, render without the PDF (--format html), or raise output.pdf_timeout_s"
        ) from None
    if printed.refused:
        log.warning(
            "the PDF asked for %d URL(s) outside the report folder; refused: %s",
            len(printed.refused),
            ", ".join(printed.refused[:5]),
        )
    return printed.pdf, printed


def longest_text(study) -> str:
    """Where the study's longest free text is (a model card field, a name, the title), and its length."""
    best: tuple[int, str] = (0, "")
    candidates = [("title", getattr(study, "title", None))]
    for index, model in enumerate(getattr(study, "models", ())):
        candidates.append((f"models[{index}].name", model.name))
        for name, value in model.card:
            values = value if isinstance(value, tuple) else (value,)
            for item in values:
                text = item if isinstance(item, str) else getattr(item, "title", None)  # a Link: its title
                candidates.append((f"models[{index}].card.{name}", text))
    for where, text in candidates:
        if isinstance(text, str) and len(text) > best[0]:
            best = (len(text), where)
    return f"{best[1]} ({best[0]:,} characters)" if best[1] else ""


class PdfFormat(Format):
    """report.pdf, printed from the HTML page of the "pdf" target (static SVG charts, print CSS)."""

    name = "pdf"
    file_name = "report.pdf"
    template_suffixes = (".md.j2", ".html.j2", ".css")
    runs_apart = True  # laid out by the printer process while the other formats render

    def prepare(self) -> None:
        start_printer()  # WeasyPrint loads in the printer process while the rest of the report is made

    def render(self, job: FormatInput) -> FormatOutput:
        from reportgen.report.formats.html import html_page
        from reportgen.report.markdown import markdown_to_html

        page = html_page(job.env, job.context.variables(), markdown_to_html(job.body))
        study = job.study
        timeout = study.output.pdf_timeout_s if study is not None else None
        suspect = longest_text(study) if study is not None else ""
        size = study.output.page_size if study is not None else "A4"
        pdf, printed = render_pdf(page, job.folder, pending=job.pending, timeout_s=timeout, suspect=suspect, page_size=size)
        return FormatOutput({self.file_name: pdf}, printed.requested, printed.refused)


FORMATS.register(PdfFormat.name, PdfFormat())
