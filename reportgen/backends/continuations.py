"""lm-evaluation-harness's split of a (context, continuation) pair into token ids, for multiple choice.

The same rules as lm-eval 0.4's ``LM.loglikelihood`` and ``TemplateLM._encode_pair``: trailing whitespace of
the context moves to the continuation; the whole text is encoded and the continuation's tokens are those
after the context's own encoding (so a token that spans the boundary counts as the continuation's); an
empty context becomes the prefix token (BOS, else EOS) unless the continuation already starts with it. A
backend gives its tokenizer as ``encode(text, special)``: ``special`` None means the tokenizer's default
(lm-eval's, which adds BOS where the tokenizer does), False means the text's own tokens only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import groupby

from reportgen.records import ChoiceRequest

Encode = Callable[[str, "bool | None"], list[int]]


def encode_pair(encode: Encode, context: str, continuation: str, prefix: int) -> tuple[list[int], list[int]]:
    """(context token ids, continuation token ids) as lm-eval feeds them to a decoder-only model."""
    if context == "":
        tokens = encode(continuation, False)
        return ([prefix], tokens) if not tokens or tokens[0] != prefix else (tokens[:1], tokens[1:])
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = encode(context + continuation, None)
    context_ids = encode(context, None)
    return context_ids, whole[len(context_ids) :]


def by_context(requests: list[ChoiceRequest]) -> Iterator[list[int]]:
    """Indices of ``requests`` in runs that share one item and context (an item's choices, in order)."""
    indexed = list(enumerate(requests))
    for _, run in groupby(indexed, key=lambda pair: (pair[1].item_id, pair[1].context)):
        yield [index for index, _ in run]
