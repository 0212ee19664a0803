"""Batched sampling (backends.transformers.sampling) against transformers' own logits warpers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper  # noqa: E402

from reportgen.backends.transformers.sampling import draw, nucleus  # noqa: E402

SETTINGS = [  # (temperature, top_k, top_p)
    (1.0, None, 0.9),
    (0.7, None, 0.9),
    (1.5, None, 0.5),
    (1.0, 40, 1.0),
    (0.7, 40, 0.9),
    (2.0, 5, 0.3),
    (1.0, 1, 0.9),
    (1.3, None, 0.999),
    (1.0, None, 1.0),
]


def _reference(scores, temperature, top_k, top_p):
    """The full-vocabulary distribution transformers' warpers leave, in FastEngine's old order."""
    warpers = LogitsProcessorList()
    if temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k is not None:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    history = torch.zeros((scores.shape[0], 1), dtype=torch.long)
    return torch.softmax(warpers(history, scores.clone()), dim=-1)


def _full(probs, ids, vocab):
    full = probs if ids is None else torch.zeros(probs.shape[0], vocab).scatter(1, ids, probs)
    return full / full.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("temperature,top_k,top_p", SETTINGS)
@pytest.mark.parametrize("spread", [1.0, 4.0])  # flat and peaked random logits
def test_the_restriction_matches_the_warpers(temperature, top_k, top_p, spread):
    vocab = 3000
    scores = torch.randn(48, vocab, generator=torch.Generator().manual_seed(7)) * spread
    expected = _reference(scores, temperature, top_k, top_p)
    probs, ids = nucleus(scores, temperature=temperature, top_k=top_k, top_p=top_p, candidates=64)
    got = _full(probs, ids, vocab)
    differ = (got > 0) != (expected > 0)
    if differ.any():  # float32 rounding of the two cumulative sums, at the top-p boundary only
        assert top_k is None or top_p < 1.0
        above = _mass_above(scores.double() / temperature)
        assert (above[differ] - top_p).abs().max() < 1e-4
        assert differ.sum(dim=-1).max() <= 3
    both = (got > 0) & (expected > 0)
    torch.testing.assert_close(got[both], expected[both], rtol=1e-3, atol=1e-7)
    assert (got[~both].sum(), expected[~both].sum()) < (1e-3, 1e-3)


def _mass_above(scores):
    """Per token, the exact (float64) probability of the tokens ranked above it."""
    probs = torch.softmax(scores, dim=-1)
    ordered, order = torch.sort(probs, dim=-1, descending=True)
    return torch.empty_like(probs).scatter(1, order, ordered.cumsum(dim=-1) - ordered)


def test_flat_rows_reach_past_the_candidates():
    scores = torch.randn(2, 1000, generator=torch.Generator().manual_seed(1)) * 0.01  # nearly uniform: top-p 0.9
    scores[1, :3] = 20.0  # keeps ~900 tokens, far more than 64 candidates ... except in a peaked row
    probs, ids = nucleus(scores, top_p=0.9, candidates=64)
    kept = (probs > 0).sum(dim=-1).tolist()
    assert 880 < kept[0] < 920 and kept[1] == 3
    assert torch.equal(_full(probs, ids, 1000) > 0, _reference(scores, 1.0, None, 0.9) > 0)


def test_draws_follow_the_distribution_and_the_seed():
    scores = torch.tensor([[2.0, 1.0, 0.5, -1.0, -3.0]]).repeat(4000, 1)
    probs, ids = nucleus(scores, temperature=0.8, top_p=0.95)
    gens = [torch.Generator().manual_seed(i) for i in range(4000)]
    tokens = draw(probs, ids, gens)
    frequency = torch.bincount(torch.tensor(tokens), minlength=5).double() / len(tokens)
    expected = _reference(scores[:1], 0.8, None, 0.95)[0].double()
    assert frequency[expected == 0].sum() == 0  # never a token the nucleus cut
    torch.testing.assert_close(frequency, expected, atol=0.03, rtol=0)  # ~4 standard errors at n=4000
    again = draw(probs, ids, [torch.Generator().manual_seed(i) for i in range(4000)])
    assert again == tokens  # same seeds, same draws
    alone = draw(probs[:1], ids[:1], [torch.Generator().manual_seed(17)])
    assert alone == [tokens[17]]  # a row's draw does not depend on the rest of the batch
