"""Charts: plotly figures, interactive in the HTML report and static SVG in the README and the PDF.

* HTML: ``fig.to_html(full_html=False, include_plotlyjs=False, div_id=...)`` divs that use
  ``plotly.min.js`` written once next to the report (``write_plotly_js``), or plotly.js inline for a
  single-file report. Never a CDN: reports open offline.
* SVG: kaleido 1.x drives a headless Chromium; every chart of a report is exported in ONE browser
  session, on a thread of its own (``chart_browser``), while the rest of the report renders. kaleido finds
  the browser through choreographer: ``BROWSER_PATH`` if set, else ``chromium`` / ``google-chrome`` on
  ``PATH``. plotly puts a random id in each SVG (clip paths, defs); it is replaced by one derived from the
  chart name, so the output is byte-identical across renders.
* Offline: the browser starts with ``OFFLINE_CHROMIUM_FLAGS`` (no component updates, background
  networking, sync, first-run or search-engine screens, DNS prefetch or prediction; every host name
  resolves to nothing except 127.0.0.1), and the page kaleido loads takes plotly.js from the
  installed plotly package, never from its CDN. ``tests/test_offline_charts.py`` checks Chromium's
  net log.

plotly and kaleido are imported inside the functions that use them.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import logging
import re
from pathlib import Path
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reportgen.errors import RenderError
from reportgen.format import capital as _capital, finite as _finite

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Future

    import plotly.graph_objects as go

    from reportgen.report.chart_browser import ChartBrowser

    from reportgen.specs.extract import ModelSpec

log = logging.getLogger(__name__)

PLOTLY_JS = "plotly.min.js"
CHART_DIR = "charts"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
#: Chromium switches added to choreographer's own (which already disable breakpad, component updates, sync
#: and the first-run screens): nothing is fetched, resolved or phoned home while charts are exported.
OFFLINE_CHROMIUM_FLAGS: tuple[str, ...] = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-search-engine-choice-screen",
    "--no-pings",
    "--dns-prefetch-disable",
    "--disable-features=NetworkPrediction,OptimizationHints,Translate,MediaRouter,"
    "DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater,"
    "NetworkTimeServiceQuerying,PreconnectToSearch",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)

MUTED = "#59636e"  # legend swatches that stand for a kind of bar, not a model
# Deterministic colours, one per model in study order: Okabe–Ito's eight colour-blind-safe colours, then four
# of Paul Tol's muted scheme (twelve models, twelve colours)
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
    "#882255", "#44AA99", "#999933", "#AA4499",
)  # fmt: skip


@dataclass
class Chart:
    """One figure: ``name`` (file stem and HTML id), ``title`` (alt text / caption), the plotly figure."""

    name: str
    title: str
    figure: Any
    width: int = 900
    height: int = 420
    group: str = (
        "spec"  # where the report shows it: "spec", "quality", "speed", "memory", "tradeoff", "category", "lm", "retraining"
    )

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

    def add(self, name: str, figure: Any, title: str, *, width: int = 900, height: int = 420, group: str = "spec") -> Chart:
        if not _NAME.match(name):
            raise ValueError(f"chart name {name!r}: use lowercase letters, digits and '-'")
        if name in self.charts:
            raise ValueError(f"two charts are named {name!r}")
        for index, trace in enumerate(figure.data):  # plotly draws a random uid into the SVG and HTML otherwise
            if trace.uid is None:
                trace.uid = hashlib.sha256(f"{name}/{index}".encode()).hexdigest()[:6]
        chart = Chart(name, title, figure, width, height, group)
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
            out[chart.name] = _without_title(chart.figure).to_html(
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
    def svgs(self, browser: ChartBrowser | None = None) -> dict[str, bytes]:
        """name → SVG bytes of every chart (``start_svgs``, waited for). RenderError if they cannot be drawn."""
        with self.start_svgs(browser) as pending:
            return pending.result()

    def start_svgs(self, browser: ChartBrowser | None = None) -> PendingSvgs:
        """Start drawing the charts whose SVG is not known yet, on ``browser`` (else on a browser of its own,
        closed once they are drawn); ``result()`` of the returned PendingSvgs waits for them.

        Exports are memoised by the digest of (figure JSON, size, plotly and kaleido versions), per
        process and in the user cache (``<cache>/charts/<digest>.svg``): the output of a figure does not
        change, so Chromium starts only when a chart changed.
        """
        keys = {chart.name: _svg_key(chart) for chart in self}
        todo = [chart for chart in self if not _svg_known(keys[chart.name])]
        if not todo:
            return PendingSvgs(list(self), keys)
        if browser is not None:
            return PendingSvgs(list(self), keys, self._export(todo, browser))
        own = new_chart_browser()
        return PendingSvgs(list(self), keys, self._export(todo, own), own)

    def svgs_cached(self) -> bool:
        """Whether every chart's SVG is already known (then ``svgs()`` needs no browser)."""
        return all(_svg_known(_svg_key(chart)) for chart in self)

    def _export(self, charts: list[Chart], browser: ChartBrowser) -> Future[dict[str, bytes]]:
        """The one place charts are drawn: name → SVG bytes, as kaleido exports them."""
        return browser.export(charts)


