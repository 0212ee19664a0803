"""Each answer scored once: per-answer metric values, keyed by what they are computed from, scored in parallel.

A per-prompt metric's value depends on the answer (its text, finish reason and token count), on the
references for a reference metric, and on the metric's definition. ``content_keys`` digests the first
two; ``version_key`` names the third: the metric's name, a digest of the module that defines every
metric (``stats/metrics.py``: an edit there changes every key, so a stored value is never stale) and the
versions of the libraries its value comes from (``Metric.libraries``: sacrebleu, rouge-score, nltk).

An answer's values are kept as one vector per metric kind: every text metric's value under the answer's
key, every reference metric's under the answer-and-references key, in the order ``layout`` gives (whose
key digests the version keys of the kind's metrics: a new metric or a new version re-scores the kind).
A ``ScoreBook`` holds the vectors known so far. ``score_columns`` looks them up and computes only the
missing ones, once per distinct key, across ``workers`` processes when there are
many (the metric libraries are pure Python and hold the GIL, so threads would not help). A worker
computes exactly what the parent would: the same functions on the same inputs; a test checks parallel
and serial scoring agree value for value. ``reportgen.scorebook`` fills the process's book from the
study's store and saves what was added (``run`` after storing answers, a render before its tables), so a
render scores only answers nothing scored before: a retrained model costs the scoring of its own new answers.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reportgen.stats.metrics import PER_PROMPT_KINDS, Metric, get_metric, metrics_of_kind

__all__ = ["ScoreBook", "SHARED_BOOK", "content_keys", "layout", "score_columns", "scoring_workers", "version_key"]

#: below this many missing values the pool's start-up costs more than it saves
PARALLEL_MIN_VALUES = 4000
#: rows per task sent to a worker
CHUNK_ROWS = 500


@lru_cache(maxsize=None)
def _definitions_digest() -> str:
    return hashlib.sha256((Path(__file__).parent / "metrics.py").read_bytes()).hexdigest()[:16]


@lru_cache(maxsize=None)
def version_key(name: str) -> str:
    """``rouge_l@<digest of stats/metrics.py>;rouge-score=0.1.2;nltk=3.10.4``: what a value of metric ``name``
    is computed with."""
    from reportgen.util.cache import package_versions

    libraries = ";".join(f"{lib}={version}" for lib, version in package_versions(*get_metric(name).libraries).items())
    return f"{name}@{_definitions_digest()}" + (f";{libraries}" if libraries else "")


@lru_cache(maxsize=None)
def layout(kind: str) -> tuple[str, tuple[str, ...]]:
    """(layout key, metric names): the per-prompt metrics of ``kind`` ("reference" or "text") in registry
    order, which one stored vector of an answer's values holds, and a digest of their version keys."""
    names = tuple(m.name for m in metrics_of_kind(kind))
    digest = hashlib.sha256("|".join(version_key(n) for n in names).encode()).hexdigest()[:24]
    return f"{kind}@{digest}", names


_PART_END = "\x00\x1f"


def _digest(*parts: str) -> str:
    """sha256 of the parts, each followed by NUL + US, as one string (one hash call per key)."""
    joined = _PART_END.join(parts) + _PART_END
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def content_keys(output: str, references: Sequence[str], finish_reason: str | None, output_tokens: int | None) -> tuple[str, str]:
    """(answer key, answer-and-references key): what a text metric and a reference metric read."""
    answer = _digest(output, str(finish_reason), str(output_tokens))
    return answer, _digest(answer, *references)


@dataclass
class ScoreBook:
    """Per-answer metric values: (content key, layout key) → the vector of that layout's metric values
    (``layout``); ``added`` holds the vectors computed since the book was filled (what the caller may save)."""

    values: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    added: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def fill(self, known: dict[tuple[str, str], np.ndarray]) -> None:
        self.values.update(known)

    def take_added(self) -> dict[tuple[str, str], np.ndarray]:
        added, self.added = self.added, {}
        return added


#: the process's book: repeated frames in one render (tables, history, retraining deltas) reuse its values
SHARED_BOOK = ScoreBook()


