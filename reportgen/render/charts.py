"""Charts: plotly figures, interactive in the HTML report and static SVG in the README and the PDF.

* HTML: ``fig.to_html(full_html=False, include_plotlyjs=False, div_id=...)`` divs that use
  ``plotly.min.js`` written once next to the report (``write_plotly_js``), or plotly.js inline for a
  single-file report. Never a CDN: reports open offline.
* SVG: kaleido 1.x drives a headless Chromium; every chart of a report is exported in ONE browser
  session. kaleido finds the browser through choreographer: ``BROWSER_PATH`` if set, else ``chromium``
  / ``google-chrome`` on ``PATH``. plotly puts a random id in each SVG (clip paths, defs); it is
  replaced by one derived from the chart name, so the output is byte-identical across renders.

plotly and kaleido are imported inside the functions that use them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reportgen.errors import RenderError

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from reportgen.specs import ModelSpec

log = logging.getLogger(__name__)

PLOTLY_JS = "plotly.min.js"
CHART_DIR = "charts"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Deterministic colours, one per model in study order (Okabe–Ito, colour-blind safe).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


@dataclass
class Chart:
    """One figure: ``name`` (file stem and HTML id), ``title`` (alt text / caption), the plotly figure."""

    name: str
    title: str
    figure: Any
    width: int = 900
    height: int = 420

    @property
    def svg_path(self) -> str:
        return f"{CHART_DIR}/{self.name}.svg"

    @property
    def div_id(self) -> str:
        return f"chart-{self.name}"


@dataclass
class ChartSet:
    """The charts of one report, by name, in the order they were added."""

    charts: dict[str, Chart] = field(default_factory=dict)

    def add(self, name: str, figure: Any, title: str, *, width: int = 900, height: int = 420) -> Chart:
        if not _NAME.match(name):
            raise ValueError(f"chart name {name!r}: use lowercase letters, digits and '-'")
        if name in self.charts:
            raise ValueError(f"two charts are named {name!r}")
        chart = Chart(name, title, figure, width, height)
        self.charts[name] = chart
        return chart

    def __bool__(self) -> bool:
        return bool(self.charts)

    def __iter__(self):
        return iter(self.charts.values())

    def __getitem__(self, name: str) -> Chart:
        return self.charts[name]

    # -- HTML -------------------------------------------------------------------------------------
    def html_divs(self, *, inline_js: bool = False) -> dict[str, str]:
        """name → an HTML fragment drawing the chart. ``inline_js`` embeds plotly.js in the first one."""
        out = {}
        first = True
        for chart in self:
            out[chart.name] = chart.figure.to_html(
                full_html=False,
                include_plotlyjs=bool(inline_js and first),
                div_id=chart.div_id,
                default_width="100%",
                default_height=f"{chart.height}px",
                config={"displaylogo": False, "responsive": True},
            )
            first = False
        return out

    # -- SVG --------------------------------------------------------------------------------------
    def svgs(self) -> dict[str, bytes]:
        """name → SVG bytes, all exported in one kaleido (Chromium) session. RenderError if that fails.

        Exports are memoised per process by (figure JSON, size): the output of a figure does not change,
        and re-rendering a report (or a test suite rendering many) need not start Chromium again.
        """
        if not self.charts:
            return {}
        keys = {chart.name: _svg_key(chart) for chart in self}
        todo = [chart for chart in self if keys[chart.name] not in _SVG_CACHE]
        if todo:
            for name, data in self._export(todo).items():
                _SVG_CACHE[keys[name]] = data
        return {chart.name: deterministic_svg(chart.name, _SVG_CACHE[keys[chart.name]]) for chart in self}

    def _export(self, charts: list[Chart]) -> dict[str, bytes]:
        try:
            import kaleido
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise RenderError("static charts need the Python package 'kaleido'. Fix: pip install 'kaleido>=1'") from exc

        async def export() -> dict[str, bytes]:
            results = {}
            async with kaleido.Kaleido(n=1, mathjax=False) as session:
                for chart in charts:
                    results[chart.name] = await session.calc_fig(
                        chart.figure, opts={"format": "svg", "width": chart.width, "height": chart.height}
                    )
            return results

        try:
            return _run(export())
        except Exception as exc:  # kaleido/choreographer raise many kinds; all mean "no browser session"
            raise RenderError(
                f"static charts (SVG) could not be exported: {type(exc).__name__}: {str(exc)[:300]}. "
                "Fix: install Chromium (apt-get install chromium) or set BROWSER_PATH to a Chrome/Chromium binary"
            ) from exc


_SVG_CACHE: dict[str, bytes] = {}


def _svg_key(chart: Chart) -> str:
    payload = f"{chart.width}x{chart.height}:{chart.figure.to_json()}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _run(coro):
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside a running loop (a notebook): run in a worker thread with its own loop.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def deterministic_svg(name: str, svg: bytes) -> bytes:
    """Replace plotly's random per-figure id (``defs-3262e9``, ``clip3262e9xy``…) by one from the name."""
    text = svg.decode("utf-8")
    match = re.search(r'id="defs-([0-9a-f]+)"', text)
    if match:
        stable = hashlib.sha256(name.encode()).hexdigest()[: len(match.group(1))]
        text = text.replace(match.group(1), stable)
    return text.encode("utf-8")


