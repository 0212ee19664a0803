"""``reportgen run``: the prompt set through each model, into the study's store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING


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

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.study.config import Study

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

    study = load(config)
    wanted = model_list(model_ids)
    if _import_logs(study, wanted) and not any(m.runnable and (not wanted or m.id in wanted) for m in study.models):
        return  # every (selected) model's results come from another tool's log: nothing to run
    with progress() as bars:
        summary = run_study(study, model_ids=wanted, force=force, progress=bars, execute_code=execute_code)
    if summary.run_id is not None:
        _score_answers(study)
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


def _import_logs(study: Study, wanted: list[str] | None) -> bool:
    """Import the logs of the (selected) models with ``results_from`` into the store; whether there were any."""
    from reportgen.imports.importer import import_study_logs
    from reportgen.store import Store, store_path

    if not any(m.results_from is not None and (not wanted or m.id in wanted) for m in study.models):
        return False
    with Store(store_path(study)) as store:
        import_study_logs(study, store)
    return True


def _score_answers(study: Study) -> None:
    """Score the answers the run stored and keep their values in the store (reportgen.scorebook), so the
    first render after a run reads every value instead of scoring 40,000 answers."""
    from reportgen.scorebook import score_stored_answers
    from reportgen.store import Store, store_path
    from reportgen.study.prompts import study_prompt_set

    with Store(store_path(study)) as store:
        score_stored_answers(store, study, study_prompt_set(study))
