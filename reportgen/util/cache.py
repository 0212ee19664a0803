"""A content-addressed file cache in the user cache folder (``hashing.cache_dir()``).

An entry is ``<cache>/<kind>/<key><suffix>``, where ``key`` is a digest of everything the value was
computed from, so an entry never goes stale: a changed input is a different key. The cache is an
optimisation only: an entry that cannot be read is a miss, one that cannot be written is skipped.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from pathlib import Path

from reportgen.errors import ReportgenError
from reportgen.util.atomic import atomic_write
from reportgen.util.hashing import cache_dir

__all__ = ["cache_path", "code_digest", "package_versions", "read_cached", "write_cached"]


def cache_path(kind: str, key: str, suffix: str = "") -> Path:
    return cache_dir() / kind / f"{key}{suffix}"


def read_cached(kind: str, key: str, suffix: str = "") -> bytes | None:
    """The entry's bytes, or ``None`` when there is none (or it cannot be read)."""
    try:
        return cache_path(kind, key, suffix).read_bytes()
    except OSError:
        return None


def write_cached(kind: str, key: str, data: bytes, suffix: str = "") -> None:
    """Store an entry atomically (readers never see half of one); a failure to write is ignored."""
    with contextlib.suppress(ReportgenError, OSError):
        atomic_write(cache_path(kind, key, suffix), data)


@functools.lru_cache(maxsize=None)
def code_digest(*files: str) -> str:
    """A digest of the source files that compute a cached value: an edited module makes new keys."""
    sha = hashlib.sha256()
    for name in files:
        sha.update(Path(name).name.encode() + b"\0" + Path(name).read_bytes() + b"\0")
    return sha.hexdigest()


def package_versions(*names: str) -> dict[str, str | None]:
    """The installed version of each package (None when absent): a cached value computed with these libraries
    is keyed on them, so another version of one is a new key."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
