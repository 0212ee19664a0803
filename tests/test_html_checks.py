"""The HTML reports (the assignment's, one rendered by the session from a stored run of tiny models through the real
CLI, and one with every results section and hostile outputs) as their
readers and the standards see them: the Nu HTML Checker reports no error, axe-core no serious or critical
violation, and at 390 px (a phone) and 1280 px nothing overflows the page sideways; tables carry captions
and charts are figures with captions.

The checkers come from npm (`make test` installs vnu-jar and axe-core under .cache/node) and Java from
Debian; Chromium through Playwright.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reportgen.study.config import load_config
from test_browser import CHROMIUM, browser, open_report  # noqa: F401 (browser: the module's fixture)

ROOT = Path(__file__).parent.parent
NODE = ROOT / ".cache" / "node" / "node_modules"
VNU = NODE / "vnu-jar" / "build" / "dist" / "vnu.jar"
AXE = NODE / "axe-core" / "axe.min.js"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (make test installs it)"),
]


@pytest.fixture(scope="module")
def reports(tmp_path_factory, stored_run_report) -> dict[str, Path]:
    from test_sections import MANIFEST, make_study, old_lora_outputs

    from reportgen.report.assemble import render_report

    folder = tmp_path_factory.mktemp("html-checks")
    render_report(load_config(ROOT / "configs" / "assignment.yaml"), out_dir=folder / "assignment", formats=["html"])
    study, tables, deltas = make_study(folder / "results", old_lora=old_lora_outputs(), samples="all")
    render_report(study, out_dir=folder / "results" / "report", formats=["html"], tables=tables, deltas=deltas, manifest=MANIFEST)
    return {
        "assignment": folder / "assignment" / "report.html",
        "results": folder / "results" / "report" / "report.html",
        "stored-run": stored_run_report,  # today's code and templates over a stored run (conftest.py)
    }


def nu_check(html: Path) -> tuple[int, list[str]]:
    """The Nu HTML Checker's exit status and error messages for ``html``: it must have run (an exit status of 0
    or 1 and its JSON report on stderr), so a checker that failed to start or printed nothing is a failure."""
    if shutil.which("java") is None or not VNU.exists():
        pytest.skip("the Nu HTML Checker needs Java (default-jre-headless) and npm vnu-jar (make test installs both)")
    done = subprocess.run(
        ["java", "-jar", str(VNU), "--errors-only", "--format", "json", str(html)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), f"the checker did not run: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    messages = json.loads(done.stderr)["messages"]  # its report: {"messages": []} when there is nothing to say
    errors = [f"line {m.get('lastLine')}: {m.get('message')}" for m in messages if m.get("type") == "error"]
    assert (done.returncode == 1) == bool(errors), (done.returncode, errors)  # exit 1 exactly when it found errors
    return done.returncode, errors


@pytest.mark.parametrize("name", ["assignment", "results", "stored-run"])
def test_nu_html_checker_finds_no_error(reports, name):
    returncode, errors = nu_check(reports[name])
    assert errors == [], "\n".join(errors[:20])
    assert returncode == 0


def test_nu_html_checker_finds_an_error_when_there_is_one(tmp_path):
    """The check above can fail: a page with a stray end tag and a table cell outside a table is reported."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html lang="en"><head><title>t</title></head><body><p>a</span><td>b</td></body></html>')
    returncode, errors = nu_check(page)
    assert returncode == 1 and len(errors) >= 2, errors
    assert any("span" in e for e in errors) and any("td" in e for e in errors), errors


@pytest.mark.parametrize("name", ["assignment", "results", "stored-run"])
def test_axe_finds_no_serious_violation(browser, reports, name):  # noqa: F811
    if not AXE.exists():
        pytest.skip("npm axe-core is not installed (make test installs it)")
    page, problems = open_report(browser, reports[name])
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} — {len(v['nodes'])} element(s), e.g. {v['nodes'][0]['html'][:160]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], "\n".join(serious)
    assert problems == []


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("name", ["assignment", "results", "stored-run"])
def test_nothing_overflows_the_page(browser, reports, name, width, tmp_path):  # noqa: F811
    page, problems = open_report(browser, reports[name], width=width)  # laid out at that width from the start
    page.wait_for_function(  # every chart drawn before anything is measured: no fixed wait
        "[...document.querySelectorAll('.plotly-graph-div')].every(graph => graph.querySelector('.main-svg'))"
    )
    overflow = page.evaluate(
        """() => {
        const limit = document.documentElement.clientWidth + 1;
        const inScroller = (el) => { for (let p = el.parentElement; p; p = p.parentElement) {
            const s = getComputedStyle(p).overflowX; if (s === 'auto' || s === 'scroll' || s === 'hidden') return true; }
          return false; };
        const out = [];
        for (const el of document.querySelectorAll('main *')) {
          const r = el.getBoundingClientRect();
          if (r.width && r.right > limit && !inScroller(el)) out.push(el.tagName + '.' + el.className + ' right=' + Math.round(r.right));
        }
        return {page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth, out: out.slice(0, 10)};
    }"""
    )
    page.screenshot(path=str(tmp_path / f"{name}-{width}.png"), full_page=False)
    assert overflow["page"] <= overflow["view"], overflow
    assert overflow["out"] == [], overflow
    assert problems == []


@pytest.mark.parametrize("name", ["assignment", "results", "stored-run"])
def test_tables_have_captions_and_charts_are_figures(reports, name):
    html = reports[name].read_text(encoding="utf-8")
    main = html.split('<main class="report">', 1)[1]
    tables = re.findall(r"<table[^>]*>\n(?:<caption>)?", main)
    named = [t for t in tables if "<caption>" in t or "aria-labelledby=" in t]
    assert tables and len(named) >= 0.8 * len(tables), (
        f"{len(named)} of {len(tables)} tables have a caption or a heading naming them"
    )
    if name == "results":
        assert main.count("<caption>") >= 5
    figures = main.count('<figure class="report-figure"')
    assert figures >= 1 and figures == main.count("<figcaption") == main.count('class="plotly-graph-div"')
