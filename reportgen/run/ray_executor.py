"""Run the study's models as Ray actors, across the GPUs and nodes of a cluster (``execution: {engine: ray}``).

One actor per model, with the resources the config asks for; it loads the model once, on its node, and
serves the model's shards. Each result comes back to this process (the driver), which alone writes the
store through the sink, shard by shard. An actor that dies is restarted by Ray (``max_restarts``) and the
shard it was in is retried (``max_task_retries``); the store is keyed by content, so nothing is stored twice
and a killed driver resumes like a local run. Several models run at once, as many as the cluster's
resources hold; Ray queues the rest. HTTP endpoints need no actor: they run here, in the driver, while the
actors work.

Each actor fingerprints what its node actually holds (the weights on its disk or in its Hugging Face cache);
results from an actor whose fingerprint differs from the one the driver planned with are refused.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from reportgen.errors import MissingExtraError, ReportgenError
from reportgen.records import GenerationRequest, LoadInfo
from reportgen.run.execute import Executor, Progress, _check_order, _count, _load, _peak_memory, batch_size, run_model
from reportgen.run.measure import memory_workload, timed_passes, warm_up
from reportgen.run.plan import ModelWork, model_fingerprint, shards
from reportgen.run.sink import StoreSink
from reportgen.run.summary import ModelRunSummary
from reportgen.study.execution import ExecutionConfig, ResourceRequest

__all__ = ["ModelActor", "RayExecutor", "import_ray"]

log = logging.getLogger(__name__)

# Parts of a fingerprint that come from the files on a node; the others (device, dtype) from how it runs.
FILE_PARTS = ("weights", "adapter")


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "ray", "execution.engine: ray") from None
    return ray


# ------------------------------------------------------------------------------------------- the actor


class ModelActor:
    """Lives in a Ray worker process on some node: one model, loaded once (again after a restart)."""

    def __init__(self, backend_class: type, model: Any, config_index: int | None, batch_size: int | str):
        self._backend_class, self._model, self._config_index, self._batch_size = backend_class, model, config_index, batch_size
        self._backend: Any = None  # the Backend, once _ensure_loaded has loaded it
        self._sampler: Any = None  # its MemorySampler
        self._state: dict[str, Any] = {}

    def _ensure_loaded(self) -> dict[str, Any]:
        if self._backend is None:
            import ray

            backend = self._backend_class(self._model)
            if hasattr(backend, "config_index"):
                backend.config_index = self._config_index
            fingerprint, parts = model_fingerprint(backend)  # of this node's files, before loading them
            self._sampler, load = _load(backend)
            self._backend = backend
            context = ray.get_runtime_context()
            self._state = {
                "fingerprint": fingerprint,
                "parts": parts,
                "load": load,
                "node_id": context.get_node_id(),
                "address": ray.util.get_node_ip_address(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "pid": os.getpid(),
            }
        return self._state

    def load(self, warmup: list[GenerationRequest] | None = None, batches: int = 0) -> dict[str, Any]:
        """Load the model (once), then run the untimed warm-up batches of ``measure.warmup``."""
        state = self._ensure_loaded()
        warm_up(self._backend, warmup or [], batches)
        return state

    def measure(self, requests: list[GenerationRequest], measure: Any, timed: bool) -> dict[str, Any]:
        """The fixed workload on this node (run.measure): the timed passes of ``measure`` when ``timed``, else
        one untimed batched pass; then the peak memory over the load, the warm-up and that work."""
        state = self._ensure_loaded()
        size = batch_size(self._batch_size, self._backend, requests)
        passes = timed_passes(self._backend, requests, measure, size) if timed else None
        if not timed and requests and self._backend.local:
            memory_workload(self._backend, requests, size)
        peak = _peak_memory(self._backend, state["load"], self._sampler)
        return {"passes": passes, "peak_memory_bytes": peak, "fingerprint": state["fingerprint"]}

    def generate(self, shard: list[GenerationRequest]) -> dict[str, Any]:
        """Run one shard, in batches of the model's batch size; the results with where they came from."""
        state = self._ensure_loaded()
        backend = self._backend
        results, elapsed = [], 0.0
        for batch in shards(shard, batch_size(self._batch_size, backend, shard)):
            started = time.perf_counter()
            out = backend.generate(batch)
            elapsed += time.perf_counter() - started
            _check_order(backend, self._model.id, batch, out)
            results.extend(out)
        return {
            "results": results,
            "generate_time_s": elapsed,
            "fingerprint": state["fingerprint"],
            "node_id": state["node_id"],
            "address": state["address"],
        }

    def score(self, texts: list[tuple[str, str]]) -> dict[str, Any]:
        state = self._ensure_loaded()
        try:
            scores = self._backend.loglikelihood(texts)
        except NotImplementedError as exc:
            return {"scores": None, "why": str(exc), "fingerprint": state["fingerprint"]}
        return {"scores": scores, "fingerprint": state["fingerprint"]}

    def choices(self, requests: list[Any]) -> dict[str, Any]:
        """The log-likelihoods of multiple-choice continuations, or why the model cannot give them."""
        from reportgen.backends.base import Unsupported

        state = self._ensure_loaded()
        try:
            results = self._backend.continuations(requests)
        except Unsupported as exc:
            return {"results": None, "why": exc.format_message(), "fingerprint": state["fingerprint"]}
        return {"results": results, "fingerprint": state["fingerprint"]}

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.__exit__(None, None, None)
        if self._backend is not None:
            self._backend.close()


