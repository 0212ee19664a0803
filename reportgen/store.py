"""The results store: one SQLite file per study, in its report folder.

One row per (model fingerprint, prompt id, request hash). The fingerprint hashes what determines a
model's outputs (weights, adapter, quantization, precision); the request hash covers the prompt's
content and the generation settings that can change the output. Rows are committed batch by batch in
WAL mode, so a run killed at any moment loses at most the batch in flight and resumes where it stopped.
Every run is kept (runs, model_runs), which gives a model's history across retrainings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import pandas as pd

from reportgen.records import ChoiceResult, GenerationResult, LoadInfo, LogLikelihoodResult, RunManifest, SpeedPass
from reportgen.errors import StoreError

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.study.config import Study

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
STORE_NAME = "results.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    manifest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS model_runs (
    run_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    load_time_s REAL,
    precision TEXT,
    device TEXT,
    weight_bytes INTEGER,
    peak_memory_bytes INTEGER,
    prompts_run INTEGER NOT NULL DEFAULT 0,
    prompts_cached INTEGER NOT NULL DEFAULT 0,
    generated_tokens INTEGER NOT NULL DEFAULT 0,
    generate_time_s REAL NOT NULL DEFAULT 0,
    decode_steps INTEGER NOT NULL DEFAULT 0,
    notes TEXT NOT NULL DEFAULT '[]',
    details TEXT NOT NULL DEFAULT '{}',
    fingerprint_parts TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, model_id)
);
CREATE TABLE IF NOT EXISTS results (
    fingerprint TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    model_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_text TEXT,
    prompt_tokens INTEGER,
    output_tokens INTEGER,
    finish_reason TEXT NOT NULL,
    latency_s REAL,
    ttft_s REAL,
    batch_size INTEGER,
    error TEXT,
    extra TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, prompt_id, request_hash)
);
CREATE TABLE IF NOT EXISTS loglik (
    fingerprint TEXT NOT NULL,
    text_id TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    model_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    nll_nats REAL NOT NULL,
    n_tokens INTEGER NOT NULL,
    n_bytes INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, text_id, text_hash)
);
CREATE INDEX IF NOT EXISTS results_by_model ON results (model_id, fingerprint);
CREATE TABLE IF NOT EXISTS imports (
    model_id TEXT NOT NULL,
    log_digest TEXT NOT NULL,
    tool TEXT NOT NULL,
    tool_version TEXT NOT NULL,
    format_version TEXT NOT NULL,
    model_name TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    files TEXT NOT NULL DEFAULT '[]',
    metrics TEXT NOT NULL DEFAULT '[]',
    unused TEXT NOT NULL DEFAULT '{}',
    logged_at TEXT NOT NULL,
    imported_at REAL NOT NULL,
    PRIMARY KEY (model_id, log_digest)
);
CREATE TABLE IF NOT EXISTS imported_samples (
    log_digest TEXT NOT NULL,
    task TEXT NOT NULL,
    sample_key TEXT NOT NULL,
    label TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    target TEXT NOT NULL,
    scores TEXT NOT NULL,
    PRIMARY KEY (log_digest, task, sample_key)
);
CREATE TABLE IF NOT EXISTS speed_passes (
    fingerprint TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    protocol_hash TEXT NOT NULL,
    pass_index INTEGER NOT NULL,
    model_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    prompts INTEGER NOT NULL,
    generated_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    latencies TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, settings_hash, protocol_hash, pass_index)
);
CREATE TABLE IF NOT EXISTS timed_passes (
    model_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    protocol_hash TEXT NOT NULL,
    regime TEXT NOT NULL,
    pass_index INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    prompts INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    generated_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    latencies TEXT NOT NULL DEFAULT '[]',
    ttfts TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    others_cpu_share REAL,
    PRIMARY KEY (model_id, fingerprint, settings_hash, protocol_hash, regime, pass_index)
);
CREATE TABLE IF NOT EXISTS judgements (
    judge_fingerprint TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    hash_a TEXT NOT NULL,
    hash_b TEXT NOT NULL,
    judge_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    model_a TEXT NOT NULL,
    model_b TEXT,
    len_a INTEGER,
    len_b INTEGER,
    status TEXT NOT NULL,
    verdict TEXT,
    score REAL,
    raw TEXT,
    error TEXT,
    run_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (judge_fingerprint, settings_hash, prompt_id, prompt_hash, hash_a, hash_b)
);
CREATE TABLE IF NOT EXISTS answer_scores (
    content_key TEXT NOT NULL,
    layout TEXT NOT NULL,
    kind TEXT NOT NULL,
    scores BLOB NOT NULL,
    PRIMARY KEY (content_key, layout)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stat_values (
    stat_key TEXT NOT NULL,
    version TEXT NOT NULL,
    stat_value BLOB NOT NULL,
    PRIMARY KEY (stat_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS code_runs (
    program_hash TEXT NOT NULL,
    limits_hash TEXT NOT NULL,
    passed INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    output TEXT NOT NULL,
    seconds REAL NOT NULL,
    isolation TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (program_hash, limits_hash)
);
CREATE TABLE IF NOT EXISTS choice_loglik (
    fingerprint TEXT NOT NULL,
    item_id TEXT NOT NULL,
    choice INTEGER NOT NULL,
    request_hash TEXT NOT NULL,
    model_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    logprob REAL NOT NULL,
    n_tokens INTEGER NOT NULL,
    n_bytes INTEGER NOT NULL,
    is_greedy INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, item_id, choice, request_hash)
);
CREATE TABLE IF NOT EXISTS refusals (
    fingerprint TEXT NOT NULL,
    request_kind TEXT NOT NULL,
    model_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, request_kind)
);
"""

