"""Multiple choice on an OpenAI-compatible completions endpoint: the prompt's own log-probabilities.

As lm-evaluation-harness's ``local-completions`` asks for them: ``prompt`` is the context followed by the
continuation, ``echo: true`` returns the prompt's tokens with ``logprobs`` (``tokens``, ``token_logprobs``,
``text_offset``, ``top_logprobs``), ``max_tokens: 1`` and ``temperature: 0``. The continuation's tokens are
those that end after the context (its trailing whitespace belongs to the continuation, as lm-eval splits the
pair), so no tokenizer is needed here. A server that rejects the request or answers without the prompt's
log-probabilities cannot serve multiple choice: :class:`Unsupported`, once, names the endpoint and why.
"""

from __future__ import annotations

from typing import Any

from reportgen.backends.base import Unsupported
from reportgen.records import ChoiceRequest, ChoiceResult

FIX = "Fix: serve the model with a completions endpoint that honours echo and logprobs (vLLM, llama.cpp's server)"


def payload(request: ChoiceRequest, model: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model} if model else {}
    body.update(prompt=request.context + request.continuation, echo=True, logprobs=1, max_tokens=1, temperature=0.0)
    return body


def refused(url: str, why: str) -> Unsupported:
    return Unsupported(f"{url} gives no prompt log-probabilities ({why}). {FIX}")


def parse(request: ChoiceRequest, data: Any, url: str) -> ChoiceResult:
    """The continuation's summed log-probability and whether each of its tokens was the top one."""
    try:
        logprobs = data["choices"][0]["logprobs"]
        tokens, values, offsets = logprobs["tokens"], logprobs["token_logprobs"], logprobs["text_offset"]
    except (KeyError, IndexError, TypeError):
        raise refused(url, "the answer has no choices[0].logprobs with tokens, token_logprobs and text_offset") from None
    top = logprobs.get("top_logprobs") or [None] * len(tokens)
    prompt = request.context + request.continuation
    if not (len(tokens) == len(values) == len(offsets)) or not offsets or offsets[0] != 0:
        raise refused(url, "the prompt was not echoed")
    boundary = len(request.context.rstrip())
    total, count, greedy = 0.0, 0, True
    for index, (token, value, start) in enumerate(zip(tokens, values, offsets)):
        if start >= len(prompt):  # the generated token (max_tokens: 1)
            break
        end = offsets[index + 1] if index + 1 < len(offsets) else start + len(token)
        if end <= boundary:
            continue
        if value is None:
            raise refused(url, f"token {index} of the prompt has no log-probability")
        total += float(value)
        count += 1
        best = top[index] if index < len(top) else None
        greedy = greedy and isinstance(best, dict) and bool(best) and max(best.items(), key=lambda kv: kv[1])[0] == token
    if not count:
        raise refused(url, "no token of the echoed prompt lies in the continuation")
    return ChoiceResult(request.item_id, request.choice, total, count, greedy)
