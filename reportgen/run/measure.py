"""Speed measured like a benchmark (``measure`` in the study config): untimed warm-up batches after a
model loads, then repeated timed passes over the same prompts, each kept as a ``SpeedPass``.

The protocol hash keys the stored passes: a change of warm-up, repeats or prompts measures again, while
the answers stay cached."""

from __future__ import annotations

import time
from dataclasses import replace

from reportgen.backends.base import Backend
from reportgen.records import GenerationRequest, SpeedPass
from reportgen.study.config import MeasureConfig
from reportgen.util.hashing import hash_json

__all__ = ["WARMUP_NEW_TOKENS", "WARMUP_PROMPTS", "protocol_hash", "speed_requests", "timed_passes", "warm_up"]

WARMUP_PROMPTS = 4  # prompts per warm-up batch
WARMUP_NEW_TOKENS = 8  # new tokens per warm-up prompt: enough to run prefill and decoding once


def speed_requests(requests: list[GenerationRequest], measure: MeasureConfig) -> list[GenerationRequest]:
    """The prompts every timed pass runs: the first ``measure.prompts`` of the set, in its order."""
    return list(requests[: measure.prompts] if measure.prompts else requests)


def protocol_hash(measure: MeasureConfig, requests: list[GenerationRequest], request_hashes: dict[str, str]) -> str:
    """What makes two sets of timed passes comparable: the protocol and the exact requests timed."""
    return hash_json(
        {"warmup": measure.warmup, "repeats": measure.repeats, "requests": [request_hashes[r.prompt_id] for r in requests]}
    )[:20]


def warm_up(backend: Backend, requests: list[GenerationRequest], batches: int) -> None:
    """Run ``batches`` short untimed batches (outputs discarded). Backends that talk to a server skip it."""
    if not batches or not requests or not backend.local:
        return
    short = [
        replace(r, settings=r.settings.model_copy(update={"max_new_tokens": min(WARMUP_NEW_TOKENS, r.settings.max_new_tokens)}))
        for r in requests[:WARMUP_PROMPTS]
    ]
    for _ in range(batches):
        backend.generate(short)


def timed_passes(backend: Backend, batches: list[list[GenerationRequest]], repeats: int) -> list[SpeedPass]:
    """``repeats`` passes over the same ``batches`` (batched as the answer run batches), each timed as a whole."""
    passes = []
    prompts = sum(len(b) for b in batches)
    for index in range(repeats):
        tokens = failures = 0
        latencies: list[float] = []
        seconds = 0.0
        for batch in batches:
            started = time.perf_counter()
            results = backend.generate(batch)
            seconds += time.perf_counter() - started
            for result in results:
                if result.failed:
                    failures += 1
                else:
                    tokens += result.output_tokens or 0
                    latencies.append(result.sequence_latency_s)
        passes.append(SpeedPass(index, prompts, tokens, seconds, tuple(latencies), failures))
    return passes
