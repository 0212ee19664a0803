"""The Click group, the options shared by several commands, and the one terminal: a stderr console for
progress and log messages (data a command prints goes to stdout with click.echo)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import click

from reportgen import __version__

DEFAULT_CONFIG = Path("configs/demo.yaml")

config_argument = click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
templates_option = click.option(
    "--templates", "templates_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
    help="Folder of Jinja templates that override the defaults.")
force_option = click.option("--force", is_flag=True, help="Re-run even where stored results exist.")


@functools.lru_cache(maxsize=1)
def console():
    """The one stderr console (rich resolves sys.stderr at each write, so tests can capture it)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class _ConsoleHandler(logging.Handler):
    """reportgen's log records, one line each, on the stderr console (warnings in yellow)."""

    def emit(self, record: logging.LogRecord) -> None:
        from rich.markup import escape

        text = escape(record.getMessage())
        if record.levelno >= logging.WARNING:
            text = f"[yellow]{text}[/yellow]"
        console().print(text)


def setup_logging() -> None:
    """One logging channel: the ``reportgen`` logger, shown on stderr at INFO."""
    logger = logging.getLogger("reportgen")
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler())
    logger.setLevel(logging.INFO)


def load(config: Path):
    from reportgen.study.config import load_config

    return load_config(config)


def progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:>16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console(), transient=False,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reportgen")
def main() -> None:
    """Comparative studies of language models: run, measure, render (README, HTML, PDF), publish."""
    setup_logging()
