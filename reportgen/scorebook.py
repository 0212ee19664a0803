"""The study's store as the memory of per-answer metric values (``stats.scoring``) and of resampled statistics
(``stats.memo``): fill the process's books from it before the tables are computed, and keep what was computed
in it afterwards (tables ``answer_scores`` and ``stat_values``).

``run`` scores the answers it stored (``score_stored_answers``), so the first render after a run finds
every value in the store; a render scores whatever no run or render scored before and keeps it the same
way; after one model was retrained, the intervals of the others and the tests between them are read back.
Both are caches: a store that cannot be written costs a re-computation, no more.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import TYPE_CHECKING

from reportgen.errors import StoreError
from reportgen.stats.metrics import PER_PROMPT_KINDS
from reportgen.stats.memo import SHARED_STATS, version
from reportgen.stats.scoring import SHARED_BOOK, layout

if TYPE_CHECKING:
    from reportgen.store import Store
    from reportgen.study.config import Study
    from reportgen.study.prompts import PromptSet

__all__ = ["keep_scores", "recall_scores", "score_stored_answers"]

log = logging.getLogger(__name__)


def recall_scores(store: "Store") -> None:
    """Fill the process's score book with the values the store holds for today's metrics and versions; what the
    book adds from here on is what ``keep_scores`` saves to this store (values scored earlier for another study
    in this process are not saved into this one)."""
    SHARED_BOOK.take_added()
    SHARED_STATS.take_added()
    try:
        SHARED_BOOK.fill(store.answer_scores(layout(kind)[0] for kind in PER_PROMPT_KINDS))
        SHARED_STATS.fill(store.stat_values(version()))
    except sqlite3.Error as exc:  # a cache: unreadable values are computed again
        log.info("%s: stored per-answer scores unreadable (%s); scoring the answers again", store.path, exc)


def keep_scores(store: "Store") -> int:
    """Save the value vectors this process scored since the book was filled; returns how many answers'."""
    added = SHARED_BOOK.take_added()
    try:
        store.save_answer_scores(added)
        store.save_stat_values(SHARED_STATS.take_added(), version())
    except (sqlite3.Error, StoreError) as exc:
        log.info("%s: per-answer scores not saved (%s); the next render scores those answers again", store.path, exc)
        return 0
    return len(added)


def score_stored_answers(store: "Store", study: "Study", prompt_set: "PromptSet") -> int:
    """Score every answer the study's report shows that has no stored values yet, and keep them in the
    store; returns how many values were scored."""
    from reportgen.stats.frames import in_keys, latest_results, per_prompt_frame

    started = time.perf_counter()
    results = store.results_frame()
    if results.empty:
        return 0
    results = latest_results(results, {m.id: None for m in study.models}, model_runs=store.model_runs_frame())
    results = results[in_keys(results["prompt_id"], {p.id for p in prompt_set.prompts})]
    recall_scores(store)
    per_prompt_frame(results, prompt_set)
    scored = keep_scores(store)
    if scored:
        log.info("scored %d answers' metric values in %.1f s", scored, time.perf_counter() - started)
    return scored
