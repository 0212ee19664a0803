"""The typed records that flow between the layers: requests to a backend, its results, what a load
reported. Backends produce them, the run layer passes them on, the store persists them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reportgen.study.config import GenerationSettings

__all__ = [
    "ChoiceRequest",
    "ChoiceResult",
    "ClusterNode",
    "ClusterRecord",
    "GenerationRequest",
    "GenerationResult",
    "LoadInfo",
    "LogLikelihoodResult",
    "ModelPlacement",
    "ModelRunRecord",
    "RunManifest",
    "SpeedPass",
    "sequence_latency",
]


@dataclass(frozen=True)
class GenerationRequest:
    prompt_id: str
    messages: tuple[dict[str, str], ...]  # chat form (always given)
    text: str  # plain form (for plain prompts or models without chat template)
    format: str  # "chat" or "plain": what the prompt set asks for
    settings: GenerationSettings
    # A GBNF grammar the output must follow (judge verdicts): honoured by backends whose
    # ``constrains_output`` is true, ignored by the others. Not part of the request hash of study prompts.
    grammar: str | None = None


@dataclass
class GenerationResult:
    prompt_id: str
    text: str
    prompt_tokens: int | None
    output_tokens: int | None
    finish_reason: str  # "eos" | "length" | "stop" | "error"
    latency_s: float  # wall time for this prompt (its batch's time when batched)
    ttft_s: float | None = None  # time to first token
    error: str | None = None  # set when finish_reason == "error"
    prompt_text: str | None = None  # the exact text fed to the model (chat template applied)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.finish_reason == "error"

    @property
    def sequence_latency_s(self) -> float:
        return sequence_latency(self.extra, self.latency_s)


def sequence_latency(extra: dict[str, Any], latency_s: float) -> float:
    """Time to a prompt's last token: inside a batch from the batch's start (``extra['finish_s']``, which
    batching backends record), else the prompt's own latency."""
    finish = extra.get("finish_s")
    return float(finish) if isinstance(finish, (int, float)) and not isinstance(finish, bool) else float(latency_s)


@dataclass
class LogLikelihoodResult:
    text_id: str
    nll_nats: float  # summed negative log-likelihood of the text's tokens (after the first)
    n_tokens: int  # tokens scored
    n_bytes: int  # UTF-8 bytes of the scored text


@dataclass(frozen=True)
class ChoiceRequest:
    """One choice of a multiple-choice item: the log-likelihood of ``continuation`` given ``context`` (the
    "continuation" request kind; lm-eval's ``loglikelihood``)."""

    item_id: str
    choice: int  # the choice's index in the item
    context: str
    continuation: str


@dataclass
class ChoiceResult:
    item_id: str
    choice: int
    logprob: float  # summed log-probability (nats) of the continuation's tokens given the context
    n_tokens: int  # continuation tokens scored
    is_greedy: bool  # every continuation token was the model's most likely one


@dataclass
class LoadInfo:
    load_time_s: float
    precision: str  # what actually ran: "float32", "bfloat16", "Q4_1", "4-bit nf4"...
    device: str  # "cpu", "cuda:0", "remote"
    weight_bytes: int | None = None
    notes: list[str] = field(default_factory=list)  # warnings a reader should see (e.g. "4-bit asked, CPU ran float32")
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SpeedPass:
    """One timed pass over the fixed workload (``measure``) in one regime: ``single`` (one prompt at a time)
    or ``batched`` (the model's batch size); tokens generated, wall seconds, each prompt's latency (time to
    its last token, from the start of its batch), time to first token, and how busy other processes kept the
    machine meanwhile."""

    index: int
    prompts: int
    generated_tokens: int
    seconds: float
    latencies_s: tuple[float, ...] = ()
    failures: int = 0
    regime: str = "batched"
    batch_size: int = 0
    ttfts_s: tuple[float, ...] = ()
    others_cpu_share: float | None = None  # CPU other processes used meanwhile, ÷ (wall × cores) (util.cpu)


