"""The PDF printer process (reportgen.report.printer): WeasyPrint in a child that is started early, serves
one page at a time, passes WeasyPrint's warnings to the parent's log, and is killed when a layout outlives
its time, so the CPU it was using is given back at once."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from reportgen.errors import RenderError
from reportgen.report import printer
from reportgen.report.formats.pdf import render_pdf

PAGE = "<html lang=en><head><title>t</title></head><body><h1>Printed</h1><p>{}</p></body></html>"


def _pdf_text(pdf: bytes, tmp_path: Path) -> str:
    from pypdf import PdfReader

    path = tmp_path / "out.pdf"
    path.write_bytes(pdf)
    return " ".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)


def test_one_printer_serves_every_page_of_a_process(tmp_path):
    printer.start_printer()
    first = printer._printer
    assert first is not None
    pdf_a, _ = render_pdf(PAGE.format("first page"), tmp_path)
    pdf_b, _ = render_pdf(PAGE.format("second page"), tmp_path)
    assert printer._printer is first and first.process.poll() is None  # the same child, still serving
    assert "first page" in _pdf_text(pdf_a, tmp_path) and "second page" in _pdf_text(pdf_b, tmp_path)


def test_a_layout_past_its_time_kills_the_printer_and_the_next_page_gets_a_new_one(tmp_path):
    printer.start_printer()
    child = printer._printer
    assert child is not None
    child.wait_ready()
    heavy = PAGE.format(" ".join(["word"] * 200_000))  # seconds of layout
    started = time.monotonic()
    with pytest.raises(RenderError, match=r"did not finish within 0.2 s .*the likely cause is models\[0\]"):
        render_pdf(heavy, tmp_path, timeout_s=0.2, suspect="models[0]")
    assert time.monotonic() - started < 5  # no waiting for the layout to end
    assert child.process.poll() is not None  # killed: its CPU is free now, not when the process exits
    with pytest.raises(ProcessLookupError):
        os.kill(child.process.pid, 0)
    pdf, _ = render_pdf(PAGE.format("after the timeout"), tmp_path, timeout_s=60)
    assert printer._printer is not child and "after the timeout" in _pdf_text(pdf, tmp_path)


def test_weasyprint_warnings_reach_the_parents_log(tmp_path, caplog):
    page = PAGE.format("styled").replace("<title>t</title>", "<title>t</title><style>p { colr: red }</style>")
    with caplog.at_level(logging.WARNING, logger="weasyprint"):  # the CLI quiets third-party logs: not here
        render_pdf(page, tmp_path)
    assert any(r.name.startswith("weasyprint") and "colr" in r.getMessage() for r in caplog.records), caplog.records


def test_a_printer_that_dies_is_reported_and_replaced(tmp_path):
    printer.start_printer()
    child = printer._printer
    assert child is not None
    child.wait_ready()
    child.process.kill()
    child.process.wait()
    pdf, _ = render_pdf(PAGE.format("replaced"), tmp_path)  # a dead printer is noticed before the job is sent
    assert "replaced" in _pdf_text(pdf, tmp_path)
