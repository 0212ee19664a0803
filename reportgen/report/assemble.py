"""Render a study to its output formats (README.md, report.html, report.pdf, … see ``formats``).

Two phases: everything is rendered in memory first, then written with atomic replaces, so a failing
template, a false claim or a broken chart export leaves the previous report untouched. Output is
deterministic: the same inputs give byte-identical Markdown and HTML (no timestamps unless
``output.timestamp``; chart ids derived from names).

``render_in_memory`` is four named phases: ``gather`` (specs, the spec table, the analysis, checked
claims, the measured results), ``draw_charts``, ``report_context`` (the typed views) and
``render_formats`` (each registered format from the Markdown body of its target). One module per job:
``templates`` (Jinja environment), ``context`` (the template context), ``sections`` (the results
sections), ``markdown`` (escaping, slugs, Markdown → HTML), ``charts`` (plotly / kaleido), ``formats``
(one module per output format). Heavy imports (plotly, weasyprint, kaleido) happen inside functions.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportgen.errors import RenderError

if TYPE_CHECKING:  # pragma: no cover
    import jinja2

    from reportgen.analysis import ClaimResult, Statement
    from reportgen.records import RunManifest
    from reportgen.report.chart_browser import ChartBrowser
    from reportgen.report.charts import ChartSet, PendingSvgs
    from reportgen.report.context import ReportContext
    from reportgen.report.formats import Format
    from reportgen.specs.extract import ModelSpec
    from reportgen.stats.history import RetrainingDelta
    from reportgen.stats.tables import Tables
    from reportgen.study.config import Study

__all__ = [
    "Facts",
    "RenderedReport",
    "draw_charts",
    "gather",
    "render_formats",
    "render_in_memory",
    "render_report",
    "replace_between_markers",
    "report_context",
]

log = logging.getLogger(__name__)

START_MARKER = "<!-- reportgen:start -->"
END_MARKER = "<!-- reportgen:end -->"


NOT_DRAWN = "*(chart not drawn: no Chromium for the static export; see report.html)*"


@dataclasses.dataclass
class RenderedReport:
    """A report rendered in memory: ``files`` maps paths relative to ``out_dir`` to their bytes."""

    out_dir: Path
    files: dict[str, bytes]
    context: ReportContext
    bodies: dict[str, str] = dataclasses.field(default_factory=dict)  # format name → its Markdown body
    fetched: list[str] = dataclasses.field(default_factory=list)  # URLs WeasyPrint asked for
    refused: list[str] = dataclasses.field(default_factory=list)  # ... and was refused

    @property
    def markdown(self) -> str:
        """The README's Markdown ("" when the markdown format was not rendered)."""
        return self.bodies.get("markdown", "")


@dataclasses.dataclass
class Facts:
    """What the report states, gathered before anything is drawn (a false claim has raised by then)."""

    specs: dict[str, ModelSpec]
    statements: list[Statement]  # the spec statements
    warnings: list[str]
    claims: list[ClaimResult]
    warnings_by_model: dict[str, list[str]]
    conclusion_points: list[Statement]
    tables: Tables | None = None  # None: the spec-only report (no store, or no generation in it)
    headline: str | None = None
    deltas: list[RetrainingDelta] = dataclasses.field(default_factory=list)
    manifest: RunManifest | None = None
    verdict: list[Statement] = dataclasses.field(default_factory=list)  # analysis.verdict_lines


def _normalise_blank_lines(text: str) -> str:
    """At most one blank line between blocks (outside fenced code), one newline at the end."""
    out: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        stripped = line.strip()
        match = re.match(r"^(`{3,}|~{3,})", stripped)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and stripped.startswith(fence[0] * len(fence)) and stripped.strip(fence[0]) == "":
            fence = None
        elif fence is None and not stripped:
            if out and out[-1] == "":
                continue
            line = ""
        out.append(line.rstrip() if fence is None else line)
    while out and out[0] == "":
        out.pop(0)
    return "\n".join(out).rstrip("\n") + "\n"


