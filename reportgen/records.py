"""The typed records that flow between the layers: requests to a backend, its results, what a load
reported. Backends produce them, the run layer passes them on, the store persists them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reportgen.study.config import GenerationSettings

__all__ = ["GenerationRequest", "GenerationResult", "LoadInfo", "LogLikelihoodResult", "ModelRunRecord", "RunManifest"]


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


@dataclass(frozen=True)
class ModelRunRecord:
    """What the last run did for one model, as its manifest keeps it."""

    model_id: str
    prompts_run: int = 0
    prompts_cached: int = 0
    reason: str = ""
    notes: tuple[str, ...] = ()
    error: str | None = None


def _of(value: Any, kind: type, default: Any) -> Any:
    """``value`` when it has the expected JSON type (a bool is not an int here), else ``default``."""
    if isinstance(value, bool) and kind is not bool:
        return default
    return value if isinstance(value, kind) else default


@dataclass(frozen=True)
class RunManifest:
    """The record of one run: what ran (config, prompt set, settings), where (software, hardware) and
    what each model did. Stored as JSON in the store's ``runs`` table; read back through ``from_json``,
    which accepts manifests of earlier versions (missing or mistyped fields become empty)."""

    SCHEMA_VERSION = 1

    config: str | None = None
    config_hash: str | None = None
    prompt_set: str | None = None
    prompt_set_hash: str | None = None
    prompts: int | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    python: str | None = None
    platform: str | None = None
    packages: dict[str, str] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    fingerprints: dict[str, str] = field(default_factory=dict)
    models: tuple[ModelRunRecord, ...] = ()
    schema_version: int = SCHEMA_VERSION

    def model(self, model_id: str) -> ModelRunRecord | None:
        return next((m for m in self.models if m.model_id == model_id), None)

    @classmethod
    def from_json(cls, data: Any) -> RunManifest:
        data = data if isinstance(data, dict) else {}
        models = []
        for entry in _of(data.get("models"), list, []):
            if isinstance(entry, dict) and isinstance(entry.get("model_id"), str):
                models.append(ModelRunRecord(
                    entry["model_id"], _of(entry.get("prompts_run"), int, 0), _of(entry.get("prompts_cached"), int, 0),
                    _of(entry.get("reason"), str, ""), tuple(str(n) for n in _of(entry.get("notes"), list, [])),
                    None if entry.get("error") is None else str(entry["error"]),
                ))
        return cls(
            config=_of(data.get("config"), str, None), config_hash=_of(data.get("config_hash"), str, None),
            prompt_set=_of(data.get("prompt_set"), str, None), prompt_set_hash=_of(data.get("prompt_set_hash"), str, None),
            prompts=_of(data.get("prompts"), int, None), generation=_of(data.get("generation"), dict, {}),
            python=_of(data.get("python"), str, None), platform=_of(data.get("platform"), str, None),
            packages={str(k): str(v) for k, v in _of(data.get("packages"), dict, {}).items()},
            hardware=_of(data.get("hardware"), dict, {}), seed=_of(data.get("seed"), int, None),
            fingerprints={str(k): str(v) for k, v in _of(data.get("fingerprints"), dict, {}).items()},
            models=tuple(models), schema_version=_of(data.get("schema_version"), int, 0),
        )
