"""Import the logs a study's models name (``results_from``) into its store, each once: keyed by its content.

An unchanged log is not stored again; a changed one (the model retrained and evaluated again) is stored as a new
import beside the earlier ones, and the tables report each model's most recent import.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

from reportgen.errors import ConfigError
from reportgen.imports import ImportedLog, UnreadableLog, read_log
from reportgen.store import Store
from reportgen.study.config import Study
from reportgen.study.yamlfile import format_loc

log = logging.getLogger(__name__)

__all__ = ["ImportOutcome", "import_study_logs", "imported_models"]


@dataclass(frozen=True)
class ImportOutcome:
    model_id: str
    log: ImportedLog
    stored: bool  # False: the same log was imported before, nothing changed

    def line(self) -> str:
        what = "imported" if self.stored else "unchanged, already imported"
        return (
            f"{self.model_id}: {self.log.tool} {self.log.tool_version} log of '{self.log.model_name}' {what}: "
            f"{len(self.log.samples)} samples, {len(self.log.metrics)} metrics"
        )


def imported_models(study: Study) -> list[str]:
    return [m.id for m in study.models if m.results_from is not None]


def read_study_logs(study: Study) -> dict[str, ImportedLog]:
    """Every model's log, read; every unreadable one is reported at once, at its config line."""
    logs: dict[str, ImportedLog] = {}
    problems: list[str] = []
    for index, model in enumerate(study.models):
        if model.results_from is None:
            continue
        loc = ("models", index, "results_from", "path")
        try:
            logs[model.id] = read_log(model.results_from.tool, model.results_from.path)
        except UnreadableLog as exc:
            problems.append(f"{study.where(*loc)}: {format_loc(loc)}: {exc}")
    if problems:
        raise ConfigError(problems)
    return logs


def import_study_logs(study: Study, store: Store) -> list[ImportOutcome]:
    """Read every ``results_from`` log of the study and store the ones not stored yet."""
    outcomes = []
    for model_id, imported in read_study_logs(study).items():
        record = {
            "model_id": model_id,
            "log_digest": imported.digest,
            "tool": imported.tool,
            "tool_version": imported.tool_version,
            "format_version": imported.format_version,
            "model_name": imported.model_name,
            "settings": imported.settings,
            "files": list(imported.files),
            "metrics": [dataclasses.asdict(m) for m in imported.metrics],
            "unused": imported.unused,
            "logged_at": imported.logged_at,
            "imported_at": time.time(),
        }
        stored = store.save_import(record, [dataclasses.asdict(s) for s in imported.samples])
        outcome = ImportOutcome(model_id, imported, stored)
        log.info(outcome.line())
        outcomes.append(outcome)
    return outcomes
