"""Render a study to README.md, report.html and report.pdf.

Two phases: everything is rendered in memory first (specs, analysis, charts, Markdown, HTML, PDF),
then written with atomic replaces. A failing template, a false claim or a broken chart export
leaves the previous report untouched. Output is deterministic: the same inputs give byte-identical
Markdown and HTML (no timestamps unless ``output.timestamp``; chart ids derived from names).

One module per job: ``templates`` (Jinja environment), ``context`` (the template context),
``sections`` (the results sections: measured frames → views and charts), ``markdown`` (escaping, slugs,
Markdown → HTML), ``charts`` (plotly / kaleido), ``html``, ``pdf``, ``write`` (atomic writes). Heavy imports (plotly, weasyprint, kaleido) happen inside functions.
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
    from reportgen.stats.tables import Tables
    from reportgen.study.config import Study
    from reportgen.stats.history import RetrainingDelta
    from reportgen.report.charts import ChartSet
    from reportgen.report.context import ReportContext

__all__ = ["FORMATS", "OUTPUT_NAMES", "RenderedReport", "render_report", "render_in_memory", "replace_between_markers"]

log = logging.getLogger(__name__)

FORMATS = ("markdown", "html", "pdf")
OUTPUT_NAMES = {"markdown": "README.md", "html": "report.html", "pdf": "report.pdf"}
START_MARKER = "<!-- reportgen:start -->"
END_MARKER = "<!-- reportgen:end -->"


@dataclasses.dataclass
class RenderedReport:
    """A report rendered in memory: ``files`` maps paths relative to ``out_dir`` to their bytes."""

    out_dir: Path
    files: dict[str, bytes]
    context: ReportContext
    markdown: str = ""
    fetched: list[str] = dataclasses.field(default_factory=list)  # URLs WeasyPrint asked for
    refused: list[str] = dataclasses.field(default_factory=list)  # ... and was refused


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
    from reportgen.report.charts import ChartSet, spec_size_figure

    charts = ChartSet()
    names = {m.id: m.name for m in study.models}
    figure = spec_size_figure(specs, names)
    sizes = {(s.parameters, s.weight_bytes) for s in specs.values() if s.parameters}
    if figure is not None and len(sizes) >= 2:  # identical sizes (variants of one model) make no chart
        charts.add("spec-size", figure, "Parameters and weight memory per model (log scale)")
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


def _check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(formats))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        raise RenderError(f"unknown output format(s): {', '.join(unknown)}. Known formats: {', '.join(FORMATS)}")
    if not chosen:
        raise RenderError("no output format chosen. Known formats: " + ", ".join(FORMATS))
    return chosen


def render_in_memory(
    study: Study,
    *,
    templates_dir: str | Path | None = None,
    formats: Iterable[str] | None = None,
    out_dir: str | Path | None = None,
    single_file: bool = False,
    extra_context: Mapping[str, Any] | None = None,
    specs: Mapping[str, Any] | None = None,
    tables: Tables | None = None,
    deltas: Sequence[RetrainingDelta] | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> RenderedReport:
    """Phase one: compute and render every file of the report, write nothing.

    ``tables`` (aggregate.compute_tables), ``deltas`` (pipeline.report_inputs) and ``manifest`` (the
    latest run's manifest) add the results sections; with ``tables=None`` (or no generation in it) the
    report is the spec-only report. A claim naming a measured value is checked against ``tables``.
    """
    from reportgen.analysis import statements as analysis
    from reportgen.specs.study import model_files, spec_table, study_specs
    from reportgen.report.charts import PLOTLY_JS, plotly_js, static_charts_available
    from reportgen.report.context import ChartView, build_context, chart_views
    from reportgen.report.html import html_page, render_html
    from reportgen.report.markdown import insert_toc, markdown_to_html
    from reportgen.report.templates import make_environment, render_template

    chosen = _check_formats(formats if formats is not None else study.output.formats)
    folder = Path(out_dir) if out_dir is not None else study.output_dir
    env = make_environment(templates_dir)  # a bad --templates folder fails before any work
    if extra_context:
        from reportgen.report.context import ReportContext

        unknown = sorted(set(extra_context) - {f.name for f in dataclasses.fields(ReportContext)})
        if unknown:
            raise RenderError(f"extra_context: unknown report field(s) {', '.join(unknown)}; see ReportContext")

    specs = dict(specs) if specs is not None else study_specs(study)
    table = spec_table(specs)
    statements = analysis.spec_statements(study, specs)
    warnings = analysis.consistency_warnings(study, specs)
    results = analysis.has_results(tables)
    measured = analysis.metrics_claim_table(tables) if results else None
    # a false claim raises ClaimError: nothing is written
    claim_results = analysis.check_claims(study, table, metrics=measured)
    charts = spec_charts(study, specs)
    later: dict[str, Any] = {}
    result_points: list = []
    if results:
        from reportgen.report.sections import result_sections

        later = result_sections(study, tables, deltas=list(deltas or []), manifest=manifest, specs=specs, charts=charts,
                                prompts=_prompt_texts(study))
        result_points = analysis.result_conclusion(study, tables, list(deltas or []), specs)

    files: dict[str, bytes] = {}
    static_ok = bool(charts) and ("markdown" in chosen or "pdf" in chosen) and static_charts_available()
    if static_ok:
        svgs = charts.svgs()
        for chart in charts:
            files[chart.svg_path] = svgs[chart.name]
    elif charts and ("markdown" in chosen or "pdf" in chosen):
        log.warning("static charts skipped: no Chrome/Chromium found for kaleido (install chromium or set BROWSER_PATH)")

    context = build_context(
        study, specs, statements, warnings, claim_results,
        files={m.id: model_files(m) for m in study.models if m.id in specs},
        warnings_by_model=analysis.warnings_by_model(study, specs),
        conclusion_points=result_points + analysis.conclusion_points(study, specs),
        charts=charts,
        generated_at=_generated_at(study),
        **later,
    )
    if extra_context:
        context = dataclasses.replace(context, **dict(extra_context))

    def body(target: str) -> tuple[ReportContext, str]:
        ctx = dataclasses.replace(context, target=target)
        if target in ("markdown", "pdf") and not static_ok:
            views = [ChartView(v.name, v.title, "*(chart not drawn: no Chromium for the static export; see report.html)*", v.group)
                     for v in chart_views(charts, target)]
        else:
            views = chart_views(charts, "html" if target == "html" else target)
        ctx.charts = [v for v in views if v.group == "spec"]
        if results:
            ctx.metric_charts = [v for v in views if v.group != "spec"]
        text = render_template(env, "report.md.j2", ctx.variables())
        return ctx, insert_toc(_normalise_blank_lines(text))

    report = RenderedReport(folder, files, context)
    if "markdown" in chosen:
        _, report.markdown = body("markdown")
        files["README.md"] = report.markdown.encode("utf-8")
    if "html" in chosen:
        ctx, text = body("html")
        divs = charts.html_divs(inline_js=single_file) if charts else {}
        files["report.html"] = render_html(env, ctx.variables(), text, chart_divs=divs, single_file=single_file).encode("utf-8")
        if divs and not single_file:
            files[PLOTLY_JS] = plotly_js()
    if "pdf" in chosen:
        from reportgen.report.pdf import render_pdf

        ctx, text = body("pdf")
        page = html_page(env, ctx.variables(), markdown_to_html(text))
        pdf, fetcher = render_pdf(page, folder, pending=files)
        files["report.pdf"] = pdf
        report.fetched, report.refused = fetcher.requested, fetcher.refused
    return report


def render_report(
    study: Study,
    *,
    templates_dir: str | Path | None = None,
    formats: Iterable[str] | None = None,
    out_dir: str | Path | None = None,
    single_file: bool = False,
    extra_context: Mapping[str, Any] | None = None,
    tables: Tables | None = None,
    deltas: Sequence[RetrainingDelta] | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Render the study's report and write it; return the written paths.

    ``formats``: any of "markdown" (README.md), "html" (report.html + plotly.min.js), "pdf"
    (report.pdf); default ``study.output.formats``. ``out_dir``: default ``study.output_dir``.
    ``templates_dir``: a folder whose templates win over the defaults. ``single_file``: plotly.js
    inline in report.html instead of a plotly.min.js beside it. ``extra_context``: ReportContext
    fields to set. ``tables`` (aggregate.Tables), ``deltas`` (pipeline.RetrainingDelta list) and
    ``manifest`` (the latest run's manifest dict) add the measured results: summary, metric tables,
    charts, analysis, samples, what retraining changed, the run manifest; ``tables=None`` gives the
    spec-only report. Raises ConfigError / ClaimError / RenderError; on any error nothing is written.
    """
    from reportgen.util.atomic import write_files

    report = render_in_memory(
        study, templates_dir=templates_dir, formats=formats, out_dir=out_dir,
        single_file=single_file, extra_context=extra_context, tables=tables, deltas=deltas, manifest=manifest,
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


def replace_between_markers(path: str | Path, new_text: str) -> Path:
    """Replace the text between ``<!-- reportgen:start -->`` and ``<!-- reportgen:end -->`` in ``path``.

    The markers and everything outside them stay byte for byte. A missing or repeated marker (or an
    end before the start) raises RenderError and leaves the file untouched. Used by ``--into README.md``.
    """
    from reportgen.util.atomic import atomic_write

    path = Path(path)
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
        raise RenderError(f"{path}: {' and '.join(problem)} (need exactly one of each). Fix: add one pair of markers where the report goes")
    start = text.index(START_MARKER) + len(START_MARKER)
    end = text.index(END_MARKER)
    if end < start:
        raise RenderError(f"{path}: {END_MARKER} comes before {START_MARKER}. Fix: put the start marker first")
    newline = "\r\n" if "\r\n" in text[:start + 2] else "\n"
    middle = new_text if new_text.startswith(("\n", "\r\n")) else newline + new_text
    middle = middle if middle.endswith(("\n", "\r\n")) else middle + newline
    updated = text[:start] + middle + text[end:]
    atomic_write(path, updated.encode("utf-8"))
    return path
