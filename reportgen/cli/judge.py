"""``reportgen judge``: the study's judges grade the stored answers, into the study's store."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from reportgen.cli.app import config_argument, force_option, load, main, model_list, progress, templates_option

log = logging.getLogger("reportgen.cli")


@main.command()
@config_argument
@click.option(
    "--judges", "judge_ids", default=None, metavar="A,B", help="Comma-separated judge ids (default: every judge of the study)."
)
@templates_option
@force_option
@click.option(
    "--allow-failures", is_flag=True, help="Exit 0 even when some judgements failed (they are retried on the next run)."
)
def judge(config: Path, judge_ids: str | None, templates_dir: Path | None, force: bool, allow_failures: bool) -> None:
    """Let each judge of the study grade the stored answers (pairwise against the baseline, or on a rubric).

    Only judgements not yet stored are made; unparsed verdicts are kept raw and retried on the next run.
    Exit 1 when a judge failed or some judgements failed (the rest is saved)."""
    from reportgen.run.judging import judge_study
    from reportgen.store import Store, store_path

    study = load(config)
    if not study.judges:
        log.info("%s has no 'judges': nothing to judge", config)
        return
    with Store(store_path(study)) as store, progress() as bars:
        summaries = judge_study(
            study, store=store, judge_ids=model_list(judge_ids), templates_dir=templates_dir, force=force, progress=bars
        )
    report_judges(summaries, allow_failures)


def report_judges(summaries: list, allow_failures: bool) -> None:
    """Log one line per judge; raise JobFailed when a judge or some of its judgements failed."""
    from reportgen.errors import JobFailed

    for summary in summaries:
        (log.warning if summary.unparsed else log.info)(summary.line())
    failed = [s for s in summaries if s.error]
    if failed:
        raise JobFailed("; ".join(s.line() for s in failed))
    partial = [s for s in summaries if s.failed]
    if partial and not allow_failures:
        raise JobFailed(
            "; ".join(f"judge {s.judge_id}: {s.failed} of {s.total} judgements failed" for s in partial)
            + " (retried on the next run; --allow-failures exits 0)"
        )