@dataclass
class PendingSvgs:
    """Charts being drawn: ``result()`` waits for them and gives name → SVG bytes (ids made deterministic),
    keeping each new SVG in the caches; ``close()`` ends a browser started for them alone."""

    charts: list[Chart]
    keys: dict[str, str]  # chart name → its SVG's cache key
    job: Future[dict[str, bytes]] | None = None
    own_browser: ChartBrowser | None = None

    def result(self) -> dict[str, bytes]:
        from reportgen.util.cache import write_cached

        if self.job is not None:
            try:
                exported = self.job.result()
            except ModuleNotFoundError as exc:  # pragma: no cover - a core dependency
                raise RenderError("static charts need the Python package 'kaleido'. Fix: pip install 'kaleido>=1'") from exc
            except Exception as exc:  # kaleido/choreographer raise many kinds; all mean "no browser session"
                raise RenderError(
                    f"static charts (SVG) could not be exported: {type(exc).__name__}: {str(exc)[:300]}. "
                    "Fix: install Chromium (apt-get install chromium) or set BROWSER_PATH to a Chrome/Chromium binary"
                ) from exc
            finally:
                self.close()
            for name, data in exported.items():
                _SVG_CACHE[self.keys[name]] = data
                write_cached(CHART_DIR, self.keys[name], data, ".svg")
            self.job = None
        return {chart.name: deterministic_svg(chart.name, _SVG_CACHE[self.keys[chart.name]]) for chart in self.charts}

    def close(self) -> None:
        if self.own_browser is not None:
            self.own_browser.close()
            self.own_browser = None

    def __enter__(self) -> PendingSvgs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def new_chart_browser() -> ChartBrowser:
    """A ChartBrowser (not started) that runs Chromium offline and loads plotly.js from the plotly package."""
    from reportgen.report.chart_browser import ChartBrowser

    return ChartBrowser(offline_browser_class(), _plotly_min_js())


_SVG_CACHE: dict[str, bytes] = {}


def _without_title(figure: Any) -> Any:
    """The figure for the interactive page: without its title, which the page's <figcaption> says in full (a
    title wider than a phone is cut by plotly, and a long vertical axis title could run into it), its top
    margin kept only for the panel titles of subplots."""
    import plotly.graph_objects as go

    if not figure.layout.title.text:
        return figure
    copy = go.Figure(figure)
    copy.update_layout(title_text=None, margin_t=48 if figure.layout.annotations else 24)
    return copy


def offline_browser_class():
    """choreographer's Chromium with ``OFFLINE_CHROMIUM_FLAGS`` added to its command line.

    choreographer has no option for extra switches; kaleido passes ``browser_cls`` through to
    ``choreographer.Browser``, which builds the command line with ``browser_cls.get_cli()``.
    """
    from choreographer.browsers.chromium import Chromium

    flags = tuple(OFFLINE_CHROMIUM_FLAGS)

    class OfflineChromium(Chromium):
        def get_cli(self):
            cli = list(super().get_cli())
            # about:blank as the first tab: without a URL Chromium opens its new-tab page, which is the
            # default search engine's start page in some builds (Debian: start.duckduckgo.com)
            return cli + [flag for flag in flags if flag not in cli] + ["about:blank"]

    return OfflineChromium


def _plotly_min_js():
    """The plotly.js file of the installed plotly package (kaleido falls back to a CDN without one)."""

    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():  # pragma: no cover - a broken plotly install
        raise RenderError(f"static charts: {path} is missing. Fix: pip install --force-reinstall plotly")
    return path


def _svg_known(key: str) -> bool:
    """In this process's memo, or else read into it from the user cache."""
    from reportgen.util.cache import read_cached

    if key not in _SVG_CACHE and (stored := read_cached(CHART_DIR, key, ".svg")) is not None:
        _SVG_CACHE[key] = stored
    return key in _SVG_CACHE


def _svg_key(chart: Chart) -> str:
    from importlib.metadata import version

    payload = f"{chart.width}x{chart.height}:{version('plotly')}:{version('kaleido')}:{chart.figure.to_json()}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


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


_SCRIPT_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def inline_plotly_script() -> str:
    """plotly.js as an inline ``<script>`` element, for the one-file report.html. The bundle holds raw control
    characters (inside its string literals), which HTML forbids in a page: each becomes its ``\\uXXXX`` escape,
    the same string to JavaScript."""
    js = _SCRIPT_FORBIDDEN.sub(lambda m: f"\\u{ord(m.group(0)):04x}", plotly_js().decode("utf-8"))
    return f"<script>{js}</script>"


def write_plotly_js(out_dir: str | Path) -> Path:
    """Write plotly.min.js next to the report, once: an identical file already there is left alone."""
    from reportgen.util.atomic import atomic_write

    target = Path(out_dir) / PLOTLY_JS
    data = plotly_js()
    if not (target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data):
        atomic_write(target, data)
    return target


TEMPLATE = "plotly_white"  # the plotly template of every chart


@contextlib.contextmanager
def house_template():
    """Make ``TEMPLATE`` plotly's default while figures are made: plotly then attaches it to each new figure
    as it is, where ``update_layout(template=NAME)`` deep-copies and validates the whole template per chart.
    Setting the default validates it too, so a render makes all its charts inside one of these."""
    import plotly.io as pio

    previous = pio.templates.default
    if previous == TEMPLATE:
        yield
        return
    pio.templates.default = TEMPLATE
    try:
        yield
    finally:
        pio.templates.default = previous


def new_figure() -> go.Figure:
    """An empty figure in the house template."""
    import plotly.graph_objects as go

    with house_template():
        return go.Figure()


