"""Log-likelihood scoring (teacher-forced), for bits-per-byte: texts in windows of the model's context."""

from __future__ import annotations

from collections.abc import Callable

from reportgen.backends.transformers.loaded import LoadedModel
from reportgen.backends.transformers.runtime import import_torch
from reportgen.records import LogLikelihoodResult

LOGLIK_MAX_LOGIT_BYTES = 256 << 20  # logits memory per scoring forward

# (text index, input ids, how many leading ids are context only)
Window = tuple[int, list[int], int]


def loglikelihood(loaded: LoadedModel, texts: list[tuple[str, str]],
                  retune: Callable[[], None]) -> list[LogLikelihoodResult]:
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
            batch = [windows[w] for w in order[start: start + rows]]
            start += rows
            retune()
            for (index, _, _), nll in zip(batch, score_batch(loaded, batch, width)):
                results[index][1] += nll
    return [LogLikelihoodResult(text_id=r[0], nll_nats=float(r[1]), n_tokens=int(r[2]), n_bytes=int(r[3]))
            for r in results]


def _windows(loaded: LoadedModel, texts: list[tuple[str, str]]) -> tuple[list[Window], list[list]]:
    """Each text as one or more windows of at most the context length, and its running [id, nll, tokens, bytes]."""
    tokenizer = loaded.tokenizer
    limit = loaded.context_limit() or 4096
    bos = tokenizer.bos_token_id
    windows: list[Window] = []
    results = []
    for index, (text_id, text) in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if loaded.is_seq2seq:
            windows.extend((index, ids[s: s + limit], 0) for s in range(0, max(len(ids), 1), limit))
            scored = len(ids)
        else:
            full = ([bos] if bos is not None else []) + ids
            context = 1  # the first id is only context
            for start in range(0, max(len(full) - 1, 1), limit - 1):
                chunk = full[start: start + limit]
                if len(chunk) > 1:
                    windows.append((index, chunk, context))
            scored = len(full) - 1 if full else 0
        results.append([text_id, 0.0, scored, len(text.encode("utf-8"))])
    return windows, results


def score_batch(loaded: LoadedModel, batch: list[Window], width: int) -> list[float]:
    """The summed negative log-likelihood (nats) of each window of one padded batch."""
    torch = import_torch()
    import torch.nn.functional as F

    device = loaded.device
    ids = torch.full((len(batch), width), loaded.pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (_, chunk, _) in enumerate(batch):  # right padding: positions stay 0..n-1
        ids[row, : len(chunk)] = torch.tensor(chunk)
        mask[row, : len(chunk)] = 1
    ids, mask = ids.to(device), mask.to(device)
    if loaded.is_seq2seq:
        start = loaded.tokenizer("", return_tensors="pt")["input_ids"].to(device)
        if start.shape[1] == 0:
            start = torch.tensor([[loaded.pad_id]], device=device)
        encoder = start.expand(len(batch), -1)
        labels = ids.masked_fill(mask == 0, -100)
        logits = loaded.model(input_ids=encoder, attention_mask=torch.ones_like(encoder), labels=labels).logits
        nll = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")
        return nll.sum(dim=1).tolist()
    logits = loaded.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
    return nll.sum(dim=1).tolist()
