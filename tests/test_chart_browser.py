"""The chart browser: one kaleido session on a thread of its own.

The SVGs it draws are the bytes a plain kaleido session draws, the same chart twice included; it can start
before the charts exist and draw them while the caller goes on; a browser that cannot start says so, with
the fix, when the charts are asked for."""

from __future__ import annotations

import asyncio

import pytest

from reportgen.errors import RenderError
from reportgen.report import charts

needs_chromium = pytest.mark.skipif(not charts.static_charts_available(), reason="no Chrome/Chromium for kaleido")


def _figures():
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    with charts.house_template():
        bars = go.Figure(go.Bar(x=["a", "b", "c"], y=[3, 1, 2], text=["3", "1", "2"], textposition="outside"))
        bars.update_layout(title_text="Bars")
        panels = make_subplots(rows=1, cols=2, subplot_titles=("left", "right"))
        panels.add_trace(go.Scatter(x=[0, 1, 2], y=[2, 0, 1], mode="lines+markers"), row=1, col=1)
        panels.add_trace(go.Bar(x=["x", "y"], y=[1, 4], error_y={"array": [0.5, 0.2]}), row=1, col=2)
        log_axis = go.Figure(go.Bar(x=[1e3, 5e6], y=["small", "large"], orientation="h"))
        log_axis.update_xaxes(type="log")
    for number, figure in enumerate((bars, panels, log_axis)):  # as ChartSet.add does: no random trace uid
        for index, trace in enumerate(figure.data):
            trace.uid = f"{number}{index}"
    return [
        charts.Chart("bars", "bars", bars, 600, 300),
        charts.Chart("panels", "panels", panels, 900, 420),
        charts.Chart("log-axis", "log-axis", log_axis, 700, 260),
        charts.Chart("bars-again", "bars-again", bars, 600, 300),  # the same figure after others: nothing left over from them
    ]


def _kaleido_own(drawings: list[charts.Chart]) -> dict[str, bytes]:
    import kaleido

    async def export() -> dict[str, bytes]:
        async with kaleido.Kaleido(
            n=1,
            mathjax=False,
            plotlyjs=charts._plotly_min_js(),
            browser_cls=charts.offline_browser_class(),
            enable_extensions=False,
        ) as session:
            return {
                d.name: await session.calc_fig(d.figure, opts={"format": "svg", "width": d.width, "height": d.height})
                for d in drawings
            }

    return asyncio.run(export())


@pytest.mark.browser
@needs_chromium
def test_the_browser_on_its_thread_draws_the_bytes_of_a_plain_kaleido_session():
    drawings = _figures()
    with charts.new_chart_browser() as browser:
        browser.start()  # before anything is asked: the caller goes on while Chromium starts
        assert browser.started
        job = browser.export(drawings)
        ours = job.result(timeout=120)
    reference = _kaleido_own(drawings)
    assert list(ours) == [d.name for d in drawings]
    for d in drawings:
        assert ours[d.name].lstrip().startswith(b"<svg"), d.name
        # plotly's random per-figure id aside (made deterministic for every export), the same bytes
        assert charts.deterministic_svg(d.name, ours[d.name]) == charts.deterministic_svg(d.name, reference[d.name]), d.name
    assert charts.deterministic_svg("x", ours["bars"]) == charts.deterministic_svg("x", ours["bars-again"])
    assert not browser.started  # closed by the with block


def test_a_browser_that_was_never_started_closes_at_once():
    browser = charts.new_chart_browser()
    browser.close()
    assert not browser.started


def test_a_browser_that_cannot_start_says_so_when_the_charts_are_asked_for(monkeypatch, tmp_path):
    import plotly.graph_objects as go

    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium-here"))
    monkeypatch.setattr(charts, "_SVG_CACHE", {})
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    chart_set = charts.ChartSet()
    chart_set.add("bars", go.Figure(go.Bar(x=["a"], y=[1])), "Bars")
    with charts.new_chart_browser() as browser:
        browser.start()  # fails on its thread; nothing is raised here
        with pytest.raises(RenderError) as caught:
            chart_set.svgs(browser)
    message = str(caught.value)
    assert "static charts (SVG) could not be exported" in message and "no-chromium-here" in message
    assert "Fix: install Chromium" in message