def _generated_at(study: Study) -> str:
    if not study.output.timestamp:
        return ""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible builds: a fixed time when given
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch and epoch.isdigit() else datetime.now(timezone.utc)
    return moment.isoformat(timespec="seconds")


def spec_charts(study: Study, specs: Mapping[str, Any]) -> ChartSet:
    """The charts the spec facts give: parameters and weight memory per model."""
    from reportgen.report.charts import ChartSet, spec_chart_height, spec_size_figure

    charts = ChartSet()
    names = {m.id: m.name for m in study.models}
    figure = spec_size_figure(specs, names)
    sizes = {(s.parameters, s.weight_bytes) for s in specs.values() if s.parameters}
    if figure is not None and len(sizes) >= 2:  # identical sizes (variants of one model) make no chart
        charts.add(
            "spec-size",
            figure,
            "Parameters and weight memory per model (log scale)",
            height=spec_chart_height(sum(1 for s in specs.values() if s.parameters)),
        )
    return charts


def _prompt_texts(study: Study) -> dict[str, str]:
    """prompt id → the prompt as written, for the samples; {} when the study's prompt set cannot be read."""
    if study.prompts is None:
        return {}
    from reportgen.errors import ReportgenError
    from reportgen.study.prompts import load_prompt_set
    from reportgen.report.sections import prompt_text

    try:
        prompt_set = load_prompt_set(study.prompts)
    except (ReportgenError, OSError) as exc:
        log.warning("samples without prompt texts: %s", exc)
        return {}
    return {p.id: prompt_text(p) for p in prompt_set.prompts}


def _check_extra_context(extra_context: Mapping[str, Any] | None) -> None:
    from reportgen.report.context import ReportContext

    unknown = sorted(set(extra_context or {}) - {f.name for f in dataclasses.fields(ReportContext)})
    if unknown:
        raise RenderError(f"extra_context: unknown report field(s) {', '.join(unknown)}; see ReportContext")


def render_in_memory(
    study: Study,
    *,
    templates_dir: str | Path | None = None,
    formats: Iterable[str] | None = None,
    out_dir: str | Path | None = None,
    single_file: bool = True,
    extra_context: Mapping[str, Any] | None = None,
    specs: Mapping[str, Any] | None = None,
    tables: Tables | None = None,
    deltas: Sequence[RetrainingDelta] | None = None,
    manifest: RunManifest | None = None,
    browser: ChartBrowser | None = None,
) -> RenderedReport:
    """Phase one: compute and render every file of the report, write nothing.

    ``tables`` (stats.tables.compute_tables), ``deltas`` (stats.history.RetrainingDelta) and ``manifest``
    (the latest run's RunManifest) add the results sections; with ``tables=None`` (or no generation in
    it) the report is the spec-only report. A claim naming a measured value is checked against ``tables``.
    The static charts are drawn on ``browser`` (a caller may have started it early) or on one of their
    own, while the sections and the formats without static charts render.
    """
    from reportgen.report.formats import prepare_formats
    from reportgen.report.templates import make_environment

    chosen = prepare_formats(study, formats)
    env = make_environment(templates_dir)  # a bad --templates folder fails before any work
    _check_extra_context(extra_context)
    facts = gather(study, specs, tables, list(deltas or []), manifest)
    charts = draw_charts(study, facts)
    folder = Path(out_dir) if out_dir is not None else study.output_dir
    svgs = _start_static_charts(charts, chosen, browser)  # drawn from here on, on the browser's thread
    try:
        context = report_context(study, facts, charts, extra_context)
        return render_formats(
            chosen, env, context, charts, folder, svgs, single_file=single_file, study=study, tables=facts.tables
        )
    finally:
        if svgs is not None:
            svgs.close()


