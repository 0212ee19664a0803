"""What a run did, per model and in all: counts, times, memory, why it ran, what failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reportgen.errors import JobFailed

__all__ = ["ModelRunSummary", "RunSummary"]


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
    errors: dict[str, int] = field(default_factory=dict)  # each distinct reason a prompt failed → prompts, first seen first

    @property
    def reran(self) -> bool:
        return self.prompts_run > 0

    @property
    def answered_nothing(self) -> bool:
        """Every prompt of the model failed in this run, and none was answered before: the model has no answer."""
        return self.failures > 0 and self.failures == self.prompts_run and self.prompts_cached == 0

    def line(self) -> str:
        if self.error:
            return f"{self.model_id}: FAILED — {self.error}"
        if self.answered_nothing:
            return f"{self.model_id}: FAILED — every prompt failed ({self.failures} of {self.prompts_total}; retried on the next run)"
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
    judges: list = field(default_factory=list)  # JudgeRunSummary per judge (reportgen.run.judging)
    code: Any = None  # CodeRunSummary (reportgen.run.coderun) when the prompt set has code prompts

    @property
    def reran_models(self) -> list[str]:
        return [m.model_id for m in self.models if m.reran]

    @property
    def failed_models(self) -> list[ModelRunSummary]:
        """Models that failed (an error) or answered nothing (every prompt failed, none stored before)."""
        return [m for m in self.models if m.error or m.answered_nothing]

    @property
    def models_with_failed_prompts(self) -> list[ModelRunSummary]:
        """Models that answered some prompts and failed others."""
        return [m for m in self.models if m.failures and not m.error and not m.answered_nothing]

    def raise_for_failures(self, allow_failures: bool, saved: str) -> None:
        """JobFailed (exit 1) when a model failed or answered none of its prompts, or, unless ``allow_failures``,
        when some of a model's prompts failed. ``saved`` says what was kept anyway."""
        if self.failed_models:
            raise JobFailed("; ".join(m.line() for m in self.failed_models) + f" ({saved})")
        partial = self.models_with_failed_prompts
        if partial and not allow_failures:
            raise JobFailed(
                "; ".join(f"{m.model_id}: {m.failures} of {m.prompts_run} prompts failed" for m in partial)
                + f" (stored as failures and retried on the next run; {saved}; --allow-failures exits 0)"
            )
