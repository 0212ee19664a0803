"""Convert a GGUF checkpoint once into a cached Hugging Face folder (safetensors + tokenizer).

transformers can load a GGUF file directly (``from_pretrained(dir, gguf_file=name)``), but it does so by
dequantizing every tensor, which takes seconds to tens of seconds. A study loads the same model many times,
so :func:`converted_model_dir` does that work once and keeps the result under
``<cache>/gguf/<sha256[:16]>/``, where a later ``from_pretrained(folder)`` takes well under a second.

The folder appears atomically: it is written under a temporary name beside its final place and renamed
into place only when complete, so a killed or concurrent conversion never leaves a half-written folder
that looks finished. ``reportgen-conversion.json`` inside it records what was converted and how.

Heavy packages (torch, transformers, gguf) are imported only inside :func:`converted_model_dir`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

from reportgen.errors import BackendError, MissingExtraError
from reportgen.util.atomic import write_json
from reportgen.util.hashing import cache_dir, file_digest

CONVERSION_INFO = "reportgen-conversion.json"
_TMP_PREFIX = ".tmp-"


# Digests and the cache folder live in reportgen.util.hashing (one implementation, one digest cache).
default_cache_dir = cache_dir


# ------------------------------------------------------------------------------------------ conversion


def _is_complete(folder: Path, digest: str) -> bool:
    """A folder counts as converted only with its info file naming this digest and its weights present."""
    try:
        info = json.loads((folder / CONVERSION_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(info, dict)
        and info.get("digest") == digest
        and (folder / "config.json").is_file()
        and any(folder.glob("*.safetensors"))
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _remove_stale_temporaries(parent: Path, key: str) -> None:
    """Remove temp folders of conversions of ``key`` killed on this host (their process is gone)."""
    host = socket.gethostname()
    for candidate in parent.glob(f"{_TMP_PREFIX}{key}-*"):
        parts = candidate.name[len(_TMP_PREFIX) :].split("-")
        # name: .tmp-<key>-<host>-<pid>-<rand>; the host may itself contain dashes
        try:
            pid = int(parts[-2])
        except (ValueError, IndexError):
            continue
        cand_host = "-".join(parts[1:-2])
        if cand_host == host and not _pid_alive(pid):
            shutil.rmtree(candidate, ignore_errors=True)


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive advisory lock (POSIX ``flock``), released on exit or when the process dies.

    It only saves a concurrent caller from repeating the work; correctness rests on the atomic rename.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _import_transformers():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MissingExtraError("torch", "hf", "Converting a GGUF model") from None
    try:
        import transformers
    except ImportError:
        raise MissingExtraError("transformers", "hf", "Converting a GGUF model") from None
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise MissingExtraError("gguf", "hf", "Converting a GGUF model") from None
    return transformers


def _load_dequantized(gguf_path: Path):
    """Model and tokenizer from the GGUF file, as a plain dense model that save_pretrained accepts."""
    transformers = _import_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    kwargs: dict = {}
    gguf_config = getattr(transformers, "GgufConfig", None)
    if gguf_config is not None:
        # transformers 5.x may keep GGUF weights packed in blocks (not serializable); ask for dense weights.
        kwargs["quantization_config"] = gguf_config(dequantize=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, **kwargs)
    except Exception as exc:  # corrupt file, unsupported architecture, ...
        raise BackendError(
            f"{gguf_path}: transformers could not load this GGUF file ({type(exc).__name__}: {exc}). "
            "Fix: check that the file is complete and that its architecture is supported by transformers "
            f"{transformers.__version__}"
        ) from exc

    packed = sorted({type(m).__name__ for m in model.modules() if "gguf" in type(m).__name__.lower()})
    if packed:
        raise BackendError(
            f"{gguf_path}: transformers kept GGUF-packed layers ({', '.join(packed)}), which cannot be "
            "saved as safetensors. Fix: use a transformers version that can dequantize this file"
        )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)  # weights are dense: drop the GGUF marker
    elif hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def _convert_into(gguf_path: Path, digest: str, target: Path) -> None:
    started = time.perf_counter()
    model, tokenizer = _load_dequantized(gguf_path)
    import torch
    import transformers

    max_positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(max_positions, int) and max_positions > 0:
        tokenizer.model_max_length = max_positions  # GGUF tokenizers come without one (1e30)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)

    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()})
    try:
        from importlib.metadata import version

        gguf_version = version("gguf")
    except Exception:  # pragma: no cover - metadata missing
        gguf_version = None
    info = {
        "source_file": gguf_path.name,
        "source_path": str(gguf_path),
        "source_size": gguf_path.stat().st_size,
        "digest": digest,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "gguf_version": gguf_version,
        "dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
        "architecture": (getattr(model.config, "architectures", None) or [type(model).__name__])[0],
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "has_chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "seconds": round(time.perf_counter() - started, 3),
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # written last: its presence (with the digest) is what marks the folder complete
    write_json(target / CONVERSION_INFO, info)


def converted_model_dir(gguf_path: Path, cache_dir: Path | None = None) -> Path:
    """The cached Hugging Face folder converted from ``gguf_path``, converting it on first use.

    The folder ``<cache>/gguf/<sha256[:16]>/`` holds ``config.json``, ``generation_config.json``,
    ``model.safetensors`` (the dequantized weights, in the dtype the conversion gives: float32 for
    quantized files), the tokenizer files including the chat template, and ``reportgen-conversion.json``.
    Load it with ``AutoModelForCausalLM.from_pretrained(folder)`` / ``AutoTokenizer.from_pretrained(folder)``.
    """
    gguf_path = Path(gguf_path).expanduser()
    if not gguf_path.is_file():
        raise BackendError(f"{gguf_path}: GGUF file not found. Fix: check the model's path in the study config")
    gguf_path = gguf_path.resolve()
    cache_dir = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).expanduser()
    digest = file_digest(gguf_path, cache_dir=cache_dir)
    key = digest[:16]
    parent = (cache_dir / "gguf").resolve()
    final = parent / key
    if _is_complete(final, digest):
        return final

    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackendError(
            f"{parent}: cannot create the conversion cache ({exc.strerror or exc}). Fix: set REPORTGEN_CACHE to a writable folder"
        ) from None

    with _lock(parent / f"{key}.lock"):
        if _is_complete(final, digest):  # another process finished it while we waited
            return final
        _remove_stale_temporaries(parent, key)
        if final.exists():  # not complete (damaged by hand?): move it out of the way, then redo
            trash = parent / f"{_TMP_PREFIX}{key}-{socket.gethostname()}-{os.getpid()}-old{uuid.uuid4().hex[:8]}"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)

        tmp = parent / f"{_TMP_PREFIX}{key}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _convert_into(gguf_path, digest, tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                # a process without the lock (other host, no flock) won the race: keep its folder
                if not _is_complete(final, digest):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