def plotly_js() -> bytes:
    """The plotly.js bundle of the installed plotly (never a CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8")


def write_plotly_js(out_dir) -> "Path":
    """Write plotly.min.js next to the report, once: an identical file already there is left alone."""
    from pathlib import Path

    from reportgen.render.write import atomic_write

    target = Path(out_dir) / PLOTLY_JS
    data = plotly_js()
    if not (target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data):
        atomic_write(target, data)
    return target


def chart_label(text: str) -> str:
    """Untrusted text for a plotly label: plotly reads a subset of HTML in labels, so escape it."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def static_charts_available() -> bool:
    """Whether kaleido can find a Chrome/Chromium: ``BROWSER_PATH``, choreographer's download, or ``PATH``."""
    import os
    import shutil

    if os.environ.get("BROWSER_PATH"):
        return os.access(os.environ["BROWSER_PATH"], os.X_OK)
    try:
        from choreographer.browsers.chromium import Chromium

        return Chromium.find_browser(skip_local=False) is not None
    except Exception:  # pragma: no cover - another choreographer layout: look on PATH
        return any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome"))


# --------------------------------------------------------------------------------------------------
# The charts of the spec facts


def spec_size_figure(specs: Mapping[str, ModelSpec], names: Mapping[str, str]) -> go.Figure | None:
    """Parameters and weight memory (stored dtype and 4-bit) per model, log scale, side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from reportgen.render.format import human_bytes, human_count

    rows = [(m, s) for m, s in specs.items() if s.parameters]
    if not rows:
        return None
    labels = [wrap_label(chart_label(names.get(m, m))) for m, _ in rows]
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(rows))]
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.12,
        subplot_titles=("Parameters", "Weight memory (GiB)"),
    )
    fig.add_trace(
        go.Bar(
            x=labels, y=[s.parameters for _, s in rows], marker_color=colours, showlegend=False,
            text=[human_count(s.parameters) for _, s in rows], textposition="outside", cliponaxis=False,
            hovertemplate="%{x}<br>%{y:,} parameters<extra></extra>", name="parameters",
        ),
        row=1, col=1,
    )
    gib = 1024**3
    fig.add_trace(
        go.Bar(
            x=labels, y=[(s.weight_bytes or 0) / gib for _, s in rows], name="stored dtype",
            marker_color="#4C72B0", text=[human_bytes(s.weight_bytes) for _, s in rows], textposition="outside",
            cliponaxis=False, hovertemplate="%{x}<br>stored dtype: %{text}<extra></extra>",
        ),
        row=1, col=2,
    )
    fig.add_trace(
        go.Bar(
            x=labels, y=[(s.weight_bytes_4bit or 0) / gib for _, s in rows], name="4-bit (NF4, estimate)",
            marker_color="#DD8452", text=[human_bytes(s.weight_bytes_4bit) for _, s in rows], textposition="outside",
            cliponaxis=False, hovertemplate="%{x}<br>4-bit: %{text}<extra></extra>",
        ),
        row=1, col=2,
    )
    # dtick=1: one tick per power of ten (plotly's minor 2…9 labels crowd a small chart)
    fig.update_yaxes(type="log", dtick=1, row=1, col=1, title_text="parameters (log scale)")
    fig.update_yaxes(type="log", dtick=1, row=1, col=2, title_text="GiB (log scale)")
    fig.update_xaxes(tickangle=0, automargin=True)
    fig.update_layout(
        template="plotly_white", barmode="group", bargap=0.25,
        font={"family": "DejaVu Sans, Arial, sans-serif", "size": 12},
        margin={"l": 70, "r": 20, "t": 50, "b": 90},
        legend={"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "right", "x": 1},
    )
    return fig


def wrap_label(text: str, width: int = 18) -> str:
    """Break a long axis label over lines (plotly's ``<br>``) at spaces."""
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return "<br>".join(lines)
