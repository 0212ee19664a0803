"""The HTTP backend: a remote model behind an endpoint, spoken to in the protocol its source names.

Every request of a batch ends as a :class:`GenerationResult`: a prompt that still fails after the retries
is recorded with ``finish_reason="error"`` and a short reason, and the rest of the batch goes on. Requests
run on up to ``source.concurrency`` threads sharing one ``httpx.Client``; retries, backoff and
``Retry-After`` are the transport's (:mod:`reportgen.backends.http.transport`). Which request shape the
server takes (streaming, the non-standard sampler fields) is probed once per model, on the first rejection;
when each of the model's first requests failed, the rest are not sent (:mod:`reportgen.backends.http.breaker`).

The bearer token is read from ``os.environ[source.token_env]`` and kept out of every result, error
message, exception, log line, repr and fingerprint: server error bodies that echo it are scrubbed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reportgen.backends.base import Backend
from reportgen.backends.http.breaker import FirstWaveBreaker
from reportgen.backends.http.protocol import Answer, Protocol, finish, protocol_class
from reportgen.backends.http.transport import (
    STREAM_REJECTED_STATUS,
    Failure,
    Outcome,
    Redactor,
    RetryPolicy,
    http_failure,
    open_client,
    redirect_failure,
    transport_errors,
    with_retries,
)
from reportgen.errors import BackendError, ConfigError
from reportgen.records import ChoiceRequest, ChoiceResult, GenerationRequest, GenerationResult, LoadInfo
from reportgen.study.config import HTTPSource, ModelConfig

log = logging.getLogger(__name__)


class HTTPBackend(Backend):
    """A remote model behind an HTTP endpoint."""

    name = "http"
    local = False

    def __init__(
        self,
        model: ModelConfig,
        *,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        retry_after_cap_s: float = 60.0,
        loading_wait_max_s: float = 300.0,
        config_index: int | None = None,
    ):
        super().__init__(model)
        self.config_index = config_index  # the model's position in the study, for error messages
        if not isinstance(model.source, HTTPSource):
            raise ConfigError(f"model '{model.id}': the http backend needs a source of type 'http'")
        self.source: HTTPSource = model.source
        self.redactor = Redactor()
        self.protocol: Protocol = protocol_class(self.source)(self.source, self.redactor)
        self.url = self.protocol.endpoint(self.source.url)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_cap_s = retry_after_cap_s
        self.loading_wait_max_s = loading_wait_max_s
        self._client = None
        self._client_lock = threading.Lock()
        self._stream_supported: bool | None = None if self.source.stream else False
        self._extras_supported: bool | None = None  # repeat_penalty & co. (see Protocol.payload)
        self._probe_lock = threading.Lock()
        self._probed = False  # the request shapes were tried once: no other request probes them again
        # the first wave the model's concurrency sends (at least two requests) decides whether the endpoint works
        self.breaker = FirstWaveBreaker(max(2, self.source.concurrency))
        if self.source.protocol == "openai-completions":  # echo + logprobs: multiple choice (backends.http.echo)
            self.request_kinds = frozenset({"generate", "continuation"})

    def __repr__(self) -> str:  # never the token, never the headers
        return f"HTTPBackend(model={self.model.id!r}, url={self.url!r}, protocol={self.source.protocol!r})"

    __str__ = __repr__

    # -- interface ---------------------------------------------------------------------------

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"url": self.source.url, "protocol": self.source.protocol, "model": self.source.model}

    def load(self) -> LoadInfo:
        start = time.perf_counter()
        self._token()  # a missing variable is a config problem: say so before any request
        self._ensure_client()
        return LoadInfo(
            load_time_s=time.perf_counter() - start,
            precision="remote",
            device="remote",
            details={"url": self.url, "protocol": self.source.protocol, "model": self.source.model},
        )

    def suggested_batch_size(self, requests: list[GenerationRequest]) -> int:
        return max(8, 4 * self.source.concurrency)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        self._token()
        client = self._ensure_client()
        workers = min(self.source.concurrency, len(requests))
        if workers == 1:
            return [self._one_safe(client, request) for request in requests]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reportgen-http") as pool:
            return list(pool.map(lambda request: self._one_safe(client, request), requests))

    def continuations(self, requests: list[ChoiceRequest]) -> list[ChoiceResult]:
        """Each continuation's log-likelihood from the endpoint's echoed prompt (backends.http.echo), with the
        transport's retries; a server that rejects echo + logprobs, or answers without them, is Unsupported."""
        from reportgen.backends.http import echo

        if not requests:
            return []
        self._token()
        client = self._ensure_client()

        def one(request: ChoiceRequest) -> ChoiceResult:
            def attempt() -> Any:
                with transport_errors(self.redactor):
                    response = client.post(self.url, json=echo.payload(request, self.source.model), headers=self._headers())
                    body = response.text
                    if response.status_code in STREAM_REJECTED_STATUS:  # "not here": a refusal, not a failure
                        failure = http_failure(response, body, self.redactor)
                        raise echo.refused(self.url, f"{failure.reason}{': ' + failure.detail if failure.detail else ''}")
                    if response.status_code >= 400:
                        raise http_failure(response, body, self.redactor)
                try:
                    return json.loads(body)
                except ValueError:
                    raise echo.refused(self.url, f"malformed JSON: {self.redactor.excerpt(body)}") from None

            outcome = with_retries(attempt, self._retry_policy(), self._sleep)
            if outcome.error is not None:
                raise BackendError(f"model {self.model.id}: multiple choice: {self.redactor.scrub(outcome.error)}")
            return echo.parse(request, outcome.value, self.url)

        first = one(requests[0])  # alone: an endpoint that cannot is asked once, not once per thread
        workers = max(1, min(self.source.concurrency, len(requests) - 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reportgen-http") as pool:
            return [first, *pool.map(one, requests[1:])]

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- internals ---------------------------------------------------------------------------

    def _token(self) -> str | None:
        env = self.source.token_env
        if not env:
            return None
        value = os.environ.get(env)
        if not value:
            index = self._model_index()
            raise BackendError(
                f"model {self.model.id}: environment variable {env} ({index}.source.token_env) is not set. Fix: export {env}=..."
            )
        self.redactor.token = value
        return value

    def _sleep(self, seconds: float) -> None:  # one place for every wait (tests record them)
        time.sleep(seconds)

    def _model_index(self) -> str:
        return f"models[{self.config_index}]" if self.config_index is not None else "models[]"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _ensure_client(self):
        with self._client_lock:
            if self._client is None:
                self._client = open_client(self.source.timeout_s, self.source.concurrency)
            return self._client

    def _retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_retries=self.source.max_retries,
            timeout_s=self.source.timeout_s,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            retry_after_cap_s=self.retry_after_cap_s,
            loading_wait_max_s=self.loading_wait_max_s,
        )

    def _one_safe(self, client, request: GenerationRequest) -> GenerationResult:
        start = time.perf_counter()
        opened = self.breaker.admit()
        if opened is not None:  # the endpoint failed each of the first requests: this one is not sent
            return self._failed(request, opened, 0.0, {"attempts": 0})
        try:
            result = self._one(client, request)
        except Exception as exc:  # one prompt never stops the batch
            reason = self.redactor.scrub(f"internal error: {type(exc).__name__}: {exc}")[:300]
            result = self._failed(request, reason, time.perf_counter() - start)
        if self.breaker.record(result.error):
            log.warning(
                "%s: the endpoint failed each of its first %d requests: the model's other prompts are not sent "
                "(marked failed; the next run retries them)",
                self.model.id,
                self.breaker.window,
            )
        return result

    @staticmethod
    def _failed(request: GenerationRequest, reason: str, latency_s: float, extra: dict | None = None) -> GenerationResult:
        return GenerationResult(
            prompt_id=request.prompt_id,
            text="",
            prompt_tokens=None,
            output_tokens=None,
            finish_reason="error",
            latency_s=latency_s,
            error=reason,
            extra=extra or {},
        )

    def _one(self, client, request: GenerationRequest) -> GenerationResult:
        started = time.perf_counter()
        outcome = with_retries(lambda: self._attempt(client, request), self._retry_policy(), self._sleep)
        if outcome.error is not None:
            return self._failed(
                request, self.redactor.scrub(outcome.error), time.perf_counter() - started, {"attempts": outcome.attempts}
            )
        answer = outcome.value
        assert answer is not None  # an outcome has a value or an error
        text, finish_reason = finish(answer, request)
        return GenerationResult(
            prompt_id=request.prompt_id,
            text=self.redactor.scrub(text) or "",
            prompt_tokens=answer.prompt_tokens,
            output_tokens=answer.output_tokens,
            finish_reason=finish_reason,
            latency_s=outcome.attempt_s,
            ttft_s=answer.ttft_s,
            prompt_text=self.redactor.scrub(self.protocol.prompt_text(request)),
            extra=self._extra(request, answer, outcome, time.perf_counter() - started),
        )

    def _extra(self, request: GenerationRequest, answer: Answer, outcome: Outcome, wall_s: float) -> dict[str, Any]:
        extra: dict[str, Any] = {"attempts": outcome.attempts, "wall_s": wall_s}
        if answer.finish_reason is not None:
            extra["server_finish_reason"] = answer.finish_reason
        extra["streamed"] = answer.streamed
        if answer.streamed and answer.output_tokens is None:
            extra["stream_chunks"] = answer.chunks  # the server sent no usage: a rough count, not stored as tokens
        if outcome.loading_waited_s:
            extra["loading_wait_s"] = outcome.loading_waited_s
        settings = request.settings
        if self._extras_supported is False and (
            settings.repetition_penalty not in (None, 1.0) or (settings.do_sample and settings.top_k)
        ):
            extra["ignored_settings"] = "the server rejected repetition_penalty/top_k, so they were not sent"
        return extra

    # -- one attempt -------------------------------------------------------------------------

    def _attempt(self, client, request: GenerationRequest) -> Answer:
        """One attempt, in the request shape known to work (or the fullest one, before anything is known).

        A 4xx or 501 answer to a request that streams or carries the non-standard sampler fields may mean "not
        supported here". The first such rejection of the model probes the other shapes (without the extras,
        then without streaming), once: what works is remembered for the rest of the run; when nothing works,
        the shape was not the problem and no later request probes again (a server answering 501 costs one
        request per prompt, not one per shape and attempt). Once a shape has worked, nothing is probed."""
        stream, extras = self._shape()
        with transport_errors(self.redactor):
            try:
                answer = self._send(client, request, stream, extras)
            except Failure as failure:
                if not ((stream or extras) and failure.kind == "http" and failure.status in STREAM_REJECTED_STATUS):
                    raise
                return self._probe(client, request, (stream, extras), failure)
            self._probed = True  # this shape works: a later rejection is about the request, not its shape
            return answer

    def _shape(self) -> tuple[bool, bool]:
        """(stream, extras): the request shape to send now."""
        stream = self.protocol.streams and self._stream_supported is not False
        extras = self.protocol.sampler_extras and self._extras_supported is not False
        return stream, extras

    def _probe(self, client, request: GenerationRequest, tried: tuple[bool, bool], rejected: Failure) -> Answer:
        """After ``tried`` was rejected: the other request shapes, by one thread while the others wait for its
        finding. Raises the rejection when the shapes make no difference (or were probed already)."""
        with self._probe_lock:
            if self._probed:  # another request probed meanwhile: send once more if it found a shape that works
                if self._shape() == tried:
                    raise rejected
                return self._send(client, request, *self._shape())
            self._probed = True
            stream, extras = tried
            shapes = [(stream, False)] if extras else []
            if stream:
                shapes += [(False, extras)] + ([(False, False)] if extras else [])
            for use_stream, use_extras in shapes:
                try:
                    answer = self._send(client, request, use_stream, use_extras)
                except Failure as failure:
                    if failure.kind == "http" and failure.status in STREAM_REJECTED_STATUS:
                        rejected = failure
                        continue
                    raise
                if extras and not use_extras:
                    self._extras_supported = False
                if stream and not use_stream:
                    self._stream_supported = False
                return answer
            raise rejected

    def _send(self, client, request: GenerationRequest, stream: bool, extras: bool = False) -> Answer:
        payload = self.protocol.payload(request, stream, extras)
        sent = time.perf_counter()
        with client.stream("POST", self.url, json=payload, headers=self._headers()) as response:
            if response.status_code >= 400:
                body = response.read().decode("utf-8", "replace")
                raise http_failure(response, body, self.redactor)
            if 300 <= response.status_code < 400:
                raise redirect_failure(response)
            content_type = response.headers.get("content-type", "")
            if stream and "text/event-stream" in content_type:
                answer = self.protocol.read_sse(response, sent)
                self._stream_supported = True
                return answer
            body = response.read().decode("utf-8", "replace")
        try:
            data = json.loads(body)
        except ValueError:
            excerpt = self.redactor.excerpt(body)
            raise Failure(f"malformed JSON (HTTP {response.status_code}): {excerpt}", "malformed", retry=False) from None
        return self.protocol.parse_json(data)
