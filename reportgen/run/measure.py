"""Speed and memory measured like a benchmark (``measure`` in the study config).

Every model runs the same **fixed workload**: the first ``measure.prompts`` prompts, each generating
exactly ``new_tokens`` tokens with end-of-sequence ignored (``GenerationSettings.ignore_eos``), so that a
difference in speed is one of the engine, not of the answers. After the model loads, untimed warm-up
batches run; then ``repeats`` timed passes in each regime, interleaved so that a drift of the machine
touches every regime alike:

* ``single``: one prompt at a time (latency per prompt, time to first token, tokens/s of one stream);
* ``batched``: the model's batch size (total tokens/s).

Peak memory is taken over the load, the warm-up and the batched workload (one untimed batch of it when no
timed pass is due), before the answers are generated: the same work for every model, whichever answers it
writes and whether it shares them with another entry of the study.

The protocol hash keys the stored passes: a change of warm-up, repeats, regimes or workload measures again,
while the answers stay cached.
"""

from __future__ import annotations

import time
from dataclasses import replace

from reportgen.backends.base import Backend
from reportgen.records import GenerationRequest, SpeedPass
from reportgen.study.config import MeasureConfig
from reportgen.util.cpu import OtherLoad
from reportgen.util.hashing import hash_json

__all__ = [
    "MEASURE_PROTOCOL",
    "REGIMES",
    "WARMUP_NEW_TOKENS",
    "WARMUP_PROMPTS",
    "memory_workload",
    "protocol_hash",
    "regime_batches",
    "speed_requests",
    "timed_passes",
    "warm_up",
]

WARMUP_PROMPTS = 4  # prompts per warm-up batch
WARMUP_NEW_TOKENS = 8  # new tokens per warm-up prompt: enough to run prefill and decoding once
REGIMES = ("single", "batched")
#: The version of the measurement itself (fixed workload, regimes, memory over load + warm-up + batched
#: workload). Stored with each model run's load and memory figures; figures of another version are measured again.
MEASURE_PROTOCOL = "fixed-workload-2"


def speed_requests(requests: list[GenerationRequest], measure: MeasureConfig, new_tokens: int) -> list[GenerationRequest]:
    """The fixed workload: the first ``measure.prompts`` prompts of the set, in its order, each to generate
    exactly ``measure.new_tokens`` (else ``new_tokens``, the study's) tokens, end-of-sequence ignored."""
    chosen = requests[: measure.prompts] if measure.prompts else requests
    tokens = measure.new_tokens or new_tokens
    return [
        replace(r, settings=r.settings.model_copy(update={"max_new_tokens": tokens, "ignore_eos": True, "stop": ()}))
        for r in chosen
    ]


def protocol_hash(measure: MeasureConfig, requests: list[GenerationRequest], request_hashes: dict[str, str]) -> str:
    """What makes two sets of timed passes comparable: the protocol and the exact requests timed."""
    return hash_json(
        {
            "protocol": MEASURE_PROTOCOL,
            "warmup": measure.warmup,
            "repeats": measure.repeats,
            "regimes": list(measure.regimes),
            "requests": [request_hashes[r.prompt_id] for r in requests],
            "new_tokens": requests[0].settings.max_new_tokens if requests else 0,
        }
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


def regime_batches(requests: list[GenerationRequest], regime: str, batch_size: int) -> list[list[GenerationRequest]]:
    """The workload cut into the regime's batches: one prompt each (``single``), or ``batch_size`` prompts."""
    size = 1 if regime == "single" else max(1, batch_size)
    return [requests[i : i + size] for i in range(0, len(requests), size)]


def _timed_pass(backend: Backend, batches: list[list[GenerationRequest]], index: int, regime: str, size: int) -> SpeedPass:
    tokens = failures = 0
    latencies: list[float] = []
    ttfts: list[float] = []
    seconds = 0.0
    all_results = []
    with OtherLoad() as others:
        for batch in batches:
            started = time.perf_counter()
            all_results.append(backend.generate(batch))
            seconds += time.perf_counter() - started
    for results in all_results:
        for result in results:
            if result.failed:
                failures += 1
                continue
            tokens += result.output_tokens or 0
            latencies.append(result.sequence_latency_s)
            if result.ttft_s is not None:
                ttfts.append(float(result.ttft_s))
    prompts = sum(len(b) for b in batches)
    share = others.share if backend.local else None  # a server on this machine is the model's own work
    return SpeedPass(index, prompts, tokens, seconds, tuple(latencies), failures, regime, size, tuple(ttfts), share)


def timed_passes(backend: Backend, requests: list[GenerationRequest], measure: MeasureConfig, batch_size: int) -> list[SpeedPass]:
    """``measure.repeats`` passes over the fixed workload in each of ``measure.regimes``, interleaved (pass 0
    of every regime, then pass 1, …), each timed as a whole."""
    passes = []
    for index in range(measure.repeats):
        for regime in measure.regimes:
            size = 1 if regime == "single" else max(1, batch_size)
            passes.append(_timed_pass(backend, regime_batches(requests, regime, size), index, regime, size))
    return passes


def memory_workload(backend: Backend, requests: list[GenerationRequest], batch_size: int) -> None:
    """One untimed batch of the fixed workload at the model's batch size (the largest batch a timed pass runs):
    what peak memory is taken over when no timed pass is due, so that every load is measured under the same
    work, at the cost of one batch."""
    batches = regime_batches(requests, "batched", batch_size)
    if batches:
        backend.generate(batches[0])