#: The tables whose rows the study's tables are computed from (every one but meta and the caches of per-answer
#: scores and of resampled statistics).
CONTENT_TABLES = (
    "runs",
    "model_runs",
    "results",
    "loglik",
    "imports",
    "imported_samples",
    "speed_passes",
    "timed_passes",
    "judgements",
    "code_runs",
    "choice_loglik",
    "refusals",
)

#: Every insert, update or delete in a content table draws a new random content token (``Store.content_token``);
#: the triggers live in the file, so every writer fires them, whatever program or version it is.
CONTENT_TRIGGERS = "".join(
    f"CREATE TRIGGER IF NOT EXISTS content_{table}_{op} AFTER {op.upper()} ON {table} BEGIN "
    "UPDATE meta SET value = lower(hex(randomblob(16))) WHERE key = 'content_token'; END;\n"
    for table in CONTENT_TABLES
    for op in ("insert", "update", "delete")
)

#: Columns added to a table after stores were written without them: (table, column, declaration).
ADDED_COLUMNS = (("model_runs", "measure_protocol", "TEXT"), ("timed_passes", "others_cpu_share", "REAL"))


def _add_content_token(db: sqlite3.Connection) -> None:
    """The content triggers and a first token, in a store written before them (nothing to do in a newer one). A
    read-only store written before them goes without: its tables are keyed by a digest of its rows instead."""
    try:
        db.executescript(CONTENT_TRIGGERS)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('content_token', lower(hex(randomblob(16))))")
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc):
            raise


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Bring a store written by an earlier reportgen up to the schema (new nullable columns only)."""
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def store_path(study: Study) -> Path:
    """The study's store: ``results.sqlite`` in its report folder."""
    return study.output_dir / STORE_NAME


BUSY_TIMEOUT_S = 30.0  # how long one statement waits for another process's write to finish
OPEN_RETRIES_S = 60.0  # how long opening retries while another process creates or converts the store


def _busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class _WriterLock:
    """One writer per store: an advisory lock (``flock``) on ``results.sqlite.lock`` beside the store.

    The holder's pid is written into the file. A second writer waits for the first (saying so once on
    stderr), then finds its results stored: two runs at once never both do the work, and never fail.
    Re-entrant within a process (a build opens the store, then the run and the judges use it). The
    kernel drops the lock when its process dies, so a killed run never leaves the store locked.
    """

    _held: dict[str, list] = {}  # lock file -> [fd, count]
    _guard = threading.Lock()

    def __init__(self, store: Path):
        self.path = store.with_name(store.name + ".lock")
        self.key = os.path.abspath(self.path)
        self.first = False  # True when this open took the lock (no other writer of ours is running)

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: SQLite's own locking only
            return
        with self._guard:
            held = self._held.get(self.key)
            if held is not None:
                held[1] += 1
                return
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.warning(
                        "another reportgen run is using this store (pid %s): waiting for it to finish (%s)",
                        self._holder(fd),
                        self.path.parent,
                    )
                    fcntl.flock(fd, fcntl.LOCK_EX)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except BaseException:
                os.close(fd)
                raise
            self._held[self.key] = [fd, 1]
            self.first = True

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        with self._guard:
            held = self._held.get(self.key)
            if held is None:
                return
            held[1] -= 1
            if held[1] == 0:
                del self._held[self.key]
                os.close(held[0])  # closing the descriptor releases the flock


