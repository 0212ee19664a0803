"""The build: run what changed, then render what changed — and the staleness digest that decides it.

Side effects live here and below it at the edges (the store, the output files); every number comes
from the pure functions of ``stats`` and ``analysis``. One build opens the store once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import reportgen
from reportgen.errors import JobFailed, RenderError
from reportgen.imports.importer import import_study_logs, imported_models
from reportgen.report.charts import new_chart_browser, static_charts_available
from reportgen.report.assemble import between_markers, host_parts, render_in_memory, render_report, replace_between_markers
from reportgen.report.formats import FORMATS, study_formats
from reportgen.report.inputs import ReportInputs, read_report_inputs
from reportgen.util.resources import default_templates_dir
from reportgen.run.execute import Progress
from reportgen.run.runner import run_study
from reportgen.run.summary import RunSummary
from reportgen.store import Store, store_path
from reportgen.study.config import Study
from reportgen.util.atomic import atomic_write, write_files

if TYPE_CHECKING:
    from reportgen.report.chart_browser import ChartBrowser

__all__ = ["BUILD_STATE", "BuildResult", "build_study", "render_inputs", "render_study"]

log = logging.getLogger(__name__)

BUILD_STATE = ".reportgen-build.json"


def _open_store(study: Study, *, create: bool) -> Store | None:
    path = store_path(study)
    return Store(path, create=True) if create or path.exists() else None


def render_study(
    study: Study,
    *,
    templates_dir: Path | None = None,
    into: Path | None = None,
    single_file: bool = True,
    out_dir: Path | None = None,
    formats: list[str] | None = None,
) -> list[Path]:
    """Render the report from the specs and whatever the store holds; never loads a model.

    A render of the study's own formats into its report folder records the build stamp, so that a
    following ``build`` knows the report is current."""
    store = _open_store(study, create=False)
    with contextlib.closing(store) if store is not None else contextlib.nullcontext(), new_chart_browser() as browser:
        early = _early_start(browser, study, formats, embedding=into is not None)
        inputs = read_report_inputs(store, study, on_compute=early) if store is not None else ReportInputs()
        paths = _render(
            study,
            inputs,
            templates_dir=templates_dir,
            into=into,
            single_file=single_file,
            out_dir=out_dir,
            formats=formats,
            browser=browser,
        )
        if (
            into is None
            and out_dir is None
            and single_file  # the form a build writes
            and set(formats or study.output.formats) >= set(study.output.formats)
        ):
            _write_state(study, report_digests(study, templates_dir, store))
    return paths


def _early_start(browser: ChartBrowser, study: Study, formats: list[str] | None, *, embedding: bool) -> Callable[[], None] | None:
    """``browser.start`` where this render draws static charts (the README, the PDF, an embedded report) and
    a browser can: passed as ``read_report_inputs``' ``on_compute``, it starts Chromium when the tables must be
    computed (the charts have then changed), so that the browser starts while they are."""
    if not embedding and not any(FORMATS.get(name).static_charts for name in formats or study.output.formats):
        return None
    return browser.start if static_charts_available() else None


def _render(
    study: Study,
    inputs: ReportInputs,
    *,
    templates_dir: Path | None,
    into: Path | None = None,
    single_file: bool = True,
    out_dir: Path | None = None,
    formats: list[str] | None = None,
    browser: ChartBrowser | None = None,
) -> list[Path]:
    if into is not None:
        return _render_into(study, inputs, into, templates_dir=templates_dir, assets=out_dir, browser=browser)
    return render_report(
        study,
        templates_dir=templates_dir,
        formats=formats,
        out_dir=out_dir,
        single_file=single_file,
        browser=browser,
        **inputs.as_kwargs(),
    )


def _render_into(
    study: Study,
    inputs: ReportInputs,
    into: Path,
    *,
    templates_dir: Path | None,
    assets: Path | None,
    browser: ChartBrowser | None = None,
) -> list[Path]:
    """The Markdown report between the host file's markers, its charts in ``assets`` (default: a folder
    ``<host stem>_files`` beside the host) with paths, headings and anchors fitted to the host."""
    from reportgen.report.charts import CHART_DIR
    from reportgen.report.embed import embed_markdown

    before, after = host_parts(into)  # the markers are checked before any work
    folder = assets if assets is not None else into.parent / f"{into.stem}_files"
    report = render_in_memory(
        study, templates_dir=templates_dir, formats=["markdown"], out_dir=folder, browser=browser, **inputs.as_kwargs()
    )
    charts = {name: data for name, data in report.files.items() if name.startswith(f"{CHART_DIR}/")}
    prefix = Path(os.path.relpath(folder.resolve(), into.parent.resolve())).as_posix()
    body = embed_markdown(before, report.markdown, after, chart_paths=charts, asset_prefix="" if prefix == "." else prefix)
    written = write_files(folder, charts) if charts else []
    return [*written, replace_between_markers(into, body)]


def _write_state(study: Study, digests: ReportInputsDigest) -> None:
    """The stamp of the report folder's formats (the hosts embedded with ``--into`` keep theirs)."""
    previous = _previous_state(study.output_dir / BUILD_STATE)
    state = {"formats": {fmt: digests.formats[fmt] for fmt in study.output.formats}, "inputs": digests.inputs}
    if previous.get("embedded"):
        state["embedded"] = previous["embedded"]
    atomic_write(study.output_dir / BUILD_STATE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def _host_key(study: Study, host: Path) -> str:
    """A host file's name in the stamp: its path from the report folder (the stamp is committed with it)."""
    return Path(os.path.relpath(host.resolve(), study.output_dir.resolve())).as_posix()


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _embedded(state: dict) -> dict[str, dict]:
    """The stamp's host files (``--into``) by their path from the report folder."""
    embedded = state.get("embedded")
    return dict(embedded) if isinstance(embedded, dict) else {}


def _record_embedded(study: Study, host: Path, digests: ReportInputsDigest) -> None:
    """Stamp a host file the report was just rendered into (``--into``): the inputs it was rendered from and
    the text now between its markers, so that ``check`` knows when it goes stale or is edited by hand."""
    state = _previous_state(study.output_dir / BUILD_STATE) or {"formats": {}, "inputs": {}}
    embedded = _embedded(state)
    embedded[_host_key(study, host)] = {
        "digest": digests.formats["markdown"],
        "inputs": digests.inputs,
        "text": _text_digest(between_markers(host)),
    }
    state["embedded"] = embedded
    atomic_write(study.output_dir / BUILD_STATE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def _embedded_staleness(study: Study, state: dict, digests: ReportInputsDigest) -> list[str]:
    """Why each host file the report was embedded into (``--into``, recorded in the stamp) is stale."""
    stale: list[str] = []
    for key, record in sorted(_embedded(state).items()):
        host = Path(os.path.normpath(study.output_dir.resolve() / key))
        fix = f"Fix: reportgen build {study.path} --into {host}"
        if not host.is_file():
            stale.append(f"{host}: missing (the report was rendered into it with --into). {fix}")
            continue
        try:
            text = between_markers(host)
        except RenderError as exc:
            stale.append(f"{exc.format_message()} (the report was rendered into it with --into)")
            continue
        if record.get("digest") == digests.formats["markdown"]:
            if record.get("text") != _text_digest(text):
                stale.append(
                    f"{host}: the text between its reportgen markers was changed since the report was rendered into it. {fix}"
                )
            continue
        changed = digests.changed(record.get("inputs") or {})
        changed = [name for name in changed if not name.startswith("templates (") or name == "templates (markdown)"]
        what = ", ".join(changed) if changed else "its inputs"
        stale.append(f"{host}: {what} changed since the report was rendered into it. {fix}")
    return stale


def _digest_files(paths: list[Path], *, relative_to: Path | None = None) -> str:
    """One digest of the files' names (relative to ``relative_to``, else bare) and contents: the same on every machine."""
    sha = hashlib.sha256()
    for path in sorted(paths):
        name = path.relative_to(relative_to).as_posix() if relative_to else path.name
        sha.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()


def _named_files(study: Study) -> dict[str, Path]:
    """The files a report depends on besides the store and the templates, by what they are."""
    named: dict[str, Path] = {"config": study.path}
    if study.prompts is not None and study.prompts.exists():
        named["prompts"] = study.prompts
    for model in study.models:
        if model.results_from is not None and Path(model.results_from.path).is_file():
            named[f"{model.id} {model.results_from.tool} log"] = Path(model.results_from.path)
        if model.config is not None and Path(model.config).is_file():
            named[f"{model.id} config.json"] = Path(model.config)
        if model.adapter is not None and Path(model.adapter.config_file).is_file():
            named[f"{model.id} adapter_config.json"] = Path(model.adapter.config_file)
    return named


@dataclass
class ReportInputsDigest:
    """What a report was rendered from, one digest per input, and the digest of each format from them."""

    inputs: dict[str, str]  # "config", "prompts", "<model> config.json", "store", "templates <format>", "reportgen code", …
    formats: dict[str, str]

    def changed(self, recorded: dict[str, str]) -> list[str]:
        """The inputs whose digest differs from ``recorded`` (added and removed ones too)."""
        return sorted(name for name in set(self.inputs) | set(recorded) if self.inputs.get(name) != recorded.get(name))


def report_digests(study: Study, templates_dir: Path | None, store: Store | None = None) -> ReportInputsDigest:
    """Everything that can change a report, digested: config and the files it names, the prompt set,
    the stored results, the templates each format uses, reportgen's version and code."""
    inputs = {name: _digest_files([path]) for name, path in _named_files(study).items()}
    inputs["store"] = store.content_digest() if store is not None else ""
    inputs["reportgen version"] = reportgen.__version__
    package = Path(reportgen.__file__).parent
    inputs["reportgen code"] = _digest_files(sorted(package.rglob("*.py")), relative_to=package)
    template_dirs = [default_templates_dir()] + ([Path(templates_dir)] if templates_dir else [])
    shared = hashlib.sha256("|".join(f"{k}={v}" for k, v in sorted(inputs.items())).encode()).hexdigest()
    formats = {}
    for fmt in FORMATS.values():  # each format depends on the template files of its suffixes
        files = [f for d in template_dirs for f in d.rglob("*") if f.is_file() and f.name.endswith(fmt.template_suffixes)]
        inputs[f"templates ({fmt.name})"] = _digest_files(files) + (f"|{templates_dir}" if templates_dir else "")
        formats[fmt.name] = hashlib.sha256(f"{shared}|{inputs[f'templates ({fmt.name})']}".encode()).hexdigest()
    return ReportInputsDigest(inputs, formats)


def render_inputs(study: Study, templates_dir: Path | None, store: Store | None = None) -> dict[str, str]:
    """A digest per output format of everything that can change it (see ``report_digests``)."""
    return report_digests(study, templates_dir, store).formats


@dataclass
class BuildResult:
    """What a build did: the models that re-ran, the formats re-rendered, the files written."""

    reran: list[str]
    rendered: list[str]  # formats re-rendered
    paths: list[Path]


def _previous_state(state_file: Path) -> dict:
    """The last build's stamp: {"formats": {name: digest}, "inputs": {name: digest}} ({} when none or unreadable)."""
    try:
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
    except ValueError:
        return {}
    return state if isinstance(state, dict) and isinstance(state.get("formats"), dict) else {}


def build_study(
    study: Study,
    *,
    force: bool = False,
    templates_dir: Path | None = None,
    model_ids: list[str] | None = None,
    into: Path | None = None,
    out_dir: Path | None = None,
    progress: Progress | None = None,
    fail_on_regression: bool = False,
    allow_failures: bool = False,
    execute_code: bool = False,
) -> BuildResult:
    """Run the models whose inputs changed, then re-render the formats whose inputs changed.

    ``out_dir`` renders elsewhere than the study's report folder: always, and without the stamp. ``into``
    renders the study's report folder as a plain build does, then the Markdown report into that host file
    (always), and records it in the stamp, so that ``check`` covers it from then on.

    Raises JobFailed after rendering when a model failed or answered none of its prompts, or (unless
    ``allow_failures``) when some prompts failed, and on a regression (``fail_on_regression``)."""
    study_formats(study)  # an unknown output format is a config error before any model runs
    runnable = study.prompts is not None and any(m.runnable for m in study.models)
    imports = bool(imported_models(study))
    store = _open_store(study, create=runnable or imports)
    with contextlib.closing(store) if store is not None else contextlib.nullcontext(), new_chart_browser() as browser:
        reran: list[str] = []
        summary: RunSummary | None = None
        if imports and store is not None:  # another tool's logs: stored once per content, before any model runs
            reran += [o.model_id for o in import_study_logs(study, store) if o.stored]
        if runnable:
            summary = run_study(
                study, force=force, progress=progress, store=store, model_ids=model_ids, execute_code=execute_code
            )
            for model in summary.models:
                log.info(model.line())
            if summary.code is not None:
                log.info(summary.code.line())
            reran += summary.reran_models
            if not reran and not summary.failed_models:
                if summary.run_id is None:
                    log.info("every stored result is current: no model re-ran")
                else:  # timed passes or reference-text scores were due, the answers were all stored
                    log.info("no answer was regenerated; only the measurements named above ran")
        digests = report_digests(study, templates_dir, store)
        elsewhere = None if into is not None else out_dir  # with --into, -o is the folder of the host's charts
        stale = _stale_formats(study, digests.formats, force=force or elsewhere is not None)
        paths: list[Path] = []
        wanted = stale or into is not None or fail_on_regression
        early = _early_start(browser, study, stale, embedding=into is not None) if stale or into is not None else None
        inputs = read_report_inputs(store, study, on_compute=early) if store is not None and wanted else ReportInputs()
        if stale:
            paths = _render(study, inputs, templates_dir=templates_dir, formats=stale, out_dir=elsewhere, browser=browser)
            if elsewhere is None:
                _write_state(study, digests)
            log.info("rendered %s in %s", ", ".join(FORMATS.get(f).file_name for f in stale), elsewhere or study.output_dir)
        else:
            log.info("%s: the report is up to date; nothing rendered", study.output_dir)
        if into is not None:
            paths += _render(study, inputs, templates_dir=templates_dir, into=into, out_dir=out_dir, browser=browser)
            _record_embedded(study, into, digests)
            log.info("rendered the report into %s", into)
        worse = regressions(study, inputs) if fail_on_regression else []  # the tables the render used, not read again
    if worse:
        raise JobFailed("significant regression after retraining: " + "; ".join(worse))
    if summary is not None:
        summary.raise_for_failures(allow_failures, "everything else is saved and rendered")
    return BuildResult(reran, stale, paths)


def _stale_formats(study: Study, digests: dict[str, str], *, force: bool) -> list[str]:
    """The study's formats whose inputs changed since the last build (or whose file is missing)."""
    previous = _previous_state(study.output_dir / BUILD_STATE).get("formats", {})
    return [
        fmt
        for fmt in study.output.formats
        if force or previous.get(fmt) != digests[fmt] or not (study.output_dir / FORMATS.get(fmt).file_name).exists()
    ]


# -- the CI check and the regression gate ------------------------------------------------------


@dataclass
class CheckResult:
    """Why the committed report is stale (empty when it is current), and which models got worse."""

    stale: list[str]
    regressions: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)  # what could not be checked here, and why

    @property
    def ok(self) -> bool:
        return not self.stale


def regressions(study: Study, inputs: ReportInputs) -> list[str]:
    """``MODEL: METRIC`` for every headline metric that got significantly worse since the model's previous run."""
    from reportgen.analysis import HEADLINE_METRICS

    metrics = set(study.ci.regression_metrics or HEADLINE_METRICS)
    found = []
    for delta in inputs.deltas:
        for metric in delta.worse:
            if metric in metrics:
                row = delta.deltas[delta.deltas["metric"] == metric].iloc[0]
                found.append(
                    f"{delta.model_id}: {metric} {row.mean_old:.3g} → {row.mean_new:.3g} "
                    f"(change {row['diff']:+.3g}, 95% CI [{row.ci_low:+.3g}, {row.ci_high:+.3g}], p = {row.p_value:.3g})"
                )
    return found


def check_study(study: Study, *, templates_dir: Path | None = None, fail_on_regression: bool = False) -> CheckResult:
    """Without running a model or rendering: is the report in the study's folder current with its inputs,
    and is every model's stored result current with its weights? Each stale input is named."""
    from reportgen.errors import BackendError
    from reportgen.run.plan import plan_model, select_models
    from reportgen.study.prompts import study_prompt_set

    stale: list[str] = []
    notes: list[str] = []
    state = _previous_state(study.output_dir / BUILD_STATE)
    if not state:
        stale.append(
            f"{study.output_dir / BUILD_STATE}: no build stamp: the report was not built by `reportgen build` "
            "(commit the stamp with the report)"
        )
    store = _open_store(study, create=False)
    with contextlib.closing(store) if store is not None else contextlib.nullcontext():
        digests = report_digests(study, templates_dir, store)
        if state:
            stale += [f"{name} changed since the report was built" for name in digests.changed(state.get("inputs", {}))]
            for fmt in study_formats(study):
                if state["formats"].get(fmt.name) is None:
                    stale.append(f"{fmt.file_name}: not part of the last build")
        for fmt in study_formats(study):
            if not (study.output_dir / fmt.file_name).exists():
                stale.append(f"{study.output_dir / fmt.file_name}: missing")
        stale += _embedded_staleness(study, state, digests)
        runnable = study.prompts is not None and any(m.runnable for m in study.models)
        if runnable and store is None:
            stale.append(f"{store_path(study)}: no results store: every model would run")
        elif runnable and store is not None:
            prompt_set, claimed = study_prompt_set(study), dict[tuple[str, str, str], str]()
            for model in select_models(study, None):
                try:  # the weights' fingerprint, without loading them
                    work = plan_model(store, study, prompt_set, model, force=False, claimed=claimed)
                except BackendError as exc:  # e.g. CI without the weights: the stored rows are what the report shows
                    notes.append(f"model {model.id}: stored results not verified against its weights ({exc.format_message()})")
                    continue
                if work.has_work and not work.pending and work.choices_pending:
                    stale.append(f"model {model.id} would score {len(work.choices_pending)} multiple-choice continuations")
                elif work.has_work:
                    stale.append(f"model {model.id} would re-run {len(work.pending)} of {work.total} prompts: {work.reason}")
        found = regressions(study, read_report_inputs(store, study)) if fail_on_regression and store is not None else []
    return CheckResult(stale, found, notes)
