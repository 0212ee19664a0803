"""A loaded model and the facts about it that generation and scoring need: the context they share.

The backend builds one :class:`LoadedModel` at load time; the reference path, the fast decoding engine
and the scorer read it (and nothing else of the backend).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class LoadedModel:
    model: Any  # possibly a PEFT wrapper; ``base`` is the transformers model inside
    tokenizer: Any
    device: Any  # a torch.device
    folder: Path  # the save_pretrained folder it came from
    is_seq2seq: bool
    eos_ids: set[int]  # every id that ends a generation (generation config, config, tokenizer)
    pad_id: int
    cache_kwarg: str  # the forward's name for the KV cache argument
    accepts_logits_to_keep: bool
    fast_ok: bool  # whether the fast decoding loop can drive this model's forward

    @property
    def base(self):
        getter = getattr(self.model, "get_base_model", None)
        return getter() if callable(getter) else self.model

    @property
    def text_config(self):
        return self.base.config.get_text_config(decoder=True)

    def context_limit(self) -> int | None:
        config = self.base.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None


def describe(model, tokenizer, device, folder: Path, config, is_seq2seq: bool) -> LoadedModel:
    """What a freshly loaded model needs known for generation: its EOS and pad ids, its forward's arguments."""
    base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    gen = getattr(base, "generation_config", None)
    eos: set[int] = set()
    for value in (getattr(gen, "eos_token_id", None), getattr(config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            eos.add(value)
        elif isinstance(value, (list, tuple)):
            eos.update(v for v in value if isinstance(v, int))
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = getattr(gen, "pad_token_id", None)
    if pad is None:
        pad = min(eos) if eos else 0

    params = inspect.signature(base.forward).parameters
    cache_kwarg = "cache" if "cache" in params else "past_key_values"
    # the fast loop drives the model's forward with its own cache object: only for transformers' own model
    # classes (custom code from the checkpoint may handle caches its own way)
    native = type(base).__module__.startswith("transformers.")
    fast_ok = native and not is_seq2seq and "position_ids" in params and cache_kwarg in params and _plain_kv_layers(base.config)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=device,
        folder=folder,
        is_seq2seq=is_seq2seq,
        eos_ids=eos,
        pad_id=int(pad),
        cache_kwarg=cache_kwarg,
        accepts_logits_to_keep="logits_to_keep" in params,
        fast_ok=bool(fast_ok),
    )


def _plain_kv_layers(config) -> bool:
    try:
        from transformers.cache_utils import get_layer_types_and_kwargs

        types, _ = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
    except Exception:  # noqa: BLE001 - an older transformers: use model.generate
        return False
    return bool(types) and all(t == "full_attention" for t in types)
