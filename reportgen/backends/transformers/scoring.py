"""Log-likelihood scoring (teacher-forced), for bits-per-byte.

A decoder-only model scores a text as lm-evaluation-harness's ``loglikelihood_rolling`` does: every token
predicted once, from the prefix token (BOS, else EOS) and in lm-eval's rolling windows of the model's
context (backends.rolling). Per-token negative log-likelihoods come from float32 logits and are summed in
float64.
"""

from __future__ import annotations

from collections.abc import Callable

from reportgen.backends.rolling import rolling_windows
from reportgen.backends.transformers.loaded import LoadedModel
from reportgen.backends.transformers.runtime import import_torch
from reportgen.records import LogLikelihoodResult

LOGLIK_MAX_LOGIT_BYTES = 256 << 20  # logits memory per scoring forward

# (text index, token ids, how many of the last targets are scored): the model reads ids[:-1] and predicts ids[1:]
# (seq2seq: the decoder's labels are ids, all scored)
Window = tuple[int, list[int], int]


def loglikelihood(loaded: LoadedModel, texts: list[tuple[str, str]], retune: Callable[[], None]) -> list[LogLikelihoodResult]:
    """Score (id, text) pairs; ``retune`` runs before every forward (the thread count of the moment)."""
    torch = import_torch()
    tokenizer = loaded.tokenizer
    vocab = int(getattr(loaded.text_config, "vocab_size", 0) or len(tokenizer))
    windows, results = _windows(loaded, texts)
    per_row_tokens = max(1, LOGLIK_MAX_LOGIT_BYTES // (4 * max(vocab, 1)))
    order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]), reverse=True)
    start = 0
    with torch.inference_mode():
        while start < len(order):
            width = len(windows[order[start]][1])
            rows = max(1, min(64, per_row_tokens // max(width, 1)))
            batch = [windows[w] for w in order[start : start + rows]]
            start += rows
            retune()
            for (index, _, _), nll in zip(batch, score_batch(loaded, batch, width)):  # width: len(ids) of the widest
                results[index][1] += nll
    return [LogLikelihoodResult(text_id=r[0], nll_nats=float(r[1]), n_tokens=int(r[2]), n_bytes=int(r[3])) for r in results]


def _windows(loaded: LoadedModel, texts: list[tuple[str, str]]) -> tuple[list[Window], list[list]]:
    """Each text as one or more windows of at most the context length, and its running [id, nll, tokens, bytes]."""
    tokenizer = loaded.tokenizer
    limit = loaded.context_limit() or 4096
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    windows: list[Window] = []
    results = []
    for index, (text_id, text) in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if loaded.is_seq2seq:
            windows.extend((index, ids[s : s + limit], len(ids[s : s + limit])) for s in range(0, max(len(ids), 1), limit))
            scored = len(ids)
        else:
            if prefix is None and ids:  # no BOS or EOS to predict the first token from: it is context only
                prefix, ids = ids[0], ids[1:]
            windows.extend((index, w.tokens, w.n_predicted) for w in rolling_windows(ids, prefix, limit))
            scored = len(ids)
        results.append([text_id, 0.0, scored, len(text.encode("utf-8"))])
    return windows, results


def score_batch(loaded: LoadedModel, batch: list[Window], width: int) -> list[float]:
    """The summed negative log-likelihood (nats, summed in float64) of each window of one padded batch.

    ``width`` is the longest window's number of ids; a decoder-only model reads ``width - 1`` of them."""
    torch = import_torch()
    import torch.nn.functional as F

    device = loaded.device
    ids = torch.full((len(batch), width), loaded.pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    scored = torch.zeros((len(batch), width), dtype=torch.bool)  # which ids are scored targets
    for row, (_, chunk, n_predicted) in enumerate(batch):  # right padding: positions stay 0..n-1
        ids[row, : len(chunk)] = torch.tensor(chunk)
        mask[row, : len(chunk)] = 1
        scored[row, len(chunk) - n_predicted : len(chunk)] = True
    ids, mask = ids.to(device), mask.to(device)
    if loaded.is_seq2seq:
        start = loaded.tokenizer("", return_tensors="pt")["input_ids"].to(device)
        if start.shape[1] == 0:
            start = torch.tensor([[loaded.pad_id]], device=device)
        encoder = start.expand(len(batch), -1)
        labels = ids.masked_fill(mask == 0, -100)
        logits = loaded.model(input_ids=encoder, attention_mask=torch.ones_like(encoder), labels=labels).logits
        nll = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")
        return nll.double().sum(dim=1).tolist()
    logits = loaded.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1]).logits.float()
    targets = ids[:, 1:].masked_fill(~scored[:, 1:].to(device), -100)
    nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
    return nll.double().sum(dim=1).tolist()
