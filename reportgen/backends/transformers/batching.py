"""Requests on their way through a batch: prompt ids, accepting tokens, finish reasons, length buckets.

Shared by both decoding paths (the reference ``model.generate`` and the fast loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from reportgen.backends.transformers.loaded import LoadedModel
from reportgen.records import GenerationRequest
from reportgen.study.config import GenerationSettings

BUCKET_OVERHEAD_TOKENS = 24  # the fixed cost of one more prefill forward, in prompt tokens of compute
MAX_PREFILL_TOKENS = 8192  # padded tokens in one prefill forward (bounds activation memory)


@dataclass
class Item:
    """One request on its way through a batch."""

    index: int  # position in the caller's list
    request: GenerationRequest
    prompt_text: str
    ids: list[int]
    prompt_format: str  # what was fed: "chat" (template applied) or "plain"
    out: list[int] = field(default_factory=list)
    finish: str | None = None
    text: str | None = None
    ttft: float | None = None
    finish_time: float | None = None
    error: str | None = None


def prepare(loaded: LoadedModel, index: int, request: GenerationRequest) -> Item:
    """The prompt as the model sees it: the chat template applied when the request is a chat and the
    tokenizer has one, else the plain text with the tokenizer's special tokens."""
    tokenizer = loaded.tokenizer
    if request.format == "chat" and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        fmt = "chat"
    else:
        text = request.text
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        fmt = "plain"
    if not ids:  # an empty plain prompt: start from BOS (or EOS)
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else loaded.pad_id
        ids = [int(start)]
    return Item(index=index, request=request, prompt_text=text, ids=list(ids), prompt_format=fmt)


def accept(loaded: LoadedModel, item: Item, token: int, settings: GenerationSettings, stops: tuple[str, ...]) -> bool:
    """Append a generated token to an item; return True (and set its finish reason) when it is done."""
    item.out.append(token)
    if token in loaded.eos_ids and not settings.ignore_eos:
        item.finish = "eos"
    elif stops and _hit_stop(loaded, item.out, stops):
        item.finish = "stop"
    elif len(item.out) >= settings.max_new_tokens:
        item.finish = "length"
    else:
        return False
    return True


def _hit_stop(loaded: LoadedModel, out: list[int], stops: tuple[str, ...]) -> bool:
    """Whether the tail of the output contains a stop string (the tail is long enough to hold any of them)."""
    window = max(len(s) for s in stops) + 4
    tail = loaded.tokenizer.decode(out[-window:], skip_special_tokens=True)
    return any(s in tail for s in stops)


def finish_text(loaded: LoadedModel, item: Item, stops: tuple[str, ...]) -> None:
    """Decode an item's output; trim at the first stop string; settle the finish reason."""
    ids = item.out
    if ids and ids[-1] in loaded.eos_ids and item.finish == "eos":
        ids = ids[:-1]
    text = loaded.tokenizer.decode(ids, skip_special_tokens=True)
    cut = min((pos for pos in (text.find(s) for s in stops if s) if pos >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
        item.finish = "stop"
    item.text = text


def buckets(
    lengths: list[int], new_tokens: int = 0, overhead: int | None = None, max_tokens: int | None = None
) -> list[list[int]]:
    """Split indices of ``lengths`` (sorted longest first) into contiguous buckets minimising padded work.

    The cost of a bucket is its padded token count (rows × longest row) plus ``overhead`` tokens for the extra
    forward; an optimal split is found by dynamic programming over the sorted order.
    """
    overhead = BUCKET_OVERHEAD_TOKENS if overhead is None else overhead
    max_tokens = MAX_PREFILL_TOKENS if max_tokens is None else max_tokens
    n = len(lengths)
    if n == 0:
        return []
    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for begin in range(end - 1, -1, -1):
            width = lengths[begin]  # the longest in begin..end-1 (sorted descending)
            rows = end - begin
            if rows > 1 and rows * width > max_tokens:
                break
            cost = best[begin] + rows * width + overhead
            if cost < best[end]:
                best[end], cut[end] = cost, begin
    spans, end = [], n
    while end > 0:
        spans.append(list(range(cut[end], end)))
        end = cut[end]
    return spans[::-1]
