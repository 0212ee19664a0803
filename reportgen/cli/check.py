"""``reportgen check``: does the committed report still match its inputs? For CI, like a lockfile check."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reportgen.cli.app import config_argument, load, main, templates_option


@main.command()
@config_argument
@templates_option
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Also exit 1 when a model got significantly worse than its previous run on a headline metric.",
)
def check(config: Path, templates_dir: Path | None, fail_on_regression: bool) -> None:
    """Exit 0 when the report is up to date with its inputs and every stored result with its model; exit 1
    naming each stale input and what would re-run. Runs no model and renders nothing."""
    from reportgen.build import check_study

    result = check_study(load(config), templates_dir=templates_dir, fail_on_regression=fail_on_regression)
    for line in result.stale:
        click.echo(f"stale: {line}")
    for line in result.regressions:
        click.echo(f"regression: {line}")
    for line in result.notes:
        click.echo(f"note: {line}", err=True)
    if result.ok and not result.regressions:
        click.echo(f"{config}: the report is up to date")
        return
    sys.exit(1)
