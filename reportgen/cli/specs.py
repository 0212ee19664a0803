"""``reportgen specs``: the specification table of every model."""

from __future__ import annotations

import logging
from pathlib import Path

from reportgen.cli.app import config_argument, data_console, emit_json, json_option, load, main


@main.command()
@config_argument
@json_option("the specs (schema reportgen.specs: models → spec fields, null where nothing describes a model)")
def specs(config: Path, json_out: str | None) -> None:
    """Print the specification table of every model (from config.json, adapter_config.json, GGUF metadata).

    A model nothing describes gets an empty column (``null`` in --json) and one line saying why; when that is
    a missing file (not an HTTP endpoint, which says nothing about its model), the exit status is 1."""
    from reportgen.errors import JobFailed
    from reportgen.specs.study import no_spec_reason, study_specs

    study = load(config)
    table = study_specs(study)
    reasons = {m.id: no_spec_reason(study, i) for i, m in enumerate(study.models) if m.id not in table}
    if json_out:
        models = {m.id: table[m.id].as_dict() if m.id in table else None for m in study.models}
        emit_json("specs", {"models": models, "no_spec": {mid: why for mid, (why, _) in reasons.items()}}, json_out)
    else:
        from reportgen.specs.fields import print_specs

        print_specs(study, table, data_console())
    failed = [why for why, problem in reasons.values() if problem]
    for why, problem in reasons.values():
        if not problem:
            logging.getLogger(__name__).warning("%s", why)
    if failed:
        raise JobFailed(
            failed[0] if len(failed) == 1 else f"{len(failed)} models have no spec:\n" + "\n".join(f"  {w}" for w in failed)
        )
