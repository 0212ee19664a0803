"""What the store adds to a report — metric tables, retraining deltas, the latest run manifest — read
from one open store (nothing when it holds no results).

The tables and deltas are remembered in the user cache (``<cache>/tables/<key>.pickle``) under a digest
of everything they are computed from: the stored rows they read (the store's content token, drawn again by
every change to its rows: ``Store.content_token``), the study's models and judges, the
prompt set, the code of the packages that compute them (``stats``, ``judge``, the records) and the
versions of the libraries that define the numbers (pandas, numpy, scipy, sacrebleu, rouge-score, choix).
A re-render after a template edit reads them back instead of scoring every answer again (which imports
nltk and scipy) and redrawing every bootstrap; any change to those inputs is a new key, so an entry is
never stale. When the tables must be computed, each answer's metric values come from the study's store
where a render already scored that answer (``stats.scoring``, the ``answer_scores`` table), and the values
scored now are saved there: a retrained model costs the scoring of its own new answers. Each model's
retraining delta is also remembered on its own (``<cache>/deltas``) under a digest of that model's stored
answers and runs: after one model was retrained, the other models' histories are read back, not rebuilt.
The statistics are seeded, so a cached table is the table a fresh computation gives.
The entries are pickles written by reportgen into the user's own cache folder, read only with the same
versions of the libraries they were written with.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import pandas as pd

from reportgen.records import RunManifest
from reportgen.stats import streams
from reportgen.stats.history import RetrainingDelta, retraining_delta
from reportgen.scorebook import keep_scores, recall_scores
from reportgen.stats.imported import imported_retraining_delta, register_metrics
from reportgen.stats.tables import StoreFrames, Tables, tables_from_frames
from reportgen.store import Store
from reportgen.study.config import Study
from reportgen.study.prompts import PromptSet, study_prompt_set
from reportgen.util.cache import code_digest, package_versions, read_cached, write_cached
from reportgen.util.hashing import cache_dir, hash_json

__all__ = ["ReportInputs", "read_report_inputs", "study_tables", "tables_and_deltas"]

log = logging.getLogger(__name__)

KIND = "tables"
DELTAS_KIND = "deltas"
#: the columns that identify a stored answer and its version (what ``Store.content_digest`` reads of a result)
_ANSWER_KEYS = ("fingerprint", "prompt_id", "request_hash", "settings_hash", "created_at")
_PACKAGES = ("pandas", "numpy", "scipy", "sacrebleu", "rouge-score", "nltk", "choix")
_ROOT = Path(__file__).resolve().parents[1]
#: the modules whose code computes the tables and deltas (an edit to one is a new key)
_CODE_DIRS = ("stats", "judge")
_CODE_FILES = ("records.py", "format.py", "study/prompts.py", "study/config.py", "util/text.py", "report/inputs.py")


@dataclass
class ReportInputs:
    tables: Tables | None = None
    deltas: list[RetrainingDelta] = field(default_factory=list)
    manifest: RunManifest | None = None

    def as_kwargs(self) -> dict:
        return {"tables": self.tables, "deltas": self.deltas, "manifest": self.manifest}


def study_tables(store: Store, study: Study) -> Tables:
    """Every metric table of the study, from its store."""
    tables, _ = tables_and_deltas(store, study)
    return tables


def read_report_inputs(store: Store, study: Study, *, on_compute: Callable[[], None] | None = None) -> ReportInputs:
    """The tables, deltas and latest manifest; ``on_compute`` is called when the tables are not cached and
    must be computed (``build`` then starts the chart browser: the charts will have changed)."""
    tables, deltas = tables_and_deltas(store, study, on_compute=on_compute)
    if tables.per_prompt.empty:
        return ReportInputs()
    return ReportInputs(tables, deltas, store.latest_manifest())


def tables_and_deltas(
    store: Store, study: Study, *, on_compute: Callable[[], None] | None = None
) -> tuple[Tables, list[RetrainingDelta]]:
    """Every metric table of the study and each retrained model's delta, from the cache when nothing changed
    (``on_compute`` is called first when they must be computed)."""
    prompt_set = study_prompt_set(study) if study.prompts is not None else None
    computed_with = _computed_with(prompt_set)
    token = store.content_token()
    if token is not None:  # the store says whether its rows changed: nothing to read to find the cached tables
        key = _key({"store": token}, study, computed_with)
        cached = _load(KIND, key, _is_tables_entry)
        if cached is not _MISS:
            register_metrics(store.imports_frame())  # the imported metrics' names, units and directions
            return cached
    frames = StoreFrames.read(store)
    register_metrics(frames.imports)
    if token is None:
        key = _key({name: _frame_digest(frame) for name, frame in frames.named().items()}, study, computed_with)
        cached = _load(KIND, key, _is_tables_entry)
        if cached is not _MISS:
            return cached
    if on_compute is not None:
        on_compute()
    recall_scores(store)
    streams.keep_in(cache_dir() / "streams")  # the resampling draws, kept between renders (stats.streams)
    tables = tables_from_frames(frames, study, prompt_set)
    deltas: list[RetrainingDelta] = []
    if prompt_set is not None and not tables.per_prompt.empty:
        computed = (_retraining_delta(frames, prompt_set, m.id, computed_with) for m in study.models if m.runnable)
        deltas = [d for d in computed if d is not None]
    imported = (imported_retraining_delta(frames.imports, frames.imported_samples, m.id) for m in study.models if m.results_from)
    deltas += [d for d in imported if d is not None]  # a model another tool evaluated again: its last two logs
    keep_scores(store)
    _save(KIND, key, (tables, deltas))
    return tables, deltas


def _retraining_delta(
    frames: StoreFrames, prompt_set: PromptSet, model_id: str, computed_with: dict[str, Any]
) -> RetrainingDelta | None:
    """``retraining_delta`` of one model, remembered (``<cache>/deltas``) under a digest of what it is computed
    from: the model's own stored answers (their keys and times, as ``Store.content_digest`` reads them) and
    runs, and ``computed_with`` (the prompt set, the code and the libraries). A render after another model was
    retrained reads it back instead of scoring every earlier version of this one again."""
    results, runs = frames.results, frames.model_runs
    mine = results[results["model_id"] == model_id] if len(results) else results
    if mine.empty or mine["fingerprint"].nunique() < 2:
        return None  # one set of answers: nothing changed (and nothing to digest)
    key = hash_json(
        {
            "model": model_id,
            "answers": _frame_digest(mine[list(_ANSWER_KEYS)]),
            "runs": _frame_digest(runs[runs["model_id"] == model_id]) if len(runs) else None,
            **computed_with,
        }
    )
    known = _load(DELTAS_KIND, key, lambda value: value is None or isinstance(value, RetrainingDelta))
    if known is not _MISS:
        return known
    delta = retraining_delta(results, runs, prompt_set, model_id)
    _save(DELTAS_KIND, key, delta)
    return delta


def _computed_with(prompt_set: PromptSet | None) -> dict[str, Any]:
    """What every cached table and delta is computed with besides the stored rows: the prompt set (digested once
    per render: ~40 ms at 10,000 prompts), the libraries' versions and the code."""
    return {
        "prompts": None if prompt_set is None else hash_json(prompt_set.model_dump(mode="json")),
        "packages": package_versions(*_PACKAGES),
        "code": _code(),
    }


