"""Execute planned work: an ``Executor`` loads each model once, runs its pending shards and streams the
results to the sink. ``LocalExecutor`` runs the models one after another, each local one in a fresh worker
process of its own (reportgen.run.worker), so that no model's load time or memory depends on the order."""

from __future__ import annotations

import abc
import logging
import time
from typing import Any, Callable, Protocol

from reportgen.backends.base import Backend, Unsupported
from reportgen.errors import BackendError, ReportgenError
from reportgen.records import GenerationRequest, GenerationResult, LoadInfo
from reportgen.run.measure import memory_workload, timed_passes, warm_up
from reportgen.run import worker
from reportgen.run.plan import ModelWork, shards
from reportgen.run.sink import StoreSink
from reportgen.run.summary import ModelRunSummary
from reportgen.util.memory import MemorySampler

__all__ = ["Executor", "LocalExecutor", "Progress"]

log = logging.getLogger(__name__)


class Progress(Protocol):
    """What executors report progress to (rich's Progress fits; so does a plain line printer)."""

    def add_task(self, description: str, total: int) -> Any: ...

    def advance(self, task: Any, advance: int) -> None: ...


class Executor(abc.ABC):
    """Runs ``ModelWork`` units and hands every result to the sink, which alone writes the store."""

    @abc.abstractmethod
    def execute(self, work: list[ModelWork], sink: StoreSink, progress: Progress | None = None) -> list[ModelRunSummary]:
        """One summary per unit, in order, each also given to ``sink.record`` as soon as it is known; a unit
        that fails with a ReportgenError gets a summary with ``error``."""


class LocalExecutor(Executor):
    """One model after another. A local model (``backend.local``) runs in a forked worker process that
    starts from the same state for every model, not after the others in this one: in one process the
    first model would pay the one-time costs (library initialisation, allocator growth, thread pools)
    and look slower to load and heavier than the same weights loaded later. The worker streams its sink
    calls here, so this process alone writes the store, batch by batch. HTTP models run here."""

    def execute(self, work: list[ModelWork], sink: StoreSink, progress: Progress | None = None) -> list[ModelRunSummary]:
        if any(unit.has_work and unit.backend.local for unit in work):
            # The run's manifest measures the memory bandwidth (not while a worker loads its model: now) and
            # asks torch about the GPUs, which initialises CUDA: in a worker too, as later forks could not use it.
            sink.manifest_factory = _forked(sink.manifest_factory)
            sink.begin()
        for unit in work:
            try:
                if self._isolated(unit):
                    # the backend's packages are imported here, once: every worker inherits them, and starts
                    # from the same state
                    unit.backend.import_dependencies()
                    summary = worker.run_in_worker(run_model, unit, sink, progress)
                else:
                    summary = run_model(unit, sink, progress)
            except ReportgenError as exc:
                summary = ModelRunSummary(unit.model.id, "", unit.total, error=exc.format_message())
            sink.record(summary)
        return list(sink.summaries)

    @staticmethod
    def _isolated(unit: ModelWork) -> bool:
        if not (unit.has_work and unit.backend.local):
            return False
        if worker.fork_is_safe():
            return True
        log.warning(
            "%s: runs in this process, not in a worker of its own (CUDA is initialised here already, and a forked "
            "worker could not use it): its load time and memory may depend on the models before it",
            unit.model.id,
        )
        return False


def _forked(factory: Callable[[], dict]) -> Callable[[], dict]:
    def build() -> dict:
        return worker.call_in_worker(factory, "the run's manifest") if worker.fork_is_safe() else factory()

    return build


def run_model(work: ModelWork, sink: StoreSink, progress: Progress | None = None) -> ModelRunSummary:
    """Load the model once; warm it up; time the fixed workload (or run it once, untimed) and take the peak
    memory over all that; then run its pending shards and score its reference texts. Every batch is
    committed. Load, memory and speed come before the answers, so they measure the same work for every
    entry, whatever answers it writes or shares (run.measure)."""
    summary = ModelRunSummary(work.model.id, work.fingerprint, work.total, prompts_cached=work.cached, reason=work.reason)
    if not work.has_work:
        return summary
    sink.model_started(work)
    backend = work.backend
    sampler, load = _load(backend)
    summary.load_time_s, summary.notes = load.load_time_s, list(load.notes)
    for note in load.notes:
        log.warning("%s: %s", work.model.id, note)
    sink.model_loaded(work, load)
    try:
        warm_up(backend, work.speed_requests or work.pending, work.measure.warmup)
        _measure(work, backend, sink)
        summary.peak_memory_bytes = _peak_memory(backend, load, sampler)
        sink.model_measured(work, summary.peak_memory_bytes)
        if work.pending:
            _generate(work, backend, sink, summary, progress)
        if work.corpus_pending:
            _score(work, backend, sink)
        if work.choices_pending:
            _choices(work, backend, sink, progress)
        sink.model_finished(work, summary)
    finally:
        sampler.__exit__(None, None, None)
        backend.close()
    return summary


def _load(backend: Backend) -> tuple[MemorySampler, LoadInfo]:
    """Import the backend's packages first (their memory is not the model's), then load under the sampler."""
    sampler = None
    try:
        backend.import_dependencies()
        sampler = MemorySampler().__enter__()
        return sampler, backend.load()
    except BaseException:
        if sampler is not None:
            sampler.__exit__(None, None, None)
        backend.close()
        raise


