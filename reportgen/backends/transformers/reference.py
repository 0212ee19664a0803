"""The reference decoding path: ``model.generate``, in buckets of similar prompt length.

Encoder-decoder models, and models whose cache is not a plain per-layer key/value cache (sliding windows,
recurrent layers), run here; it is also the reference the tests compare the fast loop against.
"""

from __future__ import annotations

import time
from typing import Any

from reportgen.backends.transformers.batching import Item, accept, buckets, finish_text
from reportgen.backends.transformers.loaded import LoadedModel
from reportgen.backends.transformers.runtime import import_torch
from reportgen.study.config import GenerationSettings


def generation_config(loaded: LoadedModel, settings: GenerationSettings):
    """The ``GenerationConfig`` for ``settings``: greedy or sampled, the model's EOS and pad ids, stop strings."""
    from transformers import GenerationConfig

    base_gen = loaded.base.generation_config
    config = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=settings.do_sample,
        num_beams=1,
        pad_token_id=loaded.pad_id,
        eos_token_id=sorted(loaded.eos_ids) or None,
        bos_token_id=getattr(base_gen, "bos_token_id", None),
        decoder_start_token_id=getattr(base_gen, "decoder_start_token_id", None),
        use_cache=True,
    )
    if settings.do_sample:
        config.temperature = settings.temperature
        config.top_p = settings.top_p
        config.top_k = settings.top_k if settings.top_k is not None else 0
    else:
        config.temperature = None
        config.top_p = None
        config.top_k = None
    if settings.repetition_penalty is not None:
        config.repetition_penalty = settings.repetition_penalty
    if settings.ignore_eos:  # a fixed workload: every sequence generates max_new_tokens
        config.min_new_tokens = settings.max_new_tokens
    stops = tuple(s for s in settings.stop if s)
    if stops:
        config.stop_strings = list(stops)
    return config


def _first_step_timer():
    """A logits processor that notes when the first new token's scores came (the time to first token)."""
    from transformers import LogitsProcessor

    class FirstStep(LogitsProcessor):
        def __init__(self):
            self.at = None

        def __call__(self, input_ids, scores):
            if self.at is None:
                self.at = time.perf_counter()
            return scores

    return FirstStep()


def generate_reference(loaded: LoadedModel, items: list[Item], settings: GenerationSettings, started: float) -> None:
    """Generate for ``items`` with ``model.generate``; fills each item's output, text and timings."""
    torch = import_torch()
    from transformers import LogitsProcessorList

    config = generation_config(loaded, settings)
    stops = tuple(s for s in settings.stop if s)
    order = sorted(items, key=lambda it: len(it.ids), reverse=True)
    for bucket in buckets([len(it.ids) for it in order], settings.max_new_tokens):
        chunk = [order[i] for i in bucket]
        width = max(len(it.ids) for it in chunk)
        ids = torch.full((len(chunk), width), loaded.pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, it in enumerate(chunk):  # left padding (the encoder of a seq2seq model ignores the side)
            ids[row, width - len(it.ids) :] = torch.tensor(it.ids)
            mask[row, width - len(it.ids) :] = 1
        timer = _first_step_timer()
        kwargs: dict[str, Any] = {}
        if stops:
            kwargs["tokenizer"] = loaded.tokenizer
        if settings.do_sample:
            torch.manual_seed(settings.seed)
        out = loaded.model.generate(
            input_ids=ids.to(loaded.device),
            attention_mask=mask.to(loaded.device),
            generation_config=config,
            logits_processor=LogitsProcessorList([timer]),
            **kwargs,
        )
        done = time.perf_counter()
        new = out[:, 1:] if loaded.is_seq2seq else out[:, width:]
        for row, it in enumerate(chunk):
            for token in new[row].tolist():  # rows that stopped early are padded: stop at their end
                if accept(loaded, it, token, settings, stops):
                    break
            it.ttft = (timer.at or done) - started
            it.finish_time = done - started
            finish_text(loaded, it, stops)
