"""Loading a checkpoint folder: config and tokenizer, the weights (at a dtype, maybe quantized), an adapter.

Encoder-decoder configs load as ``AutoModelForSeq2SeqLM``, everything else as ``AutoModelForCausalLM``.
A PEFT adapter is applied on top (and merged when ``adapter.merge`` is set). bitsandbytes quantization runs
only on a CUDA GPU; elsewhere the model runs at full precision and a note in :class:`LoadInfo` says so.
Every failure is one line naming the model, the folder and the fix.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportgen.backends.transformers.runtime import short, version_at_least
from reportgen.backends.transformers.sources import label
from reportgen.errors import BackendError, MissingExtraError
from reportgen.study.config import AdapterConfig, ModelConfig


def load_error(model: ModelConfig, folder: Path, what: str, exc: BaseException) -> BackendError:
    return BackendError(
        f"{label(model)}: cannot load {what} from '{folder}' ({short(exc)}). "
        "Fix: check that the checkpoint is complete (re-save or re-download it)"
    )


def read_config_and_tokenizer(model: ModelConfig, folder: Path):
    from transformers import AutoConfig, AutoTokenizer

    trust = model.trust_remote_code
    if (folder / "config.json").is_file():  # the checks specs and validate make: file and key, not a traceback
        from reportgen.errors import ConfigError
        from reportgen.specs.validate import read_model_config

        try:
            read_model_config(folder / "config.json")
        except ConfigError as exc:
            raise BackendError(f"{label(model)}: {'; '.join(exc.problems)}") from None
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust)
    except Exception as exc:
        raise load_error(model, folder, "its config.json", exc) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
    except Exception as exc:
        raise load_error(model, folder, "its tokenizer", exc) from exc
    return config, tokenizer


@dataclass
class WeightPlan:
    """How the weights are loaded: ``from_pretrained`` keyword arguments and what they amount to."""

    kwargs: dict[str, Any]
    precision: str  # as reported: the dtype, or e.g. "4-bit nf4"
    quantized: bool  # bitsandbytes places the weights itself (no .to(device))
    notes: list[str] = field(default_factory=list)


def weight_plan(model: ModelConfig, dtype_name: str, cuda: bool) -> WeightPlan:
    """The dtype to load at, and bitsandbytes quantization where it can run (a CUDA GPU, the package)."""
    import torch
    import transformers

    dtype_key = "dtype" if version_at_least(transformers.__version__, (4, 56)) else "torch_dtype"
    plan = WeightPlan(
        {dtype_key: getattr(torch, dtype_name), "trust_remote_code": model.trust_remote_code},
        precision=dtype_name,
        quantized=False,
    )
    if dtype_name == "bfloat16" and not cuda:
        from reportgen.backends.transformers.cpu import native_bf16_flags

        native = native_bf16_flags()
        plan.notes.append(
            f"bfloat16 on the CPU with native {' and '.join(native)}"
            if native
            else "bfloat16 asked; this CPU has no native bfloat16 (avx512_bf16 / amx_bf16), so it is "
            "emulated and usually slower than float32"
        )
    q = model.quantization
    if q is None or not q.bits:
        return plan
    asked = f"{q.bits}-bit {q.bnb_4bit_quant_type}" if q.bits == 4 else "8-bit int8"
    if not (cuda and importlib.util.find_spec("bitsandbytes") is not None):
        reason = "no CUDA GPU here" if not cuda else "bitsandbytes is not installed"
        plan.notes.append(f"{asked} asked; {reason}, ran {dtype_name}")
        return plan
    from transformers import BitsAndBytesConfig

    settings = q.model_dump(exclude={"method"})
    settings["bnb_4bit_compute_dtype"] = getattr(torch, q.bnb_4bit_compute_dtype)
    if settings.get("llm_int8_skip_modules") is not None:
        settings["llm_int8_skip_modules"] = list(settings["llm_int8_skip_modules"])
    plan.kwargs["quantization_config"] = BitsAndBytesConfig(**settings)
    plan.kwargs["device_map"] = {"": 0}
    plan.precision = asked
    plan.quantized = True
    return plan


def load_weights(model: ModelConfig, folder: Path, is_seq2seq: bool, kwargs: dict[str, Any]):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    auto_class = AutoModelForSeq2SeqLM if is_seq2seq else AutoModelForCausalLM
    try:
        return auto_class.from_pretrained(folder, **kwargs)
    except Exception as exc:
        raise load_error(model, folder, "the weights", exc) from exc


def apply_adapter(model: ModelConfig, weights, adapter: AdapterConfig):
    """``weights`` with the PEFT adapter applied (merged into them when ``adapter.merge``)."""
    if adapter.path is None:
        raise BackendError(
            f"{label(model)}: the adapter has only a config ('{adapter.config}'), no weights. "
            "Fix: give adapter.path, the trained adapter folder"
        )
    path = Path(adapter.path).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise BackendError(
            f"{label(model)}: adapter folder '{path}' is missing or has no adapter_config.json. "
            "Fix: point adapter.path at a folder written by PEFT's save_pretrained"
        )
    if not any(path.glob("adapter_model.*")):
        raise BackendError(
            f"{label(model)}: adapter folder '{path}' has no adapter_model.safetensors. "
            "Fix: re-save the adapter with PEFT's save_pretrained"
        )
    try:
        from peft import PeftModel
    except ImportError:
        raise MissingExtraError("peft", "hf", "Loading a LoRA adapter") from None
    try:
        weights = PeftModel.from_pretrained(weights, str(path))
        if adapter.merge:
            weights = weights.merge_and_unload()
    except Exception as exc:
        raise BackendError(
            f"{label(model)}: cannot load the adapter from '{path}' ({short(exc)}). "
            "Fix: check that the adapter was trained for this base model and that its files are complete"
        ) from exc
    return weights


def place(weights, tokenizer, device, quantized: bool) -> None:
    """Move the weights to the device (bitsandbytes placed quantized ones), evaluation mode, a pad token."""
    if not quantized:
        weights.to(device)
    weights.eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
