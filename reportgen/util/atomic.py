"""Every file of a report is written here: atomically, and only after everything has been rendered.

``write_files`` takes the whole report as ``{relative path: bytes}``. Each file goes to a temporary
file in the same folder, is flushed and fsync'd, then ``os.replace``d over the old one, so a reader
(or a crash) never sees half a file, and a render that fails before ``write_files`` leaves the
previous report intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from reportgen.errors import RenderError

__all__ = ["atomic_write", "write_files", "write_json"]


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, os.replace)."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)
    except OSError as exc:
        raise RenderError(f"{path}: cannot write: {exc.strerror or exc}. Fix: check the folder exists and is writable") from None
    return path


def write_json(path: str | Path, data: object) -> Path:
    """``data`` as indented, key-sorted JSON, written atomically."""
    return atomic_write(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_files(out_dir: str | Path, files: Mapping[str, bytes | str]) -> list[Path]:
    """Write every rendered file under ``out_dir`` (relative paths, ``/``-separated); return the paths."""
    root = Path(out_dir)
    written = []
    for relative, data in files.items():
        target = (root / relative).resolve()
        if root.resolve() not in target.parents:
            raise RenderError(f"refusing to write {relative!r} outside the report folder {root}")
        written.append(atomic_write(root / relative, data))
    return written
