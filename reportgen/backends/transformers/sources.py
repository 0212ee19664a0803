"""Where a model's weights are, and what identifies them, decided without loading anything.

A source resolves to a ``save_pretrained`` folder: a local path as given, a hub repo id through the local
Hugging Face cache only (never downloaded), a GGUF file through
:func:`reportgen.backends.transformers.gguf.converted_model_dir` (dequantized once into a cached
safetensors folder). The digests of the weights and the adapter are what the store keys results on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
from pathlib import Path

from reportgen.backends.transformers.runtime import cuda_available
from reportgen.errors import BackendError, ConfigError
from reportgen.study.config import AdapterConfig, GGUFSource, HubSource, LocalSource, ModelConfig, download_hint
from reportgen.util.hashing import file_digest, folder_digest

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def label(model: ModelConfig) -> str:
    """How error messages name the model."""
    return f"model {model.id}"


def runnable_source(model: ModelConfig) -> LocalSource | HubSource | GGUFSource:
    source = model.source
    if not isinstance(source, (LocalSource, HubSource, GGUFSource)):
        kind = getattr(source, "type", None)
        raise BackendError(
            f"{label(model)}: the transformers backend cannot run a source of type '{kind}'. "
            "Fix: give a local, hub or gguf source, or choose the matching backend"
        )
    return source


def hub_snapshot(model: ModelConfig, source: HubSource) -> Path:
    from huggingface_hub import constants, snapshot_download

    try:
        folder = snapshot_download(source.repo, revision=source.revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - LocalEntryNotFoundError and friends: not in the cache
        revision = f" (revision {source.revision})" if source.revision else ""
        raise BackendError(
            f"{label(model)}: '{source.repo}'{revision} is not in the local Hugging Face cache "
            f"(HF_HOME={constants.HF_HOME}). Fix: {download_hint(source.repo, source.revision)} on a machine with network, "
            "or use a local path"
        ) from None
    return Path(folder)


def gguf_path(model: ModelConfig, source: GGUFSource) -> Path:
    try:
        path = Path(source.resolve()).expanduser()
    except ConfigError as exc:
        raise BackendError(f"{label(model)}: {exc.format_message()}") from None
    if not path.is_file():
        raise BackendError(f"{label(model)}: GGUF file '{path}' not found. Fix: check the model's source path")
    return path


def local_path(model: ModelConfig, source: LocalSource) -> Path:
    path = Path(source.path).expanduser()
    if not path.is_dir():
        raise BackendError(f"{label(model)}: model folder '{path}' not found. Fix: point source.path at a save_pretrained folder")
    return path


def resolve_dir(model: ModelConfig) -> Path:
    """The save_pretrained folder to load (converting a GGUF file once if needed)."""
    source = runnable_source(model)
    if isinstance(source, LocalSource):
        return local_path(model, source)
    if isinstance(source, HubSource):
        return hub_snapshot(model, source)
    from reportgen.backends.transformers.gguf import converted_model_dir

    return Path(converted_model_dir(gguf_path(model, source)))


def check_folder(model: ModelConfig, folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise BackendError(
            f"{label(model)}: '{folder}' has no config.json. Fix: point the source at a complete save_pretrained folder"
        )
    weights = [p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES]
    if not weights:
        raise BackendError(
            f"{label(model)}: '{folder}' has no weight files (*.safetensors, *.bin). "
            "Fix: point the source at a complete save_pretrained folder"
        )


# ------------------------------------------------------------------------------------- fingerprint parts


def weights_digest(model: ModelConfig) -> tuple[str, Path | None]:
    """The digest of the weights as stored, and the folder they are in (None for a GGUF file)."""
    source = runnable_source(model)
    if isinstance(source, LocalSource):
        folder = local_path(model, source)
        return folder_digest(folder), folder
    if isinstance(source, HubSource):
        folder = hub_snapshot(model, source)
        return folder_digest(folder), folder
    return file_digest(gguf_path(model, source)), None


def adapter_digest(adapter: AdapterConfig | None) -> str | None:
    if adapter is None:
        return None
    if adapter.path is not None:
        adapter_path = Path(adapter.path).expanduser()
        return folder_digest(adapter_path) if adapter_path.is_dir() else f"missing:{adapter_path}"
    if adapter.config is not None and Path(adapter.config).is_file():
        return "config-only:" + file_digest(adapter.config)
    return None


def quantization_applies(model: ModelConfig) -> bool:
    q = model.quantization
    return bool(q and q.bits) and cuda_available() and importlib.util.find_spec("bitsandbytes") is not None


def effective_dtype(model: ModelConfig, folder: Path | None = None) -> str:
    """The dtype the weights run at, decided without loading them."""
    if model.dtype != "auto":
        return model.dtype
    if isinstance(model.source, GGUFSource) or not cuda_available():
        return "float32"  # CPU: 16-bit matmuls are slow there; GGUF: dequantized weights are float32
    stored = None
    if folder is not None:
        with contextlib.suppress(OSError, ValueError):
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            stored = config.get("dtype") or config.get("torch_dtype")
            if stored is None and isinstance(config.get("text_config"), dict):
                stored = config["text_config"].get("dtype") or config["text_config"].get("torch_dtype")
    return stored if stored in ("float32", "float16", "bfloat16") else "float32"
