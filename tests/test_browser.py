"""The HTML report in real headless Chromium (Playwright): charts render, nothing leaves the folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from reportgen.study.config import load_config

ROOT = Path(__file__).parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (make test installs it)"),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def open_report(browser, html: Path, width: int | None = None):
    """Open a report page (``width``: the viewport's, from the start); record console errors, failed requests and
    requests leaving its folder."""
    folder = html.parent.resolve()
    page = browser.new_page(**({"viewport": {"width": width, "height": 900}} if width else {}))
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"a script opened a dialog: {d.message}"), d.dismiss()))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))

    def check_request(request):
        url = urlparse(request.url)
        if url.scheme == "data" or url.scheme == "about":
            return
        if url.scheme != "file" or not Path(unquote(url.path)).resolve().is_relative_to(folder):
            problems.append(f"request outside the report folder: {request.url}")

    page.on("request", check_request)
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(("file:", "data:")) else route.continue_())
    page.goto(html.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, problems


def assert_charts_drawn_and_links_resolve(page) -> int:
    charts = page.locator(".plotly-graph-div")
    count = charts.count()
    for index in range(count):
        charts.nth(index).locator(".main-svg").first.wait_for(timeout=15000)
    hrefs = page.eval_on_selector_all("a[href^='#']", "els => els.map(e => e.getAttribute('href'))")
    assert hrefs, "no table-of-contents links"
    for href in hrefs:
        target = href[1:]
        assert page.locator(f"[id='{target}']").count() == 1, f"link {href} does not resolve"
    return count


def test_assignment_report_in_chromium(browser, tmp_path: Path):
    from reportgen.report.assemble import render_report

    render_report(load_config(ROOT / "configs" / "assignment.yaml"), out_dir=tmp_path, formats=["html"])
    page, problems = open_report(browser, tmp_path / "report.html")
    assert assert_charts_drawn_and_links_resolve(page) >= 1
    page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)
    assert problems == []


def test_a_cdn_script_would_be_caught(browser, tmp_path: Path):
    """The check above is not vacuous: a page that loads plotly.js from a CDN fails it."""
    html = tmp_path / "report.html"
    html.write_text('<html><head><script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script></head><body></body></html>')
    page, problems = open_report(browser, html)
    assert any("outside the report folder" in p for p in problems)


def test_report_with_results_in_chromium(browser, tmp_path: Path):
    """A report with every results chart, hostile model outputs included: all charts draw, no console
    error, no request leaves the folder, the samples open."""
    from test_sections import MANIFEST, make_study, old_lora_outputs

    from reportgen.report.assemble import render_report

    study, tables, deltas = make_study(tmp_path, old_lora=old_lora_outputs(), samples="all")
    render_report(study, out_dir=tmp_path / "report", formats=["html"], tables=tables, deltas=deltas, manifest=MANIFEST)
    page, problems = open_report(browser, tmp_path / "report" / "report.html")
    assert assert_charts_drawn_and_links_resolve(page) >= 5
    details = page.locator("main details")
    assert details.count() >= 1
    first = details.first
    assert first.evaluate("el => el.open") is False
    body = first.locator(":scope > :not(summary)").first
    assert not body.is_visible()  # closed: its answer is hidden
    first.locator("summary").click()
    assert first.evaluate("el => el.open") is True and body.is_visible()  # the click opened it
    assert problems == []  # includes: no alert() from a hostile output ever ran


# A phone's view of the charts (laid out at the phone's width, none cut): tests/test_reader.py
