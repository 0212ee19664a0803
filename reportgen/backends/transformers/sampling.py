"""Sampling on the batch: temperature, top-k and top-p without sorting the whole vocabulary.

transformers' ``TopPLogitsWarper`` sorts every row's full vocabulary (49,152 entries for SmolLM2) on
every decode step, and a softmax plus ``torch.multinomial`` over the whole vocabulary follows, one call
per sequence. Here one ``torch.topk`` per batch picks each row's candidates (``top_k`` of them, else
``CANDIDATES``), the top-p mask is taken on those candidates, and each row draws one uniform number from
its own generator and looks it up in its candidates' cumulative distribution — all rows at once.

The distribution is the one the warpers leave (temperature, then top-k, then top-p, as
``FastEngine`` applied them before): top-p keeps a token when the probability of the tokens ranked above
it is below ``top_p``. Without ``top_k`` the probabilities are those of the full vocabulary; when a
row's candidates hold less than ``top_p`` of it (a flat distribution), the batch is taken again with
every token as a candidate, so the nucleus is never cut short. Exact ties at the k-th logit keep k
tokens (the warper keeps every tied one).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CANDIDATES", "draw", "nucleus"]

CANDIDATES = 256  # candidates per row for top-p without top-k; more only when they hold too little mass


def nucleus(
    scores: Any, *, temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0, candidates: int = CANDIDATES
) -> tuple[Any, Any]:
    """``(probs, ids)``, both ``(batch, k)``: each row's candidate token ids, best first, with their
    (unnormalised) probabilities after temperature, top-k and top-p; a token cut by top-p has 0.
    ``ids`` is ``None`` (and ``probs`` the whole vocabulary) when nothing restricts the distribution."""
    import torch

    if temperature != 1.0:
        scores = scores / temperature
    vocab = scores.shape[-1]
    if top_k is None and top_p >= 1.0:
        return torch.softmax(scores, dim=-1), None
    k = min(max(top_k, 1), vocab) if top_k is not None else min(candidates, vocab)
    values, ids = torch.topk(scores, k, dim=-1)  # sorted, best first
    if top_k is not None:
        probs = torch.softmax(values, dim=-1)  # top-k renormalises over its k tokens
    else:
        probs = (values - torch.logsumexp(scores, dim=-1, keepdim=True)).exp()
    if top_p < 1.0:
        if top_k is None and k < vocab and bool((probs.sum(dim=-1) < top_p).any()):
            return nucleus(scores, top_p=top_p, candidates=vocab)  # the nucleus reaches past the candidates
        above = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above each candidate
        probs = probs.masked_fill(above >= top_p, 0.0)
    return probs, ids


def draw(probs: Any, ids: Any, generators: list) -> list[int]:
    """One token per row: a uniform number from the row's own generator, looked up in its cumulative
    distribution (so a row's draw does not depend on the other rows of the batch)."""
    import torch

    uniform = torch.cat([torch.rand(1, generator=g, device=probs.device) for g in generators]).to(probs.dtype)
    cdf = probs.cumsum(dim=-1)
    position = torch.searchsorted(cdf, (uniform * cdf[:, -1]).unsqueeze(-1)).clamp_(max=probs.shape[-1] - 1)
    chosen = position if ids is None else ids.gather(-1, position)
    return chosen.squeeze(-1).tolist()
