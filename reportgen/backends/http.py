"""HTTP inference endpoints: the Hugging Face Inference API and OpenAI-compatible servers.

Protocols (``HTTPSource.protocol``):

* ``hf-inference``: ``POST url`` with ``{"inputs", "parameters", "options"}``, answer
  ``[{"generated_text": ...}]`` (or the bare dict). A 503 with ``estimated_time`` means the model is
  still loading: wait that long (capped) and ask again.
* ``openai-completions``: ``POST {base}/v1/completions`` with ``prompt`` (the plain text).
* ``openai-chat``: ``POST {base}/v1/chat/completions`` with ``messages``.

``url`` for the OpenAI protocols is the server's base (``http://host:8000``); a URL that already ends in
``/v1`` or in the full endpoint path is used as given.

Every request of a batch ends as a :class:`GenerationResult`: a prompt that still fails after the retries
is recorded with ``finish_reason="error"`` and a short reason, and the rest of the batch goes on. Requests
run on up to ``source.concurrency`` threads sharing one ``httpx.Client``. Connection errors, timeouts, 429
and 5xx are retried up to ``source.max_retries`` times with exponential backoff and jitter, honouring
``Retry-After`` (seconds or an HTTP date).

The bearer token is read from ``os.environ[source.token_env]`` and kept out of every result, error
message, exception, log line, repr and fingerprint: server error bodies that echo it are scrubbed.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from reportgen.backends.base import Backend
from reportgen.records import GenerationRequest, GenerationResult, LoadInfo
from reportgen.study.config import HTTPSource, ModelConfig
from reportgen.errors import BackendError, ConfigError

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})  # and every other 5xx
# Answers meaning "this server does not take that request shape" (streaming, non-standard fields): ask again
# without the optional parts (see HTTPBackend._attempt).
STREAM_REJECTED_STATUS = frozenset({400, 404, 405, 415, 422, 501})
DEFAULT_EXAMPLE_INPUT = "Can you please let us know more details about your "


def endpoint_url(source: HTTPSource) -> str:
    """The URL requests are POSTed to."""
    url = source.url.rstrip("/")
    if source.protocol == "hf-inference":
        return source.url
    path = "/chat/completions" if source.protocol == "openai-chat" else "/completions"
    if url.endswith(path):
        return url
    if url.endswith("/v1"):
        return url + path
    return url + "/v1" + path


def api_usage_snippet(source: HTTPSource, example: str = DEFAULT_EXAMPLE_INPUT) -> str:
    """A runnable ``requests`` snippet querying the endpoint (the seed's "Api Interface").

    The token is read from the environment variable the config names, never written out.
    """
    url = endpoint_url(source)
    lines = ["#Lang : Python"]
    lines += ["import os", "import requests"] if source.token_env else ["import requests"]
    lines += ["", f"API_URL = {json.dumps(url)}"]
    if source.token_env:
        lines.append(f'headers = {{"Authorization": "Bearer " + os.environ[{json.dumps(source.token_env)}]}}')
    else:
        lines.append("headers = {}")
    lines += [
        "",
        "def query(payload):",
        "    response = requests.post(API_URL, headers=headers, json=payload)",
        "    return response.json()",
        "",
    ]
    if source.protocol == "hf-inference":
        lines += ["output = query({", f'    "inputs": {json.dumps(example)},', "})"]
    else:
        model = f'    "model": {json.dumps(source.model)},' if source.model else None
        if source.protocol == "openai-chat":
            body = [f'    "messages": [{{"role": "user", "content": {json.dumps(example)}}}],']
            read = 'print(output["choices"][0]["message"]["content"])'
        else:
            body = [f'    "prompt": {json.dumps(example)},']
            read = 'print(output["choices"][0]["text"])'
        lines += ["output = query({", *([model] if model else []), *body, '    "max_tokens": 64,', "})", read]
    return "\n".join(lines) + "\n"


class _Failure(Exception):
    """One attempt failed. ``retry`` says whether another attempt may help; ``wait_s`` is the server's ask."""

    def __init__(
        self, reason: str, kind: str, retry: bool, wait_s: float | None = None, loading: bool = False,
        status: int | None = None, detail: str | None = None,
    ):
        super().__init__(reason)
        self.status = status
        self.detail = detail      # e.g. the server's error message, appended after the retry count
        self.reason = reason
        self.kind = kind          # "http", "timeout", "connection", "malformed", "shape"
        self.retry = retry
        self.wait_s = wait_s
        self.loading = loading


@dataclass
class _Answer:
    text: str
    finish_reason: str | None       # as the server says it ("stop", "length", "eos_token", ...)
    stop_reason: Any = None         # vLLM's stop_reason: the stop string (str) or the eos token id (int)
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    ttft_s: float | None = None
    streamed: bool = False
    chunks: int | None = None       # streamed pieces of text (about one per token on llama.cpp servers)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now_dt = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return max(0.0, (when - now_dt).total_seconds())


class HTTPBackend(Backend):
    """A remote model behind an HTTP endpoint."""

    name = "http"

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
        self.url = endpoint_url(self.source)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_cap_s = retry_after_cap_s
        self.loading_wait_max_s = loading_wait_max_s
        self._client = None
        self._client_lock = threading.Lock()
        self._stream_supported: bool | None = None if self.source.stream else False
        self._extras_supported: bool | None = None  # repeat_penalty & co. (see _payload)
        self._token_cache: str | None = None

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
                f"model {self.model.id}: environment variable {env} ({index}.source.token_env) is not set. "
                f"Fix: export {env}=..."
            )
        self._token_cache = value
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
        import httpx

        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.source.timeout_s),
                    limits=httpx.Limits(
                        max_connections=self.source.concurrency, max_keepalive_connections=self.source.concurrency
                    ),
                    follow_redirects=False,
                )
            return self._client

    def _scrub(self, text: str | None) -> str | None:
        if text is None:
            return None
        token = self._token_cache
        if token and token in text:
            text = text.replace(token, "***")
        return text

    def _one_safe(self, client, request: GenerationRequest) -> GenerationResult:
        start = time.perf_counter()
        try:
            return self._one(client, request)
        except Exception as exc:  # one prompt never stops the batch
            reason = self._scrub(f"internal error: {type(exc).__name__}: {exc}")[:300]
            return GenerationResult(
                prompt_id=request.prompt_id, text="", prompt_tokens=None, output_tokens=None,
                finish_reason="error", latency_s=time.perf_counter() - start, error=reason,
            )

    def _one(self, client, request: GenerationRequest) -> GenerationResult:
        started = time.perf_counter()
        retries = 0
        loading_waited = 0.0
        loading_waits = 0
        attempts = 0
        last: _Failure | None = None
        attempt_time = 0.0
        while True:
            attempts += 1
            attempt_start = time.perf_counter()
            try:
                answer = self._attempt(client, request)
                attempt_time = time.perf_counter() - attempt_start
                break
            except _Failure as failure:
                last = failure
            if last.loading and loading_waits < 100:
                wait = min(last.wait_s if last.wait_s is not None else self.backoff_base_s, self.retry_after_cap_s)
                if loading_waited + wait <= self.loading_wait_max_s:
                    loading_waited += wait
                    loading_waits += 1
                    self._sleep(wait)
                    continue
                return self._error(request, f"model still loading after {loading_waited:.0f} s of waiting", started, attempts)
            if not last.retry or retries >= self.source.max_retries:
                return self._error(request, self._final_reason(last, retries), started, attempts)
            retries += 1
            if last.wait_s is not None:
                wait = min(last.wait_s, self.retry_after_cap_s)
            else:
                # exponential backoff with jitter (half fixed, half random, so retries never bunch up at ~0)
                delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (retries - 1))
                wait = delay * (0.5 + 0.5 * random.random())
            self._sleep(wait)

        text, finish = self._finish(answer, request)
        extra: dict[str, Any] = {"attempts": attempts, "wall_s": time.perf_counter() - started}
        if answer.finish_reason is not None:
            extra["server_finish_reason"] = answer.finish_reason
        extra["streamed"] = answer.streamed
        if answer.streamed and answer.output_tokens is None:
            extra["stream_chunks"] = answer.chunks  # the server sent no usage: a rough count, not stored as tokens
        if loading_waited:
            extra["loading_wait_s"] = loading_waited
        if self._extras_supported is False and (
            request.settings.repetition_penalty not in (None, 1.0) or (request.settings.do_sample and request.settings.top_k)
        ):
            extra["ignored_settings"] = "the server rejected repetition_penalty/top_k, so they were not sent"
        return GenerationResult(
            prompt_id=request.prompt_id,
            text=self._scrub(text) or "",
            prompt_tokens=answer.prompt_tokens,
            output_tokens=answer.output_tokens,
            finish_reason=finish,
            latency_s=attempt_time,
            ttft_s=answer.ttft_s,
            prompt_text=self._scrub(request.text if self.source.protocol != "openai-chat" else None),
            extra=extra,
        )

    def _final_reason(self, failure: _Failure, retries: int) -> str:
        after = f"after {retries} {'retry' if retries == 1 else 'retries'}" if retries else "(no retry)"
        if failure.kind == "timeout":
            reason = f"timeout after {self.source.timeout_s:g} s {after}"
        elif failure.retry:
            reason = f"{failure.reason} {after}"
        else:
            reason = failure.reason
        return f"{reason}: {failure.detail}" if failure.detail else reason

    def _error(self, request: GenerationRequest, reason: str, started: float, attempts: int) -> GenerationResult:
        return GenerationResult(
            prompt_id=request.prompt_id, text="", prompt_tokens=None, output_tokens=None, finish_reason="error",
            latency_s=time.perf_counter() - started, error=self._scrub(reason), extra={"attempts": attempts},
        )

    def _finish(self, answer: _Answer, request: GenerationRequest) -> tuple[str, str]:
        """The output text (cut at the first stop string) and the normalised finish reason."""
        text = answer.text
        stops = [s for s in request.settings.stop if s]
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            return text[:cut], "stop"
        reason = (answer.finish_reason or "").lower()
        if reason in ("length", "max_tokens", "max_new_tokens"):
            return text, "length"
        if reason in ("stop_sequence",) or isinstance(answer.stop_reason, str):
            return text, "stop"
        return text, "eos"  # "stop", "eos_token", or unknown (the hf-inference API does not say)

    # -- one attempt -------------------------------------------------------------------------

    def _payload(self, request: GenerationRequest, stream: bool, extras: bool = False) -> dict[str, Any]:
        s = request.settings
        if self.source.protocol == "hf-inference":
            params: dict[str, Any] = {
                "max_new_tokens": s.max_new_tokens,
                "do_sample": s.do_sample,
                "return_full_text": False,
            }
            if s.do_sample:
                params["temperature"] = s.temperature
                if s.top_p < 1.0:
                    params["top_p"] = s.top_p
                if s.top_k is not None:
                    params["top_k"] = s.top_k
                params["seed"] = s.seed
            if s.repetition_penalty is not None:
                params["repetition_penalty"] = s.repetition_penalty
            if s.stop:
                params["stop"] = list(s.stop)
            return {"inputs": request.text, "parameters": params, "options": {"wait_for_model": False, "use_cache": False}}
        body: dict[str, Any] = {}
        if self.source.model:
            body["model"] = self.source.model
        if self.source.protocol == "openai-chat":
            body["messages"] = [dict(m) for m in request.messages]
        else:
            body["prompt"] = request.text
        body["max_tokens"] = s.max_new_tokens
        if s.do_sample:
            body["temperature"] = s.temperature
            body["top_p"] = s.top_p
            body["seed"] = s.seed
            if s.top_k is not None and extras:
                body["top_k"] = s.top_k
        else:
            body["temperature"] = 0.0
        if extras:
            # Not in the OpenAI API, but servers built on llama.cpp default to a repeat penalty of 1.1 (which
            # changes even greedy outputs) and vLLM reads repetition_penalty. Servers that reject unknown fields
            # (OpenAI's own) get the request again without them.
            body["repeat_penalty"] = s.repetition_penalty or 1.0
            if s.repetition_penalty is not None:
                body["repetition_penalty"] = s.repetition_penalty
        if s.stop:
            body["stop"] = list(s.stop)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _attempt(self, client, request: GenerationRequest) -> _Answer:
        """One attempt. A 4xx answer to a request that streams or carries the non-standard sampler fields is
        taken to mean "not supported here": the request is repeated without them (extras first, then
        streaming), and what worked is remembered for the rest of the run."""
        import httpx

        openai = self.source.protocol != "hf-inference"
        stream = openai and self._stream_supported is not False
        extras = openai and self._extras_supported is not False
        variants = [(stream, extras)]
        if extras:
            variants.append((stream, False))
        if stream:
            variants += [(False, extras)] + ([(False, False)] if extras else [])
        try:
            for index, (use_stream, use_extras) in enumerate(variants):
                try:
                    answer = self._send(client, request, use_stream, use_extras)
                except _Failure as failure:
                    rejected = failure.kind == "http" and failure.status in STREAM_REJECTED_STATUS
                    if not rejected or index == len(variants) - 1:
                        raise
                    continue
                if extras and not use_extras:
                    self._extras_supported = False
                if stream and not use_stream:
                    self._stream_supported = False
                return answer
            raise AssertionError("unreachable")
        except httpx.TimeoutException:
            raise _Failure("timeout", "timeout", retry=True) from None
        except httpx.TransportError as exc:
            raise _Failure(f"connection failed ({type(exc).__name__}: {self._scrub(str(exc))[:120]})", "connection", retry=True) from None

    def _send(self, client, request: GenerationRequest, stream: bool, extras: bool = False) -> _Answer:
        payload = self._payload(request, stream, extras)
        sent = time.perf_counter()
        with client.stream("POST", self.url, json=payload, headers=self._headers()) as response:
            if response.status_code >= 400:
                body = response.read().decode("utf-8", "replace")
                raise self._http_failure(response, body)
            content_type = response.headers.get("content-type", "")
            if stream and "text/event-stream" in content_type:
                answer = self._read_sse(response, sent)
                self._stream_supported = True
                return answer
            body = response.read().decode("utf-8", "replace")
        try:
            data = json.loads(body)
        except ValueError:
            raise _Failure(f"malformed JSON (HTTP {response.status_code}): {self._excerpt(body)}", "malformed", retry=False) from None
        return self._parse_json(data)

    def _excerpt(self, body: str, n: int = 120) -> str:
        body = self._scrub(" ".join(body.split())) or ""
        return repr(body[:n] + ("…" if len(body) > n else ""))

    def _http_failure(self, response, body: str) -> _Failure:
        status = response.status_code
        wait = parse_retry_after(response.headers.get("retry-after"))
        loading = False
        message = None
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict):
                error = error.get("message")
            if isinstance(error, str):
                message = error
            if status == 503 and isinstance(data.get("estimated_time"), (int, float)):
                loading = True
                wait = float(data["estimated_time"]) if wait is None else wait
        detail = self._excerpt(message) if message else self._excerpt(body) if body.strip() else None
        return _Failure(
            f"HTTP {status}", "http", retry=status in RETRYABLE_STATUS or status >= 500, wait_s=wait,
            loading=loading, status=status, detail=detail,
        )

    def _parse_json(self, data: Any) -> _Answer:
        if self.source.protocol == "hf-inference":
            if isinstance(data, list) and data and isinstance(data[0], list):
                data = data[0]
            item = data[0] if isinstance(data, list) and data else data
            if isinstance(item, dict) and isinstance(item.get("error"), str):
                raise _Failure(f"server error: {self._excerpt(item['error'])}", "shape", retry=False)
            if isinstance(item, dict) and isinstance(item.get("generated_text"), str):
                details = item.get("details") if isinstance(item.get("details"), dict) else {}
                return _Answer(
                    text=item["generated_text"],
                    finish_reason=details.get("finish_reason"),
                    output_tokens=details.get("generated_tokens"),
                )
            raise _Failure(f"unexpected response: {self._excerpt(json.dumps(data))}", "shape", retry=False)
        try:
            choice = data["choices"][0]
            if self.source.protocol == "openai-chat":
                text = choice["message"]["content"] or ""
            else:
                text = choice["text"]
        except (KeyError, IndexError, TypeError):
            raise _Failure(f"unexpected response: {self._excerpt(json.dumps(data))}", "shape", retry=False) from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return _Answer(
            text=text,
            finish_reason=choice.get("finish_reason"),
            stop_reason=choice.get("stop_reason"),
            prompt_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
        )

    def _read_sse(self, response, sent: float) -> _Answer:
        parts: list[str] = []
        finish = stop_reason = None
        usage: dict[str, Any] = {}
        ttft = None
        deadline = sent + self.source.timeout_s
        chat = self.source.protocol == "openai-chat"
        for line in response.iter_lines():
            if time.perf_counter() > deadline:
                raise _Failure("timeout", "timeout", retry=True)
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                event = json.loads(data)
            except ValueError:
                raise _Failure(f"malformed JSON in stream: {self._excerpt(data)}", "malformed", retry=False) from None
            if not isinstance(event, dict):
                continue
            if isinstance(event.get("error"), (dict, str)):
                error = event["error"]
                message = error.get("message") if isinstance(error, dict) else error
                raise _Failure(f"server error in stream: {self._excerpt(str(message))}", "http", retry=False)
            if isinstance(event.get("usage"), dict):
                usage = event["usage"]
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                if piece:
                    if ttft is None:
                        ttft = time.perf_counter() - sent
                    parts.append(piece)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if choice.get("stop_reason") is not None:
                    stop_reason = choice["stop_reason"]
        else:
            if finish is None:
                raise _Failure("stream ended early", "connection", retry=True)
        return _Answer(
            text="".join(parts), finish_reason=finish, stop_reason=stop_reason,
            prompt_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens"),
            ttft_s=ttft, streamed=True, chunks=len(parts),
        )
