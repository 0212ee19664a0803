"""The command line: one Click group, thin commands that parse options and call one pipeline function.

Heavy modules are imported inside the commands so `reportgen --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from reportgen import __version__

DEFAULT_CONFIG = Path("configs/demo.yaml")


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _load(config: Path):
    from reportgen.study.config import load_config

    return load_config(config)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:>16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=_console(), transient=False,
    )


config_argument = click.argument("config", type=click.Path(path_type=Path, dir_okay=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reportgen")
def main() -> None:
    """Comparative studies of language models: run, measure, render (README, HTML, PDF), publish."""


@main.command()
@config_argument
def validate(config: Path) -> None:
    """Check a study config and every file it names, without running anything."""
    from reportgen.study.config import missing_files
    from reportgen.errors import ConfigError

    study = _load(config)
    problems = missing_files(study)
    if study.prompts is not None and study.prompts.exists():
        from reportgen.study.prompts import load_prompt_set

        try:
            load_prompt_set(study.prompts)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if study.claims:
        from reportgen.analysis.statements import parse_claims

        try:
            parse_claims(study)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    click.echo(f"{config}: OK — {len(study.models)} models" + (f", prompt set {study.prompts}" if study.prompts else ""))


@main.command()
@config_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def specs(config: Path, as_json: bool) -> None:
    """Print the specification table of every model (from config.json, adapter_config.json, GGUF metadata)."""
    from reportgen.specs.study import study_specs

    study = _load(config)
    table = study_specs(study)
    if as_json:
        click.echo(json.dumps({mid: s.as_dict() if s else None for mid, s in table.items()}, indent=2, default=str))
        return
    from reportgen.specs.fields import print_specs

    print_specs(study, table, _console())


@main.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write the config here (default: stdout).")
@click.option("--title", default=None, help="Study title.")
def init(folders: tuple[Path, ...], output: Path | None, title: str | None) -> None:
    """Write a study config for model folders and .gguf files (facts from their files; TODO where unknown)."""
    from reportgen.study.init import study_yaml_for

    text = study_yaml_for(list(folders), title=title, relative_to=output.parent if output else Path.cwd())
    if output is None:
        click.echo(text, nl=False)
    else:
        from reportgen.util.atomic import atomic_write as write_atomic

        write_atomic(output, text)
        _console().print(f"wrote {output}; fill in the TODO fields, then run `reportgen validate {output}`")


@main.command()
@config_argument
@click.option("--models", "model_ids", default=None, help="Comma-separated model ids to run (default: all).")
@click.option("--force", is_flag=True, help="Re-run even where stored results exist.")
def run(config: Path, model_ids: str | None, force: bool) -> None:
    """Send the prompt set through each model and record the results in the study's store."""
    _run(_load(config), model_ids, force)


def _run(study, model_ids: str | None, force: bool):
    from reportgen.errors import ReportgenError
    from reportgen.run.runner import run_study

    console = _console()
    ids = [m.strip() for m in model_ids.split(",") if m.strip()] if model_ids else None
    summary = run_study(study, model_ids=ids, force=force, log=console.print, progress_factory=_progress)
    for model in summary.models:
        console.print(model.line())
    if not summary.reran_models and not summary.failed_models:
        console.print("every result was already stored: nothing re-ran")
    if summary.failed_models:
        raise ReportgenError(
            "; ".join(m.line() for m in summary.failed_models) + " (results of the other models are saved)"
        )
    return summary


@main.command()
@config_argument
@click.option("--templates", "templates_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder of Jinja templates that override the defaults.")
@click.option("--into", "into", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Replace the text between <!-- reportgen:start --> and <!-- reportgen:end --> in this file.")
@click.option("--single-file", is_flag=True, help="Inline plotly.js into report.html (one file to attach or host).")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None, help="Report folder.")
def render(config: Path, templates_dir: Path | None, into: Path | None, single_file: bool, out_dir: Path | None) -> None:
    """Write the study as README.md, report.html and report.pdf (from the store; never loads a model)."""
    from reportgen.build import render_study

    study = _load(config)
    for path in render_study(study, templates_dir=templates_dir, into=into, single_file=single_file, out_dir=out_dir, log=_console().print):
        click.echo(str(path))


@main.command()
@click.argument("config", required=False, type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--force", is_flag=True, help="Re-run every model and re-render everything.")
@click.option("--templates", "templates_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
def build(config: Path | None, force: bool, templates_dir: Path | None) -> None:
    """Run what changed, then render what changed (default config: configs/demo.yaml)."""
    from reportgen.build import build_study

    study = _load(config or DEFAULT_CONFIG)
    build_study(study, force=force, templates_dir=templates_dir, log=_console().print, progress_factory=_progress)


@main.command()
@config_argument
@click.option("--csv", "csv_dir", type=click.Path(path_type=Path, file_okay=False), default=None, help="Write each table as CSV here.")
@click.option("--json", "json_file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write all tables as JSON here.")
def metrics(config: Path, csv_dir: Path | None, json_file: Path | None) -> None:
    """Print the metric tables (with 95% confidence intervals) computed from the store."""
    from reportgen.build import metric_tables, print_tables, write_tables

    study = _load(config)
    tables = metric_tables(study)
    print_tables(tables, _console())
    if csv_dir or json_file:
        for path in write_tables(tables, csv_dir=csv_dir, json_file=json_file):
            click.echo(str(path))


@main.command()
@config_argument
@click.option("--model", "model_id", required=True, help="The model whose runs to compare.")
def diff(config: Path, model_id: str) -> None:
    """What changed between a model's last two runs (every metric, with significance)."""
    from reportgen.build import print_diff

    print_diff(_load(config), model_id, _console())


@main.command()
@config_argument
@click.option("--mkdocs", "mkdocs_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="MkDocs project folder (with mkdocs.yml) to write the pages into.")
def publish(config: Path, mkdocs_dir: Path) -> None:
    """Write the study as docs-site pages (MkDocs) with a nav entry."""
    from reportgen.publish import publish_mkdocs

    for path in publish_mkdocs(_load(config), mkdocs_dir, log=_console().print):
        click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