def gather(
    study: Study,
    specs: Mapping[str, ModelSpec] | None,
    tables: Tables | None,
    deltas: list[RetrainingDelta],
    manifest: RunManifest | None,
) -> Facts:
    """Specs, the spec table, the analysis and the checked claims; the measured results when there are any.

    A false claim raises ClaimError here: nothing has been drawn or written.
    """
    from reportgen import analysis
    from reportgen.report.markdown import markdown_style
    from reportgen.specs.study import spec_table, study_specs

    specs = dict(specs) if specs is not None else study_specs(study)
    table = spec_table(specs)
    md = markdown_style()
    statements = analysis.spec_statements(study, specs, md)
    warnings = analysis.consistency_warnings(study, specs, md)
    results = analysis.has_results(tables)
    measured = analysis.metrics_claim_table(tables) if results else None
    claim_results = analysis.check_claims(study, table, metrics=measured)
    warnings_by_model = analysis.warnings_by_model(study, specs, md)
    spec_points = analysis.conclusion_points(study, specs, md)
    verdict = analysis.verdict_lines(study, tables if results else None, specs, deltas, md)
    if not results:
        return Facts(specs, statements, warnings, claim_results, warnings_by_model, spec_points, verdict=verdict)
    headline = analysis.headline_metric(tables)
    result_points = analysis.result_conclusion(study, tables, deltas, md)
    return Facts(
        specs,
        statements,
        warnings,
        claim_results,
        warnings_by_model,
        result_points + spec_points,
        tables,
        headline,
        deltas,
        manifest,
        verdict,
    )


def draw_charts(study: Study, facts: Facts) -> ChartSet:
    """Every chart of the report, in one ChartSet (exported in one kaleido session): specs, then results."""
    from reportgen.report.charts import house_template

    with house_template():
        charts = spec_charts(study, facts.specs)
        if facts.tables is not None:
            from reportgen.report.sections import result_charts

            result_charts(charts, study, facts.tables, facts.deltas, facts.headline)
    return charts


def report_context(study: Study, facts: Facts, charts: ChartSet, extra_context: Mapping[str, Any] | None = None) -> ReportContext:
    """The typed template context: model views, spec comparison, analysis, claims and the results sections."""
    from reportgen.report.context import build_context
    from reportgen.specs.study import model_files

    results = None
    if facts.tables is not None:
        from reportgen.report.sections import result_sections

        results = result_sections(
            study,
            facts.tables,
            facts.headline,
            deltas=facts.deltas,
            manifest=facts.manifest,
            specs=facts.specs,
            charts=charts,
            prompts=_prompt_texts(study),
        )
    context = build_context(
        study,
        facts.specs,
        facts.statements,
        facts.warnings,
        facts.claims,
        files={m.id: model_files(m) for m in study.models if m.id in facts.specs},
        warnings_by_model=facts.warnings_by_model,
        conclusion_points=facts.conclusion_points,
        verdict=facts.verdict,
        charts=charts,
        generated_at=_generated_at(study),
        results=results,
    )
    return dataclasses.replace(context, **dict(extra_context)) if extra_context else context


