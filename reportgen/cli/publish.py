"""``reportgen publish``: the study as pages of a docs site."""

from __future__ import annotations

from pathlib import Path

import click

from reportgen.cli.app import config_argument, load, main


@main.command()
@config_argument
@click.option(
    "--mkdocs",
    "mkdocs_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="MkDocs project folder (with mkdocs.yml) to write the pages into.",
)
@click.option("--dry-run", is_flag=True, help="Write nothing: list the files and show the change to mkdocs.yml as a diff.")
@click.option(
    "--from",
    "source",
    type=click.Choice(["auto", "report", "store"]),
    default="auto",
    show_default=True,
    help="report: the committed report folder as rendered (no store or model needed); store: render from the results "
    "store here; auto: the store when it gives the committed report, else the committed report (and a warning why).",
)
def publish(config: Path, mkdocs_dir: Path, dry_run: bool, source: str) -> None:
    """Write the study as docs-site pages (MkDocs) with a nav entry (mkdocs.yml edited in place, comments kept)."""
    from reportgen.publish import publish_mkdocs

    result = publish_mkdocs(load(config), mkdocs_dir, dry_run=dry_run, source=source)
    for path in result.written:
        click.echo(str(path))
    if dry_run:
        click.echo(result.config_diff or f"{mkdocs_dir / 'mkdocs.yml'}: unchanged", nl=not result.config_diff)
