"""What every HTTP protocol shares, and the registry of protocols by name (``HTTPSource.protocol``).

A protocol knows its endpoint path, builds the request body, reads the answer (JSON, or server-sent events
when it streams) and writes the usage snippet for the report; the transport and the retries are not its
business. A new protocol is one subclass in one new module, registered here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from reportgen.backends.http.transport import Failure, Redactor
from reportgen.records import GenerationRequest
from reportgen.study.config import HTTPSource
from reportgen.util.registry import Registry


@dataclass
class Answer:
    text: str
    finish_reason: str | None  # as the server says it ("stop", "length", "eos_token", ...)
    stop_reason: Any = None  # vLLM's stop_reason: the stop string (str) or the eos token id (int)
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    ttft_s: float | None = None
    streamed: bool = False
    chunks: int | None = None  # streamed pieces of text (about one per token on llama.cpp servers)


class Protocol:
    """One request/answer shape. ``streams`` and ``sampler_extras`` say whether the backend may try
    streaming and the non-standard sampler fields (and fall back when a server rejects them)."""

    name: ClassVar[str] = ""
    streams: ClassVar[bool] = False
    sampler_extras: ClassVar[bool] = False

    def __init__(self, source: HTTPSource, redactor: Redactor):
        self.source = source
        self.redactor = redactor

    # -- endpoint and snippet (no instance needed: the report calls these) -------------------

    @classmethod
    def endpoint(cls, url: str) -> str:
        """The URL requests are POSTed to, from the configured ``url``."""
        return url

    @classmethod
    def snippet_request(cls, source: HTTPSource, example: str) -> list[str]:
        """The lines of the usage snippet after ``query``'s definition: the call and reading its answer."""
        raise NotImplementedError

    # -- one request -------------------------------------------------------------------------

    def payload(self, request: GenerationRequest, stream: bool, extras: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def prompt_text(self, request: GenerationRequest) -> str | None:
        """The prompt as the server saw it (recorded with the result), when it was sent as plain text."""
        return request.text

    def parse_json(self, data: Any) -> Answer:
        raise NotImplementedError

    def stream_piece(self, choice: dict[str, Any]) -> str | None:
        """The text one streamed choice adds."""
        raise NotImplementedError

    def read_sse(self, response, sent: float) -> Answer:
        """Read a server-sent event stream of OpenAI-shaped chunks up to ``[DONE]``."""
        parts: list[str] = []
        finish = stop_reason = None
        usage: dict[str, Any] = {}
        ttft = None
        deadline = sent + self.source.timeout_s
        for line in response.iter_lines():
            if time.perf_counter() > deadline:
                raise Failure("timeout", "timeout", retry=True)
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            event = self._event(data)
            if event is None:
                continue
            if isinstance(event.get("usage"), dict):
                usage = event["usage"]
            for choice in event.get("choices") or []:
                piece = self.stream_piece(choice)
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
                raise Failure("stream ended early", "connection", retry=True)
        return Answer(
            text="".join(parts),
            finish_reason=finish,
            stop_reason=stop_reason,
            prompt_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            ttft_s=ttft,
            streamed=True,
            chunks=len(parts),
        )

    def _event(self, data: str) -> dict[str, Any] | None:
        """One event's JSON (None for anything but an object); a server error inside the stream fails."""
        try:
            event = json.loads(data)
        except ValueError:
            raise Failure(f"malformed JSON in stream: {self.redactor.excerpt(data)}", "malformed", retry=False) from None
        if not isinstance(event, dict):
            return None
        if isinstance(event.get("error"), (dict, str)):
            error = event["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise Failure(f"server error in stream: {self.redactor.excerpt(str(message))}", "http", retry=False)
        return event

    def unexpected(self, data: Any) -> Failure:
        return Failure(f"unexpected response: {self.redactor.excerpt(json.dumps(data))}", "shape", retry=False)


def finish(answer: Answer, request: GenerationRequest) -> tuple[str, str]:
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


PROTOCOLS: Registry[type[Protocol]] = Registry("HTTP protocol")
PROTOCOLS.register("hf-inference", "reportgen.backends.http.hf_inference:HFInference")
PROTOCOLS.register("openai-completions", "reportgen.backends.http.openai:OpenAICompletions")
PROTOCOLS.register("openai-chat", "reportgen.backends.http.openai:OpenAIChat")


def protocol_class(source: HTTPSource) -> type[Protocol]:
    return PROTOCOLS.get(source.protocol)
