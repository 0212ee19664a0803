"""The HTML report as its reader meets it, in real headless Chromium at a desktop (1280×800) and a phone
(390×844) size: the verdict and the glance table on the first screen, the contents beside the report (or
collapsed above it), tables that fit at 1280, charts no wider than a phone, identifiers broken only at
``_ . -``, and report.html copied alone into an empty folder still drawing every chart with a clean console.

The study: the synthetic results study of test_sections with five models (its three, and two more with long
names like the demo's), every prompt in the samples, the run manifest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_browser import CHROMIUM, browser, open_report  # noqa: F401 (browser: the module's fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (make test installs it)"),
]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
EXTRA_MODELS = {  # id: (name, backend, efficiency)
    "bf16": ("SmolLM2-135M-Instruct (transformers, bfloat16)", "transformers", (80.0, 0.6, 700 * 2**20, 270 * 2**20, "cpu")),
    "sampled": (
        "SmolLM2-135M-Instruct, sampled (T=0.7, top-p 0.9)",
        "transformers",
        (95.0, 0.5, 900 * 2**20, 540 * 2**20, "cpu"),
    ),
}


def five_model_study(folder: Path):
    """(study, tables, deltas): test_sections' synthetic study with two more models."""
    import test_sections as ts

    from reportgen.stats.tables import compute_tables
    from reportgen.store import Store
    from reportgen.study.config import load_config
    from reportgen.study.prompts import load_prompt_set

    path = ts.write_study(folder, samples="all")
    extra = "".join(
        f"  - id: {mid}\n    name: {name}\n    source: {{type: gguf, path: weights/tiny.gguf}}\n"
        f"    backend: {backend}\n    config: cfg/config.json\n"
        for mid, (name, backend, _) in EXTRA_MODELS.items()
    )
    text = path.read_text(encoding="utf-8")
    anchor = "    backend: llamacpp\n    config: cfg/config.json\n"
    path.write_text(text.replace(anchor, anchor + extra), encoding="utf-8")
    outputs = ts.default_outputs()
    outputs["bf16"] = dict(outputs["base"], author="A different author.")
    outputs["sampled"] = dict(outputs["lora"])
    added = {mid: eff for mid, (_, _, eff) in EXTRA_MODELS.items()}
    ts.EFFICIENCY.update(added)
    try:
        ts.fill_store(folder / "results.sqlite", outputs)
    finally:
        for mid in added:
            ts.EFFICIENCY.pop(mid)
    study = load_config(path)
    with Store(folder / "results.sqlite", create=False) as store:
        tables = compute_tables(store, study, load_prompt_set(folder / "prompts.json"), n_boot=200)
    return study, tables, []


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    from test_sections import MANIFEST

    from reportgen.report.assemble import render_report

    folder = tmp_path_factory.mktemp("reader")
    study, tables, deltas = five_model_study(folder)
    assert len(study.models) == 5
    render_report(study, out_dir=folder / "report", formats=["html"], tables=tables, deltas=deltas, manifest=MANIFEST)
    return folder / "report" / "report.html"


def _open(browser, html: Path, viewport: dict):  # noqa: F811
    page, problems = open_report(browser, html)
    page.set_viewport_size(viewport)
    charts = page.locator(".plotly-graph-div")
    for index in range(charts.count()):
        charts.nth(index).locator(".main-svg").first.wait_for(timeout=15000)
    page.wait_for_timeout(400)  # plotly redraws responsive charts on resize
    return page, problems


