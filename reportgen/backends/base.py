"""The backend interface: batch-shaped, a list of requests in and a list of results out, same order.

A backend wraps one model. ``load()`` happens once; ``generate()`` is called with batches of
requests; ``loglikelihood()`` scores texts (teacher-forced) for bits-per-byte. Heavy packages are
imported inside the concrete backend modules, never here.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from reportgen.study.config import GenerationSettings, ModelConfig


@dataclass(frozen=True)
class GenerationRequest:
    prompt_id: str
    messages: tuple[dict[str, str], ...]  # chat form (always given)
    text: str                            # plain form (for plain prompts or models without chat template)
    format: str                           # "chat" or "plain": what the prompt set asks for
    settings: GenerationSettings


@dataclass
class GenerationResult:
    prompt_id: str
    text: str
    prompt_tokens: int | None
    output_tokens: int | None
    finish_reason: str              # "eos" | "length" | "stop" | "error"
    latency_s: float                # wall time for this prompt (its batch's time when batched)
    ttft_s: float | None = None     # time to first token
    error: str | None = None        # set when finish_reason == "error"
    prompt_text: str | None = None  # the exact text fed to the model (chat template applied)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.finish_reason == "error"


@dataclass
class LogLikelihoodResult:
    text_id: str
    nll_nats: float       # summed negative log-likelihood of the text's tokens (after the first)
    n_tokens: int         # tokens scored
    n_bytes: int          # UTF-8 bytes of the scored text


@dataclass
class LoadInfo:
    load_time_s: float
    precision: str                 # what actually ran: "float32", "bfloat16", "Q4_1", "4-bit nf4"...
    device: str                    # "cpu", "cuda:0", "remote"
    weight_bytes: int | None = None
    notes: list[str] = field(default_factory=list)  # warnings a reader should see (e.g. "4-bit asked, CPU ran float32")
    details: dict[str, Any] = field(default_factory=dict)


class Backend(abc.ABC):
    """One model behind a batch-shaped interface."""

    name: str = ""

    def __init__(self, model: ModelConfig):
        self.model = model

    @abc.abstractmethod
    def fingerprint_parts(self) -> dict[str, Any]:
        """What determines the outputs (weight/adapter digests, quantization, precision, backend options).

        Must not load the model. Settings that cannot change outputs (batch size, timeouts) stay out.
        """

    @abc.abstractmethod
    def load(self) -> LoadInfo:
        """Load the model (once)."""

    @abc.abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Generate for a batch; results in the order of the requests."""

    def loglikelihood(self, texts: list[tuple[str, str]]) -> list[LogLikelihoodResult]:
        """Score (id, text) pairs. Backends that cannot score raise NotImplementedError."""
        raise NotImplementedError(f"backend '{self.name}' cannot score log-likelihoods")

    def import_dependencies(self) -> None:
        """Import the backend's heavy packages, so that the memory they take is not counted as the model's."""

    def suggested_batch_size(self, requests: list[GenerationRequest]) -> int:
        """Batch size for ``batch_size: auto``."""
        return 8

    def peak_memory_bytes(self) -> int | None:
        return None

    def close(self) -> None:
        """Free the model."""
