"""The typed records that flow between the layers: requests to a backend, its results, what a load
reported. Backends produce them, the run layer passes them on, the store persists them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reportgen.study.config import GenerationSettings

__all__ = ["GenerationRequest", "GenerationResult", "LoadInfo", "LogLikelihoodResult"]


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
