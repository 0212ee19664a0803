"""Plan: what each model has to do and why — requests, their content keys, what the store already holds.

Pure apart from reading the store: a ``ModelWork`` names the model, the fingerprint of its weights,
the pending requests (keyed by prompt content and output-relevant settings), the pending reference
texts for bits per byte, the pending choices of multiple-choice items (keyed by context and continuation),
and the reason it (re-)runs. Executors carry the work out; nothing here
loads a model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from reportgen.backends import create_backend
from reportgen.backends.base import Backend
from reportgen.errors import ReportgenError
from reportgen.records import ChoiceRequest, GenerationRequest
from reportgen.run.measure import MEASURE_PROTOCOL, protocol_hash, speed_requests
from reportgen.store import Store
from reportgen.code.jobs import SAMPLE_SEPARATOR
from reportgen.study.codeconfig import CodeConfig
from reportgen.study.config import GenerationSettings, MeasureConfig, ModelConfig, Study
from reportgen.study.prompts import CorpusText, PromptSet
from reportgen.util.hashing import hash_json

__all__ = [
    "ModelWork",
    "choice_hash",
    "choice_requests",
    "plan_models",
    "request_hash",
    "requests_for",
    "select_models",
    "shards",
    "text_hash",
]


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


def with_code_budget(requests: list[GenerationRequest], prompt_set: PromptSet, code: CodeConfig) -> list[GenerationRequest]:
    """The requests, code prompts generating up to ``code.max_new_tokens`` where it is set."""
    if code.max_new_tokens is None:
        return requests
    ids = {p.id for p in prompt_set.code_prompts}
    budget = {"max_new_tokens": code.max_new_tokens}
    return [replace(r, settings=r.settings.model_copy(update=budget)) if r.prompt_id in ids else r for r in requests]


def sample_requests(prompt_set: PromptSet, code: CodeConfig, settings: GenerationSettings) -> list[GenerationRequest]:
    """The pass@k samples: ``code.samples`` sampled answers per code prompt (ids ``<prompt id>#<n>``), with
    the code settings' temperature and top-p and seed ``settings.seed + n``."""
    if not code.samples:
        return []
    requests = []
    for prompt in prompt_set.code_prompts:
        for n in range(1, code.samples + 1):
            update = {"do_sample": True, "temperature": code.temperature, "top_p": code.top_p, "seed": settings.seed + n}
            if code.max_new_tokens is not None:
                update["max_new_tokens"] = code.max_new_tokens
            sampled = settings.model_copy(update=update)
            requests.append(
                GenerationRequest(
                    prompt_id=f"{prompt.id}{SAMPLE_SEPARATOR}{n}",
                    messages=tuple(prompt_set.messages_for(prompt)),
                    text=prompt_set.plain_text_for(prompt),
                    format=prompt_set.format_of(prompt),
                    settings=sampled,
                )
            )
    return requests


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


def choice_requests(prompt_set: PromptSet) -> list[ChoiceRequest]:
    """One request per choice of every multiple-choice item, in the set's order."""
    return [
        ChoiceRequest(item.id, index, context, continuation)
        for item in prompt_set.multiple_choice
        for index, (context, continuation) in enumerate(item.continuations())
    ]


def choice_hash(request: ChoiceRequest) -> str:
    """What determines a choice's log-likelihood besides the model: the context and the continuation."""
    return hash_json({"context": request.context, "continuation": request.continuation})[:24]


def model_fingerprint(backend: Backend) -> tuple[str, dict]:
    parts = {"backend": backend.name, **backend.fingerprint_parts()}
    return hash_json(parts)[:20], parts


@dataclass
class ModelWork:
    """One model's share of a run: what is pending for its fingerprint, and why."""

    model: ModelConfig
    backend: Backend
    fingerprint: str
    fingerprint_parts: dict
    settings_hash: str
    request_hashes: dict[str, str]  # prompt id → request hash, for every prompt of the set
    total: int  # prompts in the set
    pending: list[GenerationRequest] = field(default_factory=list)
    corpus_hashes: dict[str, str] = field(default_factory=dict)
    corpus_pending: list[CorpusText] = field(default_factory=list)
    reason: str = ""
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    speed_requests: list[GenerationRequest] = field(default_factory=list)  # the fixed workload (run.measure)
    protocol_hash: str = ""
    speed_pending: bool = False  # the timed passes of this protocol are not stored yet for this entry
    load_pending: bool = False  # this entry's load time and peak memory are not stored under MEASURE_PROTOCOL
    shares_answers_with: str | None = None  # an earlier entry of this run that produces the same answers
    # (item id, choice) → (request hash, UTF-8 bytes of the continuation), for every choice of the set's items
    choice_hashes: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    choices_pending: list[ChoiceRequest] = field(default_factory=list)

    @property
    def has_work(self) -> bool:
        return bool(self.pending or self.corpus_pending or self.choices_pending or self.speed_pending or self.load_pending)

    @property
    def cached(self) -> int:
        return self.total - len(self.pending)


def select_models(study: Study, model_ids: list[str] | None) -> list[ModelConfig]:
    """The runnable models of the study, narrowed to ``model_ids`` when given (unknown ids are an error)."""
    models = [m for m in study.models if m.runnable]
    if model_ids:
        unknown = sorted(set(model_ids) - {m.id for m in study.models})
        if unknown:
            raise ReportgenError(
                f"--models: no model with id {', '.join(unknown)} in {study.path}. Known: {', '.join(m.id for m in study.models)}"
            )
        models = [m for m in models if m.id in model_ids]
    if not models:
        raise ReportgenError(f"{study.path}: no runnable model (every model is spec-only: give one a 'source')")
    return models


def plan_model(
    store: Store,
    study: Study,
    prompt_set: PromptSet,
    model: ModelConfig,
    *,
    force: bool,
    claimed: dict[tuple[str, str, str], str],
) -> ModelWork:
    """What ``model`` has to do. ``claimed`` maps (fingerprint, prompt, request hash) keys that an earlier
    model of this run will produce to that model's id, so two entries with the same weights never generate
    the same answers twice. Load, memory and timed passes are each entry's own: they are measured for every
    entry, so each keeps its row in every table."""
    backend = create_backend(model, config_index=study.models.index(model))
    fingerprint, parts = model_fingerprint(backend)
    settings = study.generation_for(model)
    answers = with_code_budget(requests_for(prompt_set, settings), prompt_set, study.code)
    requests = answers + sample_requests(prompt_set, study.code, settings)
    hashes = {r.prompt_id: request_hash(r) for r in requests}
    done = set() if force else store.done_keys(fingerprint)
    owners = {claimed[key] for r in requests if (key := (fingerprint, r.prompt_id, hashes[r.prompt_id])) in claimed}
    pending = [
        r
        for r in requests
        if (r.prompt_id, hashes[r.prompt_id]) not in done and (fingerprint, r.prompt_id, hashes[r.prompt_id]) not in claimed
    ]
    claimed.update({(fingerprint, r.prompt_id, hashes[r.prompt_id]): model.id for r in pending})
    # reference texts are scored only by a backend that can (an HTTP endpoint cannot): never planned otherwise
    corpus = list(prompt_set.lm_corpus) if "loglikelihood" in backend.request_kinds else []
    corpus_hashes = {c.id: text_hash(c.text) for c in corpus}
    scored = set() if force else store.done_loglik(fingerprint)
    work = ModelWork(
        model,
        backend,
        fingerprint,
        parts,
        settings.settings_hash(),
        hashes,
        len(requests),
        pending,
        corpus_hashes,
        [c for c in corpus if (c.id, corpus_hashes[c.id]) not in scored],
    )
    work.shares_answers_with = min(owners) if owners else None
    _plan_choices(work, store, prompt_set, force, claimed)
    _plan_speed(work, store, study.measure, answers, study.generation.max_new_tokens, force)
    if work.pending or work.corpus_pending or work.choices_pending:
        failed = set() if force else store.failed_keys(fingerprint)
        retrying = sum(1 for r in pending if (r.prompt_id, hashes[r.prompt_id]) in failed)
        work.reason = rerun_reason(
            store.last_fingerprint_parts(model.id),
            parts,
            len(pending),
            len(requests),
            force,
            retrying=retrying,
            corpus_pending=len(work.corpus_pending),
            choices_pending=len(work.choices_pending),
        )
    elif work.speed_pending:
        work.reason = "speed not yet measured with this measure protocol"
    elif work.load_pending:
        work.reason = "load time and memory not yet measured for this entry"
    return work


def _plan_choices(
    work: ModelWork, store: Store, prompt_set: PromptSet, force: bool, claimed: dict[tuple[str, str, str], str]
) -> None:
    """The choices of the set's multiple-choice items whose log-likelihood this fingerprint has not stored: only
    for a backend that serves continuations, and never again once the model refused them (even with --force:
    what it cannot do does not change with a rerun; a changed model has another fingerprint). Scores belong to
    the weights: an entry whose fingerprint an earlier entry of this run scores (the same weights sampled
    differently) scores nothing of its own (``claimed``, keyed like the answers, with "choice:" ids)."""
    if "continuation" not in work.backend.request_kinds or "continuation" in store.refused(work.fingerprint):
        return
    requests = choice_requests(prompt_set)
    work.choice_hashes = {(r.item_id, r.choice): (choice_hash(r), len(r.continuation.encode("utf-8"))) for r in requests}
    done = set() if force else store.done_choices(work.fingerprint)

    def key(r: ChoiceRequest) -> tuple[str, str, str]:
        return (work.fingerprint, f"choice:{r.item_id}:{r.choice}", work.choice_hashes[(r.item_id, r.choice)][0])

    work.choices_pending = [
        r
        for r in requests
        if (r.item_id, r.choice, work.choice_hashes[(r.item_id, r.choice)][0]) not in done and key(r) not in claimed
    ]
    claimed.update({key(r): work.model.id for r in work.choices_pending})


def _plan_speed(
    work: ModelWork, store: Store, measure: MeasureConfig, requests: list[GenerationRequest], new_tokens: int, force: bool
) -> None:
    """The fixed workload; timed passes are due when ``measure.repeats`` asks for them and this entry's passes
    of this protocol are not stored; load and memory when this entry's are not stored under MEASURE_PROTOCOL."""
    work.measure = measure
    work.speed_requests = speed_requests(requests, measure, new_tokens)
    work.load_pending = force or not store.load_measured(work.model.id, work.fingerprint, work.settings_hash, MEASURE_PROTOCOL)
    if not measure.repeats:
        return
    work.protocol_hash = protocol_hash(measure, work.speed_requests, work.request_hashes)
    work.speed_pending = force or not store.has_speed_passes(
        work.model.id, work.fingerprint, work.settings_hash, work.protocol_hash, measure.repeats * len(measure.regimes)
    )


def plan_models(
    store: Store, study: Study, prompt_set: PromptSet, models: list[ModelConfig], *, force: bool = False
) -> list[ModelWork]:
    claimed: dict[tuple[str, str, str], str] = {}
    return [plan_model(store, study, prompt_set, model, force=force, claimed=claimed) for model in models]


def rerun_reason(
    before: dict | None,
    parts: dict,
    pending: int,
    total: int,
    force: bool,
    *,
    retrying: int = 0,
    corpus_pending: int = 0,
    choices_pending: int = 0,
) -> str:
    """Why a model has work to do: its fingerprint parts against those of its last recorded run, then the
    prompts: ``retrying`` of the ``pending`` ones failed before (stored as failures), the rest are new,
    changed or were never finished; ``corpus_pending`` reference texts still need scoring."""
    if force:
        return "--force was given"
    if before is None:
        return "first run"
    changed = sorted(key for key in set(before) | set(parts) if before.get(key) != parts.get(key))
    if changed:
        return ", ".join(changed) + " changed"
    reasons = []
    if retrying:
        reasons.append(f"retrying {retrying} failed prompt{'s' if retrying != 1 else ''}")
    rest = pending - retrying
    if rest and (retrying or pending < total):
        reasons.append(f"{rest} of {total} prompts are new, changed or unfinished")
    elif rest:
        reasons.append("the prompts or generation settings changed")
    if not pending and corpus_pending:
        reasons.append(
            f"{corpus_pending} reference text{'s are' if corpus_pending != 1 else ' is'} new or changed (bits per byte)"
        )
    if not pending and choices_pending:
        reasons.append(
            f"{choices_pending} multiple-choice continuation{'s are' if choices_pending != 1 else ' is'} not scored yet"
        )
    return "; ".join(reasons) or "the prompts or generation settings changed"


def shards(requests: list[GenerationRequest], size: int) -> list[list[GenerationRequest]]:
    """Batches of prompts of similar length, so that little compute is spent on padding."""
    ordered = sorted(requests, key=lambda r: (len(r.text) + sum(len(m["content"]) for m in r.messages), r.prompt_id))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]