FIRST_SCREEN = """() => {
    const verdict = document.querySelector('main .verdict');
    const glance = document.querySelector('main table');
    const box = (el) => el && el.getBoundingClientRect();
    return {verdict: verdict && [box(verdict).top, box(verdict).bottom], glance: glance && [box(glance).top, box(glance).bottom],
            caption: glance && glance.querySelector('caption') ? glance.querySelector('caption').textContent : null,
            height: document.documentElement.scrollHeight};
}"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_the_first_screen_answers(browser, report, viewport, tmp_path):  # noqa: F811
    """Title, verdict and the results-at-a-glance table start on the first screen (the contents do not push
    them down), at both sizes."""
    page, problems = _open(browser, report, viewport)
    first = page.evaluate(FIRST_SCREEN)
    page.screenshot(path=str(tmp_path / f"first-{viewport['width']}.png"))
    assert first["verdict"] is not None and first["verdict"][1] <= viewport["height"], first
    assert first["glance"] is not None and first["glance"][0] < viewport["height"] - 60, first
    heading = page.evaluate(
        "() => document.querySelector('main table').closest('.table-wrap').previousElementSibling.textContent"
    )
    assert "Results at a glance" in heading or "measured" in heading.lower(), heading
    assert problems == []


DEMO = Path(__file__).resolve().parents[1] / "reports" / "demo" / "report.html"
VERDICT_LINES = """() => [...document.querySelectorAll('main .verdict li')].map((li) => {
    const lead = li.querySelector('a.verdict-lead'), evidence = li.querySelector('.verdict-evidence');
    const target = lead && document.getElementById(decodeURIComponent(lead.hash.slice(1)));
    return {lead: lead && lead.textContent, shown: li.innerText.replace(/\\s+/g, ' ').trim(), target: !!target,
            evidence: evidence ? getComputedStyle(evidence).display !== 'none' : null};
})"""


@pytest.mark.skipif(not DEMO.exists(), reason="the committed demo report is absent")
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_the_demo_reports_first_screen_answers(browser, viewport, tmp_path):  # noqa: F811
    """The committed demo (nine verdict lines): verdict and glance table on the first screen at both sizes; on a
    phone each line shows its answer alone, a link to the section with the evidence."""
    page, problems = _open(browser, DEMO, viewport)
    first = page.evaluate(FIRST_SCREEN)
    page.screenshot(path=str(tmp_path / f"demo-first-{viewport['width']}.png"))
    assert first["verdict"][1] <= viewport["height"] and first["glance"][0] < viewport["height"] - 60, first
    lines = page.evaluate(VERDICT_LINES)
    assert len(lines) >= 8 and all(line["lead"] and line["target"] for line in lines), lines
    for line in lines:
        if viewport is PHONE:
            assert line["shown"] == line["lead"].strip() and not line["evidence"], line
        else:
            assert line["shown"].startswith(line["lead"].strip()) and line["evidence"] is not False, line
    assert problems == []


def test_contents_beside_the_report_on_a_desktop_and_collapsed_on_a_phone(browser, report):  # noqa: F811
    page, _ = _open(browser, report, DESKTOP)
    desktop = page.evaluate(
        """() => { const nav = document.querySelector('nav.toc'), main = document.querySelector('main.report');
        return {open: nav.querySelector('details').open, navRight: nav.getBoundingClientRect().right,
                mainLeft: main.getBoundingClientRect().left, sticky: getComputedStyle(nav).position,
                links: nav.querySelectorAll('a[href^="#"]').length, inBody: main.querySelectorAll('#table-of-contents').length}; }"""
    )
    assert desktop["open"] and desktop["sticky"] == "sticky" and desktop["navRight"] <= desktop["mainLeft"], desktop
    assert desktop["links"] >= 10 and desktop["inBody"] == 0, desktop
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(200)
    phone = page.evaluate(
        "() => { const nav = document.querySelector('nav.toc'); return {open: nav.querySelector('details').open, height: nav.getBoundingClientRect().height}; }"
    )
    assert not phone["open"] and phone["height"] < 80, phone


def test_no_table_scrolls_sideways_at_1280(browser, report, tmp_path):  # noqa: F811
    page, problems = _open(browser, report, DESKTOP)
    scrolling = page.evaluate(
        """() => [...document.querySelectorAll('main .table-wrap')].filter(w => w.scrollWidth > w.clientWidth + 1)
            .map(w => (w.querySelector('caption') || w.previousElementSibling || w).textContent.slice(0, 60) + ': ' + w.scrollWidth + ' > ' + w.clientWidth)"""
    )
    page.screenshot(path=str(tmp_path / "desktop-full.png"), full_page=True)
    assert scrolling == []
    assert problems == []


def test_on_a_phone_charts_fit_and_tables_keep_their_names_in_view(browser, report, tmp_path):  # noqa: F811
    """At 390 px every chart is laid out at the width it gets (no wider than the screen, nothing cut), the page
    does not scroll sideways, and a multi-model table that scrolls keeps its first column in place."""
    page, problems = _open(browser, report, PHONE)
    charts = page.evaluate(
        """() => [...document.querySelectorAll('.plotly-graph-div')].map(g => ({id: g.id,
            right: Math.round(g.getBoundingClientRect().right), layout: g._fullLayout.width}))"""
    )
    assert len(charts) >= 5
    assert [c for c in charts if c["right"] > PHONE["width"] or c["layout"] > PHONE["width"]] == [], charts
    assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    orientation = page.evaluate(  # per-model charts put the names across, one row per model
        "() => Object.fromEntries(['chart-speed', 'chart-memory'].map(id => [id, document.getElementById(id).data[0].orientation]))"
    )
    assert orientation == {"chart-speed": "h", "chart-memory": "h"}
    sticky = page.evaluate(
        """() => { const wrap = [...document.querySelectorAll('main .table-wrap')].find(w => w.scrollWidth > w.clientWidth + 1);
        if (!wrap) return null;
        const cell = wrap.querySelector('tbody td'); const before = cell.getBoundingClientRect().left;
        wrap.scrollLeft = 200; const after = cell.getBoundingClientRect().left;
        return {position: getComputedStyle(cell).position, moved: after - before}; }"""
    )
    assert sticky is not None and sticky["position"] == "sticky" and abs(sticky["moved"]) < 1, sticky
    page.screenshot(path=str(tmp_path / "phone-full.png"), full_page=True)
    assert problems == []


def test_identifiers_break_only_at_separators(browser, report):  # noqa: F811
    """An identifier in a narrow column breaks after its ``_``/``.``/``-`` (a <wbr> there), never inside a word:
    the report squeezed to a 200-px column (narrower than any phone) so that identifiers must break somewhere."""
    page, _ = _open(browser, report, PHONE)
    page.evaluate("document.querySelector('main.report').style.maxWidth = '200px'")
    page.wait_for_timeout(200)
    broken = page.evaluate(
        """() => { const out = [];
        for (const code of document.querySelectorAll('main code')) {
          const text = code.textContent; if (!/^[A-Za-z0-9_.\\-]+$/.test(text)) continue;
          const range = document.createRange(); const tops = [];
          for (let i = 0; i < text.length; i++) {
            const node = [...code.childNodes]; let offset = i, target = null;
            for (const n of node) { if (n.nodeType !== 3) continue; if (offset < n.length) { target = n; break; } offset -= n.length; }
            if (!target) continue; range.setStart(target, offset); range.setEnd(target, offset + 1);
            const r = range.getBoundingClientRect(); if (r.width) tops.push([text[i - 1] || '', Math.round(r.top)]);
          }
          for (let i = 1; i < tops.length; i++)
            if (tops[i][1] > tops[i - 1][1] + 2 && !'_.-/'.includes(tops[i][0])) out.push(text);
        }
        return out; }"""
    )
    assert broken == []
    html = report.read_text(encoding="utf-8")
    assert "<code>LlamaForCausalLM</code>" in html and "q_<wbr>proj" in html


def test_report_html_alone_in_an_empty_folder_draws_every_chart(browser, report, tmp_path):  # noqa: F811
    alone = tmp_path / "mailed" / "report.html"
    alone.parent.mkdir()
    shutil.copy(report, alone)
    assert sorted(p.name for p in alone.parent.iterdir()) == ["report.html"]
    page, problems = _open(browser, alone, DESKTOP)
    drawn = page.evaluate(
        "() => [...document.querySelectorAll('.plotly-graph-div')].map(g => g.querySelectorAll('.main-svg').length > 0)"
    )
    assert len(drawn) >= 5 and all(drawn), drawn
    assert problems == []  # no console error (plotly's "Invalid color specifier" included), nothing fetched


def test_console_has_no_warning_either(browser, report):  # noqa: F811
    """plotly logs an invalid colour with console.trace (not as an error: "Invalid color specifier: Array(5)", once per
    hatched bar of the memory chart): no warning or trace either."""
    page = browser.new_page(viewport=DESKTOP)
    messages: list[str] = []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}") if m.type in ("warning", "error", "trace") else None)
    page.goto(report.resolve().as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)
    assert messages == []
