"""Each answer scored once: per-answer metric values, keyed by what they are computed from, scored in parallel.

A per-prompt metric's value depends on the answer (its text, finish reason and token count), on the
references for a reference metric, and on the metric's definition. ``content_keys`` digests the first
two; ``version_key`` names the third: the metric's name, a digest of the module that defines every
metric (``stats/metrics.py``: an edit there changes every key, so a stored value is never stale) and the
versions of the libraries its value comes from (``Metric.libraries``: sacrebleu, rouge-score, nltk).

A ``ScoreBook`` holds the values known so far under those keys. ``score_columns`` looks each value up
and computes only the missing ones, once per distinct key, across ``workers`` processes when there are
many (the metric libraries are pure Python and hold the GIL, so threads would not help). A worker
computes exactly what the parent would: the same functions on the same inputs; a test checks parallel
and serial scoring agree value for value. The report's edge (``report.inputs``) fills the process's
book from the study's store and saves what it added, so a render scores only answers no render scored
before: a retrained model costs the scoring of its own new answers.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reportgen.stats.metrics import Metric, get_metric

__all__ = ["ScoreBook", "SHARED_BOOK", "content_keys", "score_columns", "scoring_workers", "version_key"]

#: below this many missing values the pool's start-up costs more than it saves
PARALLEL_MIN_VALUES = 4000
#: rows per task sent to a worker
CHUNK_ROWS = 500


@lru_cache(maxsize=None)
def _definitions_digest() -> str:
    return hashlib.sha256((Path(__file__).parent / "metrics.py").read_bytes()).hexdigest()[:16]


@lru_cache(maxsize=None)
def version_key(name: str) -> str:
    """``rouge_l@<digest of stats/metrics.py>;rouge-score=0.1.2;nltk=3.10.4``: what a stored value of
    metric ``name`` was computed with."""
    from reportgen.util.cache import package_versions

    libraries = ";".join(f"{lib}={version}" for lib, version in package_versions(*get_metric(name).libraries).items())
    return f"{name}@{_definitions_digest()}" + (f";{libraries}" if libraries else "")


def _digest(*parts: str) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode("utf-8", "surrogatepass"))
        sha.update(b"\x00\x1f")
    return sha.hexdigest()[:32]


def content_keys(output: str, references: Sequence[str], finish_reason: str | None, output_tokens: int | None) -> tuple[str, str]:
    """(answer key, answer-and-references key): what a text metric and a reference metric read."""
    answer = _digest(output, str(finish_reason), str(output_tokens))
    return answer, _digest(answer, *references)


@dataclass
class ScoreBook:
    """Per-answer metric values: (content key, version key) → value; ``added`` holds the ones computed since
    the book was filled (what the caller may save)."""

    values: dict[tuple[str, str], float] = field(default_factory=dict)
    added: dict[tuple[str, str], float] = field(default_factory=dict)

    def fill(self, known: dict[tuple[str, str], float]) -> None:
        self.values.update(known)

    def take_added(self) -> dict[tuple[str, str], float]:
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


def _compute(names: Sequence[str], rows: list[Row], workers: int) -> list[list[float]]:
    if workers <= 1 or len(rows) * len(names) < PARALLEL_MIN_VALUES:
        return _score_rows(names, rows)
    chunks = [rows[i : i + CHUNK_ROWS] for i in range(0, len(rows), CHUNK_ROWS)]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)  # fork: nothing to import again
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
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
    """Every named per-prompt metric for every answer: looked up in ``book`` (the process's by default),
    the missing values computed once per distinct key (in ``workers`` processes when many) and added to it.
    A failed answer (finish reason "error") gets NaN without being scored."""
    book = SHARED_BOOK if book is None else book
    chosen = [get_metric(name) for name in names]
    versions = [version_key(name) for name in names]
    columns = {name: np.full(len(outputs), math.nan) for name in names}
    missing: dict[tuple[str, ...], tuple[Row, list[tuple[int, int]]]] = {}  # row's keys → (row, [(row index, metric)])
    for i, (output, refs, reason, tokens) in enumerate(zip(outputs, references, finish_reasons, output_tokens)):
        if reason == "error":
            continue
        answer, with_refs = content_keys(output, refs, reason, tokens)
        wanted = []
        for j, (m, version) in enumerate(zip(chosen, versions)):
            value = book.values.get((with_refs if m.kind == "reference" else answer, version))
            if value is None:
                wanted.append(j)
            else:
                columns[m.name][i] = value
        if wanted:
            entry = missing.setdefault((answer, with_refs), ((output, refs, reason, tokens), []))
            entry[1].extend((i, j) for j in wanted)
    if not missing:
        return columns
    needed = sorted({j for _, places in missing.values() for _, j in places})
    needed_names = [names[j] for j in needed]
    position = {j: k for k, j in enumerate(needed)}
    computed = _compute(needed_names, [row for row, _ in missing.values()], scoring_workers() if workers is None else workers)
    for ((answer, with_refs), (_, places)), values in zip(missing.items(), computed):
        for i, j in places:
            value = float(values[position[j]])
            columns[names[j]][i] = value
            key = (with_refs if chosen[j].kind == "reference" else answer, versions[j])
            book.values[key] = value
            book.added[key] = value
    return columns
