"""Spec extraction: what a model *is*, computed from its files, never typed by hand.

Sources:

* a Hugging Face ``config.json`` (and, beside it, a PEFT ``adapter_config.json``);
* a GGUF file's metadata and tensor table.

Facts read straight from the config (sizes, layer counts, context length, vocabulary) need no heavy
packages. Exact parameter counts do: the architecture is instantiated on PyTorch's ``meta`` device
(shapes only, no memory, no weights, well under a second even for 7B models) and its unique parameters
are counted, so tied embeddings count once. torch / transformers / gguf are imported inside the
functions that need them, so ``import reportgen.specs.extract`` stays fast.
"""

from __future__ import annotations

import functools
import json
import math
import re
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from reportgen.errors import ConfigError, MissingExtraError
from reportgen.util import safeio

__all__ = [
    "AdapterSpec",
    "ModelSpec",
    "adapter_spec",
    "count_parameters",
    "estimate_4bit_bytes",
    "spec_from_config_dict",
    "spec_from_config_file",
    "spec_from_gguf",
    "spec_from_path",
]

# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------

#: model_type -> human family name. Unknown types fall back to the model_type itself.
FAMILIES: dict[str, str] = {
    "llama": "Llama",
    "llama4": "Llama 4",
    "mistral": "Mistral",
    "mixtral": "Mixtral",
    "gpt2": "GPT-2",
    "gpt_neo": "GPT-Neo",
    "gpt_neox": "GPT-NeoX",
    "gptj": "GPT-J",
    "gpt_bigcode": "GPT-BigCode",
    "openai-gpt": "GPT",
    "t5": "T5",
    "mt5": "mT5",
    "umt5": "UMT5",
    "longt5": "LongT5",
    "bart": "BART",
    "mbart": "mBART",
    "pegasus": "Pegasus",
    "marian": "Marian",
    "opt": "OPT",
    "bloom": "BLOOM",
    "falcon": "Falcon",
    "phi": "Phi",
    "phi3": "Phi-3",
    "qwen2": "Qwen2",
    "qwen2_moe": "Qwen2-MoE",
    "qwen3": "Qwen3",
    "qwen3_moe": "Qwen3-MoE",
    "gemma": "Gemma",
    "gemma2": "Gemma 2",
    "gemma3": "Gemma 3",
    "gemma3_text": "Gemma 3",
    "starcoder2": "StarCoder2",
    "stablelm": "StableLM",
    "olmo": "OLMo",
    "olmo2": "OLMo 2",
    "smollm3": "SmolLM3",
    "cohere": "Command-R",
    "mamba": "Mamba",
    "rwkv": "RWKV",
    "bert": "BERT",
    "roberta": "RoBERTa",
    "distilbert": "DistilBERT",
}

#: model types whose models are encoder-decoder (seq2seq) even when config.json omits is_encoder_decoder.
ENCODER_DECODER_TYPES = frozenset(
    {
        "t5",
        "mt5",
        "umt5",
        "longt5",
        "bart",
        "mbart",
        "pegasus",
        "pegasus_x",
        "marian",
        "led",
        "m2m_100",
        "fsmt",
        "prophetnet",
        "blenderbot",
        "blenderbot-small",
        "bigbird_pegasus",
        "plbart",
        "mvp",
        "switch_transformers",
        "nllb-moe",
        "encoder-decoder",
        "t5gemma",
    }
)

#: model types whose MLP width is 4 x hidden when the config leaves it null or out (transformers' default).
FFN_4X_TYPES = frozenset({"gpt2", "gptj", "gpt_bigcode", "gpt_neo", "codegen", "bloom", "falcon", "openai-gpt"})

