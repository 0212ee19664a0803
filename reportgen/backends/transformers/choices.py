"""Multiple choice by log-likelihood: each choice's continuation scored given the item's context.

Two ways, chosen per item by what pays. Where the context is long beside the choices (``SHARE_MIN_TOKENS`` or
more context tokens would be recomputed for the choices after the first), the context runs once and its
key/values are repeated across the choices, which then run as one right-padded batch. Otherwise (short
questions, the usual benchmark item) a forward costs more in overhead than the recomputed context tokens, and
the whole sequences of many items' choices run together, left-padded so that the output head (a large share
of a small model's work) runs only on the continuations' last columns, up to ``POSITIONS`` positions per
forward (a model without ``logits_to_keep`` or ``position_ids``: right-padded, as many as the logits budget
``LOGLIK_MAX_LOGIT_BYTES`` allows). Token ids follow lm-eval
(backends.continuations), log-probabilities come from a float32 log-softmax summed in float64, and the model
reads at most its context length (the context is cut from the left, for each choice by its length, as lm-eval
does).
"""

from __future__ import annotations

from collections.abc import Callable

from reportgen.backends.base import Unsupported
from reportgen.backends.continuations import by_context, encode_pair
from reportgen.backends.transformers.loaded import LoadedModel
from reportgen.backends.transformers.runtime import import_torch
from reportgen.backends.transformers.scoring import LOGLIK_MAX_LOGIT_BYTES
from reportgen.records import ChoiceRequest, ChoiceResult

#: Context tokens an item's choices after the first would recompute, from which its context runs once instead.
SHARE_MIN_TOKENS = 256
MAX_ROWS = 64
POSITIONS = 512  # small batches of similar length: little padding, and a forward costs little more than its positions

Scored = tuple[float, int, bool]  # summed log-probability, tokens, every token the most likely one


def continuations(loaded: LoadedModel, requests: list[ChoiceRequest], retune: Callable[[], None]) -> list[ChoiceResult]:
    """The log-likelihood of each request's continuation, in order; ``retune`` runs before every forward."""
    if loaded.is_seq2seq:
        raise Unsupported("an encoder-decoder model: multiple choice by log-likelihood is scored for decoder-only models")
    torch = import_torch()
    tokenizer = loaded.tokenizer
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    limit = loaded.context_limit() or 4096

    def encode(text: str, special: bool | None) -> list[int]:
        return tokenizer(text, **({} if special is None else {"add_special_tokens": special}))["input_ids"]

    scored: dict[int, Scored] = {}
    # the model's input (context + continuation[:-1]) → the (request index, context, continuation) it serves:
    # choices of one token (or that differ only in their last) share one row, as lm-eval's logits cache does
    whole: dict[tuple[int, ...], list[tuple[int, list[int], list[int]]]] = {}
    with torch.inference_mode():
        for indices in by_context(requests):
            pairs = [encode_pair(encode, requests[i].context, requests[i].continuation, prefix) for i in indices]
            # the model reads context + continuation[:-1], at most ``limit`` tokens: a long context is cut from
            # the left, for each choice by its own length (lm-eval's window), and is then no longer shared
            contexts = [context[-max(1, limit + 1 - len(cont)) :] for context, cont in pairs]
            fits = all(len(c) == len(pairs[0][0]) for c in contexts)
            if fits and len(contexts[0]) * (len(pairs) - 1) >= SHARE_MIN_TOKENS:
                retune()
                scored.update(zip(indices, _shared_context(loaded, contexts[0], [c for _, c in pairs])))
            else:
                for i, context, (_, cont) in zip(indices, contexts, pairs):
                    whole.setdefault(tuple(context + cont[:-1]), []).append((i, context, cont))
        vocab = int(getattr(loaded.text_config, "vocab_size", 0) or len(tokenizer))
        # positions per forward: the logits' memory bounds it where every position gets logits, else the
        # activations' (POSITIONS)
        budget = POSITIONS if _left_padding(loaded) else max(1, LOGLIK_MAX_LOGIT_BYTES // (4 * max(vocab, 1)))
        inputs = sorted(whole, key=len, reverse=True)
        start = 0
        while start < len(inputs):
            batch = inputs[start : start + max(1, min(MAX_ROWS, budget // max(len(inputs[start]), 1)))]
            start += len(batch)
            retune()
            served = [whole[key] for key in batch]
            for group, results in zip(served, _whole_sequences(loaded, [[(c, k) for _, c, k in g] for g in served])):
                scored.update(zip((i for i, _, _ in group), results))
    return [ChoiceResult(request.item_id, request.choice, *scored[index]) for index, request in enumerate(requests)]


def _sum(rows, cont: list[int]) -> Scored:
    """``rows``: the log-softmax rows that predict ``cont``'s tokens."""
    torch = import_torch()
    targets = torch.tensor(cont, device=rows.device)
    logprob = float(rows.gather(1, targets[:, None]).double().sum())
    return logprob, len(cont), bool((rows.argmax(dim=-1) == targets).all())


def _whole_sequences(loaded: LoadedModel, groups: list[list[tuple[list[int], list[int]]]]) -> list[list[Scored]]:
    """One row per group of (context, continuation) pairs that give the model the same input (context +
    continuation[:-1]), as one batch. Left-padded (positions from the mask) where the model takes
    ``position_ids`` and ``logits_to_keep``, so every continuation ends at the last column and the output head
    runs on the last (longest continuation) columns only; else right-padded (lm-eval's layout), logits
    everywhere."""
    torch = import_torch()
    firsts = [group[0] for group in groups]
    width = max(len(c) + len(k) for c, k in firsts) - 1
    ids = torch.full((len(groups), width), loaded.pad_id, dtype=torch.long)
    mask = torch.zeros((len(groups), width), dtype=torch.long)
    left = _left_padding(loaded)
    for row, (context, cont) in enumerate(firsts):
        sequence = torch.tensor((context + cont)[:-1], dtype=torch.long)
        where = slice(width - len(sequence), width) if left else slice(0, len(sequence))
        ids[row, where], mask[row, where] = sequence, 1
    device = loaded.device
    kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if left:
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(device)
        kwargs["logits_to_keep"] = max(len(k) for _, k in firsts)
    logits = loaded.model(**kwargs).logits
    out = []
    for row, (context, cont) in enumerate(firsts):
        if left:
            rows = logits[row, logits.shape[1] - len(cont) :]
        else:
            rows = logits[row, len(context) - 1 : len(context) - 1 + len(cont)]
        rows = torch.log_softmax(rows.float(), dim=-1)
        out.append([_sum(rows, k) for _, k in groups[row]])
    return out


def _left_padding(loaded: LoadedModel) -> bool:
    import inspect

    params = inspect.signature(loaded.base.forward).parameters
    return loaded.accepts_logits_to_keep and "position_ids" in params


def _shared_context(loaded: LoadedModel, context: list[int], conts: list[list[int]]) -> list[Scored]:
    """The context once, then every continuation but its last token as one batch reading the context's
    repeated key/values."""
    torch = import_torch()
    device, model = loaded.device, loaded.model
    last = {"logits_to_keep": 1} if loaded.accepts_logits_to_keep else {}
    out = model(input_ids=torch.tensor([context], device=device), use_cache=True, **last)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # predicts every continuation's first token
    rest = None
    width = max(len(c) for c in conts) - 1
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
        rest = torch.log_softmax(model(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs).logits.float(), dim=-1)
    return [
        _sum(first[None] if rest is None else torch.cat([first[None], rest[row, : len(cont) - 1]]), cont)
        for row, cont in enumerate(conts)
    ]
