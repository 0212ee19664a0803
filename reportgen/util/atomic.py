"""Every file of a report is written here: atomically, as one set, and only after everything has been rendered.

``write_files`` takes the whole report as ``{relative path: bytes}`` and switches it in as a set:

1. every file goes to a temporary file beside its target (``.NAME.<pid>.<random>.tmp``), flushed and fsync'd;
2. a commit journal (``.reportgen-commit.<pid>.json``) listing every temporary file and its target is
   written atomically: from here on the new set is decided;
3. each temporary file is ``os.replace``d over its target, then the journal is removed.

A failure (or Ctrl-C) before the journal exists removes the temporary files and leaves the previous
report untouched; after it, the renames are completed. A process killed outright (SIGKILL, power loss)
leaves either its temporary files (before the journal: the old set is intact) or a journal; the next
``write_files`` into that folder (or ``recover``) completes a journal whose writer is gone and removes
the temporary files of writers that are gone, so what stays is the complete old set or the complete new
one. Temporary names carry the writer's pid, so a concurrent writer's files are never touched.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from reportgen.errors import RenderError

__all__ = ["atomic_write", "recover", "write_files", "write_json"]

JOURNAL_GLOB = ".reportgen-commit.*.json"
_JOURNAL = re.compile(r"^\.reportgen-commit\.(\d+)\.json$")
_TEMP = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")  # .NAME.<pid>.<random>.tmp
_OLD_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # .NAME.<random>.tmp from before pids were in the name
_OLD_TEMP_AGE_S = 3600.0


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:  # pragma: no cover
        return False
    return True


def _temp_file(path: Path) -> str:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    return tmp


def _write_temp(path: Path, payload: bytes) -> str:
    """``payload`` in a fsync'd temporary file beside ``path`` (with the mode ``path`` has); its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_file(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(tmp, mode)
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _cannot_write(path: Path, exc: OSError) -> RenderError:
    return RenderError(f"{path}: cannot write: {exc.strerror or exc}. Fix: check the folder exists and is writable")


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, os.replace)."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        tmp = _write_temp(path, payload)
        try:
            os.replace(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise
        _fsync_dir(path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
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


def _roll_forward(root: Path, journal: Path) -> None:
    """Complete the renames a journal lists (those whose temporary file is still there), then drop it."""
    try:
        entries = json.loads(journal.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        entries = []  # a journal is written atomically: unreadable means not ours; nothing to complete
    folders = {root}
    for tmp_rel, target_rel in entries:
        tmp, target = root / tmp_rel, root / target_rel
        if root.resolve() not in target.resolve().parents or root.resolve() not in tmp.resolve().parents:
            continue
        if tmp.exists():
            os.replace(tmp, target)
            folders.add(target.parent)
    for folder in folders:
        _fsync_dir(folder)
    _unlink(journal)
    _fsync_dir(root)


def recover(root: str | Path, folders: list[Path] | None = None) -> None:
    """Finish what a killed writer left in ``root``: complete its journal, remove its temporary files.

    Only writers whose process is gone are touched. ``folders``: where to look for temporary files
    (default ``root`` and its direct subfolders)."""
    root = Path(root)
    if not root.is_dir():
        return
    for journal in sorted(root.glob(JOURNAL_GLOB)):
        match = _JOURNAL.match(journal.name)
        if match and not _pid_alive(int(match.group(1))):
            _roll_forward(root, journal)
    if folders is None:
        folders = [root, *(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())]
    now = time.time()
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.glob(".*.tmp"):
            match = _TEMP.match(entry.name)
            try:
                if match:
                    stale = not _pid_alive(int(match.group(1)))
                else:
                    stale = bool(_OLD_TEMP.match(entry.name)) and now - entry.stat().st_mtime > _OLD_TEMP_AGE_S
                if stale:
                    entry.unlink()
            except OSError:
                continue


def write_files(out_dir: str | Path, files: Mapping[str, bytes | str]) -> list[Path]:
    """Write every rendered file under ``out_dir`` (relative paths, ``/``-separated) as one set; return the paths."""
    root = Path(out_dir)
    targets: list[tuple[Path, bytes]] = []
    for relative, data in files.items():
        target = (root / relative).resolve()
        if root.resolve() not in target.parents:
            raise RenderError(f"refusing to write {relative!r} outside the report folder {root}")
        targets.append((root / relative, data.encode("utf-8") if isinstance(data, str) else data))
    try:
        root.mkdir(parents=True, exist_ok=True)
        recover(root, folders=sorted({root, *(path.parent for path, _ in targets)}))
    except OSError as exc:
        raise _cannot_write(root, exc) from None

    written: list[tuple[str, Path]] = []
    try:
        for path, payload in targets:
            written.append((_write_temp(path, payload), path))
    except BaseException as exc:
        for tmp, _ in written:
            _unlink(tmp)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise
    journal = root / f".reportgen-commit.{os.getpid()}.json"
    entries = [[os.path.relpath(tmp, root), os.path.relpath(path, root)] for tmp, path in written]
    try:
        atomic_write(journal, json.dumps({"files": entries}))
    except BaseException:
        for tmp, _ in written:
            _unlink(tmp)
        raise
    # The new set is decided: complete it even if interrupted now (Ctrl-C is re-raised afterwards).
    try:
        for tmp, path in written:
            os.replace(tmp, path)
    except BaseException:
        _roll_forward(root, journal)
        raise
    for folder in {root, *(path.parent for _, path in written)}:
        _fsync_dir(folder)
    _unlink(journal)
    _fsync_dir(root)
    return [path for _, path in written]