#: GGUF ``general.architecture`` -> (HF model_type, HF architecture class).
GGUF_ARCHITECTURES: dict[str, tuple[str, str]] = {
    "llama": ("llama", "LlamaForCausalLM"),
    "mistral": ("mistral", "MistralForCausalLM"),
    "gpt2": ("gpt2", "GPT2LMHeadModel"),
    "gptj": ("gptj", "GPTJForCausalLM"),
    "gptneox": ("gpt_neox", "GPTNeoXForCausalLM"),
    "falcon": ("falcon", "FalconForCausalLM"),
    "bloom": ("bloom", "BloomForCausalLM"),
    "mpt": ("mpt", "MptForCausalLM"),
    "starcoder": ("gpt_bigcode", "GPTBigCodeForCausalLM"),
    "starcoder2": ("starcoder2", "Starcoder2ForCausalLM"),
    "stablelm": ("stablelm", "StableLmForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen2moe": ("qwen2_moe", "Qwen2MoeForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
    "qwen3moe": ("qwen3_moe", "Qwen3MoeForCausalLM"),
    "phi2": ("phi", "PhiForCausalLM"),
    "phi3": ("phi3", "Phi3ForCausalLM"),
    "gemma": ("gemma", "GemmaForCausalLM"),
    "gemma2": ("gemma2", "Gemma2ForCausalLM"),
    "gemma3": ("gemma3_text", "Gemma3ForCausalLM"),
    "command-r": ("cohere", "CohereForCausalLM"),
    "olmo": ("olmo", "OlmoForCausalLM"),
    "olmo2": ("olmo2", "Olmo2ForCausalLM"),
    "mamba": ("mamba", "MambaForCausalLM"),
    "t5": ("t5", "T5ForConditionalGeneration"),
}

#: activation of GGUF architectures (GGUF metadata does not record it).
GGUF_ACTIVATIONS: dict[str, str] = {
    "llama": "silu",
    "mistral": "silu",
    "qwen2": "silu",
    "qwen3": "silu",
    "qwen2moe": "silu",
    "qwen3moe": "silu",
    "phi3": "silu",
    "starcoder2": "gelu_pytorch_tanh",
    "gpt2": "gelu_new",
    "gemma": "gelu_pytorch_tanh",
    "gemma2": "gelu_pytorch_tanh",
    "gemma3": "gelu_pytorch_tanh",
    "olmo": "silu",
    "olmo2": "silu",
    "command-r": "silu",
}

#: bytes per parameter of a stored (torch) dtype.
DTYPE_BYTES: dict[str, int] = {
    "float64": 8,
    "double": 8,
    "float32": 4,
    "float": 4,
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "int8": 1,
    "uint8": 1,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
}

#: config keys that cannot change a model's parameter shapes: dropped before the count cache key.
_SHAPE_IRRELEVANT_KEYS = frozenset(
    {
        "_name_or_path",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "use_cache",
        "quantization_config",
        "_attn_implementation",
        "attn_implementation",
    }
)


# --------------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdapterSpec:
    """A PEFT adapter (LoRA and friends), as its ``adapter_config.json`` describes it."""

    peft_type: str
    r: int | None
    alpha: float | None
    dropout: float | None
    target_modules: tuple[str, ...]
    base_model: str | None
    task_type: str | None
    trainable_parameters: int | None  # exact, as PEFT's get_nb_trainable_parameters reports it
    share_of_base: float | None  # trainable / base parameters

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


@dataclass(frozen=True)
class ModelSpec:
    """The facts about one model that a report states. ``None`` means: the source does not say."""

    source: str  # "config.json" or "gguf"
    architecture: str | None
    model_type: str | None
    family: str | None
    task: str | None  # "causal-lm" | "seq2seq-lm" | None
    hidden_size: int | None
    intermediate_size: int | None
    num_attention_heads: int | None
    num_key_value_heads: int | None
    num_hidden_layers: int | None
    context_length: int | None
    vocab_size: int | None
    activation: str | None
    dtype: str | None  # torch dtype name; for GGUF the file type's short name ("Q4_1", "F16")
    tie_word_embeddings: bool | None
    transformers_version: str | None
    parameters: int | None  # exact count, tied weights once
    weight_bytes: int | None  # at the stored dtype; for GGUF the tensor data size in the file
    weight_bytes_4bit: int | None  # see estimate_4bit_bytes()
    gguf_file_type: str | None  # e.g. "MOSTLY_Q4_1"
    gguf_tensor_types: dict[str, Any] | None  # {"Q4_1": 210, "F32": 61, ...}
    adapter: AdapterSpec | None = None
    notes: tuple[str, ...] = field(default=())  # why a fact is missing, and similar caveats

    def as_dict(self) -> dict[str, Any]:
        """Flat-ish, JSON-serialisable; ``adapter`` is a nested dict (or None)."""
        d: dict[str, Any] = {}
        for f in self.__dataclass_fields__:
            value = getattr(self, f)
            if f == "adapter":
                value = value.as_dict() if value is not None else None
            elif f == "gguf_tensor_types" and value is not None:
                value = dict(value)
            elif f == "notes":
                value = list(value)
            d[f] = value
        return d


# --------------------------------------------------------------------------------------------------
# Meta-device model summary (cached)
# --------------------------------------------------------------------------------------------------


class _Module(NamedTuple):
    name: str
    kind: str  # "linear" | "conv1d" (GPT-2 style, weight is (in, out)) | "embedding" | "convnd" | "other"
    in_features: int
    out_features: int
    weight_numel: int
    bias_numel: int
    kernel_numel: int  # prod(kernel_size) for convnd, else 1
    is_output_head: bool


class _Summary(NamedTuple):
    parameters: int
    tied_embeddings: bool | None
    modules: tuple[_Module, ...]  # every module that owns parameters directly


def _canonical_key(cfg: dict[str, Any]) -> str:
    reduced = {k: v for k, v in cfg.items() if k not in _SHAPE_IRRELEVANT_KEYS}
    return json.dumps(reduced, sort_keys=True, default=str)


def _import_torch_transformers() -> tuple[ModuleType, ModuleType]:
    try:
        import torch
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(exc.name or "transformers", "hf", "Counting model parameters") from exc
    return torch, transformers


def _hf_config(cfg: dict[str, Any]) -> Any:
    """The config object ``from_pretrained`` would build from this ``config.json`` dict.

    The native config class of ``model_type`` parses the dict (``from_dict``, as ``AutoConfig.from_pretrained``
    does). ``auto_map`` (remote code) is never followed: a model_type transformers knows natively (phi3,
    falcon, ...) is built with the native class; one it does not know is refused.
    """
    _, transformers = _import_torch_transformers()
    from transformers import CONFIG_MAPPING

    model_type = cfg.get("model_type")
    if not model_type:
        raise ConfigError("config has no 'model_type': cannot build the architecture to count its parameters")
    if model_type not in CONFIG_MAPPING:
        why = " (remote code from auto_map is never run)" if cfg.get("auto_map") else ""
        raise ConfigError(f"transformers {transformers.__version__} does not know model_type {model_type!r}{why}")
    kwargs = {k: v for k, v in cfg.items() if k not in _SHAPE_IRRELEVANT_KEYS and k != "auto_map"}
    try:
        return CONFIG_MAPPING[model_type].from_dict(kwargs)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"transformers {transformers.__version__} cannot read this {model_type!r} config: {exc}"[:300]) from exc


def _model_class(cfg: dict[str, Any], config: Any) -> Any:
    """The class a checkpoint load gets: the native class named in ``architectures``, else the Auto mapping."""
    _, transformers = _import_torch_transformers()
    archs = cfg.get("architectures") or []
    cls = getattr(transformers, archs[0], None) if archs else None
    if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel):
        return cls
    auto = (
        transformers.AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else transformers.AutoModelForCausalLM
    )
    for candidate in (auto, transformers.AutoModel):  # AutoModel: e.g. an encoder-only model
        mapping = candidate._model_mapping
        if type(config) in mapping:
            return mapping[type(config)]
    raise ConfigError(f"transformers has no model class for model_type {cfg.get('model_type')!r}")


