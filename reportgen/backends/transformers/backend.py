"""The transformers backend: local folders, the local Hugging Face cache and GGUF files, run with PyTorch.

Loading
    A source resolves to a ``save_pretrained`` folder: a local path as given, a hub repo id through the
    local Hugging Face cache only (never downloaded), a GGUF file through
    :func:`reportgen.backends.transformers.gguf.converted_model_dir` (dequantized once into a cached safetensors folder).
    Encoder-decoder configs load as ``AutoModelForSeq2SeqLM``, everything else as ``AutoModelForCausalLM``.
    A PEFT adapter is applied on top (and merged when ``adapter.merge`` is set). bitsandbytes quantization
    runs only on a CUDA GPU; elsewhere the model runs at full precision and :class:`LoadInfo` says so.

Generating
    Decoder-only models use a hand-written batched decoding loop (``_FastEngine``), built for the case the
    study runner creates: a few dozen short prompts, a few dozen new tokens each, on a CPU. Against
    ``model.generate`` on the same batch it

    - computes a prompt prefix shared by several prompts (a chat template's system turn) once, not per prompt;
    - prefills the prompts in buckets of similar length, so little compute goes to padding;
    - writes the KV cache into preallocated buffers instead of growing it by concatenation each step;
    - drops finished sequences from the batch, so they stop costing matrix rows.

    It is a plain greedy / multinomial decoder over the model's ``forward`` with its KV cache, the attention
    mask and explicit position ids (left padding is handled by the mask and the positions, so a padded
    sequence sees exactly its own tokens). Sampling draws every sequence from its own generator seeded by
    ``(settings.seed, prompt_id)``, so a sampled output does not depend on the batch it ran in.
    Encoder-decoder models, and models whose cache is not a plain per-layer key/value cache (sliding
    windows, recurrent layers), use ``model.generate`` (``_generate_hf``), which is also the reference the
    tests compare the fast loop against.

CPU specifics
    On a CPU the float32 ``nn.Linear`` layers run through oneDNN with weights packed once at load
    (``_pack_linears``): 2-3x faster than PyTorch's default MKL path on decoding shapes (MKL repacks the
    weight on every call and runs AVX2 code on AMD CPUs), at the cost of a second copy of the weights. Each
    output row of these matmuls depends only on its own input row, so a prompt's greedy output is the same
    bits whatever batch it runs in. The thread count (``model.threads``, else probed, see ``_threads``)
    follows the machine's load: on a CPU shared with other busy processes one thread can be 10x faster than
    all of them, because every multi-threaded op waits at a barrier for a thread the scheduler parked.

Timing
    ``latency_s`` of every result is the wall time of the whole batch it ran in (the ``generate()`` call),
    since batched prompts share every step; ``extra["finish_s"]`` is when this prompt's own last token came,
    from the start of the batch. ``ttft_s`` is the time from the start of the batch until this prompt's first
    new token (the end of the prefill of its bucket).

Heavy packages (torch, transformers, peft, huggingface_hub) are imported inside this module's functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportgen.backends.base import Backend
from reportgen.records import GenerationRequest, GenerationResult, LoadInfo, LogLikelihoodResult
from reportgen.study.config import (
    GenerationSettings,
    GGUFSource,
    HubSource,
    LocalSource,
    ModelConfig,
)
from reportgen.errors import BackendError, ConfigError, MissingExtraError
from reportgen.util.hashing import file_digest, folder_digest

CPU_BATCH_CAP = 64        # a CPU decode step costs ~a weight read plus a little per row: more rows, more tokens/s
GPU_BATCH_CAP = 256
MIN_SHARED_PREFIX = 4     # tokens a group of prompts must share before the prefix is computed once for them
MIN_PREFIX_GAIN = 16      # prefill tokens a deeper shared prefix must save to be worth one more small forward
BUCKET_OVERHEAD_TOKENS = 24  # the fixed cost of one more prefill forward, in prompt tokens of compute
COMPACT_MIN_ROW_STEPS = 12   # finished rows × steps left that justify copying the cache to drop them
MAX_PREFILL_TOKENS = 8192     # padded tokens in one prefill forward (bounds activation memory)
LOGLIK_MAX_LOGIT_BYTES = 256 << 20  # logits memory per scoring forward


def _import_torch():
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "hf", "The transformers backend") from None
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise MissingExtraError("transformers", "hf", "The transformers backend") from None
    return torch


def _short(exc: BaseException, limit: int = 240) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cuda_available() -> bool:
    """Whether a CUDA GPU is usable, without importing torch when it is absent."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _rss_bytes() -> int | None:
    """The process's current resident set size (Linux), or None."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _probe_threads(hidden: int, candidates: list[int]) -> tuple[int, dict[int, float]]:
    """The thread count (of ``candidates``) that runs a decode-shaped matmul fastest right now.

    On a CPU shared with other busy processes, every parallel region of a multi-threaded op waits at its
    barrier for a thread the scheduler has parked, and small matmuls get 10-100x slower than on one
    thread. A few milliseconds of probing tell which count is faster on this machine at this moment.
    A candidate is abandoned as soon as it is clearly slower than the best so far.
    """
    import torch

    previous = torch.get_num_threads()
    x = torch.randn(32, hidden)
    w = torch.randn(hidden, hidden)
    timings: dict[int, float] = {}
    best_time = math.inf
    with torch.inference_mode():
        for n in sorted(candidates):  # one thread first: it sets the bar quickly
            torch.set_num_threads(n)
            torch.nn.functional.linear(x, w)  # wake the pool
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(4):
                    torch.nn.functional.linear(x, w)
                runs.append(time.perf_counter() - started)
                if runs[-1] > 3 * best_time:
                    break
            timings[n] = sorted(runs)[len(runs) // 2]
            best_time = min(best_time, timings[n])
    torch.set_num_threads(previous)
    # prefer more threads when they are about as fast (they help the large prefill matmuls)
    for n in sorted(candidates, reverse=True):
        if timings[n] <= best_time * 1.15:
            return n, timings
    return min(timings, key=timings.get), timings


def _pack_linears(model, hidden: int, force: bool = False) -> tuple[int, str | None]:
    """Run float32 ``nn.Linear`` layers through oneDNN with prepacked weights, where that is faster.

    On x86 CPUs PyTorch's default float32 matmul (MKL) repacks the weight on every call and, on AMD CPUs,
    runs AVX2 code; oneDNN with a weight packed once runs 2-3x faster on the batch shapes of decoding, and
    each output row depends only on its own input row (the result does not change with the batch size).
    The packed copy costs one more copy of the weights. Returns (layers packed, reason when none).
    """
    import torch

    ops = getattr(torch.ops, "mkldnn", None)
    if ops is None or not torch.backends.mkldnn.is_available():
        return 0, "oneDNN is not available in this torch build"
    try:
        reorder, linear = torch.ops.mkldnn._reorder_linear_weight, torch.ops.mkldnn._linear_pointwise
        w = torch.randn(4 * hidden, hidden)
        x = torch.randn(32, hidden)
        packed = reorder(w, 32)
        ref = torch.nn.functional.linear(x, w)
        out = linear(x, packed, None, "none", [], "")
        if not torch.allclose(out, ref, rtol=1e-4, atol=1e-4):
            return 0, "oneDNN linear disagrees with the reference"

        def best(fn) -> float:
            times = []
            for _ in range(5):
                started = time.perf_counter()
                fn()
                times.append(time.perf_counter() - started)
            return min(times)

        with torch.inference_mode():
            fast = best(lambda: linear(x, packed, None, "none", [], ""))
            slow = best(lambda: torch.nn.functional.linear(x, w))
        if fast > slow * 0.9 and not force:
            return 0, f"oneDNN is not faster here ({fast * 1e3:.2f} ms vs {slow * 1e3:.2f} ms)"
    except Exception as exc:  # noqa: BLE001 - op missing, unsupported CPU: run without packing
        return 0, f"oneDNN linear unavailable ({_short(exc)})"

    count = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear:
            weight, bias = module.weight, module.bias
        elif type(module).__name__ == "Conv1D" and hasattr(module, "nf"):  # GPT-2's transposed linear
            weight, bias = module.weight.t(), module.bias
        else:
            continue
        if weight.dtype != torch.float32 or weight.device.type != "cpu" or weight.dim() != 2:
            continue
        packed = reorder(weight.detach().contiguous(), 32)
        bias = bias.detach() if bias is not None else None

        def forward(x, _packed=packed, _bias=bias):
            return linear(x, _packed, _bias, "none", [], "")

        module.forward = forward
        count += 1
    return count, None


def _version_at_least(version: str, wanted: tuple[int, ...]) -> bool:
    parts = []
    for piece in version.split(".")[: len(wanted)]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts) >= wanted


def _row_seed(seed: int, prompt_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{prompt_id}".encode()).digest()[:8], "little") & ((1 << 63) - 1)


# ------------------------------------------------------------------------------------------------ items


@dataclass
class _Item:
    """One request on its way through a batch."""

    index: int                 # position in the caller's list
    request: GenerationRequest
    prompt_text: str
    ids: list[int]
    prompt_format: str         # what was fed: "chat" (template applied) or "plain"
    out: list[int] = field(default_factory=list)
    finish: str | None = None
    text: str | None = None
    ttft: float | None = None
    finish_time: float | None = None
    error: str | None = None


@dataclass(eq=False)
class _Prefix:
    """A prompt prefix shared by several prompts of a batch, prefilled once (its KV extends its parent's)."""

    tokens: tuple[int, ...]
    parent: _Prefix | None = None
    kv: list | None = None

    @property
    def length(self) -> int:
        return len(self.tokens)


# ---------------------------------------------------------------------------------------------- backend


class TransformersBackend(Backend):
    """A model run in-process with transformers (CPU or one CUDA GPU)."""

    name = "transformers"

    def __init__(self, model: ModelConfig):
        super().__init__(model)
        self.engine = "auto"  # "auto" | "fast" | "generate": which decoding loop runs (tests pin it)
        self.packing = "auto"  # float32 CPU linears via oneDNN prepacked weights: "auto" (when faster), "on", "off"
        self._model = None
        self._tokenizer = None
        self._device = None
        self._info: LoadInfo | None = None
        self._model_dir: Path | None = None
        self._fast_ok = False
        self._cache_kwarg = "past_key_values"
        self._accepts_logits_to_keep = False
        self._eos_ids: set[int] = set()
        self._pad_id = 0
        self._is_seq2seq = False
        self._threads_chosen: int | None = None
        self._threads_checked = 0.0
        self._thread_probe: dict[int, float] = {}
        self._thread_governor: _ThreadGovernor | None = None

    # ---------------------------------------------------------------- source resolution

    @property
    def _label(self) -> str:
        return f"model {self.model.id}"

    def _source(self):
        source = self.model.source
        if not isinstance(source, (LocalSource, HubSource, GGUFSource)):
            kind = getattr(source, "type", None)
            raise BackendError(f"{self._label}: the transformers backend cannot run a source of type '{kind}'. "
                               "Fix: give a local, hub or gguf source, or choose the matching backend")
        return source

    def _hub_snapshot(self, source: HubSource) -> Path:
        from huggingface_hub import constants, snapshot_download

        try:
            folder = snapshot_download(source.repo, revision=source.revision, local_files_only=True)
        except Exception:  # noqa: BLE001 - LocalEntryNotFoundError and friends: not in the cache
            revision = f" (revision {source.revision})" if source.revision else ""
            raise BackendError(
                f"{self._label}: '{source.repo}'{revision} is not in the local Hugging Face cache "
                f"(HF_HOME={constants.HF_HOME}). Fix: download it once with `huggingface-cli download "
                f"{source.repo}` on a machine with network, or use a local path"
            ) from None
        return Path(folder)

    def _gguf_path(self, source: GGUFSource) -> Path:
        try:
            path = Path(source.resolve()).expanduser()
        except ConfigError as exc:
            raise BackendError(f"{self._label}: {exc.format_message()}") from None
        if not path.is_file():
            raise BackendError(f"{self._label}: GGUF file '{path}' not found. Fix: check the model's source path")
        return path

    def _local_path(self, source: LocalSource) -> Path:
        path = Path(source.path).expanduser()
        if not path.is_dir():
            raise BackendError(f"{self._label}: model folder '{path}' not found. "
                               "Fix: point source.path at a save_pretrained folder")
        return path

    def _resolve_dir(self) -> Path:
        """The save_pretrained folder to load (converting a GGUF file once if needed)."""
        source = self._source()
        if isinstance(source, LocalSource):
            return self._local_path(source)
        if isinstance(source, HubSource):
            return self._hub_snapshot(source)
        from reportgen.backends.transformers.gguf import converted_model_dir

        return Path(converted_model_dir(self._gguf_path(source)))

    # ---------------------------------------------------------------- fingerprint

    def _quantization_applies(self) -> bool:
        q = self.model.quantization
        return bool(q and q.bits) and _cuda_available() and importlib.util.find_spec("bitsandbytes") is not None

    def _effective_dtype(self, folder: Path | None = None) -> str:
        """The dtype the weights run at, decided without loading them."""
        if self.model.dtype != "auto":
            return self.model.dtype
        if isinstance(self.model.source, GGUFSource) or not _cuda_available():
            return "float32"  # CPU: 16-bit matmuls are slow there; GGUF: dequantized weights are float32
        stored = None
        if folder is not None:
            with contextlib.suppress(OSError, ValueError):
                config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
                stored = config.get("dtype") or config.get("torch_dtype")
                if stored is None and isinstance(config.get("text_config"), dict):
                    stored = config["text_config"].get("dtype") or config["text_config"].get("torch_dtype")
        return stored if stored in ("float32", "float16", "bfloat16") else "float32"

    def fingerprint_parts(self) -> dict[str, Any]:
        source = self._source()
        folder = None
        if isinstance(source, LocalSource):
            folder = self._local_path(source)
            weights = folder_digest(folder)
        elif isinstance(source, HubSource):
            folder = self._hub_snapshot(source)
            weights = folder_digest(folder)
        else:
            weights = file_digest(self._gguf_path(source))
        adapter = self.model.adapter
        adapter_digest = None
        if adapter is not None:
            if adapter.path is not None:
                adapter_path = Path(adapter.path).expanduser()
                adapter_digest = folder_digest(adapter_path) if adapter_path.is_dir() else f"missing:{adapter_path}"
            elif adapter.config is not None and Path(adapter.config).is_file():
                adapter_digest = "config-only:" + file_digest(adapter.config)
        quant = self.model.quantization
        return {
            "backend": self.name,
            "source": source.type,
            "weights": weights,
            "adapter": adapter_digest,
            "adapter_merge": bool(adapter.merge) if adapter is not None else None,
            "quantization": quant.model_dump(mode="json") if quant is not None and quant.bits else None,
            "quantization_applied": self._quantization_applies(),
            "dtype": self._effective_dtype(folder),
            "device": "cuda" if _cuda_available() else "cpu",
        }

    # ---------------------------------------------------------------- loading

    THREAD_RECHECK_S = 2.0

    def _threads(self, recheck: bool = True) -> int:
        """model.threads when set; else the usable CPUs, or fewer when a probe shows other work crowding them.

        The probe (a few ms) runs again when the last one is older than THREAD_RECHECK_S, since the load of a
        shared machine comes and goes; during decoding the step times themselves decide (_ThreadGovernor).
        The thread count does not change the results here (row-independent matmuls: the same bits on 1 or N
        threads; checked for oneDNN and SDPA on x86).
        """
        if self.model.threads:
            return self.model.threads
        cpus = _usable_cpus()
        if cpus == 1 or _cuda_available():
            return cpus
        now = time.monotonic()
        if self._threads_chosen is None or (recheck and now - self._threads_checked > self.THREAD_RECHECK_S):
            hidden = 512
            if self._model is not None:
                config = self._base_model().config.get_text_config(decoder=True)
                hidden = int(getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or 512)
            candidates = sorted({cpus, max(1, cpus // 2), 1}, reverse=True)
            self._threads_chosen, self._thread_probe = _probe_threads(min(hidden, 2048), candidates)
            self._threads_checked = time.monotonic()
        return self._threads_chosen

    def _governor(self) -> _ThreadGovernor | None:
        """The per-step thread chooser for decoding (None when the thread count is fixed)."""
        if self.model.threads or _cuda_available() or _usable_cpus() == 1:
            return None
        if self._thread_governor is None:
            cpus = _usable_cpus()
            first = self._threads(recheck=False)
            others = sorted({cpus, max(1, cpus // 2), 1} - {first}, reverse=True)
            config = self._base_model().config.get_text_config(decoder=True)
            hidden = min(2048, int(getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or 512))
            self._thread_governor = _ThreadGovernor([first, *others],
                                                    probe=lambda candidates: _probe_threads(hidden, candidates)[1])
        return self._thread_governor

    def _retune_threads(self) -> None:
        """Before a forward pass outside the decoding loop: the best thread count known so far."""
        import torch

        governor = self._governor()
        wanted = governor.best() if governor is not None and governor.cost else self._threads()
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    def load(self) -> LoadInfo:
        if self._info is not None:
            return self._info
        torch = _import_torch()
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSeq2SeqLM,
            AutoTokenizer,
        )

        started = time.perf_counter()
        rss_before = _rss_bytes()
        cuda = torch.cuda.is_available()
        device = torch.device("cuda:0" if cuda else "cpu")
        folder = self._resolve_dir()
        self._check_folder(folder)
        trust = self.model.trust_remote_code
        notes: list[str] = []

        try:
            config = AutoConfig.from_pretrained(folder, trust_remote_code=trust)
        except Exception as exc:
            raise self._load_error(folder, "its config.json", exc) from exc
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
        except Exception as exc:
            raise self._load_error(folder, "its tokenizer", exc) from exc

        dtype_name = self._effective_dtype(folder)
        dtype = getattr(torch, dtype_name)
        import transformers

        dtype_key = "dtype" if _version_at_least(transformers.__version__, (4, 56)) else "torch_dtype"
        kwargs: dict[str, Any] = {dtype_key: dtype, "trust_remote_code": trust}
        precision = dtype_name
        quantized = False
        q = self.model.quantization
        if q is not None and q.bits:
            asked = f"{q.bits}-bit {q.bnb_4bit_quant_type}" if q.bits == 4 else "8-bit int8"
            if cuda and importlib.util.find_spec("bitsandbytes") is not None:
                from transformers import BitsAndBytesConfig

                settings = q.model_dump(exclude={"method"})
                settings["bnb_4bit_compute_dtype"] = getattr(torch, q.bnb_4bit_compute_dtype)
                if settings.get("llm_int8_skip_modules") is not None:
                    settings["llm_int8_skip_modules"] = list(settings["llm_int8_skip_modules"])
                kwargs["quantization_config"] = BitsAndBytesConfig(**settings)
                kwargs["device_map"] = {"": 0}
                precision = asked
                quantized = True
            else:
                reason = "no CUDA GPU here" if not cuda else "bitsandbytes is not installed"
                notes.append(f"{asked} asked; {reason}, ran {dtype_name}")

        self._is_seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        auto_class = AutoModelForSeq2SeqLM if self._is_seq2seq else AutoModelForCausalLM
        try:
            model = auto_class.from_pretrained(folder, **kwargs)
        except Exception as exc:
            raise self._load_error(folder, "the weights", exc) from exc

        adapter = self.model.adapter
        if adapter is not None:
            model = self._apply_adapter(model, adapter)

        if not quantized:
            model.to(device)
        model.eval()
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            tokenizer.pad_token = tokenizer.eos_token
        self._model, self._tokenizer, self._device, self._model_dir = model, tokenizer, device, folder
        self._setup_generation(config)
        torch.set_num_threads(self._threads())
        packed, pack_note = 0, None
        if device.type == "cpu" and not quantized and dtype == torch.float32 and self.packing != "off":
            weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
            available = _available_memory_bytes()
            if available is not None and weight_bytes > available * 0.5:
                pack_note = "not enough free memory for a packed copy of the weights"
            else:
                text_config = self._base_model().config.get_text_config(decoder=True)
                hidden = int(getattr(text_config, "hidden_size", None) or getattr(text_config, "n_embd", 512))
                packed, pack_note = _pack_linears(model, hidden, force=self.packing == "on")

        rss_after = _rss_bytes()
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        details = {
            "model_dir": str(folder),
            "model_class": type(self._base_model()).__name__,
            "architecture": (getattr(config, "architectures", None) or [config.model_type])[0],
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "attn_implementation": getattr(self._base_model().config, "_attn_implementation", None),
            "threads": torch.get_num_threads(),
            "thread_probe_s": {str(k): round(v, 5) for k, v in self._thread_probe.items()} or None,
            "onednn_packed_linears": packed,
            "onednn_note": pack_note,
            "engine": "fast" if self._fast_ok and self.engine != "generate" else "generate",
            "chat_template": bool(getattr(tokenizer, "chat_template", None)),
            "adapter": str(adapter.path) if adapter is not None else None,
            "adapter_merged": bool(adapter.merge) if adapter is not None else None,
            "rss_delta_bytes": (rss_after - rss_before) if rss_before is not None and rss_after is not None else None,
            "torch": torch.__version__,
        }
        details["transformers"] = transformers.__version__
        self._info = LoadInfo(
            load_time_s=time.perf_counter() - started,
            precision=precision,
            device=str(device),
            weight_bytes=weight_bytes,
            notes=notes,
            details=details,
        )
        return self._info

    def _check_folder(self, folder: Path) -> None:
        if not (folder / "config.json").is_file():
            raise BackendError(f"{self._label}: '{folder}' has no config.json. "
                               "Fix: point the source at a complete save_pretrained folder")
        weights = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth")]
        if not weights:
            raise BackendError(f"{self._label}: '{folder}' has no weight files (*.safetensors, *.bin). "
                               "Fix: point the source at a complete save_pretrained folder")

    def _load_error(self, folder: Path, what: str, exc: BaseException) -> BackendError:
        return BackendError(
            f"{self._label}: cannot load {what} from '{folder}' ({_short(exc)}). "
            "Fix: check that the checkpoint is complete (re-save or re-download it)"
        )

    def _apply_adapter(self, model, adapter):
        if adapter.path is None:
            raise BackendError(f"{self._label}: the adapter has only a config ('{adapter.config}'), no weights. "
                               "Fix: give adapter.path, the trained adapter folder")
        path = Path(adapter.path).expanduser()
        if not (path / "adapter_config.json").is_file():
            raise BackendError(f"{self._label}: adapter folder '{path}' is missing or has no adapter_config.json. "
                               "Fix: point adapter.path at a folder written by PEFT's save_pretrained")
        if not any(path.glob("adapter_model.*")):
            raise BackendError(f"{self._label}: adapter folder '{path}' has no adapter_model.safetensors. "
                               "Fix: re-save the adapter with PEFT's save_pretrained")
        try:
            from peft import PeftModel
        except ImportError:
            raise MissingExtraError("peft", "hf", "Loading a LoRA adapter") from None
        try:
            model = PeftModel.from_pretrained(model, str(path))
            if adapter.merge:
                model = model.merge_and_unload()
        except Exception as exc:
            raise BackendError(
                f"{self._label}: cannot load the adapter from '{path}' ({_short(exc)}). "
                "Fix: check that the adapter was trained for this base model and that its files are complete"
            ) from exc
        return model

    def _base_model(self):
        model = self._model
        getter = getattr(model, "get_base_model", None)
        return getter() if callable(getter) else model

    def _setup_generation(self, config) -> None:
        import inspect

        tokenizer, base = self._tokenizer, self._base_model()
        gen = getattr(base, "generation_config", None)
        eos: set[int] = set()
        for value in (getattr(gen, "eos_token_id", None), getattr(config, "eos_token_id", None), tokenizer.eos_token_id):
            if isinstance(value, int):
                eos.add(value)
            elif isinstance(value, (list, tuple)):
                eos.update(v for v in value if isinstance(v, int))
        self._eos_ids = eos
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = getattr(gen, "pad_token_id", None)
        if pad is None:
            pad = min(eos) if eos else 0
        self._pad_id = int(pad)

        params = inspect.signature(base.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._accepts_logits_to_keep = "logits_to_keep" in params
        # the fast loop drives the model's forward with its own cache object: only for transformers' own model
        # classes (custom code from the checkpoint may handle caches its own way)
        native = type(base).__module__.startswith("transformers.")
        self._fast_ok = (native and not self._is_seq2seq and "position_ids" in params and self._cache_kwarg in params
                         and self._plain_kv_layers(base.config))

    @staticmethod
    def _plain_kv_layers(config) -> bool:
        try:
            from transformers.cache_utils import get_layer_types_and_kwargs

            types, _ = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
        except Exception:  # noqa: BLE001 - an older transformers: use model.generate
            return False
        return bool(types) and all(t == "full_attention" for t in types)

    def _use_fast(self) -> bool:
        if self.engine == "generate":
            return False
        if self.engine == "fast" and not self._fast_ok:
            raise BackendError(f"{self._label}: the fast decoding loop cannot run this model")
        return self._fast_ok

    def _require_loaded(self) -> None:
        if self._model is None:
            self.load()

    # ---------------------------------------------------------------- prompts

    def _prepare(self, index: int, request: GenerationRequest) -> _Item:
        tokenizer = self._tokenizer
        if request.format == "chat" and getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            fmt = "chat"
        else:
            text = request.text
            ids = tokenizer(text, add_special_tokens=True)["input_ids"]
            fmt = "plain"
        if not ids:  # an empty plain prompt: start from BOS (or EOS)
            start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else self._pad_id
            ids = [int(start)]
        return _Item(index=index, request=request, prompt_text=text, ids=list(ids), prompt_format=fmt)

    def _context_limit(self) -> int | None:
        config = self._base_model().config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    # ---------------------------------------------------------------- generation

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        self._require_loaded()
        torch = _import_torch()
        torch.set_num_threads(self._threads())
        results: list[GenerationResult | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.settings.model_dump_json(), []).append(i)
        for indices in groups.values():
            settings = requests[indices[0]].settings
            items = [self._prepare(i, requests[i]) for i in indices]
            limit = self._context_limit()
            runnable = []
            for item in items:
                if limit is not None and not self._is_seq2seq and len(item.ids) + settings.max_new_tokens > limit:
                    item.error = (f"prompt has {len(item.ids)} tokens; with max_new_tokens {settings.max_new_tokens} "
                                  f"it exceeds the model's context of {limit} tokens")
                else:
                    runnable.append(item)
            started = time.perf_counter()
            if runnable:
                try:
                    with torch.inference_mode():
                        if self._use_fast():
                            _FastEngine(self, settings).run(runnable, started)
                        else:
                            self._generate_hf(runnable, settings, started)
                except (RuntimeError, MemoryError) as exc:  # out of memory and similar: report, keep going
                    for item in runnable:
                        item.error = _short(exc)
            wall = time.perf_counter() - started
            for item in items:
                results[item.index] = self._result(item, wall, len(runnable))
        return results  # type: ignore[return-value]

    def _result(self, item: _Item, wall: float, batch: int) -> GenerationResult:
        extra = {"prompt_format": item.prompt_format, "batch_size": batch,
                 "engine": "fast" if self._use_fast() else "generate"}
        if item.finish_time is not None:
            extra["finish_s"] = round(item.finish_time, 6)
        if item.error is not None:
            return GenerationResult(
                prompt_id=item.request.prompt_id, text="", prompt_tokens=len(item.ids), output_tokens=None,
                finish_reason="error", latency_s=wall, error=item.error, prompt_text=item.prompt_text, extra=extra,
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

    def _accept(self, item: _Item, token: int, settings: GenerationSettings, stops: tuple[str, ...]) -> bool:
        """Append a generated token to an item; return True (and set its finish reason) when it is done."""
        item.out.append(token)
        if token in self._eos_ids:
            item.finish = "eos"
        elif stops and self._hit_stop(item.out, stops):
            item.finish = "stop"
        elif len(item.out) >= settings.max_new_tokens:
            item.finish = "length"
        else:
            return False
        return True

    def _hit_stop(self, out: list[int], stops: tuple[str, ...]) -> bool:
        """Whether the tail of the output contains a stop string (the tail is long enough to hold any of them)."""
        window = max(len(s) for s in stops) + 4
        tail = self._tokenizer.decode(out[-window:], skip_special_tokens=True)
        return any(s in tail for s in stops)

    def _finish_text(self, item: _Item, stops: tuple[str, ...]) -> None:
        """Decode an item's output; trim at the first stop string; settle the finish reason."""
        ids = item.out
        if ids and ids[-1] in self._eos_ids and item.finish == "eos":
            ids = ids[:-1]
        text = self._tokenizer.decode(ids, skip_special_tokens=True)
        cut = min((pos for pos in (text.find(s) for s in stops if s) if pos >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
            item.finish = "stop"
        item.text = text

    # ---- the reference path: model.generate

    def _generate_hf(self, items: list[_Item], settings: GenerationSettings, started: float) -> None:
        torch = _import_torch()
        from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

        tokenizer, model = self._tokenizer, self._model
        base_gen = self._base_model().generation_config
        config = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            num_beams=1,
            pad_token_id=self._pad_id,
            eos_token_id=sorted(self._eos_ids) or None,
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
        stops = tuple(s for s in settings.stop if s)
        if stops:
            config.stop_strings = list(stops)

        class FirstStep(LogitsProcessor):
            def __init__(self):
                self.at = None

            def __call__(self, input_ids, scores):
                if self.at is None:
                    self.at = time.perf_counter()
                return scores

        order = sorted(items, key=lambda it: len(it.ids), reverse=True)
        for bucket in _buckets([len(it.ids) for it in order], settings.max_new_tokens):
            chunk = [order[i] for i in bucket]
            width = max(len(it.ids) for it in chunk)
            ids = torch.full((len(chunk), width), self._pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, it in enumerate(chunk):  # left padding (the encoder of a seq2seq model ignores the side)
                ids[row, width - len(it.ids):] = torch.tensor(it.ids)
                mask[row, width - len(it.ids):] = 1
            timer = FirstStep()
            kwargs: dict[str, Any] = {}
            if stops:
                kwargs["tokenizer"] = tokenizer
            if settings.do_sample:
                torch.manual_seed(settings.seed)
            out = model.generate(
                input_ids=ids.to(self._device), attention_mask=mask.to(self._device), generation_config=config,
                logits_processor=LogitsProcessorList([timer]), **kwargs,
            )
            done = time.perf_counter()
            new = out[:, 1:] if self._is_seq2seq else out[:, width:]
            for row, it in enumerate(chunk):
                for token in new[row].tolist():  # rows that stopped early are padded: stop at their end
                    if self._accept(it, token, settings, stops):
                        break
                it.ttft = (timer.at or done) - started
                it.finish_time = done - started
                self._finish_text(it, stops)

    # ---------------------------------------------------------------- scoring

    def loglikelihood(self, texts: list[tuple[str, str]]) -> list[LogLikelihoodResult]:
        if not texts:
            return []
        self._require_loaded()
        torch = _import_torch()
        torch.set_num_threads(self._threads())
        tokenizer = self._tokenizer
        vocab = int(getattr(self._base_model().config.get_text_config(decoder=True), "vocab_size", 0) or len(tokenizer))
        limit = self._context_limit() or 4096
        bos = tokenizer.bos_token_id
        # Each text becomes one or more windows: (text index, input ids, how many leading ids are context only)
        windows: list[tuple[int, list[int], int]] = []
        results = []
        for index, (text_id, text) in enumerate(texts):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if self._is_seq2seq:
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

        per_row_tokens = max(1, LOGLIK_MAX_LOGIT_BYTES // (4 * max(vocab, 1)))
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]), reverse=True)
        start = 0
        with torch.inference_mode():
            while start < len(order):
                width = len(windows[order[start]][1])
                rows = max(1, min(64, per_row_tokens // max(width, 1)))
                batch = [windows[w] for w in order[start: start + rows]]
                start += rows
                self._retune_threads()
                for (index, _, _), nll in zip(batch, self._score_batch(batch, width)):
                    results[index][1] += nll
        return [LogLikelihoodResult(text_id=r[0], nll_nats=float(r[1]), n_tokens=int(r[2]), n_bytes=int(r[3]))
                for r in results]

    def _score_batch(self, batch, width: int) -> list[float]:
        torch = _import_torch()
        import torch.nn.functional as F

        device = self._device
        ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (_, chunk, _) in enumerate(batch):  # right padding: positions stay 0..n-1
            ids[row, : len(chunk)] = torch.tensor(chunk)
            mask[row, : len(chunk)] = 1
        ids, mask = ids.to(device), mask.to(device)
        if self._is_seq2seq:
            start = self._tokenizer("", return_tensors="pt")["input_ids"].to(device)
            if start.shape[1] == 0:
                start = torch.tensor([[self._pad_id]], device=device)
            encoder = start.expand(len(batch), -1)
            labels = ids.masked_fill(mask == 0, -100)
            logits = self._model(input_ids=encoder, attention_mask=torch.ones_like(encoder), labels=labels).logits
            nll = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")
            return nll.sum(dim=1).tolist()
        logits = self._model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
        return nll.sum(dim=1).tolist()

    # ---------------------------------------------------------------- sizing, memory, close

    def suggested_batch_size(self, requests: list[GenerationRequest]) -> int:
        cuda = _cuda_available()
        cap = GPU_BATCH_CAP if cuda else CPU_BATCH_CAP
        if not requests:
            return cap
        self._require_loaded()
        torch = _import_torch()
        config = self._base_model().config.get_text_config(decoder=True)
        layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 12)
        heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 12)
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", 768)
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        inter = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
        vocab = getattr(config, "vocab_size", 32000)
        elem = next(self._model.parameters()).element_size()
        sample = requests[: min(len(requests), 64)]
        lengths = [len(self._prepare(0, r).ids) for r in sample]
        tokens = max(lengths) + max(r.settings.max_new_tokens for r in sample)
        per_row = layers * 2 * kv_heads * head_dim * elem * tokens      # KV cache
        per_row += max(lengths) * (2 * hidden + inter) * 4 * 2         # prefill activations (rough)
        per_row += vocab * 4 * 2                                        # last-step logits and softmax
        if cuda:
            free, _ = torch.cuda.mem_get_info()
            budget = int(free * 0.7)
        else:
            available = _available_memory_bytes() or (4 << 30)
            budget = int(available * 0.5)
        return int(max(1, min(cap, budget // max(per_row, 1))))

    def peak_memory_bytes(self) -> int | None:
        if _cuda_available():
            import torch

            return int(torch.cuda.max_memory_allocated())
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        except (ImportError, OSError):
            return None
        return int(peak * 1024) if os.uname().sysname == "Linux" else int(peak)  # process-wide peak

    def import_dependencies(self) -> None:
        _import_torch()
        if self.model.adapter is not None and self.model.adapter.path is not None:
            import peft  # noqa: F401

    def close(self) -> None:
        self._model = None
        self._tokenizer = None
        self._info = None
        self._threads_chosen = None
        self._thread_governor = None
        import gc

        gc.collect()
        if _cuda_available():
            import torch

            torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------- bucketing


def _buckets(lengths: list[int], new_tokens: int = 0, overhead: int | None = None,
             max_tokens: int | None = None) -> list[list[int]]:
    """Split indices of ``lengths`` (sorted longest first) into contiguous buckets minimising padded work.

    The cost of a bucket is its padded token count (rows × longest row) plus ``overhead`` tokens for the extra
    forward; an optimal split is found by dynamic programming over the sorted order.
    """
    overhead = BUCKET_OVERHEAD_TOKENS if overhead is None else overhead
    max_tokens = MAX_PREFILL_TOKENS if max_tokens is None else max_tokens
    n = len(lengths)
    if n == 0:
        return []
    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for begin in range(end - 1, -1, -1):
            width = lengths[begin]  # the longest in begin..end-1 (sorted descending)
            rows = end - begin
            if rows > 1 and rows * width > max_tokens:
                break
            cost = best[begin] + rows * width + overhead
            if cost < best[end]:
                best[end], cut[end] = cost, begin
    spans, end = [], n
    while end > 0:
        spans.append(list(range(cut[end], end)))
        end = cut[end]
    return spans[::-1]


# ------------------------------------------------------------------------------------- the fast loop


def _make_buffer_layer():
    """A KV cache layer writing into a preallocated buffer (no per-step concatenation), built lazily."""
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        _layer_type = None

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = capacity
            self.length = 0
            self.kbuf = None
            self.vbuf = None

        def allocate(self, batch: int, like_k, like_v, zero: bool = True) -> None:
            """Allocate the buffers; with zero=False the caller must write (or zero) every column it reads."""
            import torch

            make = torch.zeros if zero else torch.empty
            self.kbuf = make((batch, like_k.shape[1], self.capacity, like_k.shape[3]),
                             dtype=like_k.dtype, device=like_k.device)
            self.vbuf = make((batch, like_v.shape[1], self.capacity, like_v.shape[3]),
                             dtype=like_v.dtype, device=like_v.device)
            self.device = like_k.device
            self.is_initialized = True

        def lazy_initialization(self, key_states, value_states) -> None:
            self.allocate(key_states.shape[0], key_states, value_states)

        def update(self, key_states, value_states, *args, **kwargs):
            if self.kbuf is None:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            self.kbuf[:, :, self.length:end] = key_states
            self.vbuf[:, :, self.length:end] = value_states
            self.length = end
            self.keys = self.kbuf[:, :, :end]
            self.values = self.vbuf[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.length + query_length, 0

        def get_max_length(self) -> int:
            return self.capacity

        def select(self, rows) -> None:
            if self.kbuf is not None:
                self.kbuf = self.kbuf.index_select(0, rows)
                self.vbuf = self.vbuf.index_select(0, rows)
                self.keys = self.kbuf[:, :, : self.length]
                self.values = self.vbuf[:, :, : self.length]

    return BufferLayer


class _ThreadGovernor:
    """Picks the torch thread count for each forward pass from the measured times of the passes themselves.

    A shared machine's load comes and goes within seconds and a probe of a few milliseconds can miss it,
    so the steps are the measurement. Each decoding step's time, normalised by its batch size (a CPU step
    costs about one read of the weights plus a little per row), feeds a running average per thread count.
    The fastest count is used; another is tried now and then, less and less often while it keeps losing
    (a crowded machine can make the wrong count 10x slower, so exploring is not free), and at once when the
    current count suddenly gets much slower. The results do not depend on the thread count.
    """

    ROW_EQUIVALENT_OF_FIXED_COST = 16  # the weight read of a step costs about as much as this many rows
    FIRST_INTERVAL, MAX_INTERVAL = 8, 512

    def __init__(self, candidates: list[int], probe=None):
        self.candidates = candidates
        self.probe = probe  # probe([a, b]) -> {threads: seconds}: a cheap look before a costly exploration
        self.cost: dict[int, float] = {}
        self.interval = self.FIRST_INTERVAL
        self.countdown = 1  # try the other counts early (unless the probe already rules them out)
        self.exploring: int | None = None
        self.surprised = False

    def best(self) -> int:
        return min(self.cost, key=self.cost.get) if self.cost else self.candidates[0]

    def choose(self) -> int:
        untried = [n for n in self.candidates if n not in self.cost]
        if not self.cost:
            self.exploring = None
            return self.candidates[0]
        self.countdown -= 1
        if untried and (self.countdown <= 0 or self.surprised):
            self.exploring = untried[0]
        elif self.countdown <= 0 or self.surprised:
            others = [n for n in self.candidates if n != self.best()]
            self.exploring = min(others, key=self.cost.get) if others else None
        else:
            self.exploring = None
        if self.exploring is not None:
            self.countdown = self.interval
            self.surprised = False
            if self.probe is not None:
                timings = self.probe([self.best(), self.exploring])
                if timings[self.exploring] > 1.5 * timings[self.best()]:  # clearly worse right now: skip
                    self.exploring = None
                    self.interval = min(self.interval * 2, self.MAX_INTERVAL)
                    self.countdown = self.interval
                    return self.best()
            return self.exploring
        return self.best()

    def record(self, threads: int, seconds: float, rows: int) -> None:
        cost = seconds / (rows + self.ROW_EQUIVALENT_OF_FIXED_COST)
        leader = self.best() if self.cost else None
        previous = self.cost.get(threads)
        fresh = previous is None or threads == self.exploring  # an explored count's old figure is stale
        self.cost[threads] = cost if fresh else 0.5 * previous + 0.5 * cost
        if self.exploring is not None and leader is not None and self.exploring != leader:
            if self.best() == self.exploring:  # it won: keep exploring at the usual pace
                self.interval = self.FIRST_INTERVAL
            else:  # it lost: look again later, each time later
                self.interval = min(self.interval * 2, self.MAX_INTERVAL)
            self.countdown = self.interval
        elif previous is not None and threads == leader and cost > 3.0 * previous:
            self.surprised = True


class _FastEngine:
    """Batched greedy/sampled decoding over ``model.forward`` for decoder-only models (see the module doc)."""

    def __init__(self, backend: TransformersBackend, settings: GenerationSettings):
        import torch
        from transformers import DynamicCache

        self.torch = torch
        self.backend = backend
        self.model = backend._model
        self.device = backend._device
        self.settings = settings
        self.layers = backend._base_model().config.get_text_config(decoder=True).num_hidden_layers
        self.BufferLayer = _make_buffer_layer()
        self.DynamicCache = DynamicCache
        self.stops = tuple(s for s in settings.stop if s)
        self.processors = self._processors()

    # ---- pieces

    def _cache(self, capacity: int):
        cache = self.DynamicCache()
        cache.layer_class_to_replicate = None
        cache.layers = [self.BufferLayer(capacity) for _ in range(self.layers)]
        return cache

    def _forward(self, ids, mask, positions, cache, last_only: bool):
        kwargs = {self.backend._cache_kwarg: cache, "use_cache": True}
        if last_only and self.backend._accepts_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, **kwargs).logits
        return logits[:, -1, :]

    def _processors(self):
        from transformers import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        s = self.settings
        processors = LogitsProcessorList()
        if s.repetition_penalty is not None and s.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(s.repetition_penalty))
        if s.do_sample:
            if s.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(s.temperature))
            if s.top_k is not None:
                processors.append(TopKLogitsWarper(s.top_k))
            if s.top_p < 1.0:
                processors.append(TopPLogitsWarper(s.top_p))
        return processors

    def _choose(self, logits, rows: list[_Item], generators):
        """Next token per row (greedy or sampled) from the last-position logits."""
        torch = self.torch
        scores = logits.float()
        if len(self.processors):
            history = self._history(rows)
            scores = self.processors(history, scores)
        if not self.settings.do_sample:
            return scores.argmax(dim=-1).tolist()
        probs = torch.softmax(scores, dim=-1)
        return [int(torch.multinomial(probs[r], 1, generator=generators[r]).item()) for r in range(len(rows))]

    def _history(self, rows: list[_Item]):
        torch = self.torch
        seqs = [it.ids + it.out for it in rows]
        width = max(len(s) for s in seqs)
        # pad with the row's own first token so padding adds no phantom repetition
        data = [[s[0]] * (width - len(s)) + s for s in seqs]
        return torch.tensor(data, dtype=torch.long, device=self.device)

    def _generators(self, rows: list[_Item]):
        if not self.settings.do_sample:
            return None
        torch = self.torch
        gens = []
        for it in rows:
            g = torch.Generator(device=self.device)
            g.manual_seed(_row_seed(self.settings.seed, it.request.prompt_id))
            gens.append(g)
        return gens

    def _accept(self, item: _Item, token: int, now: float) -> bool:
        """Append a token to a row; return True when the row is finished."""
        if item.ttft is None:
            item.ttft = now
        if self.backend._accept(item, token, self.settings, self.stops):
            item.finish_time = now
            return True
        return False

    # ---- prefixes

    def _prefix_tree(self, items: list[_Item]) -> dict[int, _Prefix]:
        """Shared prompt prefixes as a tree: map item position → the deepest prefix it shares with others.

        A prefix becomes a node when at least two prompts share it, it is at least MIN_SHARED_PREFIX tokens
        long, and it saves at least MIN_PREFIX_GAIN tokens of prefill over its parent node (a node costs one
        more small forward). Every prompt keeps at least one token of its own to prefill.
        """
        ids = [it.ids for it in items]
        owner: dict[int, _Prefix | None] = {}
        created: list[_Prefix] = []

        def build(rows: list[int], depth: int, parent: _Prefix | None) -> None:
            d = depth
            while all(len(ids[r]) - 1 > d for r in rows) and all(ids[r][d] == ids[rows[0]][d] for r in rows):
                d += 1
            node = parent
            base = parent.length if parent is not None else 0
            if len(rows) >= 2 and d >= MIN_SHARED_PREFIX and (d - base) * (len(rows) - 1) >= MIN_PREFIX_GAIN:
                node = _Prefix(tuple(ids[rows[0]][:d]), parent)
                created.append(node)
            branches: dict[int, list[int]] = {}
            for r in rows:
                if len(ids[r]) - 1 <= d:
                    owner[r] = node
                else:
                    branches.setdefault(ids[r][d], []).append(r)
            for branch in branches.values():
                if len(branch) == 1:
                    owner[branch[0]] = node
                else:
                    build(branch, d + 1, node)

        build(list(range(len(items))), 0, None)
        # A node that only leads to one deeper node and serves few prompts itself costs a forward of its own
        # for little: fold it into its child (which then starts from the node's parent).
        changed = True
        while changed:
            changed = False
            for node in created:
                kids = [other for other in created if other.parent is node]
                direct = [r for r, o in owner.items() if o is node]
                if len(kids) == 1 and (len(direct) + 1) * node.length < BUCKET_OVERHEAD_TOKENS:
                    kids[0].parent = node.parent
                    for r in direct:
                        owner[r] = node.parent
                    created.remove(node)
                    changed = True
                    break
        return {r: node for r, node in owner.items() if node is not None}

    def _prefill(self, seqs: list[tuple[_Prefix | None, list[int]]]):
        """One forward over several token sequences, each continuing its own prefix's KV (or none).

        Columns: ``[pad | prefix (right-aligned at start) | pad | tokens (left-padded)]``; the mask hides the
        pads and the position ids count each sequence's own tokens. Returns (cache, mask, last logits).
        """
        torch = self.torch
        self.backend._retune_threads()
        n = len(seqs)
        start = max((parent.length if parent is not None else 0) for parent, _ in seqs)
        width = max(len(tokens) for _, tokens in seqs)
        cols = start + width
        cache = self._cache(cols)
        mask = torch.zeros((n, cols), dtype=torch.long, device=self.device)
        ids = torch.full((n, width), self.backend._pad_id, dtype=torch.long, device=self.device)
        pos = torch.zeros((n, width), dtype=torch.long, device=self.device)
        for r, (parent, tokens) in enumerate(seqs):
            plen, slen = (parent.length if parent is not None else 0), len(tokens)
            ids[r, width - slen:] = torch.tensor(tokens, dtype=torch.long, device=self.device)
            mask[r, start - plen: start] = 1
            mask[r, cols - slen:] = 1
            pos[r, width - slen:] = torch.arange(plen, plen + slen, device=self.device)
        parents = [(r, parent) for r, (parent, _) in enumerate(seqs) if parent is not None]
        if parents:
            for index, layer in enumerate(cache.layers):
                k0, v0 = parents[0][1].kv[index]
                layer.allocate(n, k0, v0)
                for r, parent in parents:
                    k, v = parent.kv[index]
                    layer.kbuf[r, :, start - parent.length: start] = k[0]
                    layer.vbuf[r, :, start - parent.length: start] = v[0]
        for layer in cache.layers:
            layer.length = start
        logits = self._forward(ids, mask, pos, cache, last_only=True)
        return cache, mask, logits

    def _prefill_prefixes(self, nodes: list[_Prefix]) -> None:
        """Compute the KV of every shared prefix: one forward per tree level, each node extending its parent."""
        todo = {id(node): node for node in nodes}
        for node in list(todo.values()):  # include the ancestors
            parent = node.parent
            while parent is not None:
                todo.setdefault(id(parent), parent)
                parent = parent.parent
        levels: dict[int, list[_Prefix]] = {}
        for node in todo.values():
            depth, parent = 0, node.parent
            while parent is not None:
                depth, parent = depth + 1, parent.parent
            levels.setdefault(depth, []).append(node)
        for depth in sorted(levels):
            level = levels[depth]
            seqs = [(node.parent, list(node.tokens[node.parent.length if node.parent else 0:])) for node in level]
            cache, mask, _ = self._prefill(seqs)
            for r, node in enumerate(level):
                columns = mask[r].nonzero().squeeze(1)
                node.kv = [(layer.kbuf[r: r + 1].index_select(2, columns), layer.vbuf[r: r + 1].index_select(2, columns))
                           for layer in cache.layers]

    # ---- the loop

    def run(self, items: list[_Item], started: float) -> None:
        torch = self.torch
        s = self.settings
        items = sorted(items, key=lambda it: len(it.ids), reverse=True)
        prefix_of = self._prefix_tree(items)
        self._prefill_prefixes(list({id(n): n for n in prefix_of.values()}.values()))
        prefix_len = [prefix_of[p].length if p in prefix_of else 0 for p in range(len(items))]
        suffix_len = [len(it.ids) - prefix_len[p] for p, it in enumerate(items)]

        # prefill the prompts' own tokens in buckets of similar length, longest first
        order = sorted(range(len(items)), key=lambda p: suffix_len[p], reverse=True)
        buckets = [[order[i] for i in span] for span in _buckets([suffix_len[p] for p in order], s.max_new_tokens)]
        cols_of = [max(prefix_len[p] for p in bucket) + max(suffix_len[p] for p in bucket) for bucket in buckets]
        prompt_cols = max(cols_of)
        capacity = prompt_cols + s.max_new_tokens
        rows = [items[p] for bucket in buckets for p in bucket]
        batch = len(rows)
        main = self._cache(capacity)
        mask = torch.zeros((batch, capacity), dtype=torch.long, device=self.device)
        positions = torch.tensor([len(it.ids) for it in rows], dtype=torch.long, device=self.device)
        generators = self._generators(rows)

        row0 = 0
        for bucket, cols in zip(buckets, cols_of):
            n = len(bucket)
            cache, bmask, logits = self._prefill([(prefix_of.get(p), items[p].ids[prefix_len[p]:]) for p in bucket])
            bucket_rows = rows[row0: row0 + n]
            tokens = self._choose(logits, bucket_rows, generators[row0: row0 + n] if generators else None)
            now = time.perf_counter() - started
            # the bucket's KV goes into the main cache, right-aligned at prompt_cols
            offset = prompt_cols - cols
            for layer, small in zip(main.layers, cache.layers):
                if layer.kbuf is None:  # columns past prompt_cols are written by decoding before they are read
                    layer.allocate(batch, small.kbuf, small.vbuf, zero=False)
                layer.kbuf[row0: row0 + n, :, :offset] = 0  # masked, but must be finite (0 × NaN is NaN)
                layer.vbuf[row0: row0 + n, :, :offset] = 0
                layer.kbuf[row0: row0 + n, :, offset: prompt_cols] = small.kbuf
                layer.vbuf[row0: row0 + n, :, offset: prompt_cols] = small.vbuf
            mask[row0: row0 + n, offset: prompt_cols] = bmask
            for it, token in zip(bucket_rows, tokens):
                self._accept(it, token, now)
            row0 += n
            del cache
        for layer in main.layers:
            layer.length = prompt_cols

        # decode
        active = [r for r, it in enumerate(rows) if it.finish is None]
        current = torch.tensor([it.out[-1] for it in rows], dtype=torch.long, device=self.device)
        live = rows
        if len(active) < len(rows):
            live, current, mask, positions, generators = self._compact(main, rows, active, current, mask,
                                                                       positions, generators)
        governor = self.backend._governor()
        while live:
            threads = governor.choose() if governor is not None else None
            if threads is not None and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            step_started = time.perf_counter()
            col = main.layers[0].length
            mask[:, col] = 1
            logits = self._forward(current.unsqueeze(1), mask[:, : col + 1], positions.unsqueeze(1), main,
                                   last_only=False)
            positions = positions + 1
            tokens = self._choose(logits, live, generators)
            if governor is not None:
                governor.record(threads, time.perf_counter() - step_started, len(live))
            now = time.perf_counter() - started
            # rows finished earlier and not yet dropped are skipped (their extra tokens are discarded)
            keep = [r for r, (it, token) in enumerate(zip(live, tokens))
                    if it.finish is None and not self._accept(it, token, now)]
            current = torch.tensor(tokens, dtype=torch.long, device=self.device)
            if not keep:
                break
            dead = len(live) - len(keep)
            horizon = max(s.max_new_tokens - len(live[r].out) for r in keep)
            # dropping rows copies the cache: worth it when they would otherwise cost enough future row-steps
            if dead and (dead * horizon >= COMPACT_MIN_ROW_STEPS or 4 * dead >= len(live)):
                live, current, mask, positions, generators = self._compact(main, live, keep, current, mask,
                                                                           positions, generators)
        for it in items:
            self.backend._finish_text(it, self.stops)

    def _compact(self, cache, live, keep, current, mask, positions, generators):
        """Drop finished rows from the batch (cache rows, mask, positions, generators)."""
        torch = self.torch
        if not keep:
            return [], current[:0], mask[:0], positions[:0], []
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        for layer in cache.layers:
            layer.select(index)
        live = [live[r] for r in keep]
        gens = [generators[r] for r in keep] if generators else generators
        return live, current.index_select(0, index), mask.index_select(0, index), positions.index_select(0, index), gens
