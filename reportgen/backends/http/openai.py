"""OpenAI-compatible servers (vLLM, llama.cpp, TGI, OpenAI): completions and chat completions.

``url`` is the server's base (``http://host:8000``); a URL that already ends in ``/v1`` or in the full
endpoint path is used as given.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from reportgen.backends.http.protocol import Answer, Protocol
from reportgen.records import GenerationRequest
from reportgen.study.config import HTTPSource


class _OpenAI(Protocol):
    """The shared shape: ``max_tokens``, ``choices[0]``, ``usage``, streaming with ``include_usage``."""

    streams = True
    sampler_extras = True
    path: ClassVar[str] = ""

    @classmethod
    def endpoint(cls, url: str) -> str:
        url = url.rstrip("/")
        if url.endswith(cls.path):
            return url
        if url.endswith("/v1"):
            return url + cls.path
        return url + "/v1" + cls.path

    @classmethod
    def snippet_request(cls, source: HTTPSource, example: str) -> list[str]:
        model = [f'    "model": {json.dumps(source.model)},'] if source.model else []
        return ["output = query({", *model, *cls.snippet_input(example), '    "max_tokens": 64,', "})", cls.snippet_read]

    snippet_read: ClassVar[str] = ""

    @classmethod
    def snippet_input(cls, example: str) -> list[str]:
        raise NotImplementedError

    def request_input(self, request: GenerationRequest) -> dict[str, Any]:
        raise NotImplementedError

    def choice_text(self, choice: dict[str, Any]) -> str:
        raise NotImplementedError

    def payload(self, request: GenerationRequest, stream: bool, extras: bool = False) -> dict[str, Any]:
        s = request.settings
        body: dict[str, Any] = {}
        if self.source.model:
            body["model"] = self.source.model
        body.update(self.request_input(request))
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

    def parse_json(self, data: Any) -> Answer:
        try:
            choice = data["choices"][0]
            text = self.choice_text(choice)
        except (KeyError, IndexError, TypeError):
            raise self.unexpected(data) from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return Answer(
            text=text,
            finish_reason=choice.get("finish_reason"),
            stop_reason=choice.get("stop_reason"),
            prompt_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
        )


class OpenAICompletions(_OpenAI):
    """``POST {base}/v1/completions`` with ``prompt`` (the plain text)."""

    name = "openai-completions"
    path = "/completions"
    snippet_read = 'print(output["choices"][0]["text"])'

    @classmethod
    def snippet_input(cls, example: str) -> list[str]:
        return [f'    "prompt": {json.dumps(example)},']

    def request_input(self, request: GenerationRequest) -> dict[str, Any]:
        return {"prompt": request.text}

    def choice_text(self, choice: dict[str, Any]) -> str:
        return choice["text"]

    def stream_piece(self, choice: dict[str, Any]) -> str | None:
        return choice.get("text")


class OpenAIChat(_OpenAI):
    """``POST {base}/v1/chat/completions`` with ``messages``."""

    name = "openai-chat"
    path = "/chat/completions"
    snippet_read = 'print(output["choices"][0]["message"]["content"])'

    @classmethod
    def snippet_input(cls, example: str) -> list[str]:
        return [f'    "messages": [{{"role": "user", "content": {json.dumps(example)}}}],']

    def request_input(self, request: GenerationRequest) -> dict[str, Any]:
        return {"messages": [dict(m) for m in request.messages]}

    def prompt_text(self, request: GenerationRequest) -> str | None:
        return None  # the server applies its own chat template: the text it saw is not known here

    def choice_text(self, choice: dict[str, Any]) -> str:
        return choice["message"]["content"] or ""

    def stream_piece(self, choice: dict[str, Any]) -> str | None:
        return (choice.get("delta") or {}).get("content")