def _build_meta_model(cfg: dict[str, Any]) -> Any:
    """Instantiate the config's architecture on the meta device (shapes only), as a checkpoint load shapes it.

    One difference from building a model from a config must be undone: some configs force the tie of
    input and output embeddings (T5 in transformers 5 always sets ``tie_word_embeddings = True``), while
    ``from_pretrained`` leaves the two untied when the checkpoint holds both tensors, which is what a
    ``config.json`` with ``tie_word_embeddings: false`` (flan-t5) comes with. So an explicit ``false``
    in the file gives the output head its own parameter.
    """
    torch, _ = _import_torch_transformers()
    config = _hf_config(cfg)
    cls = _model_class(cfg, config)
    with torch.device("meta"):
        try:
            model = cls._from_config(config, attn_implementation="eager")
        except (ValueError, TypeError, KeyError, AttributeError, RuntimeError) as exc:
            raise ConfigError(f"transformers cannot build {cls.__name__} from this config: {exc}"[:300]) from exc
        if cfg.get("tie_word_embeddings") is False:
            out_emb, in_emb = model.get_output_embeddings(), model.get_input_embeddings()
            weight = getattr(out_emb, "weight", None)
            if weight is not None and weight is getattr(in_emb, "weight", None):
                out_emb.weight = torch.nn.Parameter(torch.empty_like(weight))
    return model