class Store:
    """A results store on disk. Use as a context manager or call close().

    ``create=True`` opens it for writing: the store is created if need be, the writer lock is taken
    (a second writer waits for the first), and runs a killed process left ``running`` are marked
    ``interrupted``. ``create=False`` opens an existing store to read; readers never wait for writers.
    """

    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        self._lock: _WriterLock | None = None
        if not create and not self.path.exists():
            raise StoreError(f"{self.path}: no results store. Fix: run `reportgen run CONFIG` first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if create:
            self._lock = _WriterLock(self.path)
            try:
                self._lock.acquire()
            except OSError as exc:
                raise StoreError(
                    f"{self._lock.path}: cannot take the store's lock ({exc.strerror or exc}). Fix: check the folder is writable"
                ) from None
        try:
            self._open()
            if self._lock is not None and self._lock.first:
                self._mark_interrupted()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        deadline = time.monotonic() + OPEN_RETRIES_S
        while True:
            try:
                self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
                self.db.row_factory = sqlite3.Row
                self.db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(SCHEMA)
                _add_missing_columns(self.db)
                _add_content_token(self.db)
                found = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if found is None:
                    self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                break
            except sqlite3.OperationalError as exc:
                if hasattr(self, "db"):
                    self.db.close()
                    del self.db
                if not _busy(exc):
                    raise StoreError(
                        f"{self.path}: not a readable results store ({exc}). Fix: move it aside and run again"
                    ) from None
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"{self.path}: the store stayed busy for {OPEN_RETRIES_S:g} s: another reportgen process is writing it. "
                        "Fix: wait for it to finish and run again"
                    ) from None
                time.sleep(0.05 + random.random() * 0.1)
            except sqlite3.DatabaseError as exc:
                if hasattr(self, "db"):
                    self.db.close()
                    del self.db
                raise StoreError(f"{self.path}: not a readable results store ({exc}). Fix: move it aside and run again") from None
        if found is not None and int(found["value"]) > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer reportgen (schema {found['value']}, this one reads {SCHEMA_VERSION}). Fix: upgrade reportgen"
            )

    def _mark_interrupted(self) -> None:
        """Runs left ``running`` by a process that is gone (we hold the writer lock, so none is live)."""
        with self.transaction() as db:
            count = db.execute(
                "UPDATE runs SET status='interrupted', finished_at=COALESCE(finished_at, ?) WHERE status='running'",
                (time.time(),),
            ).rowcount
        if count:
            log.info("%s: %d run(s) left running by a stopped process marked interrupted", self.path, count)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # -- runs --------------------------------------------------------------------------------
    def start_run(self, run_id: str, config_hash: str, manifest: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs VALUES (?, ?, NULL, 'running', ?, ?)",
                (run_id, time.time(), config_hash, json.dumps(manifest, sort_keys=True, default=str)),
            )

    def finish_run(self, run_id: str, status: str, manifest: dict[str, Any] | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished_at=?, status=? WHERE run_id=?", (time.time(), status, run_id))
            if manifest is not None:
                db.execute(
                    "UPDATE runs SET manifest=? WHERE run_id=?", (json.dumps(manifest, sort_keys=True, default=str), run_id)
                )

    def start_model_run(self, run_id: str, model_id: str, fingerprint: str, settings_hash: str, parts: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO model_runs (run_id, model_id, fingerprint, settings_hash, started_at, fingerprint_parts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, model_id, fingerprint, settings_hash, time.time(), json.dumps(parts, sort_keys=True, default=str)),
            )

    def last_fingerprint_parts(self, model_id: str) -> dict | None:
        """What determined the model's outputs at its last run that got anywhere: one that answered prompts or
        finished (None before that). A run stopped while the model loaded, or failed before its first batch,
        does not count: its next run is still the first."""
        row = self.db.execute(
            "SELECT fingerprint_parts FROM model_runs WHERE model_id=? AND (prompts_run > 0 OR finished_at IS NOT NULL)"
            " ORDER BY started_at DESC LIMIT 1",
            (model_id,),
        ).fetchone()
        return json.loads(row["fingerprint_parts"]) if row is not None else None

    def update_model_run(self, run_id: str, model_id: str, **values: Any) -> None:
        if "load" in values:
            load: LoadInfo = values.pop("load")
            values.update(
                load_time_s=load.load_time_s,
                precision=load.precision,
                device=load.device,
                weight_bytes=load.weight_bytes,
                notes=json.dumps(load.notes),
                details=json.dumps(load.details, sort_keys=True, default=str),
            )
        if not values:
            return
        columns = ", ".join(f"{key}=?" for key in values)
        with self.transaction() as db:
            db.execute(f"UPDATE model_runs SET {columns} WHERE run_id=? AND model_id=?", (*values.values(), run_id, model_id))

    # -- results -----------------------------------------------------------------------------
    def done_keys(self, fingerprint: str) -> set[tuple[str, str]]:
        """(prompt_id, request_hash) pairs already answered (failures do not count: they are retried)."""
        rows = self.db.execute(
            "SELECT prompt_id, request_hash FROM results WHERE fingerprint=? AND finish_reason != 'error'", (fingerprint,)
        )
        return {(row["prompt_id"], row["request_hash"]) for row in rows}

    def failed_keys(self, fingerprint: str) -> set[tuple[str, str]]:
        """(prompt_id, request_hash) pairs whose stored result is a failure (the next run retries them)."""
        rows = self.db.execute(
            "SELECT prompt_id, request_hash FROM results WHERE fingerprint=? AND finish_reason = 'error'", (fingerprint,)
        )
        return {(row["prompt_id"], row["request_hash"]) for row in rows}

    def save_results(
        self,
        *,
        fingerprint: str,
        model_id: str,
        run_id: str,
        settings_hash: str,
        request_hashes: dict[str, str],
        results: list[GenerationResult],
        batch_size: int,
    ) -> None:
        """Commit one batch of results atomically (a re-run replaces a failed row, never duplicates)."""
        now = time.time()
        rows = [
            (
                fingerprint,
                r.prompt_id,
                request_hashes[r.prompt_id],
                SCHEMA_VERSION,
                model_id,
                run_id,
                settings_hash,
                r.text,
                r.prompt_text,
                r.prompt_tokens,
                r.output_tokens,
                r.finish_reason,
                r.latency_s,
                r.ttft_s,
                batch_size,
                r.error,
                json.dumps(r.extra, sort_keys=True, default=str),
                now,
            )
            for r in results
        ]
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def has_speed_passes(self, model_id: str, fingerprint: str, settings_hash: str, protocol_hash: str, expected: int) -> bool:
        """Whether all ``expected`` timed passes of this protocol are stored for this model entry, weights and settings."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM timed_passes WHERE model_id=? AND fingerprint=? AND settings_hash=? AND protocol_hash=?",
            (model_id, fingerprint, settings_hash, protocol_hash),
        ).fetchone()
        return row[0] >= expected

    def save_speed_passes(
        self, *, fingerprint: str, settings_hash: str, protocol_hash: str, model_id: str, run_id: str, passes: list[SpeedPass]
    ) -> None:
        """Commit one model entry's timed passes together (a re-measurement replaces them)."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "DELETE FROM timed_passes WHERE model_id=? AND fingerprint=? AND settings_hash=? AND protocol_hash=?",
                (model_id, fingerprint, settings_hash, protocol_hash),
            )
            db.executemany(
                "INSERT INTO timed_passes (model_id, fingerprint, settings_hash, protocol_hash, regime, pass_index, run_id, "
                "prompts, batch_size, generated_tokens, seconds, failures, latencies, ttfts, created_at, others_cpu_share) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        model_id,
                        fingerprint,
                        settings_hash,
                        protocol_hash,
                        p.regime,
                        p.index,
                        run_id,
                        p.prompts,
                        p.batch_size,
                        p.generated_tokens,
                        p.seconds,
                        p.failures,
                        json.dumps([round(x, 6) for x in p.latencies_s]),
                        json.dumps([round(x, 6) for x in p.ttfts_s]),
                        now,
                        p.others_cpu_share,
                    )
                    for p in passes
                ],
            )

    def speed_frame(self) -> pd.DataFrame:
        """Every stored timed pass (``timed_passes``; passes of the earlier protocol, in ``speed_passes``, are not read)."""
        return self.frame("SELECT * FROM timed_passes ORDER BY created_at, pass_index, regime")

    def load_measured(self, model_id: str, fingerprint: str, settings_hash: str, protocol: str) -> bool:
        """Whether this model entry's load and peak memory are stored for these weights under ``protocol``."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM model_runs WHERE model_id=? AND fingerprint=? AND settings_hash=? AND measure_protocol=?"
            " AND load_time_s IS NOT NULL",
            (model_id, fingerprint, settings_hash, protocol),
        ).fetchone()
        return row[0] > 0

    def done_loglik(self, fingerprint: str) -> set[tuple[str, str]]:
        rows = self.db.execute("SELECT text_id, text_hash FROM loglik WHERE fingerprint=?", (fingerprint,))
        return {(row["text_id"], row["text_hash"]) for row in rows}

    def save_loglik(
        self, *, fingerprint: str, model_id: str, run_id: str, text_hashes: dict[str, str], results: list[LogLikelihoodResult]
    ) -> None:
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO loglik VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        fingerprint,
                        r.text_id,
                        text_hashes[r.text_id],
                        SCHEMA_VERSION,
                        model_id,
                        run_id,
                        r.nll_nats,
                        r.n_tokens,
                        r.n_bytes,
                        now,
                    )
                    for r in results
                ],
            )

    # -- code runs (reportgen.run.coderun) ------------------------------------------------------
    def done_code_runs(self) -> set[tuple[str, str]]:
        """(program hash, limits hash) of every stored run: a program is run once per set of limits, ever."""
        return {(r["program_hash"], r["limits_hash"]) for r in self.db.execute("SELECT program_hash, limits_hash FROM code_runs")}

    def save_code_runs(self, *, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Commit verdicts: each row has program_hash, limits_hash, passed, reason, detail, output, seconds, isolation."""
        now = time.time()
        columns = ("program_hash", "limits_hash", "passed", "reason", "detail", "output", "seconds", "isolation")
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO code_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*(row[c] for c in columns), run_id, now) for row in rows],
            )

    def code_runs_frame(self) -> pd.DataFrame:
        return self.frame("SELECT * FROM code_runs ORDER BY program_hash, limits_hash")

    # -- multiple choice: continuations' log-likelihoods, and the request kinds a model refused ---------
    def done_choices(self, fingerprint: str) -> set[tuple[str, int, str]]:
        rows = self.db.execute("SELECT item_id, choice, request_hash FROM choice_loglik WHERE fingerprint=?", (fingerprint,))
        return {(row["item_id"], int(row["choice"]), row["request_hash"]) for row in rows}

    def save_choices(
        self,
        *,
        fingerprint: str,
        model_id: str,
        run_id: str,
        request_hashes: dict[tuple[str, int], tuple[str, int]],
        results: list[ChoiceResult],
    ) -> None:
        """``request_hashes``: (item id, choice) → (request hash, UTF-8 bytes of the continuation)."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO choice_loglik VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        fingerprint,
                        r.item_id,
                        r.choice,
                        request_hashes[(r.item_id, r.choice)][0],
                        model_id,
                        run_id,
                        r.logprob,
                        r.n_tokens,
                        request_hashes[(r.item_id, r.choice)][1],
                        int(r.is_greedy),
                        now,
                    )
                    for r in results
                ],
            )

    def choices_frame(self) -> pd.DataFrame:
        return self.frame("SELECT * FROM choice_loglik ORDER BY model_id, item_id, choice")

    def refused(self, fingerprint: str) -> dict[str, str]:
        """Request kind → the reason a model with this fingerprint gave when it could not serve it."""
        rows = self.db.execute("SELECT request_kind, reason FROM refusals WHERE fingerprint=?", (fingerprint,))
        return {row["request_kind"]: row["reason"] for row in rows}

    def save_refusal(self, *, fingerprint: str, request_kind: str, model_id: str, run_id: str, reason: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO refusals VALUES (?, ?, ?, ?, ?, ?)",
                (fingerprint, request_kind, model_id, reason, run_id, time.time()),
            )

    def refusals_frame(self) -> pd.DataFrame:
        return self.frame("SELECT * FROM refusals ORDER BY model_id, request_kind")

    # -- judgements ---------------------------------------------------------------------------
    def done_judgements(self, judge_fingerprint: str, settings_hash: str) -> set[tuple[str, str, str, str]]:
        """(prompt_id, prompt_hash, hash_a, hash_b) keys judged with a parsed verdict (failed and unparsed
        judgements do not count: they are retried)."""
        rows = self.db.execute(
            "SELECT prompt_id, prompt_hash, hash_a, hash_b FROM judgements WHERE judge_fingerprint=? AND settings_hash=? AND status='ok'",
            (judge_fingerprint, settings_hash),
        )
        return {(r["prompt_id"], r["prompt_hash"], r["hash_a"], r["hash_b"]) for r in rows}

    def save_judgements(self, *, judge_fingerprint: str, settings_hash: str, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Commit one batch of judgements (a retry replaces a failed row, never duplicates)."""
        now = time.time()
        columns = (
            "prompt_id",
            "prompt_hash",
            "hash_a",
            "hash_b",
            "judge_id",
            "mode",
            "model_a",
            "model_b",
            "len_a",
            "len_b",
            "status",
            "verdict",
            "score",
            "raw",
            "error",
        )
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO judgements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(judge_fingerprint, settings_hash, *(row.get(c) for c in columns), run_id, now) for row in rows],
            )

    def judgements_frame(self, judge_id: str | None = None) -> pd.DataFrame:
        if judge_id is None:
            return self.frame("SELECT * FROM judgements ORDER BY judge_id, prompt_id, created_at")
        return self.frame("SELECT * FROM judgements WHERE judge_id=? ORDER BY prompt_id, created_at", (judge_id,))

    # -- per-answer metric values (stats.scoring): a cache of what runs and renders scored ------
    def answer_scores(self, layouts: Iterable[str]) -> dict[tuple[str, str], np.ndarray]:
        """The stored value vectors of these layouts: (content key, layout) → float64 vector (NaN kept)."""
        wanted = sorted(set(layouts))
        if not wanted:
            return {}
        rows = self.db.execute(
            f"SELECT content_key, layout, scores FROM answer_scores WHERE layout IN ({','.join('?' * len(wanted))})", wanted
        ).fetchall()
        return {(key, layout): np.frombuffer(scores, dtype="<f8") for key, layout, scores in rows}

    def save_answer_scores(self, vectors: dict[tuple[str, str], np.ndarray]) -> None:
        """Keep computed vectors (a layout key is ``<kind>@<digest>``), and drop the vectors of an older layout
        of the same kind (new metrics or versions replace them; nothing else is removed)."""
        if not vectors:
            return
        current: dict[str, set[str]] = {}
        for _, layout in vectors:
            current.setdefault(layout.partition("@")[0], set()).add(layout)
        with self.transaction() as db:
            for kind, layouts in current.items():
                db.execute(
                    f"DELETE FROM answer_scores WHERE kind = ? AND layout NOT IN ({','.join('?' * len(layouts))})",
                    (kind, *sorted(layouts)),
                )
            db.executemany(
                "INSERT OR REPLACE INTO answer_scores VALUES (?, ?, ?, ?)",
                [
                    (key, layout, layout.partition("@")[0], np.asarray(vector, dtype="<f8").tobytes())
                    for (key, layout), vector in vectors.items()
                ],
            )

    def stat_values(self, version: str) -> dict[str, list[float]]:
        """The remembered resampled statistics of this version of the code (``stats.memo``): key → values."""
        rows = self.db.execute("SELECT stat_key, stat_value FROM stat_values WHERE version = ?", (version,)).fetchall()
        return {key: np.frombuffer(value, dtype="<f8").tolist() for key, value in rows}

    def save_stat_values(self, values: dict[str, list[float]], version: str) -> None:
        """Keep computed statistics, and drop those of other versions of the code (they are never read again)."""
        if not values:
            return
        with self.transaction() as db:
            db.execute("DELETE FROM stat_values WHERE version != ?", (version,))
            db.executemany(
                "INSERT OR REPLACE INTO stat_values VALUES (?, ?, ?)",
                [(key, version, np.asarray(value, dtype="<f8").tobytes()) for key, value in values.items()],
            )

    # -- imported logs (another tool's per-sample results; reportgen.imports) ---------------
    def has_import(self, model_id: str, log_digest: str) -> bool:
        row = self.db.execute("SELECT 1 FROM imports WHERE model_id=? AND log_digest=?", (model_id, log_digest)).fetchone()
        return row is not None

    def save_import(self, record: dict[str, Any], samples: list[dict[str, Any]]) -> bool:
        """Store one model's imported log (``record``: the ``imports`` columns) and its samples, keyed by the
        log's content: an unchanged log is stored once (False: it was already there)."""
        if self.has_import(record["model_id"], record["log_digest"]):
            return False
        columns = list(record)
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO imports ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [json.dumps(v, sort_keys=True, default=str) if isinstance(v, (dict, list)) else v for v in record.values()],
            )
            db.executemany(
                "INSERT OR IGNORE INTO imported_samples (log_digest, task, sample_key, label, input, output, target, scores)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        record["log_digest"],
                        s["task"],
                        s["key"],
                        s["label"],
                        s["input"],
                        s["output"],
                        s["target"],
                        json.dumps(s["values"], sort_keys=True),
                    )
                    for s in samples
                ],
            )
        return True

    def imports_frame(self) -> pd.DataFrame:
        return self.frame("SELECT * FROM imports ORDER BY model_id, imported_at")

    def imported_samples_frame(self) -> pd.DataFrame:
        return self.frame("SELECT * FROM imported_samples ORDER BY log_digest, task, sample_key")

    # -- reading (for aggregation) -----------------------------------------------------------
    def frame(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        return pd.read_sql_query(sql, self.db, params=params)

    def results_frame(self) -> pd.DataFrame:
        """Every stored answer, without the prompt as the model saw it (``prompt_text``, the prompt set's text
        through the chat template: kept in the store, read by no table, often the largest column)."""
        columns = [row[1] for row in self.db.execute("PRAGMA table_info(results)") if row[1] != "prompt_text"]
        return self.frame(f"SELECT {', '.join(columns)} FROM results ORDER BY model_id, prompt_id, created_at")

    def model_runs_frame(self) -> pd.DataFrame:
        return self.frame("SELECT * FROM model_runs ORDER BY started_at")

    def loglik_frame(self) -> pd.DataFrame:
        return self.frame("SELECT * FROM loglik ORDER BY model_id, text_id")

    def latest_manifest(self) -> RunManifest | None:
        """The manifest of the most recent run that is neither running nor interrupted (None before any)."""
        row = self.db.execute(
            "SELECT manifest FROM runs WHERE status NOT IN ('running', 'interrupted') ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        return RunManifest.from_json(json.loads(row["manifest"])) if row else None

    def content_token(self) -> str | None:
        """A random token drawn again by every change to a content table (``CONTENT_TRIGGERS``): equal tokens
        mean the same rows (a copied store keeps its token, and copies that change part ways); None when absent."""
        row = self.db.execute("SELECT value FROM meta WHERE key='content_token'").fetchone()
        return str(row["value"]) if row else None

    def content_digest(self) -> str:
        """A digest of what the stored rows say (keys and times, not the texts): it changes whenever a
        result, a model run, a language-modelling score, a judgement, a timed pass or an imported log is added or replaced."""
        sha = hashlib.sha256()
        for sql in (
            "SELECT fingerprint, prompt_id, request_hash, created_at FROM results ORDER BY 1, 2, 3",
            "SELECT run_id, model_id, finished_at, prompts_run FROM model_runs ORDER BY 1, 2",
            "SELECT fingerprint, text_id, text_hash, created_at FROM loglik ORDER BY 1, 2, 3",
            "SELECT judge_fingerprint, settings_hash, prompt_id, hash_a, hash_b, created_at FROM judgements ORDER BY 1, 2, 3, 4, 5",
            "SELECT model_id, fingerprint, settings_hash, protocol_hash, regime, pass_index, created_at FROM timed_passes"
            " ORDER BY 1, 2, 3, 4, 5, 6",
            "SELECT run_id, model_id, peak_memory_bytes, measure_protocol FROM model_runs ORDER BY 1, 2",
            "SELECT model_id, log_digest, imported_at FROM imports ORDER BY 1, 2",
            "SELECT program_hash, limits_hash, created_at FROM code_runs ORDER BY 1, 2",
            "SELECT fingerprint, item_id, choice, request_hash, created_at FROM choice_loglik ORDER BY 1, 2, 3, 4",
            "SELECT fingerprint, request_kind, created_at FROM refusals ORDER BY 1, 2",
        ):
            for row in self.db.execute(sql):
                sha.update(repr(tuple(row)).encode())
        return sha.hexdigest()

    def runs_frame(self) -> pd.DataFrame:
        return self.frame("SELECT * FROM runs ORDER BY started_at")