def _generate(work: ModelWork, backend: Backend, sink: StoreSink, summary: ModelRunSummary, progress: Progress | None) -> None:
    model = work.model
    task = progress.add_task(model.id, total=len(work.pending)) if progress is not None else None
    for batch in shards(work.pending, batch_size(model.batch_size, backend, work.pending)):
        started = time.perf_counter()
        results = backend.generate(batch)
        summary.generate_time_s += time.perf_counter() - started
        _check_order(backend, model.id, batch, results)
        _count(summary, results)
        sink.batch_done(work, results, summary, None)
        if progress is not None and task is not None:
            progress.advance(task, len(batch))


def batch_size(setting: int | str, backend: Backend, requests: list[GenerationRequest]) -> int:
    """A model's ``batch_size`` setting, or for ``auto`` the backend's suggestion for these requests."""
    return max(1, setting if isinstance(setting, int) else backend.suggested_batch_size(requests))


def _measure(work: ModelWork, backend: Backend, sink: StoreSink) -> None:
    """The timed passes of ``measure`` over the fixed workload, in each regime, stored together; when none is
    due, one untimed batched pass, so that peak memory is always taken over the same work."""
    size = batch_size(work.model.batch_size, backend, work.speed_requests)
    if work.speed_pending:
        log.info(
            "%s: %d timed passes × %s over %d prompts",
            work.model.id,
            work.measure.repeats,
            "/".join(work.measure.regimes),
            len(work.speed_requests),
        )
        sink.speed_measured(work, timed_passes(backend, work.speed_requests, work.measure, size))
    elif work.speed_requests and backend.local:  # a remote model's memory is not ours to measure
        memory_workload(backend, work.speed_requests, size)


def _check_order(backend: Backend, model_id: str, batch: list[GenerationRequest], results: list[GenerationResult]) -> None:
    if [r.prompt_id for r in results] != [r.prompt_id for r in batch]:
        raise BackendError(f"backend '{backend.name}' returned results out of order for model {model_id}")


#: Distinct failure reasons printed per model as they first occur (the store keeps every prompt's reason), and
#: the most counted in the run's summary (its manifest).
ERRORS_SHOWN = 3
ERRORS_KEPT = 100


def _count(summary: ModelRunSummary, results: list[GenerationResult]) -> None:
    """Add a batch's results to the model's counts, and print each distinct reason a prompt failed the first
    time it occurs (up to ``ERRORS_SHOWN`` per model; ``-v`` prints the others), so that a run's output says
    why, not only how many."""
    ok = [r for r in results if not r.failed]
    summary.prompts_run += len(results)
    summary.failures += len(results) - len(ok)
    summary.generated_tokens += sum(r.output_tokens or 0 for r in ok)
    summary.decode_steps += max((r.output_tokens or 0 for r in ok), default=0)
    for result in results:
        if not result.failed:
            continue
        reason = result.error or "no reason given"
        if reason in summary.errors:
            summary.errors[reason] += 1
            continue
        distinct = len(summary.errors)
        if distinct < ERRORS_KEPT:
            summary.errors[reason] = 1
        if distinct < ERRORS_SHOWN:
            log.warning("%s: prompt %s failed: %s", summary.model_id, result.prompt_id, reason)
            continue
        if distinct == ERRORS_SHOWN:
            log.warning("%s: prompts also fail for other reasons (-v prints each; the store keeps them)", summary.model_id)
        log.debug("%s: prompt %s failed: %s", summary.model_id, result.prompt_id, reason)


def _score(work: ModelWork, backend: Backend, sink: StoreSink) -> None:
    try:
        scores = backend.loglikelihood([(c.id, c.text) for c in work.corpus_pending])
    except NotImplementedError as exc:
        log.warning("%s: no bits-per-byte (%s)", work.model.id, exc)
    else:
        sink.texts_scored(work, scores)


#: Choices scored per backend call (and per committed batch in the store).
CHOICE_BATCH = 64


def _choices(work: ModelWork, backend: Backend, sink: StoreSink, progress: Progress | None = None) -> None:
    """Score the pending choices, a committed batch at a time (whole items per batch, so a backend can share
    an item's context across its choices), with a progress task of their own. A model that cannot says so
    once; the store keeps the refusal."""
    batches: list[list] = [[]]
    for request in work.choices_pending:
        if len(batches[-1]) >= CHOICE_BATCH and batches[-1][-1].item_id != request.item_id:
            batches.append([])
        batches[-1].append(request)
    task = progress.add_task(f"{work.model.id} (multiple choice)", total=len(work.choices_pending)) if progress else None
    for batch in batches:
        try:
            results = backend.continuations(batch)
        except Unsupported as exc:
            log.warning("%s: no multiple-choice scores: %s", work.model.id, exc.format_message())
            sink.request_refused(work, "continuation", exc.format_message())
            return
        sink.choices_scored(work, results)
        if progress is not None and task is not None:
            progress.advance(task, len(batch))


def _peak_memory(backend: Backend, load: LoadInfo, sampler: MemorySampler) -> int | None:
    """On a GPU the backend knows (allocator peak); on the CPU, the RSS the model added, sampled alike
    for every backend so that the figures compare. Remote models use no local memory worth reporting."""
    if load.device.startswith("cuda"):
        return backend.peak_memory_bytes()
    if load.device == "remote":
        return None
    return sampler.peak_delta_bytes