def render_formats(
    chosen: Sequence[Format],
    env: jinja2.Environment,
    context: ReportContext,
    charts: ChartSet,
    folder: Path,
    svgs: PendingSvgs | None,
    *,
    single_file: bool = True,
    study: Study | None = None,
    tables: Tables | None = None,
) -> RenderedReport:
    """Each chosen format from the Markdown body of its own target; the static charts (``svgs``, being drawn;
    None when no browser can draw them) once, for all of them.

    A format whose work happens in another process (``Format.runs_apart``: the PDF's printer) is started
    first, on a thread that waits for the charts and then for it; the formats without static charts render
    next, while the charts are drawn; those with them last. The files are collected in the order the
    formats were chosen."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from reportgen.report.formats import FormatInput, FormatOutput

    report = RenderedReport(folder, {}, context)
    drawn: dict[str, bytes] | None = None

    def static_files() -> dict[str, bytes]:
        """charts/NAME.svg of every chart: what every format with static charts may reference."""
        nonlocal drawn
        if drawn is None:
            drawn = {charts[name].svg_path: data for name, data in svgs.result().items()} if svgs is not None else {}
        return drawn

    def render_apart(fmt: Format, job: FormatInput) -> FormatOutput:
        return fmt.render(dataclasses.replace(job, pending=static_files() if fmt.static_charts else {}))

    outputs: dict[str, Future[FormatOutput] | FormatOutput] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reportgen-format") as apart:
        for fmt in sorted(chosen, key=lambda f: (not f.runs_apart, f.static_charts)):
            ctx, body = _format_body(env, context, charts, fmt, drawn=svgs is not None)
            job = FormatInput(env, ctx, body, charts, folder, {}, single_file, study, tables)
            if fmt.runs_apart:
                outputs[fmt.name] = apart.submit(render_apart, fmt, job)
            else:
                outputs[fmt.name] = fmt.render(dataclasses.replace(job, pending=static_files()) if fmt.static_charts else job)
            report.bodies[fmt.name] = body
        if any(fmt.static_charts for fmt in chosen):
            report.files.update(static_files())
        for fmt in chosen:
            done = outputs[fmt.name]
            rendered = done.result() if isinstance(done, Future) else done
            report.files.update(rendered.files)
            report.fetched += rendered.fetched
            report.refused += rendered.refused
    report.bodies = {fmt.name: report.bodies[fmt.name] for fmt in chosen}
    return report


def _start_static_charts(charts: ChartSet, chosen: Sequence[Format], browser: ChartBrowser | None) -> PendingSvgs | None:
    """The charts being drawn for the formats that show static charts (none when no format does); None when
    no browser can draw them."""
    from reportgen.report.charts import ChartSet, static_charts_available

    if not charts or not any(fmt.static_charts for fmt in chosen):
        return ChartSet().start_svgs()  # nothing to draw
    if not charts.svgs_cached() and not static_charts_available():
        log.warning("static charts skipped: no Chrome/Chromium found for kaleido (install chromium or set BROWSER_PATH)")
        return None
    return charts.start_svgs(browser)


def _format_body(
    env: jinja2.Environment, context: ReportContext, charts: ChartSet, fmt: Format, *, drawn: bool
) -> tuple[ReportContext, str]:
    """The context of ``fmt``'s target (its chart views) and the Markdown body rendered from it."""
    from reportgen.report.context import ChartView, chart_views
    from reportgen.report.markdown import insert_toc
    from reportgen.report.templates import render_template

    views = chart_views(charts, interactive=not fmt.static_charts)
    if fmt.static_charts and not drawn:
        views = [ChartView(v.name, v.title, NOT_DRAWN, v.group) for v in views]
    ctx = dataclasses.replace(
        context,
        target=fmt.name,
        charts=[v for v in views if v.group == "spec"],
        metric_charts=[v for v in views if v.group != "spec"],
    )
    text = render_template(env, "report.md.j2", ctx.variables())
    return ctx, insert_toc(_normalise_blank_lines(text), anchors=fmt.anchors)


def render_report(
    study: Study,
    *,
    templates_dir: str | Path | None = None,
    formats: Iterable[str] | None = None,
    out_dir: str | Path | None = None,
    single_file: bool = True,
    extra_context: Mapping[str, Any] | None = None,
    tables: Tables | None = None,
    deltas: Sequence[RetrainingDelta] | None = None,
    manifest: RunManifest | None = None,
    browser: ChartBrowser | None = None,
) -> list[Path]:
    """Render the study's report and write it; return the written paths.

    ``formats``: names of registered formats (``formats.FORMATS``: "markdown" README.md, "html"
    report.html, "pdf" report.pdf); default ``study.output.formats``. ``out_dir``: default ``study.output_dir``.
    ``templates_dir``: a folder whose templates win over the defaults. ``single_file`` (the default): plotly.js
    inline in report.html, which then works alone; False: a plotly.min.js beside it. ``extra_context``: ReportContext
    fields to set. ``tables`` (stats.tables.Tables), ``deltas`` (stats.history.RetrainingDelta list) and
    ``manifest`` (the latest run's RunManifest) add the measured results: summary, metric tables,
    charts, analysis, samples, what retraining changed, the run manifest; ``tables=None`` gives the
    spec-only report. ``browser``: the ChartBrowser to draw the static charts on (``build`` starts one early).
    Raises ConfigError / ClaimError / RenderError; on any error nothing is written.
    """
    from reportgen.util.atomic import write_files

    report = render_in_memory(
        study,
        templates_dir=templates_dir,
        formats=formats,
        out_dir=out_dir,
        single_file=single_file,
        extra_context=extra_context,
        tables=tables,
        deltas=deltas,
        manifest=manifest,
        browser=browser,
    )
    written = write_files(report.out_dir, report.files)
    _remove_stale_charts(report.out_dir, report.files)
    return written


