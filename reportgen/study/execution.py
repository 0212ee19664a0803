"""The ``execution`` key of a study config: where the models run (this process, or Ray actors on a cluster)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ExecutionConfig", "ResourceRequest", "parse_bytes"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
# The sizes parse_bytes accepts, for the JSON Schema (which has no case-insensitive flag): 16GiB, 500 MB, 1024
SIZE_TEXT = r"^\s*\d+(\.\d+)?\s*(([kKmMgGtT][iI]?)?[bB])?\s*$"
ByteSize = Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=SIZE_TEXT)]


def parse_bytes(value: int | float | str) -> int:
    """``16GiB``, ``500 MB`` or a number of bytes → bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    match = _SIZE.match(str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"'{value}' is not a size. Fix: write bytes or a size such as 16GiB or 500MB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


class ResourceRequest(BaseModel):
    """What one model's Ray actor reserves on its node (Ray's own resource names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_gpus: float | None = Field(
        None, ge=0, description="GPUs for the actor (fractions share a GPU); Ray sets its CUDA_VISIBLE_DEVICES."
    )
    num_cpus: float | None = Field(None, ge=0, description="CPUs for the actor (default 1).")
    memory: int | None = Field(None, ge=0, description="Memory to reserve for the actor: bytes or a size such as 16GiB.")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources, e.g. {node_a: 1} to pin the model to the nodes that offer it."
    )

    @field_validator("memory", mode="before", json_schema_input_type=ByteSize | None)
    @classmethod
    def _size(cls, value: int | float | str | None) -> int | None:
        return None if value is None else parse_bytes(value)

    def merged(self, other: "ResourceRequest | None") -> "ResourceRequest":
        """These settings with ``other``'s given keys on top."""
        if other is None:
            return self
        return self.model_copy(update=other.model_dump(exclude_unset=True))


class ExecutionConfig(BaseModel):
    """Where the models run. ``engine: local`` (default) runs them one after another, each local model in a
    worker process of its own (forked from this one, which alone writes the store); ``engine: ray`` gives each model a Ray actor with the resources asked for here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["local", "ray"] = Field(
        "local",
        description="local: one model after another, each in a fresh worker process (HTTP endpoints in this one); "
        "ray: one Ray actor per model.",
    )
    address: str | None = Field(
        None,
        description="Ray cluster to join: 'auto' (the cluster this machine belongs to, after `ray start`), "
        "'ray://host:10001' (Ray Client) or 'host:6379'; null starts a local cluster for this run.",
    )
    shard_size: int = Field(
        32, ge=1, le=100000, description="Prompts per shard: the unit an actor runs and the driver stores at once."
    )
    max_restarts: int = Field(3, ge=0, le=100, description="How often Ray restarts a model's actor that died.")
    max_task_retries: int = Field(3, ge=0, le=100, description="How often a shard is retried after its actor died in it.")
    resources: dict[str, ResourceRequest] = Field(
        default_factory=dict,
        description="Per-model actor resources by model id; 'default' applies to every model and a model's own entry "
        "overrides its keys. Without num_gpus, a model gets one GPU where the cluster has GPUs and none (CPU only) where "
        "it has none.",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or value in ("auto", "local") or re.match(r"^(ray://)?[\w.\-\[\]:]+:\d+$", value):
            return value
        raise ValueError(
            f"'{value}' is not a Ray address. Fix: write auto, ray://HOST:10001, HOST:6379, or null for a local cluster"
        )

    def resources_for(self, model_id: str) -> ResourceRequest:
        """What the config asks for this model; ``num_gpus`` None when it does not say (the executor then gives
        a GPU per model where the cluster has GPUs, none otherwise)."""
        default = self.resources.get("default", ResourceRequest())
        return default.merged(self.resources.get(model_id))
