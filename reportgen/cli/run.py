"""``reportgen run``: the prompt set through each model, into the study's store."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from reportgen.cli.app import config_argument, force_option, load, main, model_list, models_option, progress

log = logging.getLogger("reportgen.cli")


@main.command()
@config_argument
@models_option
@force_option
@click.option("--allow-failures", is_flag=True, help="Exit 0 even when some prompts failed (they are retried on the next run).")
def run(config: Path, model_ids: str | None, force: bool, allow_failures: bool) -> None:
    """Send the prompt set through each model and record the results in the study's store.

    Exit 1 when a model or some prompts failed (everything else is saved; the next run retries them)."""
    from reportgen.errors import JobFailed
    from reportgen.run.runner import run_study

    with progress() as bars:
        summary = run_study(load(config), model_ids=model_list(model_ids), force=force, progress=bars)
    for model in summary.models:
        log.info(model.line())
    if not summary.reran_models and not summary.failed_models:
        log.info("every result was already stored: nothing re-ran")
    if summary.failed_models:
        raise JobFailed("; ".join(m.line() for m in summary.failed_models) + " (results of the other models are saved)")
    failed_prompts = [m for m in summary.models if m.failures]
    if failed_prompts and not allow_failures:
        raise JobFailed(
            "; ".join(f"{m.model_id}: {m.failures} of {m.prompts_run} prompts failed" for m in failed_prompts)
            + " (stored as failures and retried on the next run; --allow-failures exits 0)"
        )
    if summary.judges:
        from reportgen.cli.judge import report_judges

        report_judges(summary.judges, allow_failures)
