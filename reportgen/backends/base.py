"""The backend interface: batch-shaped, a list of requests in and a list of results out, same order.

A backend wraps one model. ``load()`` happens once; ``generate()`` is called with batches of
requests; ``loglikelihood()`` scores texts (teacher-forced) for bits-per-byte; ``continuations()`` gives
the log-likelihood of each choice of a multiple-choice item given its context. Heavy packages are
imported inside the concrete backend modules, never here.
"""

from __future__ import annotations

import abc
from typing import Any

from reportgen.errors import BackendError
from reportgen.records import ChoiceRequest, ChoiceResult, GenerationRequest, GenerationResult, LoadInfo, LogLikelihoodResult
from reportgen.study.config import ModelConfig


class Unsupported(BackendError):
    """The model cannot serve a request kind (e.g. an endpoint that returns no prompt log-probabilities): the
    run records it once and the planner does not schedule that kind for the model again."""


class Backend(abc.ABC):
    """One model behind a batch-shaped interface."""

    name: str = ""
    local: bool = True  # runs on this machine, in a worker process of its own (False: a server does the work, so there is nothing to warm up here)
    constrains_output: bool = False  # honours GenerationRequest.grammar (a GBNF grammar); others ignore it
    #: The request kinds the backend serves: "generate" (free text), "loglikelihood" (scoring texts, for bits
    #: per byte) and "continuation" (a continuation's log-likelihood given a context: multiple choice). The
    #: planner schedules only these, so a model whose backend cannot score is never planned for it; a backend
    #: that learns only when asked (an endpoint) raises ``Unsupported``, which the store keeps, and the planner
    #: does not ask that model again.
    request_kinds: frozenset[str] = frozenset({"generate"})

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
        """Score (id, text) pairs. Only backends whose ``request_kinds`` has "loglikelihood" are asked."""
        raise NotImplementedError(f"backend '{self.name}' cannot score log-likelihoods")

    def continuations(self, requests: list[ChoiceRequest]) -> list[ChoiceResult]:
        """The log-likelihood of each request's continuation given its context, in order. Only backends whose
        ``request_kinds`` has "continuation" are asked."""
        raise Unsupported(f"backend '{self.name}' cannot score continuations")

    def import_dependencies(self) -> None:
        """Import the backend's heavy packages, so that the memory they take is not counted as the model's."""

    def suggested_batch_size(self, requests: list[GenerationRequest]) -> int:
        """Batch size for ``batch_size: auto``."""
        return 8

    def peak_memory_bytes(self) -> int | None:
        return None

    def close(self) -> None:
        """Free the model."""
