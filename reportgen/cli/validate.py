"""``reportgen validate``: every problem of a config and the files it names, at once."""

from __future__ import annotations

from pathlib import Path

import click

from reportgen.cli.app import config_argument, load, main


@main.command()
@config_argument
def validate(config: Path) -> None:
    """Check a study config and every file it names, without running anything."""
    from reportgen.errors import ConfigError
    from reportgen.report.formats import format_problems
    from reportgen.study.config import missing_files

    study = load(config)
    problems = missing_files(study) + format_problems(study)
    if study.prompts is not None and study.prompts.exists():
        from reportgen.study.prompts import load_prompt_set

        try:
            load_prompt_set(study.prompts)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if study.claims:
        from reportgen.study.claims import parse_claims

        try:
            parse_claims(study)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    click.echo(f"{config}: OK — {len(study.models)} models" + (f", prompt set {study.prompts}" if study.prompts else ""))
