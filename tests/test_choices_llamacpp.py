"""Multiple choice on the llama.cpp backend with the real SmolLM2-135M-Instruct GGUF: an item's context is
decoded once and each choice after it (the previous choice's positions dropped from the KV cache); every
choice's log-likelihood equals a fresh decode of its whole sequence."""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.backends import create_backend
from reportgen.backends.continuations import encode_pair
from reportgen.records import ChoiceRequest
from test_backend_llamacpp import gguf_path, smol_model

ITEMS = [
    ("capital", "The capital of France is", [" Paris", " London", " a large city in the north of Europe"]),
    ("sky", "Question: What colour is the sky on a clear day?\nAnswer:", [" blue", " green", " red"]),
    ("empty", "", ["Hello, how are you?", "Colourless green ideas sleep furiously."]),
]


@pytest.fixture(scope="module")
def backend():
    pytest.importorskip("llama_cpp")
    gguf_path()
    b = create_backend(smol_model(threads=1))
    b.load()
    yield b
    b.close()


def requests() -> list[ChoiceRequest]:
    return [ChoiceRequest(item, i, context, choice) for item, context, choices in ITEMS for i, choice in enumerate(choices)]


def fresh(backend, context: str, continuation: str) -> float:
    """The continuation's log-likelihood from one decode of context + continuation[:-1] from an empty cache."""
    llm = backend._llm

    def encode(text: str, special: bool | None) -> list[int]:
        return list(llm.tokenize(text.encode(), add_bos=special is not False, special=False)) if text else []

    bos = llm.token_bos()
    ctx, cont = encode_pair(encode, context, continuation, bos if bos >= 0 else llm.token_eos())
    backend._clear_memory()
    logits = backend._decode(ctx + cont[:-1], 0)[len(ctx) - 1 :]
    logz = logits.max(axis=1) + np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1))
    return float((logits[np.arange(len(cont)), cont] - logz).sum())


@pytest.mark.slow
def test_choices_equal_a_fresh_decode_of_each_sequence(backend):
    results = backend.continuations(requests())
    assert [(r.item_id, r.choice) for r in results] == [(q.item_id, q.choice) for q in requests()]
    for request, result in zip(requests(), results):
        assert result.logprob == pytest.approx(fresh(backend, request.context, request.continuation), abs=1e-3), request
        assert result.n_tokens >= 1 and result.logprob < 0
    by = {(r.item_id, r.choice): r for r in results}
    assert by[("capital", 0)].logprob > by[("capital", 1)].logprob  # the model knows Paris
    assert by[("capital", 0)].is_greedy and not by[("capital", 2)].is_greedy
    assert by[("sky", 0)].logprob > max(by[("sky", 1)].logprob, by[("sky", 2)].logprob)
    again = backend.continuations(requests()[::-1])  # another order: the cache holds nothing of the last item
    assert [r.logprob for r in again[::-1]] == pytest.approx([r.logprob for r in results], abs=1e-4)
