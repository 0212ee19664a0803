"""Spec facts remembered by the content of the files they come from.

Counting parameters builds the architecture on the meta device, which imports torch and transformers
(seconds); reading a GGUF file's metadata parses its whole vocabulary. Both results depend only on the
model's files, so a spec is stored in the user cache (``<cache>/specs/<key>.json``) under a digest of:
the config.json and adapter_config.json bytes, the GGUF file's content digest, the quantization
settings that change the 4-bit estimate, the versions of the packages that count (transformers, torch,
gguf) and the code of this package. A re-render with nothing changed imports neither torch nor
transformers; any change is a new key, so an entry is never stale.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportgen.specs.extract import AdapterSpec, ModelSpec
from reportgen.util.cache import code_digest, package_versions, read_cached, write_cached
from reportgen.util.hashing import file_digest, hash_json

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.study.config import ModelConfig

__all__ = ["KIND", "load_spec", "spec_from_dict", "spec_key", "store_spec"]

KIND = "specs"
_PACKAGES = ("transformers", "torch", "gguf")


def _file_sha(path: Path | None) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path is not None else None


def spec_key(model: ModelConfig, files: Any) -> str:
    """The digest of everything a model's spec is computed from (``files``: its ``specs.study.ModelFiles``)."""
    here = Path(__file__).parent
    quant = model.quantization
    return hash_json(
        {
            "config": _file_sha(files.config_path) if files.config is not None else None,
            "adapter": _file_sha(files.adapter_config_path) if files.adapter_config is not None else None,
            "gguf": file_digest(files.gguf_path) if files.gguf_path is not None and files.config is None else None,
            "double_quant": bool(quant is not None and quant.load_in_4bit and quant.bnb_4bit_use_double_quant),
            "packages": package_versions(*_PACKAGES),
            "code": code_digest(str(here / "extract.py"), str(here / "study.py"), __file__),
        }
    )


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    """The inverse of ``ModelSpec.as_dict``."""
    data = dict(data)
    adapter = data.pop("adapter", None)
    if adapter is not None:
        adapter = AdapterSpec(**{**adapter, "target_modules": tuple(adapter["target_modules"])})
    return ModelSpec(**{**data, "adapter": adapter, "notes": tuple(data.get("notes") or ())})


def load_spec(key: str) -> ModelSpec | None:
    raw = read_cached(KIND, key, ".json")
    if raw is None:
        return None
    try:
        return spec_from_dict(json.loads(raw))
    except (ValueError, TypeError, KeyError):  # an entry from an older layout: recompute
        return None


def store_spec(key: str, spec: ModelSpec) -> None:
    write_cached(KIND, key, json.dumps(spec.as_dict()).encode(), ".json")