def new_subplots(**kwargs: Any) -> go.Figure:
    """``plotly.subplots.make_subplots(**kwargs)`` in the house template."""
    from plotly.subplots import make_subplots

    with house_template():
        return make_subplots(**kwargs)


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
    """Parameters (above) and weight memory, stored dtype and 4-bit (below), per model, on log axes: one row per
    model with its name across, each panel the chart's whole width. Dots, not bars: a bar on a log axis starts
    at an arbitrary edge, so its length would say nothing (a model 54x smaller looked a third as large); a dot's
    place on the axis is its value, and the gridlines mark the powers of ten."""
    import plotly.graph_objects as go
    from reportgen.format import human_bytes, human_count

    rows = [(m, s) for m, s in specs.items() if s.parameters]
    if not rows:
        return None
    labels = [_label(names, m, 24) for m, _ in rows]
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(rows))]
    fig = new_subplots(rows=2, cols=1, vertical_spacing=0.22, subplot_titles=("Parameters", "Weight memory"))
    dots = {"mode": "markers+text", "textposition": "middle right", "cliponaxis": False, "textfont": {"size": 13}}
    fig.add_trace(
        go.Scatter(
            y=labels,
            x=[s.parameters for _, s in rows],
            marker={"color": colours, "size": 14, "line": {"width": 1, "color": "#ffffff"}},
            showlegend=False,
            text=["\u2002" + human_count(s.parameters) for _, s in rows],
            hovertemplate="%{y}<br>%{x:,} parameters<extra></extra>",
            name="parameters",
            **dots,
        ),
        row=1,
        col=1,
    )
    gib = 1024**3
    for column, name, symbol, short, side in (
        ("weight_bytes", "stored dtype (filled)", "circle", "stored dtype", "right"),
        ("weight_bytes_4bit", "4-bit (NF4, estimate; open)", "circle-open", "4-bit", "left"),  # the smaller: label left
    ):
        fig.add_trace(
            go.Scatter(
                y=labels,
                x=[(getattr(s, column) or 0) / gib or None for _, s in rows],
                name=name,
                marker={
                    "color": "#1f2328" if symbol == "circle" else MUTED,
                    "size": 13,
                    "symbol": symbol,
                    "line": {"width": 2.5},
                },
                text=[_beside(human_bytes(getattr(s, column)), side) for _, s in rows],
                hovertemplate="%{y}<br>" + short + ": %{text}<extra></extra>",
                **{**dots, "textposition": f"middle {side}"},
            ),
            row=2,
            col=1,
        )
    # dtick=1: one tick per power of ten (plotly's minor 2…9 labels crowd a small chart); room for the values
    fig.update_xaxes(type="log", dtick=1, row=1, col=1, title_text="parameters (log scale)")
    fig.update_xaxes(type="log", dtick=1, row=2, col=1, title_text="GiB (log scale)")
    sizes: tuple[tuple[int, list[float]], ...] = (
        (1, [float(s.parameters) for _, s in rows if s.parameters]),
        (2, [v / gib for _, s in rows for v in (s.weight_bytes, s.weight_bytes_4bit) if v]),
    )
    for row, values in sizes:
        positive = [v for v in values if v > 0]
        if positive:
            left = 1.0 if row == 2 else 0.5  # room for the 4-bit labels, left of their dots
            fig.update_xaxes(range=[math.log10(min(positive)) - left, math.log10(max(positive)) + 0.9], row=row, col=1)
    fig.update_yaxes(autorange="reversed", automargin=True, tickfont={"size": 13})  # the first model on top, as in the tables
    fig.update_xaxes(automargin=True, tickfont={"size": 13}, showgrid=True, gridcolor="#d1d9e0")
    fig.update_layout(
        font=FONT,
        margin={"l": 24, "r": 24, "t": 50, "b": 90},
        legend={"orientation": "h", "yanchor": "top", "y": -0.16, "xanchor": "left", "x": 0},
        hoverlabel={"font": {"size": 13}},
    )
    # the panel titles end at the panels' right edge: on a narrow page they run left over the names
    fig.update_annotations(font={"size": 15}, x=1, xanchor="right")
    return fig


def _beside(text: str, side: str) -> str:
    """A dot's label with an en space between it and the dot, on the dot's ``side``."""
    return f"\u2002{text}" if side == "right" else f"{text}\u2002"


def spec_chart_height(n_models: int) -> int:
    """The spec-size chart: parameters (one row per model) above weight memory (two bars per model)."""
    return chart_height(n_models, base=260, per_model=90, least=460)


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


# --------------------------------------------------------------------------------------------------
# The charts of measured results: pure functions, frames (aggregate.Tables) → plotly figures.
#
# Every builder takes ``names`` (model id → display name, raw text: escaped here for plotly) and
# ``colours`` (model id → colour, the same for a model in every chart: ``model_colours``), and returns
# None when the frame holds nothing to draw. Fonts are sized for the PDF, where a 900 px wide figure
# is printed about 670 px wide (A4 between the margins): 14 px text prints at about 8 pt.

FONT = {"family": "DejaVu Sans, Arial, sans-serif", "size": 14, "color": "#1f2328"}
OLD_COLOUR = "#9AA0A6"
_FRONT_COLOUR = "#59636e"