def _remove_stale_charts(folder: Path, files: Mapping[str, bytes]) -> None:
    """Delete charts/*.svg of an earlier render that this one no longer draws (a chart that went away).

    Only when this render drew static charts: an HTML-only render leaves the README's SVGs alone.
    """
    from reportgen.report.charts import CHART_DIR

    drawn = {name for name in files if name.startswith(f"{CHART_DIR}/")}
    if not drawn:
        return
    for path in sorted((Path(folder) / CHART_DIR).glob("*.svg")):
        if f"{CHART_DIR}/{path.name}" not in drawn:
            try:
                path.unlink()
            except OSError as exc:  # pragma: no cover - a read-only folder: the stale file is harmless
                log.warning("could not remove the stale chart %s: %s", path, exc)


def host_parts(path: str | Path) -> tuple[str, str]:
    """(the host file's text up to and including ``<!-- reportgen:start -->``, its text from
    ``<!-- reportgen:end -->`` on); RenderError when the markers are missing, repeated or out of order."""
    text, start, end = _read_host(Path(path))
    return text[:start], text[end:]


def between_markers(path: str | Path) -> str:
    """The text between ``<!-- reportgen:start -->`` and ``<!-- reportgen:end -->`` in the host file (RenderError
    when the markers are missing, repeated or out of order)."""
    text, start, end = _read_host(Path(path))
    return text[start:end]


def replace_between_markers(path: str | Path, new_text: str) -> Path:
    """Replace the text between ``<!-- reportgen:start -->`` and ``<!-- reportgen:end -->`` in ``path``.

    The markers and everything outside them stay byte for byte. A missing or repeated marker (or an
    end before the start) raises RenderError and leaves the file untouched. Used by ``--into README.md``.
    """
    from reportgen.util.atomic import atomic_write

    path = Path(path)
    text, start, end = _read_host(path)
    newline = "\r\n" if "\r\n" in text[: start + 2] else "\n"
    middle = new_text if new_text.startswith(("\n", "\r\n")) else newline + new_text
    middle = middle if middle.endswith(("\n", "\r\n")) else middle + newline
    updated = text[:start] + middle + text[end:]
    atomic_write(path, updated.encode("utf-8"))
    return path


def _read_host(path: Path) -> tuple[str, int, int]:
    """The host's text and where its report goes (after the start marker, up to the end marker)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RenderError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RenderError(f"{path}: not UTF-8 text") from None
    starts, ends = text.count(START_MARKER), text.count(END_MARKER)
    if starts != 1 or ends != 1:
        problem = []
        if starts != 1:
            problem.append(f"{START_MARKER} appears {starts} times")
        if ends != 1:
            problem.append(f"{END_MARKER} appears {ends} times")
        raise RenderError(
            f"{path}: {' and '.join(problem)} (need exactly one of each). Fix: add one pair of markers where the report goes"
        )
    start = text.index(START_MARKER) + len(START_MARKER)
    end = text.index(END_MARKER)
    if end < start:
        raise RenderError(f"{path}: {END_MARKER} comes before {START_MARKER}. Fix: put the start marker first")
    return text, start, end
