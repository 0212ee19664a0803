"""run_study(): every model × the prompt set → the results store, batch by batch, resumable.

Work already in the store (same model fingerprint, same prompt content and generation settings) is
never redone; a model whose every result is stored is not even loaded.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

from reportgen.backends import create_backend
from reportgen.backends.base import Backend
from reportgen.records import GenerationRequest
from reportgen.study.config import GenerationSettings, ModelConfig, Study, config_hash
from reportgen.errors import BackendError, ReportgenError
from reportgen.util.hashing import hash_json
from reportgen.util.memory import MemorySampler
from reportgen.study.prompts import PromptSet, load_prompt_set
from reportgen.store import STORE_NAME, Store

Log = Callable[[str], None]


@dataclass
class ModelRunSummary:
    model_id: str
    fingerprint: str
    prompts_total: int
    prompts_run: int = 0
    prompts_cached: int = 0
    failures: int = 0
    generated_tokens: int = 0
    generate_time_s: float = 0.0
    decode_steps: int = 0  # forward passes of the decoder: a batch costs as many steps as its longest output
    load_time_s: float | None = None
    peak_memory_bytes: int | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    reason: str = ""  # why it (re-)ran: "first run", "weights changed", "2 prompts changed", ...

    @property
    def reran(self) -> bool:
        return self.prompts_run > 0

    def line(self) -> str:
        if self.error:
            return f"{self.model_id}: FAILED — {self.error}"
        parts = [f"{self.model_id}: {self.prompts_total} prompts ({self.prompts_run} run, {self.prompts_cached} cached)"]
        if self.reason:
            parts.append(f"re-ran because {self.reason}" if "changed" in self.reason else self.reason)
        if self.prompts_run:
            rate = self.generated_tokens / self.generate_time_s if self.generate_time_s else 0.0
            parts.append(f"{self.generated_tokens:,} tokens in {self.generate_time_s:.1f} s, {rate:.1f} tok/s")
            if self.load_time_s is not None:
                parts.append(f"load {self.load_time_s:.1f} s")
            if self.peak_memory_bytes:
                parts.append(f"peak memory {self.peak_memory_bytes / 2**20:,.0f} MiB")
        if self.failures:
            parts.append(f"{self.failures} failed (retried on the next run)")
        return " · ".join(parts)


@dataclass
class RunSummary:
    run_id: str | None
    models: list[ModelRunSummary]

    @property
    def reran_models(self) -> list[str]:
        return [m.model_id for m in self.models if m.reran]

    @property
    def failed_models(self) -> list[ModelRunSummary]:
        return [m for m in self.models if m.error]


def store_path(study: Study) -> Path:
    return study.output_dir / STORE_NAME


def study_prompt_set(study: Study) -> PromptSet:
    if study.prompts is None:
        raise ReportgenError(f"{study.where('prompts')}: the study has no 'prompts' key, so there is nothing to run. Fix: add a prompt set")
    return load_prompt_set(study.prompts)


def requests_for(prompt_set: PromptSet, settings: GenerationSettings) -> list[GenerationRequest]:
    """One request per prompt of the set, in the set's order."""
    return [
        GenerationRequest(
            prompt_id=prompt.id,
            messages=tuple(prompt_set.messages_for(prompt)),
            text=prompt_set.plain_text_for(prompt),
            format=prompt_set.format_of(prompt),
            settings=settings,
        )
        for prompt in prompt_set.prompts
    ]


def build_requests(study: Study, prompt_set: PromptSet, model: ModelConfig) -> list[GenerationRequest]:
    return requests_for(prompt_set, study.generation_for(model))


