"""Each resampled statistic computed once: intervals and tests remembered by the values they were computed from.

A bootstrap interval of a mean depends only on its values, the number of resamples, the seed and the level; a
sign-flip p-value only on its differences, the number of resamples and the seed (the draws depend on nothing
else: ``stats.streams``). So each is remembered under a digest of exactly those, and of this code's version
(``version()``: the statistics modules' source and numpy's version). After one model was retrained, the
intervals of the other models and the tests between them are read back, not resampled again. The book is the
process's (``SHARED_STATS``); ``reportgen.scorebook`` fills it from the study's store before the tables are
computed and saves what was added afterwards (store table ``stat_values``).

A value read back equals the value computed afresh: bit for bit below ``inference.COUNTED_FROM`` items;
from there on within 1e-12, as the resampled means of a matrix product summed in another order are
(``docs/metrics.md``, "Random streams"). The book holds floats only (float64 bytes in the store: nothing
executable is read back).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from reportgen.util.cache import code_digest

__all__ = ["SHARED_STATS", "StatBook", "stat_key", "version"]


@lru_cache(maxsize=1)
def version() -> str:
    """The statistics code's version: its modules' source (``util.cache.code_digest``) and numpy's version."""
    here = Path(__file__).parent
    files = [str(here / name) for name in ("inference.py", "bootstrap.py", "streams.py", "memo.py")]
    return f"{code_digest(*files)[:16]}-numpy{np.__version__}"


def stat_key(kind: str, settings: tuple[float | int | str, ...], values: np.ndarray) -> str:
    """The key of a statistic of ``kind`` with ``settings`` over ``values`` (float64, in order)."""
    sha = hashlib.sha256(f"{kind}|{settings!r}|{version()}|{values.size}".encode())
    sha.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return sha.hexdigest()[:32]


@dataclass
class StatBook:
    """key (``stat_key``) → the statistic's values (a list of floats); ``added``: those computed since the book was
    filled, what the caller may save."""

    values: dict[str, list[float]] = field(default_factory=dict)
    added: dict[str, list[float]] = field(default_factory=dict)

    def get(self, key: str) -> list[float] | None:
        return self.values.get(key)

    def put(self, key: str, value: list[float]) -> None:
        self.values[key] = self.added[key] = value

    def fill(self, known: dict[str, list[float]]) -> None:
        self.values.update(known)

    def take_added(self) -> dict[str, list[float]]:
        added, self.added = self.added, {}
        return added


#: the process's book (filled from the store by reportgen.scorebook)
SHARED_STATS = StatBook()
