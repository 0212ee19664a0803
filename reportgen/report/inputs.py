"""What the store adds to a report — metric tables, retraining deltas, the latest run manifest — read
from one open store (nothing when it holds no results)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reportgen.records import RunManifest
from reportgen.stats.history import RetrainingDelta, retraining_delta
from reportgen.stats.tables import Tables, compute_tables
from reportgen.store import Store
from reportgen.study.config import Study
from reportgen.study.prompts import study_prompt_set

__all__ = ["ReportInputs", "read_report_inputs", "study_tables"]


@dataclass
class ReportInputs:
    tables: Tables | None = None
    deltas: list[RetrainingDelta] = field(default_factory=list)
    manifest: RunManifest | None = None

    def as_kwargs(self) -> dict:
        return {"tables": self.tables, "deltas": self.deltas, "manifest": self.manifest}


def study_tables(store: Store, study: Study) -> Tables:
    """Every metric table of the study, from its store."""
    return compute_tables(store, study, study_prompt_set(study) if study.prompts is not None else None)


def read_report_inputs(store: Store, study: Study) -> ReportInputs:
    prompt_set = study_prompt_set(study) if study.prompts is not None else None
    tables = compute_tables(store, study, prompt_set)
    if tables.per_prompt.empty:
        return ReportInputs()
    deltas: list[RetrainingDelta] = []
    if prompt_set is not None:
        results, model_runs = store.results_frame(), store.model_runs_frame()
        deltas = [
            d
            for d in (retraining_delta(results, model_runs, prompt_set, m.id) for m in study.models if m.runnable)
            if d is not None
        ]
    return ReportInputs(tables, deltas, store.latest_manifest())