def scoring_workers() -> int:
    """Processes to score with: the CPUs this process may use (``REPORTGEN_SCORING_WORKERS`` overrides)."""
    configured = os.environ.get("REPORTGEN_SCORING_WORKERS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


Row = tuple[str, tuple[str, ...], "str | None", "int | None"]


def _score_rows(names: Sequence[str], rows: Sequence[Row]) -> list[list[float]]:
    """Each row's value of each metric (a worker's task, and the serial path)."""
    chosen: list[Metric] = [get_metric(name) for name in names]
    return [
        [m.score(output, refs, finish_reason=reason, output_tokens=tokens) for m in chosen]
        for output, refs, reason, tokens in rows
    ]


def _start_context() -> multiprocessing.context.BaseContext:
    """fork where this process runs one thread (the workers then import nothing again); with other threads
    running (a render's chart browser), forkserver: a fork copies only the forking thread, and a lock another
    thread held at that moment would stay locked in the worker."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _compute(names: Sequence[str], rows: list[Row], workers: int) -> list[list[float]]:
    if workers <= 1 or len(rows) * len(names) < PARALLEL_MIN_VALUES:
        return _score_rows(names, rows)
    chunks = [rows[i : i + CHUNK_ROWS] for i in range(0, len(rows), CHUNK_ROWS)]
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=_start_context()) as pool:
        done = pool.map(_score_rows, [names] * len(chunks), chunks)
        return [values for chunk in done for values in chunk]


def score_columns(
    outputs: Sequence[str],
    references: Sequence[tuple[str, ...]],
    finish_reasons: Sequence[Any],
    output_tokens: Sequence[int | None],
    names: Sequence[str],
    *,
    book: ScoreBook | None = None,
    workers: int | None = None,
) -> dict[str, np.ndarray]:
    """Every named per-prompt metric for every answer. An answer's values are looked up in ``book`` (the
    process's by default) as one vector per metric kind (every text metric under the answer's key, every
    reference metric under the answer-and-references key); the missing vectors are computed once per
    distinct key (in ``workers`` processes when many) and added to the book. A failed answer (finish
    reason "error") gets NaN without being scored."""
    book = SHARED_BOOK if book is None else book
    kinds = [k for k in PER_PROMPT_KINDS if any(get_metric(n).kind == k for n in names)]
    layouts = {kind: layout(kind) for kind in kinds}
    columns = {name: np.full(len(outputs), math.nan) for name in names}
    found: dict[str, list[tuple[int, np.ndarray]]] = {kind: [] for kind in kinds}
    missing: dict[str, dict[str, tuple[Row, list[int]]]] = {kind: {} for kind in kinds}  # key → (row, row indices)
    for i, (output, refs, reason, tokens) in enumerate(zip(outputs, references, finish_reasons, output_tokens)):
        if reason == "error":
            continue
        answer, with_refs = content_keys(output, refs, reason, tokens)
        for kind in kinds:
            key = with_refs if kind == "reference" else answer
            vector = book.values.get((key, layouts[kind][0]))
            if vector is not None:
                found[kind].append((i, vector))
            else:
                missing[kind].setdefault(key, ((output, refs, reason, tokens), []))[1].append(i)
    n_workers = scoring_workers() if workers is None else workers
    for kind in kinds:
        key_of_layout, kind_names = layouts[kind]
        if missing[kind]:
            computed = _compute(kind_names, [row for row, _ in missing[kind].values()], n_workers)
            for (key, (_, places)), values in zip(missing[kind].items(), computed):
                vector = np.asarray(values, dtype=float)
                book.values[(key, key_of_layout)] = book.added[(key, key_of_layout)] = vector
                found[kind].extend((i, vector) for i in places)
        if not found[kind]:
            continue
        rows = np.fromiter((i for i, _ in found[kind]), dtype=np.int64, count=len(found[kind]))
        matrix = np.vstack([vector for _, vector in found[kind]])
        for j, name in enumerate(kind_names):
            if name in columns:
                columns[name][rows] = matrix[:, j]
    return columns
