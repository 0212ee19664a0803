"""The ``code`` key of a study config: whether and how the answers to code prompts are run."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CodeConfig"]


class CodeConfig(BaseModel):
    """Code prompts (a prompt with ``tests`` and ``entry_point``): their answers are Python written by the
    models, run in a sandbox (see the README's "Code by execution") only when ``execute`` is true."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    execute: bool = Field(
        False,
        description="Run model-written code: the answers to code prompts, with their tests, in the sandbox. "
        "Off by default; a study with code prompts is refused until this (or `run --execute-code`) allows it.",
    )
    timeout: float = Field(10.0, gt=0, le=600, description="Seconds one answer's tests may run (wall clock and CPU time).")
    memory_mb: int = Field(512, ge=64, le=65536, description="Address space one run may use, in MiB.")
    processes: int = Field(16, ge=2, le=1024, description="Processes one run may have at once.")
    workers: int = Field(2, ge=1, le=64, description="Answers run at once.")
    max_new_tokens: int | None = Field(
        None,
        ge=1,
        le=32768,
        description="Most tokens generated for a code prompt (a whole function needs more than a short answer); "
        "default: the study's generation.max_new_tokens.",
    )
    samples: int = Field(
        0,
        ge=0,
        le=200,
        description="Answers sampled per code prompt for pass@k, besides the study's own answer (0: none). "
        "They are sampled with 'temperature' and 'top_p', seeds from the study's seed.",
    )
    temperature: float = Field(0.8, gt=0, le=10, description="Sampling temperature of the pass@k samples.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass of the pass@k samples.")
    k: tuple[int, ...] = Field((1,), min_length=1, description="The k of pass@k reported from the samples (each <= samples).")

    @field_validator("k")
    @classmethod
    def _positive(cls, ks: tuple[int, ...]) -> tuple[int, ...]:
        if any(k < 1 for k in ks):
            raise ValueError("every k of pass@k is at least 1")
        return tuple(sorted(set(ks)))