@functools.lru_cache(maxsize=64)
def _meta_summary(canonical: str) -> _Summary:
    torch, _ = _import_torch_transformers()
    from transformers.pytorch_utils import Conv1D

    model = _build_meta_model(json.loads(canonical))
    parameters = sum(p.numel() for p in model.parameters())  # parameters() yields shared tensors once

    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    in_emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    tied = None
    if isinstance(out_emb, torch.nn.Module) and isinstance(in_emb, torch.nn.Module):
        ow, iw = getattr(out_emb, "weight", None), getattr(in_emb, "weight", None)
        tied = ow is not None and ow is iw

    # transformers' bitsandbytes integration also keeps the module owning the last parameter unquantized
    named = list(model.named_parameters())
    last_module = named[-1][0].rsplit(".", 1)[0] if named else None

    modules = []
    seen: set[int] = set()
    for name, mod in model.named_modules():
        own = [p for p in mod.parameters(recurse=False) if id(p) not in seen]
        if not own and not isinstance(mod, (torch.nn.Linear, Conv1D, torch.nn.Embedding)):
            continue
        seen.update(id(p) for p in own)
        weight = getattr(mod, "weight", None)
        bias = getattr(mod, "bias", None)
        own_ids = {id(p) for p in own}
        bias_numel = bias.numel() if isinstance(bias, torch.nn.Parameter) and id(bias) in own_ids else 0
        weight_numel = weight.numel() if isinstance(weight, torch.nn.Parameter) and id(weight) in own_ids else 0
        other = sum(p.numel() for p in own) - weight_numel - bias_numel
        is_head = mod is out_emb or (name == last_module and isinstance(mod, (torch.nn.Linear, Conv1D)))
        kernel = 1
        if isinstance(mod, torch.nn.Linear):
            kind, fin, fout = "linear", mod.in_features, mod.out_features
        elif isinstance(mod, Conv1D):
            kind, fin, fout = "conv1d", mod.weight.shape[0], mod.weight.shape[1]
        elif isinstance(mod, torch.nn.Embedding):
            kind, fin, fout = "embedding", mod.num_embeddings, mod.embedding_dim
        elif isinstance(mod, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            kind, fin, fout = "convnd", mod.in_channels, mod.out_channels
            kernel = math.prod(mod.kernel_size)
        else:
            kind, fin, fout = "other", 0, 0
        modules.append(_Module(name, kind, fin, fout, weight_numel, bias_numel, kernel, is_head))
        if other:  # extra parameters owned directly by a Linear-like module (rare): record them apart
            modules.append(_Module(name + "#other", "other", 0, 0, other, 0, 1, False))
    return _Summary(int(parameters), tied, tuple(modules))


def _summary(cfg: dict[str, Any]) -> _Summary:
    return _meta_summary(_canonical_key(cfg))


def count_parameters(cfg: dict[str, Any]) -> int:
    """Exact parameter count of the architecture a ``config.json`` dict describes.

    The model is built on the ``meta`` device (no weights, no memory) and its unique parameters are
    counted, so tied input/output embeddings count once. Results are cached per canonical config.
    Raises ConfigError when transformers cannot build the architecture.
    """
    return _summary(cfg).parameters


def _nf4_bytes(numel: int, *, double_quant: bool, blocksize: int = 64) -> int:
    blocks = math.ceil(numel / blocksize)
    packed = math.ceil(numel / 2)
    if double_quant:
        # absmax quantized to 8 bit, one fp32 scale per 256 absmax values, one fp32 offset per tensor
        return packed + blocks + 4 * math.ceil(blocks / 256) + 4
    return packed + 4 * blocks


def estimate_4bit_bytes(cfg: dict[str, Any], *, double_quant: bool = False, blocksize: int = 64) -> int:
    """Memory of the weights when loaded bitsandbytes-4-bit (``load_in_4bit``, nf4 or fp4).

    Formula, per weight matrix of every ``nn.Linear`` / GPT-2 ``Conv1D`` except the output head
    (``lm_head``) and the module owning the model's last parameter (transformers' bitsandbytes
    integration keeps both unquantized), with ``n`` elements:

    * packed 4-bit values: ``ceil(n / 2)`` bytes;
    * absmax scales, one per block of ``blocksize`` (64) values: ``4 * ceil(n / 64)`` bytes (fp32);
      with double quantization instead ``ceil(n / 64)`` bytes (8-bit) plus ``4 * ceil(blocks / 256)``
      (fp32 second-level scales) plus 4 (fp32 offset).

    Everything else (embeddings, norms, biases, the output head) stays at 16 bits: 2 bytes per
    parameter (shared/tied tensors once). Per-tensor constants (the 16-entry nf4 code table) are ignored.
    """
    summary = _summary(cfg)
    quantized = [m for m in summary.modules if m.kind in ("linear", "conv1d") and not m.is_output_head]
    q_bytes = sum(_nf4_bytes(m.weight_numel, double_quant=double_quant, blocksize=blocksize) for m in quantized)
    rest = summary.parameters - sum(m.weight_numel for m in quantized)
    return q_bytes + 2 * rest


# --------------------------------------------------------------------------------------------------
# Adapters
# --------------------------------------------------------------------------------------------------

#: adapter_config.json keys that say where an adapter came from, not what it adds.
_ADAPTER_IRRELEVANT_KEYS = frozenset({"base_model_name_or_path", "revision", "auto_mapping", "inference_mode"})


def _adapter_key(adapter_cfg: dict[str, Any]) -> str:
    reduced = {k: v for k, v in adapter_cfg.items() if k not in _ADAPTER_IRRELEVANT_KEYS}
    reduced["peft_type"] = str(reduced.get("peft_type") or "LORA").upper()
    return json.dumps(reduced, sort_keys=True, default=str)


@functools.lru_cache(maxsize=64)
def _peft_trainable(base_canonical: str, adapter_canonical: str) -> int:
    """Trainable parameters PEFT itself reports for this adapter on this base (built on the meta device).

    ``get_peft_model`` does the module matching (suffix lists, regexes, ``all-linear``, ``exclude_modules``,
    ``layers_to_transform``), the ``modules_to_save`` copies (tied embeddings included), the 3-D expert
    parameters of mixture-of-experts models and ``target_parameters``; ``get_nb_trainable_parameters``
    counts. What PEFT refuses is a ConfigError carrying PEFT's own message.
    """
    torch, _ = _import_torch_transformers()
    try:
        import peft
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError("peft", "hf", "Counting adapter parameters") from exc

    kwargs = json.loads(adapter_canonical)
    model = _build_meta_model(json.loads(base_canonical))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            config = peft.PeftConfig.from_peft_type(**kwargs, inference_mode=False)  # type: ignore[no-untyped-call,unused-ignore]  # typed from peft 0.22
            with torch.device("meta"):
                peft_model = peft.get_peft_model(model, config)
        except (ValueError, TypeError, KeyError, NotImplementedError, RuntimeError) as exc:
            message = " ".join(str(exc).split())
            raise ConfigError(f"PEFT {peft.__version__} refuses this adapter on this base: {message}"[:400]) from exc
    trainable, _ = peft_model.get_nb_trainable_parameters()
    return int(trainable)


def adapter_spec(adapter_cfg: dict[str, Any], base_cfg: dict[str, Any] | None) -> AdapterSpec:
    """Describe a PEFT adapter; with the base model's config, count its trainable parameters exactly.

    The count is PEFT's own: the base is built on the meta device (as for ``count_parameters``), the
    adapter applied with ``peft.get_peft_model`` and ``get_nb_trainable_parameters`` read. For LoRA that
    is ``r * (in_features + out_features)`` per targeted layer, plus what ``modules_to_save`` copies,
    DoRA magnitudes and trainable biases. Every PEFT type PEFT can apply gets a count. Raises
    ConfigError with PEFT's reason when PEFT refuses the adapter for this base.
    """
    peft_type = str(adapter_cfg.get("peft_type") or "LORA").upper()
    targets = adapter_cfg.get("target_modules")
    if targets is None:
        target_tuple: tuple[str, ...] = ()
    elif isinstance(targets, str):
        target_tuple = (targets,)
    else:
        target_tuple = tuple(sorted(str(t) for t in targets))

    r = adapter_cfg.get("r")
    alpha = adapter_cfg.get("lora_alpha")
    dropout = adapter_cfg.get("lora_dropout")
    trainable = share = None
    if base_cfg is not None:
        base_params = _summary(base_cfg).parameters
        trainable = _peft_trainable(_canonical_key(base_cfg), _adapter_key(adapter_cfg))
        share = trainable / base_params if base_params else None
    return AdapterSpec(
        peft_type=peft_type,
        r=int(r) if r is not None else None,
        alpha=float(alpha) if alpha is not None else None,
        dropout=float(dropout) if dropout is not None else None,
        target_modules=target_tuple,
        base_model=adapter_cfg.get("base_model_name_or_path"),
        task_type=adapter_cfg.get("task_type"),
        trainable_parameters=trainable,
        share_of_base=share,
    )


# --------------------------------------------------------------------------------------------------
# config.json
# --------------------------------------------------------------------------------------------------


def _first(cfg: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return None


def _int_or_none(v: object) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _normalise_dtype(v: object) -> str | None:
    if v is None:
        return None
    s = str(v)
    return s[len("torch.") :] if s.startswith("torch.") else s


def _family(model_type: str | None, architecture: str | None) -> str | None:
    if model_type:
        return FAMILIES.get(model_type, model_type)
    if architecture:
        arch = architecture.lower()
        for mt in sorted(FAMILIES, key=len, reverse=True):
            if arch.startswith(mt.replace("_", "")):
                return FAMILIES[mt]
    return None


def _task(cfg: dict[str, Any], architecture: str | None, model_type: str | None) -> str | None:
    if cfg.get("is_encoder_decoder") or (model_type in ENCODER_DECODER_TYPES):
        return "seq2seq-lm"
    if architecture and (architecture.endswith("ForCausalLM") or architecture.endswith("LMHeadModel")):
        return "causal-lm"
    return None


def spec_from_config_dict(cfg: dict[str, Any], adapter_cfg: dict[str, Any] | None = None, *, count: bool = True) -> ModelSpec:
    """Spec of the model a ``config.json`` dict describes (plus its PEFT adapter, when given).

    ``count=False`` skips everything that needs torch/transformers (parameters and byte sizes).
    Unknown keys are ignored; a model_type transformers cannot build leaves the counts ``None``
    and says why in ``notes``.
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"a model config must be a JSON object, not {type(cfg).__name__}")
    archs = cfg.get("architectures") or []
    architecture = archs[0] if archs else None
    model_type = cfg.get("model_type")

    hidden = _int_or_none(_first(cfg, "hidden_size", "n_embd", "d_model", "dim"))
    intermediate = _int_or_none(
        _first(cfg, "intermediate_size", "n_inner", "ffn_hidden_size", "ffn_dim", "d_ff", "encoder_ffn_dim")
    )
    if intermediate is None and hidden is not None and ("n_inner" in cfg or model_type in FFN_4X_TYPES):
        intermediate = 4 * hidden  # n_inner / intermediate_size null (or absent) means 4 * hidden
    heads = _int_or_none(_first(cfg, "num_attention_heads", "n_head", "num_heads", "encoder_attention_heads"))
    kv_heads = _int_or_none(_first(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv"))
    if kv_heads is None:
        kv_heads = 1 if cfg.get("multi_query") else heads
    layers = _int_or_none(_first(cfg, "num_hidden_layers", "n_layer", "num_layers", "encoder_layers"))
    context = _int_or_none(_first(cfg, "max_position_embeddings", "n_positions", "n_ctx"))
    vocab = _int_or_none(_first(cfg, "vocab_size", "n_vocab"))
    activation = _first(cfg, "hidden_act", "activation_function", "hidden_activation", "feed_forward_proj")
    dtype = _normalise_dtype(_first(cfg, "torch_dtype", "dtype"))
    tie = cfg.get("tie_word_embeddings")
    tie = bool(tie) if tie is not None else None

    notes: list[str] = []
    parameters = weight_bytes = weight_bytes_4bit = None
    if count:
        try:
            summary = _summary(cfg)
        except ConfigError as exc:
            notes.append(f"parameters not counted: {exc.format_message()}")
        else:
            parameters = summary.parameters
            if summary.tied_embeddings is not None:
                tie = summary.tied_embeddings
            if dtype in DTYPE_BYTES:
                weight_bytes = parameters * DTYPE_BYTES[dtype]
            elif dtype is not None:
                notes.append(f"weight size unknown for dtype {dtype!r}")
            qcfg = cfg.get("quantization_config") or {}
            weight_bytes_4bit = estimate_4bit_bytes(cfg, double_quant=bool(qcfg.get("bnb_4bit_use_double_quant")))

    adapter = None
    if adapter_cfg is not None:
        try:
            adapter = adapter_spec(adapter_cfg, cfg if (count and parameters is not None) else None)
        except ConfigError as exc:
            notes.append(f"adapter parameters not counted: {exc.format_message()}")
            adapter = adapter_spec(adapter_cfg, None)

    return ModelSpec(
        source="config.json",
        architecture=architecture,
        model_type=model_type,
        family=_family(model_type, architecture),
        task=_task(cfg, architecture, model_type),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        num_hidden_layers=layers,
        context_length=context,
        vocab_size=vocab,
        activation=str(activation) if activation is not None else None,
        dtype=dtype,
        tie_word_embeddings=tie,
        transformers_version=cfg.get("transformers_version"),
        parameters=parameters,
        weight_bytes=weight_bytes,
        weight_bytes_4bit=weight_bytes_4bit,
        gguf_file_type=None,
        gguf_tensor_types=None,
        adapter=adapter,
        notes=tuple(notes),
    )


def read_json_object(path: Path, what: str = "JSON file") -> dict[str, Any]:
    """A JSON object from a file (size-limited, strict UTF-8); any problem is a ConfigError naming the file.

    A "config.json" or "adapter_config.json" is also checked field by field (specs.validate)."""
    from reportgen.specs import validate

    if what == "config.json":
        return validate.read_model_config(path, what)
    if what == "adapter_config.json":
        return validate.read_adapter_config(path, what)
    return safeio.read_json_object(path, what)


def spec_from_config_file(path: str | Path, *, count: bool = True) -> ModelSpec:
    """Spec from a ``config.json`` file, or a folder holding one.

    An ``adapter_config.json`` in the same folder is read as the model's PEFT adapter. Passing an
    ``adapter_config.json`` itself reads the ``config.json`` beside it as the base.
    """
    p = Path(path)
    if p.is_dir():
        folder, cfg_path = p, p / "config.json"
    elif p.name == "adapter_config.json":
        folder, cfg_path = p.parent, p.parent / "config.json"
        if not cfg_path.exists():
            raise ConfigError(f"{p}: an adapter needs its base model's config.json beside it ({cfg_path} is missing)")
    else:
        folder, cfg_path = p.parent, p
    from reportgen.specs.validate import read_adapter_config, read_model_config

    cfg = read_model_config(cfg_path)
    adapter_path = folder / "adapter_config.json"
    adapter_cfg = read_adapter_config(adapter_path) if adapter_path.exists() and cfg_path.name == "config.json" else None
    return spec_from_config_dict(cfg, adapter_cfg, count=count)


# --------------------------------------------------------------------------------------------------
# GGUF
# --------------------------------------------------------------------------------------------------


def _gguf_value(field: Any) -> Any:
    """Decoded scalar/string value of a GGUFReader field (arrays are not decoded)."""
    if field is None:
        return None
    if hasattr(field, "contents"):
        return field.contents()
    import gguf  # older gguf: decode by hand

    part = field.parts[field.data[0]]
    if field.types and field.types[0] == gguf.GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    return part.tolist()[0]


def spec_from_gguf(path: str | Path) -> ModelSpec:
    """Spec from a GGUF file's metadata and tensor table (the tensor data are not read).

    gguf.GGUFReader parses every tokenizer string (seconds for a 49k-token vocabulary), so results
    are cached per (path, size, mtime).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such GGUF file")
    from reportgen.specs.validate import check_gguf_header

    check_gguf_header(p)
    st = p.stat()
    spec: ModelSpec = _spec_from_gguf_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)
    return spec


@functools.lru_cache(maxsize=32)
def _spec_from_gguf_cached(path: str, size: int, mtime_ns: int) -> ModelSpec:
    try:
        import gguf
    except ImportError as exc:
        raise MissingExtraError("gguf", "gguf", "Reading GGUF metadata") from exc
    p = Path(path)
    try:
        reader = gguf.GGUFReader(str(p))
    except Exception as exc:  # a cut or corrupt file fails anywhere in the reader (struct, numpy, index errors)
        raise ConfigError(
            f"{p}: not a readable GGUF file ({type(exc).__name__}: {str(exc)[:200]}). "
            "Fix: the file is incomplete or corrupt; download or convert it again"
        ) from None
    fields = reader.fields

    def get(key: str) -> Any:
        return _gguf_value(fields.get(key))

    arch = get("general.architecture")
    model_type, architecture = GGUF_ARCHITECTURES.get(arch, (arch, None))

    def arch_int(suffix: str) -> int | None:
        return _int_or_none(get(f"{arch}.{suffix}"))

    tokens = fields.get("tokenizer.ggml.tokens")
    vocab = len(tokens.data) if tokens is not None else arch_int("vocab_size")
    tensors = list(reader.tensors)
    names = {t.name for t in tensors}
    if vocab is None:
        emb = next((t for t in tensors if t.name == "token_embd.weight"), None)
        vocab = int(emb.shape[-1]) if emb is not None else None

    file_type_id = get("general.file_type")
    file_type = None
    if file_type_id is not None:
        try:
            file_type = gguf.LlamaFileType(int(file_type_id)).name
        except ValueError:
            file_type = f"UNKNOWN_{int(file_type_id)}"
    dtype = re.sub(r"^(MOSTLY|ALL)_", "", file_type) if file_type else None

    histogram = Counter(gguf.GGMLQuantizationType(int(t.tensor_type)).name for t in tensors)
    parameters = sum(int(t.n_elements) for t in tensors)
    weight_bytes = sum(int(t.n_bytes) for t in tensors)
    # 4-bit estimate with the same rule as estimate_4bit_bytes: 2-D weight matrices inside the blocks
    # ("blk.N.*") at nf4 + fp32 absmax, everything else (embeddings, norms, output) at 16 bits.
    q = [int(t.n_elements) for t in tensors if t.name.startswith("blk.") and len(t.shape) == 2]
    weight_bytes_4bit = sum(_nf4_bytes(n, double_quant=False) for n in q) + 2 * (parameters - sum(q))

    heads = arch_int("attention.head_count")
    kv = arch_int("attention.head_count_kv")
    tie = None
    if "token_embd.weight" in names:
        tie = "output.weight" not in names

    return ModelSpec(
        source="gguf",
        architecture=architecture,
        model_type=model_type,
        family=_family(model_type, architecture),
        task="seq2seq-lm" if model_type in ENCODER_DECODER_TYPES else ("causal-lm" if architecture else None),
        hidden_size=arch_int("embedding_length"),
        intermediate_size=arch_int("feed_forward_length"),
        num_attention_heads=heads,
        num_key_value_heads=kv if kv is not None else heads,
        num_hidden_layers=arch_int("block_count"),
        context_length=arch_int("context_length"),
        vocab_size=vocab,
        activation=GGUF_ACTIVATIONS.get(arch),
        dtype=dtype,
        tie_word_embeddings=tie,
        transformers_version=None,
        parameters=parameters,
        weight_bytes=weight_bytes,
        weight_bytes_4bit=weight_bytes_4bit,
        gguf_file_type=file_type,
        gguf_tensor_types=dict(sorted(histogram.items(), key=lambda kv_: (-kv_[1], kv_[0]))),
        adapter=None,
        notes=(),
    )


def config_from_gguf(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` dict transformers builds for a GGUF file (``from_pretrained(dir, gguf_file=...)``).

    transformers' own mapping of GGUF metadata to config fields is used (``load_gguf_checkpoint`` without
    the tensors), so an adapter on a GGUF base is counted on the very architecture the transformers backend
    runs. Cached per (path, size, mtime) like :func:`spec_from_gguf`. Raises ConfigError when transformers
    cannot map the file's architecture.
    """
    p = Path(path)
    st = p.stat()
    config: dict[str, Any] = json.loads(_gguf_config_cached(str(p.resolve()), st.st_size, st.st_mtime_ns))
    return config


@functools.lru_cache(maxsize=32)
def _gguf_config_cached(path: str, size: int, mtime_ns: int) -> str:
    _, transformers = _import_torch_transformers()
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = load_gguf_checkpoint(path, return_tensors=False)  # type: ignore[no-untyped-call]
    except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(
            f"transformers {transformers.__version__} cannot map this GGUF file to a config: {message}"[:300]
        ) from exc
    config = {k: v for k, v in dict(loaded.get("config") or {}).items() if not k.startswith("_")}
    if not config.get("model_type"):
        raise ConfigError(f"transformers {transformers.__version__} found no model type in this GGUF file")
    return json.dumps(config, sort_keys=True, default=str)


def spec_from_path(path: str | Path, *, count: bool = True) -> ModelSpec:
    """Dispatch on the path: a ``.gguf`` file, or a config.json / adapter_config.json / model folder."""
    p = Path(path)
    if p.suffix.lower() == ".gguf":
        return spec_from_gguf(p)
    if p.is_dir() and not (p / "config.json").exists():
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return spec_from_gguf(ggufs[0])
    return spec_from_config_file(p, count=count)
