"""The sink: the driver alone writes the store, one committed batch at a time.

Executors (local, or remote workers) hand their results here; a run is recorded only once some
model has work to do, and a killed driver leaves every committed batch for the next run to reuse.
"""

from __future__ import annotations

import time
from typing import Callable

from reportgen.records import ChoiceResult, GenerationResult, LoadInfo, LogLikelihoodResult, SpeedPass
from reportgen.run.plan import ModelWork
from reportgen.run.summary import ModelRunSummary
from reportgen.store import Store

__all__ = ["StoreSink"]


class StoreSink:
    def __init__(self, store: Store, run_id: str, manifest: Callable[[], dict]):
        self.store = store
        self.run_id = run_id
        self.manifest_factory = manifest  # builds the run's manifest when the first model starts
        self.manifest: dict = {}
        self.summaries: list[ModelRunSummary] = []

    @property
    def started(self) -> bool:
        return bool(self.manifest)

    def begin(self) -> None:
        """Record the run (once): when the first model starts, or earlier when an executor says so."""
        if not self.manifest:
            self.manifest.update(self.manifest_factory())
            self.store.start_run(self.run_id, self.manifest["config_hash"], self.manifest)

    def model_started(self, work: ModelWork) -> None:
        self.begin()
        self.store.start_model_run(self.run_id, work.model.id, work.fingerprint, work.settings_hash, work.fingerprint_parts)

    def model_loaded(self, work: ModelWork, load: LoadInfo) -> None:
        self.store.update_model_run(self.run_id, work.model.id, load=load)

    def batch_done(
        self, work: ModelWork, results: list[GenerationResult], summary: ModelRunSummary, peak_memory_bytes: int | None
    ) -> None:
        self.store.save_results(
            fingerprint=work.fingerprint,
            model_id=work.model.id,
            run_id=self.run_id,
            settings_hash=work.settings_hash,
            request_hashes=work.request_hashes,
            results=results,
            batch_size=len(results),
        )
        self.store.update_model_run(
            self.run_id,
            work.model.id,
            prompts_run=summary.prompts_run,
            prompts_cached=summary.prompts_cached,
            generated_tokens=summary.generated_tokens,
            generate_time_s=summary.generate_time_s,
            decode_steps=summary.decode_steps,
            **({} if peak_memory_bytes is None else {"peak_memory_bytes": peak_memory_bytes}),
        )

    def model_measured(self, work: ModelWork, peak_memory_bytes: int | None) -> None:
        """Load and memory measured under the fixed workload (run.measure.MEASURE_PROTOCOL)."""
        from reportgen.run.measure import MEASURE_PROTOCOL

        self.store.update_model_run(
            self.run_id, work.model.id, peak_memory_bytes=peak_memory_bytes, measure_protocol=MEASURE_PROTOCOL
        )

    def texts_scored(self, work: ModelWork, scores: list[LogLikelihoodResult]) -> None:
        self.store.save_loglik(
            fingerprint=work.fingerprint,
            model_id=work.model.id,
            run_id=self.run_id,
            text_hashes=work.corpus_hashes,
            results=scores,
        )

    def choices_scored(self, work: ModelWork, results: list[ChoiceResult]) -> None:
        self.store.save_choices(
            fingerprint=work.fingerprint,
            model_id=work.model.id,
            run_id=self.run_id,
            request_hashes=work.choice_hashes,
            results=results,
        )

    def request_refused(self, work: ModelWork, kind: str, reason: str) -> None:
        """The model cannot serve ``kind``: kept, so that it is not planned for it again."""
        self.store.save_refusal(
            fingerprint=work.fingerprint, request_kind=kind, model_id=work.model.id, run_id=self.run_id, reason=reason
        )

    def speed_measured(self, work: ModelWork, passes: list[SpeedPass]) -> None:
        self.store.save_speed_passes(
            fingerprint=work.fingerprint,
            settings_hash=work.settings_hash,
            protocol_hash=work.protocol_hash,
            model_id=work.model.id,
            run_id=self.run_id,
            passes=passes,
        )

    def model_finished(self, work: ModelWork, summary: ModelRunSummary) -> None:
        self.store.update_model_run(self.run_id, work.model.id, finished_at=time.time())

    def record(self, summary: ModelRunSummary) -> None:
        """A model is done (or failed): its summary goes into the run's manifest."""
        self.summaries.append(summary)

    def run_finished(self, status: str) -> None:
        if not self.manifest:
            return
        self.manifest["fingerprints"] = {s.model_id: s.fingerprint for s in self.summaries}
        self.manifest["models"] = [s.__dict__ for s in self.summaries]
        self.store.finish_run(self.run_id, status, self.manifest)
