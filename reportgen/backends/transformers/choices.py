"""Multiple choice by log-likelihood: each choice's continuation scored given the item's context.

An item's choices share its context, so the context runs once and its key/values are repeated across the
choices, which then run as one right-padded batch (the choices of an item are short beside their context:
the context's cost is paid once, not once per choice). Token ids follow lm-eval (backends.continuations),
log-probabilities come from a float32 log-softmax, and the model reads at most its context length (the
context is cut from the left, as lm-eval does).
"""

from __future__ import annotations

from collections.abc import Callable

from reportgen.backends.base import Unsupported
from reportgen.backends.continuations import by_context, encode_pair
from reportgen.backends.transformers.loaded import LoadedModel
from reportgen.backends.transformers.runtime import import_torch
from reportgen.records import ChoiceRequest, ChoiceResult


def continuations(loaded: LoadedModel, requests: list[ChoiceRequest], retune: Callable[[], None]) -> list[ChoiceResult]:
    """The log-likelihood of each request's continuation, in order; ``retune`` runs before every item."""
    if loaded.is_seq2seq:
        raise Unsupported("an encoder-decoder model: multiple choice by log-likelihood is scored for decoder-only models")
    torch = import_torch()
    tokenizer = loaded.tokenizer
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id

    def encode(text: str, special: bool | None) -> list[int]:
        return tokenizer(text, **({} if special is None else {"add_special_tokens": special}))["input_ids"]

    results: list[ChoiceResult | None] = [None] * len(requests)
    with torch.inference_mode():
        for indices in by_context(requests):
            retune()
            pairs = [encode_pair(encode, requests[i].context, requests[i].continuation, prefix) for i in indices]
            for i, (logprob, n_tokens, greedy) in zip(indices, _score_item(loaded, pairs[0][0], [c for _, c in pairs])):
                results[i] = ChoiceResult(requests[i].item_id, requests[i].choice, logprob, n_tokens, greedy)
    return [r for r in results if r is not None]


def _score_item(loaded: LoadedModel, context: list[int], conts: list[list[int]]) -> list[tuple[float, int, bool]]:
    """(summed log-probability, tokens, all greedy) per continuation of one context: the context once, then
    every continuation but its last token as one batch reading the context's repeated key/values."""
    torch = import_torch()
    device, model = loaded.device, loaded.model
    limit = loaded.context_limit() or 4096
    longest = max(len(c) for c in conts)
    context = context[-max(1, limit + 1 - longest) :]  # the model reads context + continuation[:-1]
    out = model(input_ids=torch.tensor([context], device=device), use_cache=True)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # predicts every continuation's first token
    rest = None
    width = longest - 1
    if width > 0:
        ids = torch.full((len(conts), width), loaded.pad_id, dtype=torch.long)
        mask = torch.zeros((len(conts), len(context) + width), dtype=torch.long)
        mask[:, : len(context)] = 1
        for row, cont in enumerate(conts):
            ids[row, : len(cont) - 1] = torch.tensor(cont[:-1], dtype=torch.long)
            mask[row, len(context) : len(context) + len(cont) - 1] = 1
        cache = getattr(out, "cache", None) or out.past_key_values
        cache.batch_repeat_interleave(len(conts))  # the context's key/values, once per choice
        kwargs = {loaded.cache_kwarg: cache, "use_cache": True}
        rest = model(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs).logits
        rest = torch.log_softmax(rest.float(), dim=-1)
    scored = []
    for row, cont in enumerate(conts):
        rows = first[None] if rest is None else torch.cat([first[None], rest[row, : len(cont) - 1]])
        rows = rows[: len(cont)]
        targets = torch.tensor(cont, device=rows.device)
        logprob = float(rows.gather(1, targets[:, None]).double().sum())
        greedy = bool((rows.argmax(dim=-1) == targets).all())
        scored.append((logprob, len(cont), greedy))
    return scored