def chart_slug(text: str) -> str:
    """``text`` as part of a chart name (``_NAME``: lower-case letters, digits, hyphens); "model" when nothing is left.

    Not GitHub's heading slug (``markdown.slugify``, which keeps ``_`` and drops punctuation): a chart
    name is a file stem and an HTML id, the same on every platform.
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def model_colours(model_ids) -> dict[str, str]:
    """One colour per model, in study order (the palette repeats after eight models)."""
    return {model_id: PALETTE[i % len(PALETTE)] for i, model_id in enumerate(dict.fromkeys(model_ids))}


def _axis_label(metric: str) -> str:
    from reportgen.stats.metrics import METRICS
    from reportgen.stats.metrics import metric_label

    unit = METRICS.get(metric).unit if metric in METRICS else ""
    label = metric_label(metric)
    if unit == "share":
        return (
            f"{label} (share of prompts)"
            if metric in ("exact_match", "contains_answer", "hit_token_limit")
            else f"{label} (share)"
        )
    if unit.startswith(label):  # "chrF (0–100)" for chrF
        return unit
    if unit.startswith("F1"):
        return f"{label} {unit}"
    return f"{label} ({unit})" if unit and unit not in label else label


def _metric_range(metric: str, highest: float) -> list[float] | None:
    from reportgen.stats.metrics import METRICS

    unit = METRICS.get(metric).unit if metric in METRICS else ""
    if unit in ("share", "F1 (0–1)"):
        return [0, max(1.0, highest) * 1.12]
    if unit in ("BLEU (0–100)", "chrF (0–100)"):
        return [0, max(100.0, highest) * 1.12]
    return None


def _vertical_title(text: str) -> str:
    """A vertical axis title on lines short enough to stay beside the plot: one line as long as a short plot is
    tall ran up into the chart's title (the category chart's "contains answer (share of prompts)")."""
    return wrap_label(text, 22)


def _style(fig, title: str, *, legend: bool = False, bottom: int = 90) -> None:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 17}},
        font=FONT,
        margin={"l": 80, "r": 24, "t": 64, "b": bottom},
        showlegend=legend,
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
        hoverlabel={"font": {"size": 13}},
    )
    fig.update_xaxes(automargin=True, tickfont={"size": 13})
    fig.update_yaxes(automargin=True, tickfont={"size": 13}, zeroline=True, zerolinecolor="#d1d9e0")


def _label(names, model_id: str, width: int = 16) -> str:
    return wrap_label(chart_label(names.get(model_id, model_id)), width)


def _summary_rows(summary, metric: str, order=None):
    rows = summary[(summary["metric"] == metric) & summary["mean"].map(_finite)]
    if order is not None:
        rank = {m: i for i, m in enumerate(order)}
        rows = rows.assign(_r=rows["model_id"].map(lambda m: rank.get(m, len(rank)))).sort_values("_r", kind="stable")
    return rows


def quality_figure(summary, metric: str, names, colours, order=None) -> go.Figure | None:
    """One reference metric per model: the mean as a bar, its 95% CI (Wilson for 0/1 metrics, else BCa bootstrap) as
    an error bar; a mean without an interval (n too small, all values equal) has no error bar. From
    ``HORIZONTAL_FROM`` models on, the bars are horizontal."""

    from reportgen.stats.metrics import metric_label, metric_value

    rows = _summary_rows(summary, metric, order)
    if rows.empty:
        return None
    ids = list(rows["model_id"])
    means = rows["mean"].astype(float).tolist()
    lows = [m if not _finite(v) else v for m, v in zip(means, rows["ci_low"])]
    highs = [m if not _finite(v) else v for m, v in zip(means, rows["ci_high"])]
    fig = new_figure()
    value_axis = _ci_bars(
        fig,
        ids,
        names,
        colours,
        (means, lows, highs),
        text=[metric_value(metric, m) for m in means],
        name=metric_label(metric),
        customdata=[[metric_value(metric, lo), metric_value(metric, h), int(n)] for lo, h, n in zip(lows, highs, rows["n"])],
        hover="{label}<br>mean {value:.3f}<br>95% CI [%{{customdata[0]}}, %{{customdata[1]}}]<br>n = %{{customdata[2]}}",
    )
    _style(fig, f"{_capital(metric_label(metric))} per model (mean, 95% CI)")
    title = _axis_label(metric) if value_axis == fig.update_xaxes else _vertical_title(_axis_label(metric))
    value_axis(title_text=title, range=_metric_range(metric, max(highs)))
    return fig


#: From this many models on, per-model bars are horizontal: names read across and stack down the chart
#: instead of rotating under crowded vertical bars.
HORIZONTAL_FROM = 6


def horizontal_bars(n_models: int) -> bool:
    return n_models >= HORIZONTAL_FROM


def ci_bar_height(n_models: int) -> int:
    """The height of a per-model bar chart with CIs: fixed for vertical bars, one row per model for horizontal."""
    return chart_height(n_models, base=150, per_model=46, least=380) if horizontal_bars(n_models) else 380


def _error_bars(plus: list[Any], minus: list[Any], *, width: int) -> dict[str, Any]:
    """Asymmetric error bars (``plus`` above, ``minus`` below each value) in the charts' one style."""
    return {
        "type": "data",
        "symmetric": False,
        "array": plus,
        "arrayminus": minus,
        "color": "#1f2328",
        "thickness": 1.5,
        "width": width,
    }


