"""``reportgen run``: the prompt set through each model, into the study's store."""

from __future__ import annotations

import logging
from pathlib import Path


from reportgen.cli.app import (
    allow_failures_option,
    config_argument,
    execute_code_option,
    force_option,
    load,
    main,
    model_list,
    models_option,
    progress,
)

log = logging.getLogger("reportgen.cli")


@main.command()
@config_argument
@models_option
@force_option
@allow_failures_option
@execute_code_option
def run(config: Path, model_ids: str | None, force: bool, allow_failures: bool, execute_code: bool) -> None:
    """Send the prompt set through each model and record the results in the study's store.

    Exit 1 when a model failed, answered none of its prompts, or some prompts failed (everything else is saved;
    the next run retries them). Exit 2 when the prompt set has code prompts and running model-written code is
    not allowed (code.execute or --execute-code)."""
    from reportgen.run.runner import run_study

    with progress() as bars:
        summary = run_study(load(config), model_ids=model_list(model_ids), force=force, progress=bars, execute_code=execute_code)
    for model in summary.models:
        log.info(model.line())
    if summary.code is not None:
        log.info(summary.code.line())
    if not summary.reran_models and not summary.failed_models:
        log.info("every result was already stored: nothing re-ran")
    summary.raise_for_failures(allow_failures, "results of the other models are saved")
    if summary.judges:
        from reportgen.cli.judge import report_judges

        report_judges(summary.judges, allow_failures)