def _code() -> str:
    files = sorted(str(p) for d in _CODE_DIRS for p in (_ROOT / d).glob("*.py"))
    return code_digest(*files, *(str(_ROOT / f) for f in _CODE_FILES))


def _frame_digest(frame: pd.DataFrame) -> str:
    """A digest of a frame's columns, types and every value (pandas' row hashes, which read each cell)."""
    sha = hashlib.sha256(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    sha.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return sha.hexdigest()


def _key(rows: dict[str, str], study: Study, computed_with: dict[str, Any]) -> str:
    """The digest of everything the tables and deltas are computed from; ``rows`` says which stored rows: the
    store's content token, or (a store without one) a digest of every frame."""
    return hash_json(
        {
            "frames": rows,
            "models": [(m.id, m.runnable, m.results_from is not None) for m in study.models],
            "judges": [j.model_dump(mode="json") for j in study.judges],
            **computed_with,
        }
    )


#: what ``_load`` returns for a missing, damaged or foreign entry (a cached delta may be None)
_MISS: Any = object()


def _is_tables_entry(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], Tables) and isinstance(value[1], list)


def _load(kind: str, key: str, accept: Callable[[Any], bool]) -> Any:
    """The cached value under ``key``, or ``_MISS`` when there is none, it cannot be unpickled or ``accept``
    refuses it (a damaged or foreign entry: computed afresh)."""
    raw = read_cached(kind, key, ".pickle")
    if raw is None:
        return _MISS
    try:
        value = pickle.loads(raw)
    except Exception as exc:
        log.debug("%s cache entry %s unreadable (%s): recomputing", kind, key[:12], exc)
        return _MISS
    return value if accept(value) else _MISS


def _save(kind: str, key: str, value: Any) -> None:
    write_cached(kind, key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), ".pickle")