def _ci_bars(fig, ids, names, colours, values, *, text, name, hover, customdata=None):
    """One bar per model of ``values`` = (means, lows, highs): asymmetric error bars to the interval and each value
    written just past it (never on the error bar's cap); vertical, or horizontal from ``HORIZONTAL_FROM`` models on
    (names across, the first model on top). Returns the value axis' update function (``fig.update_yaxes`` or
    ``update_xaxes``)."""
    import plotly.graph_objects as go

    means, lows, highs = values
    horizontal = horizontal_bars(len(ids))
    labels = [_label(names, m, 40 if horizontal else 16) for m in ids]
    error = _error_bars([h - m for h, m in zip(highs, means)], [m - lo for m, lo in zip(means, lows)], width=8)
    label_key, value_key = ("y", "x") if horizontal else ("x", "y")
    template = hover.replace("{label}", f"%{{{label_key}}}").replace("{value:.3f}", f"%{{{value_key}:.3f}}")
    template = template.replace("{{", "{").replace("}}", "}")
    bars = {label_key: labels, value_key: means, f"error_{value_key}": error}
    fig.add_trace(
        go.Bar(
            **bars,
            orientation="h" if horizontal else "v",
            marker_color=[colours.get(m, PALETTE[0]) for m in ids],
            width=0.55,
            customdata=customdata,
            hovertemplate=template + "<extra></extra>",
            name=name,
        )
    )
    fig.add_trace(
        go.Scatter(
            **{label_key: labels, value_key: highs},
            mode="text",
            text=[f"\u2002{t}" for t in text] if horizontal else text,  # an en space clear of the error bar's cap
            textposition="middle right" if horizontal else "top center",
            textfont={"size": 14},
            hoverinfo="skip",
            showlegend=False,
            cliponaxis=False,
        )
    )
    if horizontal:
        fig.update_yaxes(autorange="reversed", zeroline=False)
        return fig.update_xaxes
    return fig.update_yaxes


def _pass_range(rows, column: str) -> tuple[list[float | None], dict[str, Any] | None]:
    """The values of ``column`` and, when the timed passes give a range (``column_low``/``_high``), an
    asymmetric horizontal error bar from the slowest to the fastest pass (``None`` when no model has one)."""
    values = [float(v) if _finite(v) else None for v in rows[column]]
    low_col, high_col = f"{column}_low", f"{column}_high"
    if low_col not in rows or high_col not in rows:
        return values, None
    lows = [float(v) if _finite(v) else None for v in rows[low_col]]
    highs = [float(v) if _finite(v) else None for v in rows[high_col]]
    ranged = [v is not None and lo is not None and hi is not None for v, lo, hi in zip(values, lows, highs)]
    if not any(ranged):
        return values, None
    # None where a model has no range: plotly draws no whisker for that bar (0 would draw a cap)
    plus = [hi - v if ok else None for v, hi, ok in zip(values, highs, ranged)]  # type: ignore[operator]
    minus = [v - lo if ok else None for v, lo, ok in zip(values, lows, ranged)]  # type: ignore[operator]
    return values, _error_bars(plus, minus, width=6)


def _range_ends(values: list[float | None], error: dict[str, Any] | None) -> list[float | None]:
    """Where each bar's whisker ends (the bar's end where it has none)."""
    plus = error["array"] if error else [None] * len(values)
    return [None if v is None else v + (p or 0.0) for v, p in zip(values, plus)]


