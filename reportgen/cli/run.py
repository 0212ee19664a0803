"""``reportgen run``: the prompt set through each model, into the study's store."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from reportgen.cli.app import config_argument, force_option, load, main, progress

log = logging.getLogger("reportgen.cli")


@main.command()
@config_argument
@click.option("--models", "model_ids", default=None, help="Comma-separated model ids to run (default: all).")
@force_option
def run(config: Path, model_ids: str | None, force: bool) -> None:
    """Send the prompt set through each model and record the results in the study's store."""
    from reportgen.errors import ReportgenError
    from reportgen.run.runner import run_study

    ids = [m.strip() for m in model_ids.split(",") if m.strip()] if model_ids else None
    with progress() as bars:
        summary = run_study(load(config), model_ids=ids, force=force, progress=bars)
    for model in summary.models:
        log.info(model.line())
    if not summary.reran_models and not summary.failed_models:
        log.info("every result was already stored: nothing re-ran")
    if summary.failed_models:
        raise ReportgenError("; ".join(m.line() for m in summary.failed_models) + " (results of the other models are saved)")
