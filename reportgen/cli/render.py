"""``reportgen render`` and ``reportgen build``: the report from the store; the build runs what changed first."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from reportgen.cli.app import (
    allow_failures_option,
    config_argument,
    execute_code_option,
    load,
    main,
    model_list,
    models_option,
    progress,
    templates_option,
)

log = logging.getLogger("reportgen.cli")

into_option = click.option(
    "--into",
    "into",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Put the Markdown report between <!-- reportgen:start --> and <!-- reportgen:end --> in this file (headings fitted "
    "under the host's, anchors unique in it); its charts go to -o/--out, default FILE_files/ beside it.",
)
out_option = click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Report folder (default: the study's output.dir); with --into, the folder for its charts.",
)


@main.command()
@config_argument
@templates_option
@into_option
@click.option(
    "--single-file/--two-files",
    default=True,
    help="report.html with plotly.js inlined, one file that works alone (the default; about 4.8 MB), or a small "
    "report.html that needs the plotly.min.js written beside it.",
)
@out_option
@click.option(
    "-f",
    "--format",
    "formats",
    multiple=True,
    metavar="NAME",
    help="Render only this format (repeatable): markdown, html, pdf, summary (default: output.formats).",
)
def render(
    config: Path, templates_dir: Path | None, into: Path | None, single_file: bool, out_dir: Path | None, formats: tuple[str, ...]
) -> None:
    """Write the study as README.md, report.html and report.pdf (from the store; never loads a model)."""
    study = load(config)
    from reportgen.study.config import placeholders

    for warning in placeholders(study):  # the report reads TODO there
        log.warning("warning: %s", warning)
    if into is None:
        from reportgen.report.formats import prepare_formats

        prepare_formats(study, list(formats) or None)  # the PDF printer loads while the rest is imported and read
    from reportgen.build import render_study

    for path in render_study(
        study,
        templates_dir=templates_dir,
        into=into,
        single_file=single_file,
        out_dir=out_dir,
        formats=list(formats) or None,
    ):
        click.echo(str(path))


@main.command()
@config_argument
@click.option("--force", is_flag=True, help="Re-run every model and re-render everything.")
@templates_option
@models_option
@into_option
@out_option
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 1 when a model got significantly worse than its previous run on a headline metric (ci.regression_metrics).",
)
@allow_failures_option
@execute_code_option
def build(
    config: Path,
    force: bool,
    templates_dir: Path | None,
    model_ids: str | None,
    into: Path | None,
    out_dir: Path | None,
    fail_on_regression: bool,
    allow_failures: bool,
    execute_code: bool,
) -> None:
    """Run what changed, then render what changed.

    Exit 1 when a model failed, answered none of its prompts, or some prompts failed (the report is rendered
    first; the next build retries them). Every problem of the config is listed at once, as `validate` lists them (exit 2), before any model runs;
    a model whose weights are absent here fails alone, at its run. TODO placeholders are warned about and counted."""
    from reportgen.build import build_study
    from reportgen.cli.validate import load_checked
    from reportgen.study.config import placeholders

    study = load_checked(config, weights=False)
    todo = placeholders(study)
    for warning in todo:  # the study runs; the report reads TODO there
        log.warning("warning: %s", warning)
    with progress() as bars:
        result = build_study(
            study,
            force=force,
            templates_dir=templates_dir,
            model_ids=model_list(model_ids),
            into=into,
            out_dir=out_dir,
            progress=bars,
            fail_on_regression=fail_on_regression,
            allow_failures=allow_failures,
            execute_code=execute_code,
        )
    for path in result.paths:
        click.echo(str(path))
    if todo:  # the build's last word: the count, as validate's summary gives it
        many = len(todo) > 1
        log.warning(
            "%d TODO %s in the report (%s above). Fix: write %s in %s",
            len(todo),
            "placeholders are" if many else "placeholder is",
            "warnings" if many else "warning",
            "them" if many else "it",
            config,
        )
