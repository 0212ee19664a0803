"""``reportgen specs``: the specification table of every model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reportgen.cli.app import config_argument, console, load, main


@main.command()
@config_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def specs(config: Path, as_json: bool) -> None:
    """Print the specification table of every model (from config.json, adapter_config.json, GGUF metadata)."""
    from reportgen.specs.study import study_specs

    study = load(config)
    table = study_specs(study)
    if as_json:
        click.echo(json.dumps({mid: s.as_dict() if s else None for mid, s in table.items()}, indent=2, default=str))
        return
    from reportgen.specs.fields import print_specs

    print_specs(study, table, console())