def request_hash(request: GenerationRequest) -> str:
    """What determines one output besides the model: the prompt's content and the output-relevant settings."""
    payload = {
        "messages": list(request.messages),
        "text": request.text,
        "format": request.format,
        "settings": request.settings.cache_dict(),
    }
    return hash_json(payload)[:24]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def model_fingerprint(backend: Backend) -> tuple[str, dict]:
    parts = {"backend": backend.name, **backend.fingerprint_parts()}
    return hash_json(parts)[:20], parts


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in ("reportgen", "torch", "transformers", "peft", "gguf", "llama_cpp_python", "httpx", "pandas"):
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_manifest(study: Study, prompt_set: PromptSet) -> dict:
    try:
        from reportgen.util.hardware import hardware_summary

        hardware = hardware_summary(measure_bandwidth=True)
    except Exception as exc:  # hardware facts are informative, never fatal
        hardware = {"error": str(exc)}
    return {
        "config": str(study.path),
        "config_hash": config_hash(study),
        "prompt_set": prompt_set.name,
        "prompt_set_hash": prompt_set.content_hash(),
        "prompts": len(prompt_set.prompts),
        "generation": study.generation.model_dump(mode="json"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _package_versions(),
        "hardware": hardware,
        "seed": study.generation.seed,
    }


def _batches(requests: list[GenerationRequest], size: int) -> list[list[GenerationRequest]]:
    """Group prompts of similar length so little compute is spent on padding."""
    ordered = sorted(requests, key=lambda r: (len(r.text) + sum(len(m["content"]) for m in r.messages), r.prompt_id))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def run_model(
    store: Store,
    run_id: str,
    study: Study,
    prompt_set: PromptSet,
    model: ModelConfig,
    *,
    force: bool = False,
    log: Log = print,
    progress=None,
    begin: Callable[[], None] = lambda: None,
) -> ModelRunSummary:
    """Run one model's pending prompts; ``begin`` is called once before anything is written."""
    backend = create_backend(model, config_index=study.models.index(model))
    fingerprint, parts = model_fingerprint(backend)
    requests = build_requests(study, prompt_set, model)
    hashes = {r.prompt_id: request_hash(r) for r in requests}
    done = set() if force else store.done_keys(fingerprint)
    pending = [r for r in requests if (r.prompt_id, hashes[r.prompt_id]) not in done]
    summary = ModelRunSummary(model.id, fingerprint, len(requests), prompts_cached=len(requests) - len(pending))

    corpus = list(prompt_set.lm_corpus)
    corpus_hashes = {c.id: text_hash(c.text) for c in corpus}
    scored = set() if force else store.done_loglik(fingerprint)
    corpus_pending = [c for c in corpus if (c.id, corpus_hashes[c.id]) not in scored]

    if not pending and not corpus_pending:
        return summary
    summary.reason = rerun_reason(store, model.id, parts, len(pending), len(requests), force)
    begin()

    settings_hash = study.generation_for(model).settings_hash()
    store.start_model_run(run_id, model.id, fingerprint, settings_hash, parts)
    sampler = None
    try:
        backend.import_dependencies()
        sampler = MemorySampler().__enter__()
        load = backend.load()
    except BaseException:
        if sampler is not None:
            sampler.__exit__(None, None, None)
        backend.close()
        raise
    summary.load_time_s = load.load_time_s
    summary.notes = list(load.notes)
    for note in load.notes:
        log(f"[yellow]{model.id}: {note}[/yellow]")
    store.update_model_run(run_id, model.id, load=load)
    try:
        if pending:
            size = model.batch_size if isinstance(model.batch_size, int) else backend.suggested_batch_size(pending)
            task = progress.add_task(model.id, total=len(pending)) if progress is not None else None
            for batch in _batches(pending, max(1, size)):
                started = time.perf_counter()
                results = backend.generate(batch)
                summary.generate_time_s += time.perf_counter() - started
                if [r.prompt_id for r in results] != [r.prompt_id for r in batch]:
                    raise BackendError(f"backend '{backend.name}' returned results out of order for model {model.id}")
                store.save_results(
                    fingerprint=fingerprint, model_id=model.id, run_id=run_id, settings_hash=settings_hash,
                    request_hashes=hashes, results=results, batch_size=len(batch),
                )
                summary.prompts_run += len(results)
                summary.failures += sum(1 for r in results if r.failed)
                summary.generated_tokens += sum(r.output_tokens or 0 for r in results if not r.failed)
                summary.decode_steps += max((r.output_tokens or 0 for r in results if not r.failed), default=0)
                store.update_model_run(
                    run_id, model.id, prompts_run=summary.prompts_run, prompts_cached=summary.prompts_cached,
                    generated_tokens=summary.generated_tokens, generate_time_s=summary.generate_time_s,
                    decode_steps=summary.decode_steps,
                    peak_memory_bytes=_peak_memory(backend, load, sampler),
                )
                if task is not None:
                    progress.advance(task, len(batch))
        if corpus_pending:
            try:
                scores = backend.loglikelihood([(c.id, c.text) for c in corpus_pending])
            except NotImplementedError as exc:
                log(f"[yellow]{model.id}: no bits-per-byte ({exc})[/yellow]")
            else:
                store.save_loglik(fingerprint=fingerprint, model_id=model.id, run_id=run_id, text_hashes=corpus_hashes, results=scores)
        summary.peak_memory_bytes = _peak_memory(backend, load, sampler)
        store.update_model_run(run_id, model.id, finished_at=time.time(), peak_memory_bytes=summary.peak_memory_bytes)
    finally:
        sampler.__exit__(None, None, None)
        backend.close()
    return summary


def _peak_memory(backend: Backend, load, sampler: MemorySampler) -> int | None:
    """On a GPU the backend knows (allocator peak); on the CPU, the RSS the model added, sampled alike
    for every backend so that the figures compare. Remote models use no local memory worth reporting."""
    if load.device.startswith("cuda"):
        return backend.peak_memory_bytes()
    if load.device == "remote":
        return None
    return sampler.peak_delta_bytes


def rerun_reason(store: Store, model_id: str, parts: dict, pending: int, total: int, force: bool) -> str:
    """Say why a model has work to do, by comparing its fingerprint parts with its last recorded run."""
    if force:
        return "--force was given"
    previous = store.db.execute(
        "SELECT fingerprint_parts FROM model_runs WHERE model_id=? ORDER BY started_at DESC LIMIT 1", (model_id,)
    ).fetchone()
    if previous is None:
        return "first run"
    before = json.loads(previous["fingerprint_parts"])
    changed = sorted(key for key in set(before) | set(parts) if before.get(key) != parts.get(key))
    if changed:
        return ", ".join(changed) + (" changed" if len(changed) > 1 else " changed")
    if pending < total:
        return f"{pending} of {total} prompts are new, changed or unfinished"
    return "the prompts or generation settings changed"


def run_study(
    study: Study,
    *,
    model_ids: list[str] | None = None,
    force: bool = False,
    log: Log = print,
    progress_factory=None,
) -> RunSummary:
    """Run every (selected, runnable) model over the study's prompt set into the results store."""
    prompt_set = study_prompt_set(study)
    models = [m for m in study.models if m.runnable]
    if model_ids:
        unknown = sorted(set(model_ids) - {m.id for m in study.models})
        if unknown:
            raise ReportgenError(f"--models: no model with id {', '.join(unknown)} in {study.path}. Known: {', '.join(m.id for m in study.models)}")
        models = [m for m in models if m.id in model_ids]
    if not models:
        raise ReportgenError(f"{study.path}: no runnable model (every model is spec-only: give one a 'source')")

    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    summaries: list[ModelRunSummary] = []
    with Store(store_path(study)) as store:
        manifest: dict = {}

        def begin() -> None:  # a run is recorded only when some model has work to do
            if not manifest:
                manifest.update(run_manifest(study, prompt_set))
                store.start_run(run_id, manifest["config_hash"], manifest)

        status = "failed"
        try:
            progress = progress_factory() if progress_factory else None
            with progress if progress is not None else _null():
                for model in models:
                    try:
                        summary = run_model(
                            store, run_id, study, prompt_set, model, force=force, log=log, progress=progress, begin=begin
                        )
                    except ReportgenError as exc:
                        summary = ModelRunSummary(model.id, "", len(prompt_set.prompts), error=exc.format_message())
                    summaries.append(summary)
            status = "complete" if not any(s.error for s in summaries) else "partial"
        finally:
            if manifest:
                manifest["fingerprints"] = {s.model_id: s.fingerprint for s in summaries}
                manifest["models"] = [s.__dict__ for s in summaries]
                store.finish_run(run_id, status, manifest)
    return RunSummary(run_id if manifest else None, summaries)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


