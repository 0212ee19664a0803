"""The random draws of the resampling statistics, drawn once per size and kept.

The Monte Carlo sign-flip test draws sign patterns and the bootstraps draw resamples, both from
``numpy.random.default_rng(seed)`` as scipy draws them (``inference``). Those draws depend only on the number
of items, the number of resamples and the seed, and a render uses the same ones many times: every pair of
models and every metric of a 10,000-prompt study resample 10,000 items. So each stream is drawn once per
process (``functools.lru_cache``) and, where the caller names a folder (``keep_in``: ``report.inputs`` names
``<cache>/streams``), kept there between processes as ``.npy`` arrays (read without pickle), so a render
after one model was retrained draws nothing a render drew before. A kept stream is the stream drawn afresh,
bit for bit (tests/test_vectorised_stats.py); a file that cannot be read is drawn again.

- sign patterns: ``rng.integers(0, 2, (rows, n))`` chunk by chunk, packed eight to a byte (``packbits``);
- draw counts: ``rng.integers(0, n, (rows, n))`` chunk by chunk, each row's count of every item (16-bit).

Streams larger than ``KEPT_BYTES`` are neither remembered nor kept: the caller draws them chunk by chunk.
"""

from __future__ import annotations

import contextlib
import io
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from reportgen.errors import ReportgenError
from reportgen.util.atomic import atomic_write

__all__ = ["KEPT_BYTES", "counted", "draw_counts", "keep_in", "sign_patterns"]

#: the largest stream remembered in memory and kept on disk
KEPT_BYTES = 64 * 1024 * 1024

_folder: Path | None = None


def keep_in(folder: Path | None) -> None:
    """Keep the streams drawn from now on in ``folder`` and read them back from it (None: this process only)."""
    global _folder
    _folder = folder


def counted(drawn: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` items was drawn in each row of ``drawn``."""
    rows = drawn.shape[0]
    drawn = drawn + np.arange(rows)[:, None] * n  # one bincount counts every row's draws
    return np.bincount(drawn.ravel(), minlength=rows * n).reshape(rows, n)


def _chunk_rows(n: int, chunk_cells: int) -> int:
    return max(1, chunk_cells // n)


@lru_cache(maxsize=4)
def sign_patterns(n: int, n_resamples: int, seed: int, chunk_cells: int) -> tuple[np.ndarray, ...]:
    """The sign patterns a Monte Carlo sign-flip test of ``n`` differences draws, chunk by chunk, packed."""

    def draw() -> np.ndarray:
        rng = np.random.default_rng(seed)
        rows = _chunk_rows(n, chunk_cells)
        return np.concatenate(
            [
                np.packbits(rng.integers(0, 2, (min(n_resamples, start + rows) - start, n)).astype(np.uint8), axis=1)
                for start in range(0, n_resamples, rows)
            ]
        )

    rows = _chunk_rows(n, chunk_cells)  # the chunks are part of the stream (each call's draws start afresh)
    whole = _kept(f"signs-n{n}-b{n_resamples}-s{seed}-r{rows}", (n_resamples, (n + 7) // 8), np.dtype(np.uint8), draw)
    return _chunks(whole, rows)


@lru_cache(maxsize=2)
def draw_counts(n: int, n_resamples: int, seed: int, chunk_cells: int) -> tuple[np.ndarray, ...]:
    """How often each of ``n`` items is drawn in each of ``n_resamples`` bootstrap resamples (16-bit: the caller
    sends only ``n`` < 65,536 here), chunk by chunk."""

    def draw() -> np.ndarray:
        rng = np.random.default_rng(seed)
        rows = _chunk_rows(n, chunk_cells)
        return np.concatenate(
            [
                counted(rng.integers(0, n, (min(n_resamples, start + rows) - start, n)), n).astype(np.uint16)
                for start in range(0, n_resamples, rows)
            ]
        )

    rows = _chunk_rows(n, chunk_cells)
    whole = _kept(f"counts-n{n}-b{n_resamples}-s{seed}-r{rows}", (n_resamples, n), np.dtype(np.uint16), draw)
    return _chunks(whole, rows)


def _chunks(whole: np.ndarray, rows: int) -> tuple[np.ndarray, ...]:
    return tuple(whole[start : start + rows] for start in range(0, whole.shape[0], rows))


def _kept(name: str, shape: tuple[int, int], dtype: np.dtype, draw: Callable[[], np.ndarray]) -> np.ndarray:
    """The stream from the folder when it holds it (the shape and type checked), else drawn and kept there."""
    path = _folder / f"{name}-numpy{np.__version__}.npy" if _folder is not None else None
    if path is not None:
        with contextlib.suppress(OSError, ValueError):
            found: np.ndarray = np.load(path, allow_pickle=False)
            if found.shape == shape and found.dtype == dtype:
                return found
    whole = draw()
    if path is not None and whole.nbytes <= KEPT_BYTES:
        buffer = io.BytesIO()
        np.save(buffer, whole, allow_pickle=False)
        with contextlib.suppress(OSError, ReportgenError):  # a stream not kept is drawn again next time
            atomic_write(path, buffer.getvalue())
    return whole
