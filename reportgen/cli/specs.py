"""``reportgen specs``: the specification table of every model."""

from __future__ import annotations

from pathlib import Path

from reportgen.cli.app import config_argument, data_console, emit_json, json_option, load, main


@main.command()
@config_argument
@json_option("the specs (schema reportgen.specs: models → spec fields)")
def specs(config: Path, json_out: str | None) -> None:
    """Print the specification table of every model (from config.json, adapter_config.json, GGUF metadata)."""
    from reportgen.specs.study import study_specs

    study = load(config)
    table = study_specs(study)
    if json_out:
        emit_json("specs", {"models": {mid: s.as_dict() if s else None for mid, s in table.items()}}, json_out)
        return
    from reportgen.specs.fields import print_specs

    print_specs(study, table, data_console())
