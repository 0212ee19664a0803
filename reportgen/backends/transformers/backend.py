"""The transformers backend: local folders, the local Hugging Face cache and GGUF files, run with PyTorch.

The class composes the modules beside it, one idea each:

* :mod:`.sources`: where the weights are (local, hub cache, GGUF) and the digests the store keys on;
* :mod:`.loading`: config, tokenizer, weights (dtype, quantization), adapter; :mod:`.loaded` holds the
  result, the context the generation and scoring paths read;
* :mod:`.cpu`: thread count probing and the per-step governor, oneDNN packing of float32 linears;
* :mod:`.batching`: prompts to token ids, finish reasons, length buckets;
* :mod:`.decoding`: the fast batched decoding loop for decoder-only models with a plain KV cache;
* :mod:`.reference`: ``model.generate``, for the other models and as the reference of the tests;
* :mod:`.scoring`: log-likelihoods; :mod:`.choices`: multiple-choice continuations; :mod:`.gguf`: GGUF files converted once to safetensors folders.

Timing
    ``latency_s`` of every result is the wall time of the whole batch it ran in (the ``generate()`` call),
    since batched prompts share every step; ``extra["finish_s"]`` is when this prompt's own last token came,
    from the start of the batch. ``ttft_s`` is the time from the start of the batch until this prompt's first
    new token (the end of the prefill of its bucket).

Heavy packages (torch, transformers, peft, huggingface_hub) are imported inside functions.
"""

from __future__ import annotations

import os
import time
from typing import Any

from reportgen.backends.base import Backend
from reportgen.backends.transformers import loading, sources
from reportgen.backends.transformers.batching import Item, prepare
from reportgen.backends.transformers.cpu import ThreadChooser, hidden_size, pack_linears
from reportgen.backends.transformers.loaded import LoadedModel, describe
from reportgen.backends.transformers.runtime import (
    available_memory_bytes,
    config_int,
    cuda_available,
    import_torch,
    rss_bytes,
    short,
)
from reportgen.errors import BackendError
from reportgen.records import ChoiceRequest, ChoiceResult, GenerationRequest, GenerationResult, LoadInfo, LogLikelihoodResult
from reportgen.study.config import GenerationSettings, ModelConfig

CPU_BATCH_CAP = 64  # a CPU decode step costs ~a weight read plus a little per row: more rows, more tokens/s
GPU_BATCH_CAP = 256


