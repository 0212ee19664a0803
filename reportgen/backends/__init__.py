"""Backends, registered once by name and imported lazily from "module:Class" entries."""

from __future__ import annotations

from reportgen.backends.base import Backend
from reportgen.errors import ConfigError
from reportgen.study.config import ModelConfig
from reportgen.util.registry import Registry, UnknownName

BACKENDS: Registry[type[Backend]] = Registry("backend")
BACKENDS.register("transformers", "reportgen.backends.transformers.backend:TransformersBackend")
BACKENDS.register("llamacpp", "reportgen.backends.llamacpp:LlamaCppBackend")
BACKENDS.register("http", "reportgen.backends.http.backend:HTTPBackend")


def backend_class(name: str) -> type[Backend]:
    try:
        return BACKENDS.get(name)
    except UnknownName as exc:
        raise ConfigError(str(exc)) from None


def create_backend(model: ModelConfig, config_index: int | None = None) -> Backend:
    """The backend for a model; ``config_index`` (its place in the study) lets errors name the key."""
    name = model.effective_backend
    if name is None:
        raise ConfigError(f"model '{model.id}' has no source: it is spec-only and cannot be run")
    backend = backend_class(name)(model)
    if hasattr(backend, "config_index"):
        backend.config_index = config_index
    return backend
