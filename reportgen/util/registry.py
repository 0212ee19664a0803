"""One registry class for every extension point: backends, metrics, output formats.

Entries are either objects or lazy ``"module:attribute"`` strings, imported on first lookup, so that
registering a backend does not import torch. An unknown name is a ``KeyError`` subclass carrying a
"did you mean" hint and the known names; callers turn it into the error type of their layer.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry", "UnknownName"]


class UnknownName(KeyError):
    """A lookup of a name nobody registered; ``str()`` is the one-line explanation."""

    def __init__(self, kind: str, name: str, known: list[str]):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        self.message = f"unknown {kind} '{name}'.{hint} Known {kind}s: {', '.join(sorted(known))}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class Registry(Generic[T]):
    """Names → objects, in registration order; ``kind`` names the extension point in errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, entry: T | str) -> None:
        """Add ``entry`` (an object, or a lazy ``"module:attribute"`` path) under ``name``, once."""
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        try:
            entry = self._entries[name]
        except KeyError:
            raise UnknownName(self.kind, name, list(self._entries)) from None
        if isinstance(entry, str) and ":" in entry:
            module_name, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module_name), attribute)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def find(self, name: str) -> T | None:
        """The entry under ``name``, or None when nothing is registered there."""
        return self.get(name) if name in self._entries else None

    def values(self) -> list[T]:
        return [self.get(name) for name in self._entries]

    def items(self) -> list[tuple[str, T]]:
        return [(name, self.get(name)) for name in self._entries]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
