"""``reportgen init``: a study config written from model folders and GGUF files."""

from __future__ import annotations

from pathlib import Path

import click

from reportgen.cli.app import console, main


@main.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the config here (default: stdout).",
)
@click.option("--title", default=None, help="Study title.")
def init(folders: tuple[Path, ...], output: Path | None, title: str | None) -> None:
    """Write a study config for model folders and .gguf files (facts from their files; TODO where unknown)."""
    from reportgen.study.init import study_yaml_for

    text = study_yaml_for(list(folders), title=title, relative_to=output.parent if output else Path.cwd())
    if output is None:
        click.echo(text, nl=False)
        return
    from reportgen.util.atomic import atomic_write

    atomic_write(output, text)
    console().print(f"wrote {output}; fill in the TODO fields, then run `reportgen validate {output}`")