def speed_figure(efficiency, names, colours) -> go.Figure | None:
    """Throughput (tokens/s) above latency per prompt (p50 bar, p95 marker), horizontal bars with one row per
    model, so long model names stay readable however many models there are, and each panel has the page's
    whole width (side by side, a phone's 390 px left them a few dozen pixels each). Where speed was measured
    in timed passes, an error bar spans the slowest to the fastest pass (throughput and p50)."""
    import plotly.graph_objects as go
    from reportgen.stats.metrics import metric_value

    rows = efficiency[efficiency["tokens_per_s"].map(_finite) | efficiency["latency_p50_s"].map(_finite)]
    if rows.empty:
        return None
    ids = list(rows["model_id"])
    labels = [_label(names, m, 24) for m in ids]
    colour = [colours.get(m, PALETTE[0]) for m in ids]
    fig = new_subplots(
        rows=2,
        cols=1,
        vertical_spacing=0.16,
        subplot_titles=("Batched throughput ↑ (tokens/s)", "Single-stream latency ↓ (s per prompt)"),
    )
    tps, tps_range = _pass_range(rows, "tokens_per_s")
    tps_ends = _range_ends(tps, tps_range)
    fig.add_trace(
        go.Bar(
            y=labels,
            x=tps,
            orientation="h",
            marker_color=colour,
            width=0.6,
            showlegend=False,
            name="tokens/s",
            error_x=tps_range,
            hovertemplate="%{y}<br>%{x:.1f} tokens/s<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(  # each value written just past its bar or its range, never on the error bar's cap
        go.Scatter(
            y=labels,
            x=tps_ends,
            mode="text",
            text=["\u2002" + metric_value("tokens_per_s", v) for v in rows["tokens_per_s"]],
            textposition="middle right",
            textfont={"size": 14},
            hoverinfo="skip",
            showlegend=False,
            cliponaxis=False,
        ),
        row=1,
        col=1,
    )
    p50, p50_range = _pass_range(rows, "latency_p50_s")
    p95 = [float(v) if _finite(v) else None for v in rows["latency_p95_s"]]
    p50_ends = _range_ends(p50, p50_range)
    highest_latency = max([v for v in p50_ends + p95 if v is not None], default=1.0)
    # a p50 label sits inside its bar where the bar is long enough, else past the whisker and the p95 marker
    p50_text = [metric_value("latency_p50_s", v) for v in rows["latency_p50_s"]]
    inside = [v is not None and v >= 0.3 * highest_latency for v in p50]
    fig.add_trace(
        go.Bar(
            y=labels,
            x=p50,
            orientation="h",
            marker_color=colour,
            width=0.6,
            name="p50, median (bar)",
            showlegend=False,  # its bars have one colour per model: the legend shows a neutral swatch instead
            error_x=p50_range,
            text=["\u2002" + t if fits else "" for t, fits in zip(p50_text, inside)],  # clear of the bar's start
            textposition="inside",
            insidetextanchor="start",
            textangle=0,
            hovertemplate="%{y}<br>p50 %{x:.3f} s<extra></extra>",
        ),
        row=2,
        col=1,
    )
    fig.add_trace(go.Bar(y=[None], x=[None], orientation="h", name="p50, median (bar)", marker_color=MUTED), row=2, col=1)
    outside = [i for i, fits in enumerate(inside) if not fits and p50[i] is not None]
    if outside:
        fig.add_trace(
            go.Scatter(
                y=[labels[i] for i in outside],
                x=[max(v for v in (p50_ends[i], p95[i]) if v is not None) for i in outside],
                mode="text",
                text=["\u2002\u2002" + p50_text[i] for i in outside],  # clear of the p95 marker
                textposition="middle right",
                hoverinfo="skip",
                showlegend=False,
                cliponaxis=False,
            ),
            row=2,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            y=labels,
            x=p95,
            mode="markers",
            name="p95 (marker)",
            marker={"symbol": "line-ns-open", "size": 26, "color": "#1f2328", "line": {"width": 3, "color": "#1f2328"}},
            hovertemplate="%{y}<br>p95 %{x:.3f} s<extra></extra>",
        ),
        row=2,
        col=1,
    )
    if tps_range or p50_range:  # the legend names the whisker once
        fig.add_trace(
            go.Scatter(
                y=[None],
                x=[None],
                mode="lines",
                name="range over the timed passes (whisker)",
                line={"color": "#1f2328", "width": 1.5},
                hoverinfo="skip",
            ),
            row=2,
            col=1,
        )
    _style(fig, "Speed per model", legend=True, bottom=90)
    fig.update_layout(legend={"x": 0, "xanchor": "left", "y": -0.08}, margin={"l": 24, "t": 80})
    highest_tps = max([v for v in tps_ends if v is not None], default=1.0)
    fig.update_xaxes(range=[0, highest_tps * 1.3], row=1, col=1)
    fig.update_xaxes(range=[0, highest_latency * (1.25 if outside else 1.08)], row=2, col=1)
    fig.update_yaxes(autorange="reversed")  # the first model on top, as in the tables
    # the panel titles end at the panels' right edge: on a phone they run left over the names, never off the chart
    fig.update_annotations(font={"size": 14}, x=1, xanchor="right")
    return fig


def chart_height(n_models: int, base: int = 150, per_model: int = 62, least: int = 320) -> int:
    """The height of a chart with one row (or legend line) per model."""
    return max(least, base + per_model * n_models)


def speed_chart_height(n_models: int) -> int:
    """The speed chart: two panels of one row per model, one above the other."""
    return chart_height(n_models, base=230, per_model=2 * 50, least=460)


def _overlay(extra: dict[str, Any]) -> dict[str, Any]:
    if "pattern" not in extra:
        return extra
    return {**extra, "pattern": {**extra["pattern"], "fillmode": "overlay", "bgcolor": "rgba(0,0,0,0)"}}