class TransformersBackend(Backend):
    """A model run in-process with transformers (CPU or one CUDA GPU)."""

    name = "transformers"
    request_kinds = frozenset({"generate", "loglikelihood", "continuation"})

    def __init__(self, model: ModelConfig):
        super().__init__(model)
        self.engine = "auto"  # "auto" | "fast" | "generate": which decoding loop runs (tests pin it)
        self.packing = "auto"  # float32 CPU linears via oneDNN prepacked weights: "auto" (when faster), "on", "off"
        self.loaded: LoadedModel | None = None
        self.threads = ThreadChooser(model.threads)
        self._info: LoadInfo | None = None

    @property
    def _label(self) -> str:
        return sources.label(self.model)

    # -- what the tests read of a loaded model (None, or empty, before load) --------------------

    @property
    def _model(self):
        return self.loaded.model if self.loaded is not None else None

    @property
    def _tokenizer(self):
        return self.loaded.tokenizer if self.loaded is not None else None

    @property
    def _pad_id(self) -> int:
        return self.loaded.pad_id if self.loaded is not None else 0

    @property
    def _eos_ids(self) -> set[int]:
        return self.loaded.eos_ids if self.loaded is not None else set()

    def _prepare(self, index: int, request: GenerationRequest) -> Item:
        return prepare(self._require_loaded(), index, request)

    # -- fingerprint -------------------------------------------------------------------------

    def fingerprint_parts(self) -> dict[str, Any]:
        source = sources.runnable_source(self.model)
        weights, folder = sources.weights_digest(self.model)
        adapter = self.model.adapter
        quant = self.model.quantization
        return {
            "backend": self.name,
            "source": source.type,
            "weights": weights,
            "adapter": sources.adapter_digest(adapter),
            "adapter_merge": bool(adapter.merge) if adapter is not None else None,
            "quantization": quant.model_dump(mode="json") if quant is not None and quant.bits else None,
            "quantization_applied": sources.quantization_applies(self.model),
            "dtype": sources.effective_dtype(self.model, folder),
            "device": "cuda" if cuda_available() else "cpu",
        }

    # -- loading -----------------------------------------------------------------------------

    def load(self) -> LoadInfo:
        if self._info is not None:
            return self._info
        torch = import_torch()
        started, rss_before = time.perf_counter(), rss_bytes()
        cuda = torch.cuda.is_available()
        device = torch.device("cuda:0" if cuda else "cpu")
        folder = sources.resolve_dir(self.model)
        sources.check_folder(self.model, folder)
        config, tokenizer = loading.read_config_and_tokenizer(self.model, folder)
        dtype_name = sources.effective_dtype(self.model, folder)
        plan = loading.weight_plan(self.model, dtype_name, cuda)
        is_seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        weights = loading.load_weights(self.model, folder, is_seq2seq, plan.kwargs)
        if self.model.adapter is not None:
            weights = loading.apply_adapter(self.model, weights, self.model.adapter)
        loading.place(weights, tokenizer, device, plan.quantized)
        self.loaded = loaded = describe(weights, tokenizer, device, folder, config, is_seq2seq)
        self.threads.hidden = hidden_size(loaded.text_config)
        torch.set_num_threads(self.threads.threads())
        packed, pack_note = self._pack(loaded, plan, dtype_name)
        self._info = LoadInfo(
            load_time_s=time.perf_counter() - started,
            precision=plan.precision,
            device=str(device),
            weight_bytes=sum(p.numel() * p.element_size() for p in weights.parameters()),
            notes=plan.notes,
            details=self._load_details(loaded, config, packed, pack_note, rss_before),
        )
        return self._info

    def _pack(self, loaded: LoadedModel, plan: loading.WeightPlan, dtype_name: str) -> tuple[int, str | None]:
        """oneDNN packing of the float32 linears on a CPU, when asked (or faster) and memory allows a copy."""
        if loaded.device.type != "cpu" or plan.quantized or dtype_name != "float32" or self.packing == "off":
            return 0, None
        weight_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
        available = available_memory_bytes()
        if available is not None and weight_bytes > available * 0.5:
            return 0, "not enough free memory for a packed copy of the weights"
        text_config = loaded.text_config
        hidden = hidden_size(text_config)
        return pack_linears(loaded.model, hidden, force=self.packing == "on")

    def _load_details(
        self, loaded: LoadedModel, config, packed: int, pack_note: str | None, rss_before: int | None
    ) -> dict[str, Any]:
        import torch
        import transformers

        rss_after = rss_bytes()
        adapter = self.model.adapter
        return {
            "model_dir": str(loaded.folder),
            "model_class": type(loaded.base).__name__,
            "architecture": (getattr(config, "architectures", None) or [config.model_type])[0],
            "num_parameters": sum(p.numel() for p in loaded.model.parameters()),
            "attn_implementation": getattr(loaded.base.config, "_attn_implementation", None),
            "threads": torch.get_num_threads(),
            "thread_probe_s": {str(k): round(v, 5) for k, v in self.threads.probe.items()} or None,
            "onednn_packed_linears": packed,
            "onednn_note": pack_note,
            "engine": "fast" if loaded.fast_ok and self.engine != "generate" else "generate",
            "chat_template": bool(getattr(loaded.tokenizer, "chat_template", None)),
            "adapter": str(adapter.path) if adapter is not None else None,
            "adapter_merged": bool(adapter.merge) if adapter is not None else None,
            "rss_delta_bytes": (rss_after - rss_before) if rss_before is not None and rss_after is not None else None,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }

    def _require_loaded(self) -> LoadedModel:
        if self.loaded is None:
            self.load()
        assert self.loaded is not None  # load() sets it or raises
        return self.loaded

    def _use_fast(self) -> bool:
        if self.engine == "generate":
            return False
        fast_ok = self._require_loaded().fast_ok
        if self.engine == "fast" and not fast_ok:
            raise BackendError(f"{self._label}: the fast decoding loop cannot run this model")
        return fast_ok

    # -- generation --------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        loaded = self._require_loaded()
        torch = import_torch()
        torch.set_num_threads(self.threads.threads())
        results: list[GenerationResult | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.settings.model_dump_json(), []).append(i)
        for indices in groups.values():
            settings = requests[indices[0]].settings
            items = [prepare(loaded, i, requests[i]) for i in indices]
            runnable = self._fitting(loaded, items, settings)
            started = time.perf_counter()
            if runnable:
                self._run(loaded, runnable, settings, started)
            wall = time.perf_counter() - started
            for item in items:
                results[item.index] = self._result(item, wall, len(runnable))
        return results  # type: ignore[return-value]

    @staticmethod
    def _fitting(loaded: LoadedModel, items: list[Item], settings: GenerationSettings) -> list[Item]:
        """The items whose prompt and new tokens fit the model's context; the others get their error."""
        limit = loaded.context_limit()
        runnable = []
        for item in items:
            if limit is not None and not loaded.is_seq2seq and len(item.ids) + settings.max_new_tokens > limit:
                item.error = (
                    f"prompt has {len(item.ids)} tokens; with max_new_tokens {settings.max_new_tokens} "
                    f"it exceeds the model's context of {limit} tokens"
                )
            else:
                runnable.append(item)
        return runnable

    def _run(self, loaded: LoadedModel, items: list[Item], settings: GenerationSettings, started: float) -> None:
        """Decode ``items`` (one settings group) on the fast loop or the reference path."""
        import torch

        from reportgen.backends.transformers.decoding import FastEngine
        from reportgen.backends.transformers.reference import generate_reference

        try:
            with torch.inference_mode():
                if self._use_fast():
                    FastEngine(loaded, settings, self.threads).run(items, started)
                else:
                    generate_reference(loaded, items, settings, started)
        except (RuntimeError, MemoryError) as exc:  # out of memory and similar: report, keep going
            for item in items:
                item.error = short(exc)

    def _result(self, item: Item, wall: float, batch: int) -> GenerationResult:
        extra = {"prompt_format": item.prompt_format, "batch_size": batch, "engine": "fast" if self._use_fast() else "generate"}
        if item.finish_time is not None:
            extra["finish_s"] = round(item.finish_time, 6)
        if item.error is not None:
            return GenerationResult(
                prompt_id=item.request.prompt_id,
                text="",
                prompt_tokens=len(item.ids),
                output_tokens=None,
                finish_reason="error",
                latency_s=wall,
                error=item.error,
                prompt_text=item.prompt_text,
                extra=extra,
            )
        return GenerationResult(
            prompt_id=item.request.prompt_id,
            text=item.text or "",
            prompt_tokens=len(item.ids),
            output_tokens=len(item.out),
            finish_reason=item.finish or "length",
            latency_s=wall,
            ttft_s=item.ttft,
            prompt_text=item.prompt_text,
            extra=extra,
        )

    # -- scoring -----------------------------------------------------------------------------

    def loglikelihood(self, texts: list[tuple[str, str]]) -> list[LogLikelihoodResult]:
        if not texts:
            return []
        loaded = self._require_loaded()
        import_torch().set_num_threads(self.threads.threads())
        from reportgen.backends.transformers.scoring import loglikelihood

        return loglikelihood(loaded, texts, self.threads.retune)

    def continuations(self, requests: list[ChoiceRequest]) -> list[ChoiceResult]:
        if not requests:
            return []
        loaded = self._require_loaded()
        import_torch().set_num_threads(self.threads.threads())
        from reportgen.backends.transformers.choices import continuations

        return continuations(loaded, requests, self.threads.retune)

    # -- sizing, memory, close ---------------------------------------------------------------

    def suggested_batch_size(self, requests: list[GenerationRequest]) -> int:
        cuda = cuda_available()
        cap = GPU_BATCH_CAP if cuda else CPU_BATCH_CAP
        if not requests:
            return cap
        loaded = self._require_loaded()
        torch = import_torch()
        config = loaded.text_config
        layers = config_int(config, ("num_hidden_layers", "n_layer"), 12)
        heads = config_int(config, ("num_attention_heads", "n_head"), 12)
        kv_heads = config_int(config, ("num_key_value_heads",), heads)
        hidden = config_int(config, ("hidden_size", "n_embd"), 768)
        head_dim = config_int(config, ("head_dim",), hidden // heads)
        inter = config_int(config, ("intermediate_size", "n_inner"), 4 * hidden)
        vocab = config_int(config, ("vocab_size",), 32000)
        elem = next(loaded.model.parameters()).element_size()
        sample = requests[: min(len(requests), 64)]
        lengths = [len(prepare(loaded, 0, r).ids) for r in sample]
        tokens = max(lengths) + max(r.settings.max_new_tokens for r in sample)
        per_row = layers * 2 * kv_heads * head_dim * elem * tokens  # KV cache
        per_row += max(lengths) * (2 * hidden + inter) * 4 * 2  # prefill activations (rough)
        per_row += vocab * 4 * 2  # last-step logits and softmax
        if cuda:
            free, _ = torch.cuda.mem_get_info()
            budget = int(free * 0.7)
        else:
            available = available_memory_bytes() or (4 << 30)
            budget = int(available * 0.5)
        return int(max(1, min(cap, budget // max(per_row, 1))))

    def peak_memory_bytes(self) -> int | None:
        if cuda_available():
            import torch

            return int(torch.cuda.max_memory_allocated())
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        except (ImportError, OSError):
            return None
        return int(peak * 1024) if os.uname().sysname == "Linux" else int(peak)  # process-wide peak

    def import_dependencies(self) -> None:
        import_torch()
        # transformers imports its model-loading code lazily, on first use: seconds and ~150 MiB that are the
        # library's, not the model's (each model runs in a fresh worker process, which would pay them in its load)
        import transformers.generation.utils  # noqa: F401
        import transformers.modeling_utils  # noqa: F401
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: F401

        if self.model.adapter is not None and self.model.adapter.path is not None:
            import peft  # noqa: F401

    def close(self) -> None:
        self.loaded = None
        self._info = None
        self.threads.reset()
        import gc

        gc.collect()
        if cuda_available():
            import torch

            torch.cuda.empty_cache()