# ------------------------------------------------------------------------------------------- the driver


@dataclass
class _Unit:
    """One model in flight: its actor, its summary, and what is still out."""

    work: ModelWork
    summary: ModelRunSummary
    actor: Any = None
    shards_left: list[list[GenerationRequest]] = field(default_factory=list)
    outstanding: int = 0
    task: Any = None
    placement: dict[str, Any] | None = None
    score_sent: bool = False
    choices_sent: bool = False
    done: bool = False


def needs_actor(work: ModelWork) -> bool:
    """HTTP endpoints run in the driver; every other model with work gets an actor."""
    return work.has_work and work.backend.name != "http"


class RayExecutor(Executor):
    """Runs each model with work in its own Ray actor; the driver writes every result through the sink."""

    def __init__(self, config: ExecutionConfig | None = None):
        self.config = config or ExecutionConfig(engine="ray")
        self.cluster: dict[str, Any] | None = None  # what the manifest records about the cluster

    # -- connecting ------------------------------------------------------------------------------
    def _connect(self, ray) -> bool:
        """Join (or start) the cluster; True when this executor started Ray and must shut it down."""
        if ray.is_initialized():
            return False
        address = self.config.address
        started = time.perf_counter()
        try:
            ray.init(
                address="local" if address in (None, "local") else address,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=True,
            )
        except ConnectionError as exc:
            raise ReportgenError(
                f"execution.address: cannot reach the Ray cluster at {address!r} ({exc}). "
                "Fix: start it with `ray start --head`, or set address: null for a local cluster"
            ) from None
        log.info("Ray %s: joined the cluster in %.1f s", ray.__version__, time.perf_counter() - started)
        return True

    def _cluster_facts(self, ray) -> dict[str, Any]:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        return {
            "ray_version": ray.__version__,
            "address": self.config.address,
            "nodes": [
                {
                    "node_id": n["NodeID"],
                    "address": n["NodeManagerAddress"],
                    "gpus": n["Resources"].get("GPU", 0),
                    "cpus": n["Resources"].get("CPU", 0),
                }
                for n in nodes
            ],
            "placements": [],
        }

    def _options(self, request: ResourceRequest, *, cluster_gpus: float = 0) -> dict[str, Any]:
        """Ray actor options for a model; unless the config says, one GPU where the cluster has GPUs, else none."""
        gpus = request.num_gpus if request.num_gpus is not None else (1 if cluster_gpus > 0 else 0)
        options: dict[str, Any] = {
            "num_cpus": 1 if request.num_cpus is None else request.num_cpus,
            "num_gpus": gpus,
            "max_restarts": self.config.max_restarts,
            "max_task_retries": self.config.max_task_retries,
            "max_concurrency": 1,
        }
        if request.memory:
            options["memory"] = request.memory
        if request.resources:
            options["resources"] = dict(request.resources)
        return options

    @staticmethod
    def _infeasible(model_id: str, options: dict[str, Any], ray) -> str | None:
        """Why no node of the cluster can ever hold this actor (Ray would wait for it forever), or None."""
        wanted = {
            "CPU": options["num_cpus"],
            "GPU": options["num_gpus"],
            "memory": options.get("memory", 0),
            **options.get("resources", {}),
        }
        wanted = {k: v for k, v in wanted.items() if v}
        for node in ray.nodes():
            if node.get("Alive") and all(node["Resources"].get(k, 0) >= v for k, v in wanted.items()):
                return None
        asked = ", ".join(f"{k}={v:g}" for k, v in wanted.items())
        return (
            f"model {model_id} asks for {asked}, which no node of the cluster has. "
            f"Fix: lower execution.resources.{model_id} (or 'default'), or add a node that has it"
        )

    # -- running ---------------------------------------------------------------------------------
    def execute(self, work: list[ModelWork], sink: StoreSink, progress: Progress | None = None) -> list[ModelRunSummary]:
        remote = [w for w in work if needs_actor(w)]
        summaries: dict[int, ModelRunSummary] = {}
        ray = import_ray() if remote else None
        owns_ray = self._connect(ray) if remote else False
        units: list[_Unit] = []
        try:
            if remote:
                self.cluster = self._cluster_facts(ray)
                units = self._start(ray, remote, sink, progress)
            for index, model_work in enumerate(work):  # the driver's own share, while the actors work
                if not needs_actor(model_work):
                    summaries[index] = self._run_here(model_work, sink, progress)
            if units:
                self._drain(ray, units, sink, progress)
            for unit in units:
                summaries[next(i for i, w in enumerate(work) if w is unit.work)] = unit.summary
        except KeyboardInterrupt:
            log.warning("interrupted: stopping %d actor(s); every stored shard is kept", sum(u.actor is not None for u in units))
            raise
        finally:
            for unit in units:
                self._stop(ray, unit)
            if self.cluster is not None and sink.started:
                self.cluster["placements"] = [u.placement for u in units if u.placement]
                sink.manifest["engine"] = "ray"
                sink.manifest["cluster"] = self.cluster
            if owns_ray and ray is not None:
                ray.shutdown()
        return [summaries[i] for i in range(len(work))]

    def _run_here(self, unit: ModelWork, sink: StoreSink, progress: Progress | None) -> ModelRunSummary:
        try:
            summary = run_model(unit, sink, progress)
        except ReportgenError as exc:
            summary = ModelRunSummary(unit.model.id, "", unit.total, error=exc.format_message())
        sink.record(summary)
        return summary

    def _start(self, ray, remote: list[ModelWork], sink: StoreSink, progress: Progress | None) -> list[_Unit]:
        """One actor per model, all asked for at once: Ray places as many as the cluster holds, queues the rest."""
        actor_class = ray.remote(ModelActor)
        units = []
        for work in remote:
            unit = _Unit(
                work, ModelRunSummary(work.model.id, work.fingerprint, work.total, prompts_cached=work.cached, reason=work.reason)
            )
            units.append(unit)
            cluster_gpus = sum(node["gpus"] for node in (self.cluster or {}).get("nodes", []))
            options = self._options(self.config.resources_for(work.model.id), cluster_gpus=cluster_gpus)
            problem = self._infeasible(work.model.id, options, ray)
            if problem:
                self._fail(None, unit, sink, problem)
                continue
            sink.model_started(work)
            unit.actor = actor_class.options(name=None, **options).remote(
                type(work.backend), work.model, getattr(work.backend, "config_index", None), work.model.batch_size
            )
            unit.shards_left = shards(work.pending, self.config.shard_size)
            if progress is not None and work.pending:
                unit.task = progress.add_task(work.model.id, total=len(work.pending))
        return units

    def _drain(self, ray, units: list[_Unit], sink: StoreSink, progress: Progress | None) -> None:
        """Stream results back as they come, from every actor at once, and store them one shard at a time."""
        pending: dict[Any, tuple[_Unit, str]] = {}
        for unit in units:
            if unit.actor is not None:
                work = unit.work
                pending[unit.actor.load.remote(work.speed_requests or work.pending, work.measure.warmup)] = (unit, "load")
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            unit, kind = pending.pop(ready[0])
            if unit.done:
                continue
            try:
                value = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - a task's error or a dead actor, wrapped by Ray
                self._fail(ray, unit, sink, self._describe(ray, unit, exc))
                continue
            if kind == "load":
                self._loaded(ray, unit, value, sink)
            elif kind == "shard":
                self._shard_done(ray, unit, value, sink, progress)
            elif kind == "score":
                self._scored(unit, value, sink)
            elif kind == "choices" and value["fingerprint"] == unit.work.fingerprint:
                if value["results"] is None:
                    log.warning("%s: no multiple-choice scores: %s", unit.work.model.id, value["why"])
                    sink.request_refused(unit.work, "continuation", value["why"])
                else:
                    sink.choices_scored(unit.work, value["results"])
            elif kind == "measure" and value["fingerprint"] == unit.work.fingerprint:
                if value["passes"] is not None:
                    sink.speed_measured(unit.work, value["passes"])
                unit.summary.peak_memory_bytes = value["peak_memory_bytes"]
                sink.model_measured(unit.work, value["peak_memory_bytes"])
            if not unit.done:
                self._next(ray, unit, sink, kind, pending)

    def _next(self, ray, unit: _Unit, sink: StoreSink, kind: str, pending: dict) -> None:
        """What the actor does next: the fixed workload (timed passes, peak memory) right after the load, then
        its shards (two queued, so it never waits for the driver), then the reference texts' scores and the
        multiple-choice continuations' log-likelihoods; after
        that the model is done and its actor goes."""
        if kind == "load":
            work = unit.work
            pending[unit.actor.measure.remote(work.speed_requests, work.measure, work.speed_pending)] = (unit, "measure")
            return
        while unit.shards_left and unit.outstanding < 2:
            pending[unit.actor.generate.remote(unit.shards_left.pop(0))] = (unit, "shard")
            unit.outstanding += 1
        if unit.outstanding or unit.shards_left:
            return
        if unit.work.corpus_pending and not unit.score_sent:
            unit.score_sent = True
            pending[unit.actor.score.remote([(c.id, c.text) for c in unit.work.corpus_pending])] = (unit, "score")
        elif unit.work.choices_pending and not unit.choices_sent:
            unit.choices_sent = True
            pending[unit.actor.choices.remote(unit.work.choices_pending)] = (unit, "choices")
        else:
            sink.model_finished(unit.work, unit.summary)
            unit.done = True
            sink.record(unit.summary)
            self._stop(ray, unit)  # frees its resources for a queued model

    def _loaded(self, ray, unit: _Unit, state: dict[str, Any], sink: StoreSink) -> None:
        load: LoadInfo = state["load"]
        unit.placement = {
            "model_id": unit.work.model.id,
            "node_id": state["node_id"],
            "address": state["address"],
            "gpu_ids": state["gpu_ids"],
            "cuda_visible_devices": state["cuda_visible_devices"],
        }
        log.info(
            "%s: actor on node %s (GPUs %s, CUDA_VISIBLE_DEVICES=%s)",
            unit.work.model.id,
            state["address"],
            ",".join(state["gpu_ids"]) or "none",
            state["cuda_visible_devices"],
        )
        problem = self._mismatch(unit, state)
        if problem:
            self._fail(ray, unit, sink, problem)
            return
        unit.summary.load_time_s, unit.summary.notes = load.load_time_s, list(load.notes)
        for note in load.notes:
            log.warning("%s: %s", unit.work.model.id, note)
        sink.model_loaded(unit.work, load)

    def _mismatch(self, unit: _Unit, state: dict[str, Any]) -> str | None:
        """Why results from this actor must be refused: its node fingerprints the model differently."""
        work = unit.work
        if state["fingerprint"] == work.fingerprint:
            return None
        there, here = state.get("parts") or {}, work.fingerprint_parts
        changed = sorted(k for k in set(there) | set(here) if there.get(k) != here.get(k))
        node = f"node {state['address']} (id {state['node_id'][:8]})"
        if any(k in FILE_PARTS for k in changed) or not changed:
            return (
                f"{node} has other weights for {work.model.id} (fingerprint {state['fingerprint']} there, "
                f"{work.fingerprint} on the driver; differs in {', '.join(changed) or 'its files'}); its results are refused. "
                "Fix: give every node the same files (a shared path or the same Hugging Face cache)"
            )
        detail = ", ".join(f"{k}: {here.get(k)} on the driver, {there.get(k)} there" for k in changed)
        return (
            f"{node} runs {work.model.id} differently from what the driver planned ({detail}); its results are refused. "
            "Fix: run the driver on a machine like the workers (e.g. on a GPU node)"
        )

    def _shard_done(self, ray, unit: _Unit, value: dict[str, Any], sink: StoreSink, progress: Progress | None) -> None:
        unit.outstanding -= 1
        if value["fingerprint"] != unit.work.fingerprint:  # a restarted actor may have landed elsewhere
            self._fail(ray, unit, sink, self._mismatch(unit, {**value, "parts": {}, "gpu_ids": []}) or "other weights")
            return
        results = value["results"]
        summary = unit.summary
        summary.generate_time_s += value["generate_time_s"]
        _count(summary, results)
        sink.batch_done(unit.work, results, summary, None)  # peak memory is the fixed workload's (measure)
        if progress is not None and unit.task is not None:
            progress.advance(unit.task, len(results))

    def _scored(self, unit: _Unit, value: dict[str, Any], sink: StoreSink) -> None:
        if value["scores"] is None:
            log.warning("%s: no bits-per-byte (%s)", unit.work.model.id, value["why"])
        elif value["fingerprint"] == unit.work.fingerprint:
            sink.texts_scored(unit.work, value["scores"])

    def _fail(self, ray, unit: _Unit, sink: StoreSink, message: str) -> None:
        log.error("%s", message)
        unit.summary.error = message
        unit.done = True
        sink.record(unit.summary)
        if ray is not None:
            self._stop(ray, unit)

    def _describe(self, ray, unit: _Unit, exc: Exception) -> str:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ReportgenError):
            return cause.format_message()
        if isinstance(exc, ray.exceptions.RayActorError):
            return (
                f"model {unit.work.model.id}: its actor died and was restarted {self.config.max_restarts} time(s) "
                f"without finishing ({str(exc).splitlines()[0]}). Fix: look at the worker's log (ray logs), "
                "or raise execution.max_restarts"
            )
        if cause is not None:
            return f"model {unit.work.model.id}: {type(cause).__name__}: {cause}"
        return f"model {unit.work.model.id}: {exc}"

    def _stop(self, ray, unit: _Unit) -> None:
        if unit.actor is None:
            return
        actor, unit.actor = unit.actor, None
        try:
            ray.kill(actor, no_restart=True)
        except Exception as exc:  # noqa: BLE001 - already gone
            log.debug("%s: actor already gone (%s)", unit.work.model.id, exc)
