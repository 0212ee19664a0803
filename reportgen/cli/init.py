"""``reportgen init``: a study config written from model folders, GGUF files and cached Hub models."""

from __future__ import annotations

import os
from pathlib import Path

import click

from reportgen.cli.app import console, main


@main.command()
@click.argument("models", nargs=-1, required=True, metavar="FOLDER|FILE.gguf|ORG/NAME...")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the config here (default: stdout; the prompt set then goes in this folder).",
)
@click.option("--title", default=None, help="Study title.")
@click.option(
    "--prompts",
    "prompts_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Use this prompt set (default: copy the starter set to prompts.yaml beside the config).",
)
def init(models: tuple[str, ...], output: Path | None, title: str | None, prompts_file: Path | None) -> None:
    """Write a study config that runs as written, for model folders (save_pretrained, PEFT adapters, Hugging
    Face cache snapshots), .gguf files and Hub ids in the local cache. Facts come from their files; only
    prose is left as TODO, which `reportgen validate` lists as warnings."""
    from reportgen.study.init import starter_prompts, study_for, study_yaml

    config_dir = output.parent if output else Path.cwd()
    study = study_for(list(models), config_dir=config_dir, prompts=None, title=title)  # fails before writing anything
    written = None
    if prompts_file is not None:
        prompts = Path(os.path.relpath(os.path.abspath(prompts_file), os.path.abspath(config_dir))).as_posix()
    else:
        prompts, written = starter_prompts(config_dir)
    study = {key: study[key] for key in ("title", "introduction")} | {"prompts": prompts} | study
    text = study_yaml(study)
    if written is not None:
        console().print(f"wrote {written} (the starter prompt set: edit it, or pass --prompts)")
    elif prompts_file is None:
        console().print(f"using the prompt set {config_dir / prompts} that is already there")
    if output is None:
        click.echo(text, nl=False)
        return
    from reportgen.util.atomic import atomic_write

    atomic_write(output, text)
    for path in (written, output):  # the paths written are data: stdout, one per line (the hint is a message)
        if path is not None:
            click.echo(str(path))
    console().print(f"wrote {output}; write the TODO prose, then run `reportgen validate {output}`")
