"""``reportgen publish``: the study as pages of a docs site."""

from __future__ import annotations

from pathlib import Path

import click

from reportgen.cli.app import config_argument, load, main


@main.command()
@config_argument
@click.option("--mkdocs", "mkdocs_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="MkDocs project folder (with mkdocs.yml) to write the pages into.")
def publish(config: Path, mkdocs_dir: Path) -> None:
    """Write the study as docs-site pages (MkDocs) with a nav entry."""
    from reportgen.publish import publish_mkdocs

    for path in publish_mkdocs(load(config), mkdocs_dir):
        click.echo(str(path))
