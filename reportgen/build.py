"""The build: run what changed, then render what changed — and the staleness digest that decides it.

Side effects live here and below it at the edges (the store, the output files); every number comes
from the pure functions of ``stats`` and ``analysis``. One build opens the store once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import reportgen
from reportgen.errors import JobFailed
from reportgen.report.assemble import render_in_memory, render_report, replace_between_markers
from reportgen.report.formats import FORMATS, study_formats
from reportgen.report.inputs import ReportInputs, read_report_inputs
from reportgen.report.templates import default_templates_dir
from reportgen.run.execute import Progress
from reportgen.run.runner import run_study
from reportgen.store import Store, store_path
from reportgen.study.config import Study
from reportgen.util.atomic import atomic_write

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
    single_file: bool = False,
    out_dir: Path | None = None,
    formats: list[str] | None = None,
) -> list[Path]:
    """Render the report from the specs and whatever the store holds; never loads a model.

    A render of the study's own formats into its report folder records the build stamp, so that a
    following ``build`` knows the report is current."""
    store = _open_store(study, create=False)
    with contextlib.closing(store) if store is not None else contextlib.nullcontext():
        inputs = read_report_inputs(store, study) if store is not None else ReportInputs()
        paths = _render(study, inputs, templates_dir=templates_dir, into=into, single_file=single_file, out_dir=out_dir,
                        formats=formats)
        if into is None and out_dir is None and not single_file and set(formats or study.output.formats) >= set(study.output.formats):
            _write_state(study, render_inputs(study, templates_dir, store))
    return paths


def _render(study: Study, inputs: ReportInputs, *, templates_dir: Path | None, into: Path | None = None,
            single_file: bool = False, out_dir: Path | None = None, formats: list[str] | None = None) -> list[Path]:
    if into is not None:
        report = render_in_memory(study, templates_dir=templates_dir, formats=["markdown"], out_dir=out_dir, **inputs.as_kwargs())
        return [replace_between_markers(into, report.markdown)]
    return render_report(study, templates_dir=templates_dir, formats=formats, out_dir=out_dir, single_file=single_file,
                         **inputs.as_kwargs())


def _write_state(study: Study, digests: dict[str, str]) -> None:
    state = {fmt: digests[fmt] for fmt in study.output.formats}
    atomic_write(study.output_dir / BUILD_STATE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def _digest_files(paths: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in sorted(paths):
        sha.update(str(path.name).encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()


def _named_files(study: Study) -> list[Path]:
    named: list[Path] = [study.path]
    if study.prompts is not None and study.prompts.exists():
        named.append(study.prompts)
    for model in study.models:
        for path in (model.config, model.adapter.config_file if model.adapter else None):
            if path is not None and Path(path).is_file():
                named.append(Path(path))
    return named


def render_inputs(study: Study, templates_dir: Path | None, store: Store | None = None) -> dict[str, str]:
    """A digest per output format of everything that can change it: config and the files it names,
    the prompt set, the stored results, the templates that format uses, and reportgen's own code."""
    data = hashlib.sha256(_digest_files(_named_files(study)).encode())
    if store is not None:
        data.update(store.content_digest().encode())
    code = _digest_files(sorted(Path(reportgen.__file__).parent.rglob("*.py")))
    template_dirs = [default_templates_dir()] + ([Path(templates_dir)] if templates_dir else [])
    digests = {}
    for fmt in FORMATS.values():  # each format depends on the template files of its suffixes
        files = [f for d in template_dirs for f in d.rglob("*") if f.is_file() and f.name.endswith(fmt.template_suffixes)]
        digests[fmt.name] = hashlib.sha256(f"{data.hexdigest()}|{code}|{_digest_files(files)}|{templates_dir}".encode()).hexdigest()
    return digests


@dataclass
class BuildResult:
    reran: list[str]
    rendered: list[str]  # formats re-rendered
    paths: list[Path]


def _previous_state(state_file: Path) -> dict:
    try:
        return json.loads(state_file.read_text()) if state_file.exists() else {}
    except ValueError:
        return {}


def build_study(study: Study, *, force: bool = False, templates_dir: Path | None = None, model_ids: list[str] | None = None,
                into: Path | None = None, out_dir: Path | None = None, progress: Progress | None = None) -> BuildResult:
    """Run the models whose inputs changed, then re-render the formats whose inputs changed.

    ``into`` / ``out_dir`` render elsewhere than the study's report folder: always, and without the stamp."""
    study_formats(study)  # an unknown output format is a config error before any model runs
    runnable = study.prompts is not None and any(m.runnable for m in study.models)
    store = _open_store(study, create=runnable)
    with contextlib.closing(store) if store is not None else contextlib.nullcontext():
        reran, failed = [], []
        if runnable:
            summary = run_study(study, force=force, progress=progress, store=store, model_ids=model_ids)
            for model in summary.models:
                log.info(model.line())
            reran, failed = summary.reran_models, summary.failed_models
            if not reran and not failed:
                log.info("every stored result is current: no model re-ran")
        digests = render_inputs(study, templates_dir, store)
        stale = _stale_formats(study, digests, force=force or into is not None or out_dir is not None)
        paths: list[Path] = []
        if stale:
            inputs = read_report_inputs(store, study) if store is not None else ReportInputs()
            paths = _render(study, inputs, templates_dir=templates_dir, formats=stale, into=into, out_dir=out_dir)
            if into is None and out_dir is None:
                _write_state(study, digests)
            log.info("rendered %s in %s", ", ".join(FORMATS.get(f).file_name for f in stale), into or out_dir or study.output_dir)
        else:
            log.info("%s: the report is up to date; nothing rendered", study.output_dir)
    if failed:
        raise JobFailed("; ".join(m.line() for m in failed) + " (everything else is saved and rendered)")
    return BuildResult(reran, stale, paths)


def _stale_formats(study: Study, digests: dict[str, str], *, force: bool) -> list[str]:
    """The study's formats whose inputs changed since the last build (or whose file is missing)."""
    previous = _previous_state(study.output_dir / BUILD_STATE)
    return [fmt for fmt in study.output.formats
            if force or previous.get(fmt) != digests[fmt] or not (study.output_dir / FORMATS.get(fmt).file_name).exists()]
