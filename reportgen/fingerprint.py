"""Content digests of weight files and folders, with a (size, mtime) fast path.

A model's fingerprint must change when its weights change (a retrained checkpoint keeps its file
names), so it hashes content. Hashing a few hundred MB costs seconds, so a digest is remembered in
a small JSON cache keyed by (absolute path, size, mtime_ns) and recomputed only when those change.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json", ".model", ".txt", ".jinja")


def cache_dir() -> Path:
    return Path(os.environ.get("REPORTGEN_CACHE") or Path.home() / ".cache" / "reportgen")


def _digest_cache_file() -> Path:
    return cache_dir() / "digests.json"


def _read_cache() -> dict[str, Any]:
    try:
        return json.loads(_digest_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict[str, Any]) -> None:
    target = _digest_cache_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache, sort_keys=True))
    os.replace(tmp, target)


def file_digest(path: str | Path) -> str:
    """sha256 of a file's content (remembered while its size and mtime do not change)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = str(path)
    stamp = [stat.st_size, stat.st_mtime_ns]
    with _LOCK:
        cache = _read_cache()
        hit = cache.get(key)
        if hit and hit.get("stamp") == stamp:
            return hit["sha256"]
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    digest = sha.hexdigest()
    with _LOCK:
        cache = _read_cache()
        cache[key] = {"stamp": stamp, "sha256": digest}
        _write_cache(cache)
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