def memory_figure(efficiency, names, colours) -> go.Figure | None:
    """Peak memory while generating (solid) and the weights' memory (hatched), per model: horizontal bars, one
    row per model with its name across (under vertical bars, five long names overlapped)."""
    import plotly.graph_objects as go

    from reportgen.format import human_bytes

    rows = efficiency[efficiency["peak_memory_bytes"].map(_finite) | efficiency["weight_bytes"].map(_finite)]
    if rows.empty:
        return None
    ids = list(rows["model_id"])
    labels = [_label(names, m, 24) for m in ids]
    colour = [colours.get(m, PALETTE[0]) for m in ids]
    values = [float(v) for column in ("peak_memory_bytes", "weight_bytes") for v in rows[column] if _finite(v)]
    scale, unit = (1024**3, "GiB") if max(values) >= 1024**3 else (1024**2, "MiB")
    fig = new_figure()
    for column, label, extra in (
        ("peak_memory_bytes", "peak memory while generating (solid)", {}),
        ("weight_bytes", "weights (hatched)", {"pattern": {"shape": "/", "fgcolor": "#ffffff", "size": 8}}),
    ):
        data = [float(v) / scale if _finite(v) else None for v in rows[column]]
        fig.add_trace(
            go.Bar(
                y=labels,
                x=data,
                orientation="h",
                name=label,
                # a hatch over an array of colours: drawn on top of each bar's own colour ("overlay", with an explicit
                # background), else plotly takes the array as one colour and logs "Invalid color specifier: Array(5)"
                marker={"color": colour, **_overlay(extra)},
                text=[human_bytes(v) if _finite(v) else "" for v in rows[column]],
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{y}<br>" + label.split(" (")[0] + ": %{text}<extra></extra>",
                offsetgroup=column,
                legendgroup=column,
                showlegend=False,  # its bars have one colour per model: the legend shows the kind in grey instead
            )
        )
        fig.add_trace(  # the legend's swatch for the kind (solid or hatched), drawing nothing
            go.Bar(
                y=labels[:1],
                x=[None],
                orientation="h",
                name=label,
                marker={"color": MUTED, **extra},
                offsetgroup=column,
                legendgroup=column,
                hoverinfo="skip",
            )
        )
    _style(fig, "Memory per model", legend=True, bottom=90)
    fig.update_layout(barmode="group", bargap=0.25, bargroupgap=0.08, margin={"l": 24})
    fig.update_xaxes(title_text=unit, range=[0, max(values) / scale * 1.25])
    fig.update_yaxes(autorange="reversed", zeroline=False)  # the first model on top, as in the tables
    return fig


def tradeoff_figure(summary, efficiency, metric: str, names, colours, front: list[str], numbers=None) -> go.Figure | None:
    """Speed (x, tokens/s) against quality (y, ``metric`` with its CI); the Pareto front as a dashed line.

    Points are labelled with the model's number (``numbers``: model id → its position in the study) and
    named in the legend, so close points never hide each other's names; Pareto-optimal points are filled.
    """
    import plotly.graph_objects as go

    from reportgen.stats.metrics import metric_label, metric_value

    quality = {r.model_id: r for r in _summary_rows(summary, metric).itertuples()}
    speed = {r.model_id: float(r.tokens_per_s) for r in efficiency.itertuples() if _finite(r.tokens_per_s)}
    ids = [m for m in efficiency["model_id"] if m in quality and m in speed]
    if len(ids) < 2:
        return None
    numbers = numbers or {m: i for i, m in enumerate(ids, 1)}
    fig = new_figure()
    for m in ids:
        row = quality[m]
        mean = float(row.mean)
        high = float(row.ci_high) if _finite(row.ci_high) else mean
        low = float(row.ci_low) if _finite(row.ci_low) else mean
        optimal = m in front
        colour = colours.get(m, PALETTE[0])
        fig.add_trace(
            go.Scatter(
                x=[speed[m]],
                y=[mean],
                mode="markers+text",
                name=wrap_label(f"{numbers.get(m, '')}. {chart_label(names.get(m, m))}" + (" ★" if optimal else ""), 34),
                text=[str(numbers.get(m, ""))],
                textposition="middle right",
                textfont={"size": 15, "color": colour},
                cliponaxis=False,
                marker={
                    "color": colour,
                    "size": 16 if optimal else 13,
                    "symbol": "circle" if optimal else "circle-open",
                    "line": {"width": 2.5, "color": colour},
                },
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [high - mean],
                    "arrayminus": [mean - low],
                    "color": colour,
                    "thickness": 1.5,
                    "width": 6,
                },
                hovertemplate=f"%{{x:.1f}} tokens/s<br>{metric_label(metric)} {metric_value(metric, mean)}<extra>{chart_label(names.get(m, m))}</extra>",
            )
        )
    on_front = [m for m in sorted(front, key=lambda m: speed[m]) if m in speed and m in quality]
    if len(on_front) >= 2:
        fig.add_trace(
            go.Scatter(
                x=[speed[m] for m in on_front],
                y=[float(quality[m].mean) for m in on_front],
                mode="lines",
                line={"color": _FRONT_COLOUR, "dash": "dash", "width": 2},
                name="Pareto front (★: Pareto-optimal)",
                hoverinfo="skip",
            )
        )
    xs = [speed[m] for m in ids]
    span = max(xs) - min(xs) or max(xs) or 1.0
    _style(fig, f"Speed versus {metric_label(metric)}", legend=True, bottom=40)
    fig.update_layout(legend={"orientation": "v", "y": -0.2, "yanchor": "top", "x": 0, "xanchor": "left"})
    fig.update_xaxes(
        title_text="batched throughput<br>(tokens/s, higher is better)",
        range=[max(0.0, min(xs) - 0.15 * span), max(xs) + 0.15 * span],
    )
    highs = [float(quality[m].ci_high) if _finite(quality[m].ci_high) else float(quality[m].mean) for m in ids]
    fig.update_yaxes(title_text=_vertical_title(_axis_label(metric)), range=_metric_range(metric, max(highs)))
    return fig