@dataclass(frozen=True)
class ModelRunRecord:
    """What the last run did for one model, as its manifest keeps it."""

    model_id: str
    prompts_run: int = 0
    prompts_cached: int = 0
    reason: str = ""
    notes: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class ClusterNode:
    """One node of the cluster a run used."""

    node_id: str
    address: str
    gpus: float = 0
    cpus: float = 0


@dataclass(frozen=True)
class ModelPlacement:
    """Where one model's actor ran."""

    model_id: str
    node_id: str
    address: str
    gpu_ids: tuple[str, ...] = ()
    cuda_visible_devices: str | None = None


@dataclass(frozen=True)
class ClusterRecord:
    """The Ray cluster of a run (``engine: ray``): its nodes, Ray's version and which node ran which model."""

    ray_version: str | None = None
    address: str | None = None
    nodes: tuple[ClusterNode, ...] = ()
    placements: tuple[ModelPlacement, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> ClusterRecord | None:
        if not isinstance(data, dict):
            return None
        nodes = tuple(
            ClusterNode(
                str(n["node_id"]),
                str(n.get("address", "")),
                _of(n.get("gpus"), (int, float), 0),
                _of(n.get("cpus"), (int, float), 0),
            )
            for n in _of(data.get("nodes"), list, [])
            if isinstance(n, dict) and "node_id" in n
        )
        placements = tuple(
            ModelPlacement(
                str(p["model_id"]),
                str(p.get("node_id", "")),
                str(p.get("address", "")),
                tuple(str(g) for g in _of(p.get("gpu_ids"), list, [])),
                _of(p.get("cuda_visible_devices"), str, None),
            )
            for p in _of(data.get("placements"), list, [])
            if isinstance(p, dict) and "model_id" in p
        )
        return cls(_of(data.get("ray_version"), str, None), _of(data.get("address"), str, None), nodes, placements)


def _of(value: Any, kind: type | tuple[type, ...], default: Any) -> Any:
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
    engine: str = "local"  # "local" or "ray"
    cluster: ClusterRecord | None = None  # the Ray cluster, for engine "ray"
    schema_version: int = SCHEMA_VERSION

    def model(self, model_id: str) -> ModelRunRecord | None:
        return next((m for m in self.models if m.model_id == model_id), None)

    @classmethod
    def from_json(cls, data: Any) -> RunManifest:
        data = data if isinstance(data, dict) else {}
        models = []
        for entry in _of(data.get("models"), list, []):
            if isinstance(entry, dict) and isinstance(entry.get("model_id"), str):
                models.append(
                    ModelRunRecord(
                        entry["model_id"],
                        _of(entry.get("prompts_run"), int, 0),
                        _of(entry.get("prompts_cached"), int, 0),
                        _of(entry.get("reason"), str, ""),
                        tuple(str(n) for n in _of(entry.get("notes"), list, [])),
                        None if entry.get("error") is None else str(entry["error"]),
                    )
                )
        return cls(
            config=_of(data.get("config"), str, None),
            config_hash=_of(data.get("config_hash"), str, None),
            prompt_set=_of(data.get("prompt_set"), str, None),
            prompt_set_hash=_of(data.get("prompt_set_hash"), str, None),
            prompts=_of(data.get("prompts"), int, None),
            generation=_of(data.get("generation"), dict, {}),
            python=_of(data.get("python"), str, None),
            platform=_of(data.get("platform"), str, None),
            packages={str(k): str(v) for k, v in _of(data.get("packages"), dict, {}).items()},
            hardware=_of(data.get("hardware"), dict, {}),
            seed=_of(data.get("seed"), int, None),
            fingerprints={str(k): str(v) for k, v in _of(data.get("fingerprints"), dict, {}).items()},
            models=tuple(models),
            engine=_of(data.get("engine"), str, "local"),
            cluster=ClusterRecord.from_json(data.get("cluster")),
            schema_version=_of(data.get("schema_version"), int, 0),
        )
