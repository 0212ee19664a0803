"""Backends registered by name and loaded lazily from "module:Class" strings."""

from __future__ import annotations

import difflib
import importlib

from reportgen.backends.base import Backend
from reportgen.study.config import ModelConfig
from reportgen.errors import ConfigError

REGISTRY: dict[str, str] = {
    "transformers": "reportgen.backends.transformers.backend:TransformersBackend",
    "llamacpp": "reportgen.backends.llamacpp:LlamaCppBackend",
    "http": "reportgen.backends.http:HTTPBackend",
}


def backend_class(name: str) -> type[Backend]:
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown backend '{name}'.{hint} Known backends: {', '.join(sorted(REGISTRY))}")
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_backend(model: ModelConfig, config_index: int | None = None) -> Backend:
    """The backend for a model; ``config_index`` (its place in the study) lets errors name the key."""
    name = model.effective_backend
    if name is None:
        raise ConfigError(f"model '{model.id}' has no source: it is spec-only and cannot be run")
    backend = backend_class(name)(model)
    if hasattr(backend, "config_index"):
        backend.config_index = config_index
    return backend