def category_figure(category_summary, metric: str, names, colours, order=None) -> go.Figure | None:
    """``metric`` per category (x) and model (grouped bars, one colour per model), with 95% CIs."""
    import plotly.graph_objects as go

    from reportgen.stats.metrics import metric_label

    rows = category_summary[(category_summary["metric"] == metric) & category_summary["mean"].map(_finite)]
    if rows.empty or rows["category"].nunique() < 2:
        return None
    categories = list(dict.fromkeys(rows["category"]))
    models = [m for m in (order or list(dict.fromkeys(rows["model_id"]))) if m in set(rows["model_id"])]
    fig = new_figure()
    highest = 0.0
    for m in models:
        mine = rows[rows["model_id"] == m].set_index("category")
        means = [float(mine.at[c, "mean"]) if c in mine.index else None for c in categories]
        up = [
            float(mine.at[c, "ci_high"]) - float(mine.at[c, "mean"]) if c in mine.index and _finite(mine.at[c, "ci_high"]) else 0
            for c in categories
        ]
        down = [
            float(mine.at[c, "mean"]) - float(mine.at[c, "ci_low"]) if c in mine.index and _finite(mine.at[c, "ci_low"]) else 0
            for c in categories
        ]
        highest = max([highest] + [a + b for a, b in zip(means, up) if a is not None])
        fig.add_trace(
            go.Bar(
                x=[wrap_label(chart_label(c), 14) for c in categories],
                y=means,
                name=wrap_label(chart_label(names.get(m, m)), 34),  # a legend entry on a phone: lines, not cut
                marker_color=colours.get(m, PALETTE[0]),
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": up,
                    "arrayminus": down,
                    "color": "#1f2328",
                    "thickness": 1.2,
                    "width": 4,
                },
                customdata=[int(mine.at[c, "n"]) if c in mine.index else 0 for c in categories],
                hovertemplate="%{x}<br>%{y:.3f} (n = %{customdata})<extra>" + chart_label(names.get(m, m)) + "</extra>",
            )
        )
    title = metric_label(metric)
    _style(fig, f"{_capital(title)} per category and model (mean, 95% CI)", legend=True, bottom=120)
    fig.update_layout(barmode="group", bargap=0.22, bargroupgap=0.05)
    fig.update_yaxes(title_text=_vertical_title(_axis_label(metric)), range=_metric_range(metric, highest))
    return fig


def bits_per_byte_figure(lm, names, colours) -> go.Figure | None:
    """Bits per byte on the reference texts per model (lower is better), with the percentile-bootstrap CI over texts."""

    from reportgen.stats.metrics import metric_value

    rows = lm[lm["bits_per_byte"].map(_finite)] if len(lm) else lm
    if rows is None or rows.empty:
        return None
    ids = list(rows["model_id"])
    means = rows["bits_per_byte"].astype(float).tolist()
    highs = [float(h) if _finite(h) else m for h, m in zip(rows["bpb_ci_high"], means)]
    lows = [float(lo) if _finite(lo) else m for lo, m in zip(rows["bpb_ci_low"], means)]
    fig = new_figure()
    value_axis = _ci_bars(
        fig,
        ids,
        names,
        colours,
        (means, lows, highs),
        text=[metric_value("bits_per_byte", m) for m in means],
        name="bits per byte",
        hover="{label}<br>{value:.3f} bits/byte",
    )
    _style(fig, "Bits per byte on the reference texts (lower is better; 95% CI)")
    value_axis(title_text="bits per UTF-8 byte", range=[0, max(highs) * 1.18])
    return fig


def retraining_figure(deltas, colour: str) -> go.Figure | None:
    """What retraining changed: the old and the new mean of each metric, 0–1 metrics and 0–100 metrics apart.

    A ▲ / ▼ over the new bar marks a significant improvement / deterioration (p < 0.05: McNemar's exact test for
    0/1 metrics, the paired sign-flip permutation test otherwise).
    """
    import plotly.graph_objects as go
    from reportgen.stats.metrics import METRICS
    from reportgen.stats.metrics import metric_label

    if deltas is None or deltas.empty:
        return None
    groups: dict[str, list[Any]] = {"unit": [], "hundred": []}
    for row in deltas.itertuples():
        unit = METRICS.get(row.metric).unit if row.metric in METRICS else ""
        if not (_finite(row.mean_old) or _finite(row.mean_new)):
            continue
        if unit in ("share", "F1 (0–1)"):
            groups["unit"].append(row)
        elif unit in ("BLEU (0–100)", "chrF (0–100)"):
            groups["hundred"].append(row)
    panels = [(key, rows) for key, rows in groups.items() if rows]
    if not panels:
        return None
    widths = [max(len(rows), 1) for _, rows in panels]
    fig = new_subplots(
        rows=1,
        cols=len(panels),
        column_widths=[w / sum(widths) for w in widths],
        horizontal_spacing=0.1,
        subplot_titles=[{"unit": "0–1 scales", "hundred": "0–100 scales"}[key] for key, _ in panels],
    )
    for col, (key, rows) in enumerate(panels, 1):
        labels = [wrap_label(metric_label(r.metric), 12) for r in rows]
        marks = ["▲" if r.improved is True else "▼" if r.improved is False else ("●" if r.significant else "") for r in rows]
        for which, column, fill in (("before", "mean_old", OLD_COLOUR), ("after", "mean_new", colour)):
            fig.add_trace(
                go.Bar(
                    x=labels,
                    y=[float(getattr(r, column)) if _finite(getattr(r, column)) else None for r in rows],
                    name=f"{which} retraining",
                    marker_color=fill,
                    showlegend=col == 1,
                    text=marks if which == "after" else None,
                    textposition="outside",
                    cliponaxis=False,
                    textfont={"size": 15},
                    hovertemplate="%{x}<br>" + which + ": %{y:.3f}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        top = max([float(v) for r in rows for v in (r.mean_old, r.mean_new) if _finite(v)] + [0.0])
        fig.update_yaxes(
            range=[0, max(1.0 if key == "unit" else 100.0, top) * 1.15],
            row=1,
            col=col,
            title_text="mean (0–1)" if key == "unit" else "mean (0–100)",
        )
    _style(fig, "What retraining changed (▲ significantly better, ▼ significantly worse)", legend=True, bottom=130)
    fig.update_layout(barmode="group", bargap=0.25, bargroupgap=0.05)
    fig.update_xaxes(tickangle=0)
    fig.update_annotations(font={"size": 14})
    return fig
