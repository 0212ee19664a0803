"""Content digests of weight files and folders, with a (size, mtime) fast path.

A model's fingerprint must change when its weights change (a retrained checkpoint keeps its file
names), so it hashes content. Hashing a few hundred MB costs seconds, so a digest is remembered in
a small JSON cache (``<cache>/digests.json``) keyed by (absolute path, size, mtime_ns) and recomputed
only when those change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from reportgen.errors import BackendError, ReportgenError
from reportgen.util.atomic import write_json

DIGEST_CACHE = "digests.json"
_DIGEST_CACHE_MAX_ENTRIES = 2000
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json", ".model", ".txt", ".jinja")


def cache_dir() -> Path:
    """``$REPORTGEN_CACHE`` if set (and not empty), else ``~/.cache/reportgen``."""
    env = os.environ.get("REPORTGEN_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "reportgen"


def _read_digest_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def file_digest(path: str | Path, cache_dir: Path | None = None) -> str:
    """The sha256 (hex) of a file's content.

    A small JSON sidecar (``<cache>/digests.json``) remembers the digest of each file by absolute path,
    size and ``mtime_ns``, so asking again about an unchanged 100 MB file costs one ``stat``. Any change
    in size or modification time makes it hash again. The sidecar is best-effort: when it cannot be read
    or written the digest is simply computed. Its entries (``{"stamp": [size, mtime_ns], "sha256": ...}``)
    """
    path = Path(path)
    try:
        resolved = path.resolve(strict=True)
        stat = resolved.stat()
    except OSError as exc:
        raise BackendError(f"{path}: cannot read file ({exc.strerror or exc}). Fix: check the path") from None
    if not resolved.is_file():
        raise BackendError(f"{path}: not a regular file. Fix: give the path of the file itself")

    sidecar = (Path(cache_dir) if cache_dir is not None else _default_cache_dir()) / DIGEST_CACHE
    key = str(resolved)
    stamp = [stat.st_size, stat.st_mtime_ns]
    cached = _read_digest_cache(sidecar)
    entry = cached.get(key)
    if (
        isinstance(entry, dict)
        and entry.get("stamp") == stamp
        and isinstance(entry.get("sha256"), str)
        and len(entry["sha256"]) == 64
    ):
        return entry["sha256"]

    with open(resolved, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()

    # Re-read just before writing so concurrent writers lose as little as possible; the file is
    # replaced atomically, so a reader never sees it half-written.
    cached = _read_digest_cache(sidecar)
    cached.pop(key, None)
    if len(cached) >= _DIGEST_CACHE_MAX_ENTRIES:  # keep the newest entries (dicts keep insertion order)
        cached = dict(list(cached.items())[-(_DIGEST_CACHE_MAX_ENTRIES - 1) :])
    cached[key] = {"stamp": stamp, "sha256": digest}
    with contextlib.suppress(ReportgenError):  # the cache is an optimisation: an unwritable one is no error
        write_json(sidecar, cached)
    return digest


def folder_digest(folder: str | Path, suffixes: tuple[str, ...] = WEIGHT_SUFFIXES) -> str:
    """A digest over the content of every relevant file in a folder (recursively), by relative name."""
    folder = Path(folder)
    sha = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in suffixes):
        relative = file.relative_to(folder).as_posix()
        if relative.startswith(".") or "/." in relative:
            continue
        sha.update(relative.encode() + b"\0" + file_digest(file).encode() + b"\n")
    return sha.hexdigest()


def hash_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


_default_cache_dir = cache_dir  # file_digest's parameter of the same name shadows it
