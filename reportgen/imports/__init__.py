"""Result sources other than reportgen's own backends: another tool's per-sample logs, read into typed records.

A model of the study may name ``results_from: {tool, path}`` instead of a ``source``: its results come from a
log another tool already wrote. One module per tool reads that tool's format through the tool's own code or
documented format, and returns an :class:`ImportedLog`; ``importer`` stores it, keyed by its content, and the
statistics join its per-sample values to the study's tables (``reportgen.stats.imported``).

Readers never fetch anything over the network; the texts of a log (inputs, outputs, targets) are untrusted and
kept as text, escaped wherever the report shows them like any model answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from reportgen.util.registry import Registry

__all__ = ["ImportedLog", "ImportedMetric", "ImportedSample", "READERS", "UnreadableLog", "file_digest", "read_log"]


class UnreadableLog(ValueError):
    """A log reportgen cannot import: the message names what was found and what reportgen reads (the importer
    adds the config's file:line and key)."""


@dataclass(frozen=True)
class ImportedSample:
    """One scored sample: its identity within the task (aligns it across models), its texts and its values."""

    task: str
    key: str  # lm-eval: the doc_hash (first 16 hex digits); Inspect: "<sample id>#<epoch>"
    label: str  # how a reader finds it in the tool's own view: lm-eval's doc_id, Inspect's id and epoch
    input: str
    output: str
    target: str
    values: dict[str, float]  # metric column name → the tool's own per-sample value


@dataclass(frozen=True)
class ImportedMetric:
    """A per-sample value the tool computed, imported as a metric column ``<task>/<metric>``."""

    name: str
    task: str
    metric: str  # the tool's own name (lm-eval: "acc", "exact_match,strict-match"; Inspect: the scorer)
    binary: bool
    higher_is_better: bool | None
    reported: float | None  # the aggregate the tool's own results say (lm-eval's results file, Inspect's results)


@dataclass(frozen=True)
class ImportedLog:
    """What one model's log says: who wrote it, with which settings, and every scored sample."""

    tool: str  # "lm-eval" or "inspect"
    tool_version: str
    format_version: str
    model_name: str
    settings: dict[str, Any]
    files: tuple[str, ...]
    digest: str  # of the files' contents: an unchanged log is the same import
    logged_at: str  # when the tool wrote it, as the tool recorded it
    samples: tuple[ImportedSample, ...]
    metrics: tuple[ImportedMetric, ...]
    unused: dict[str, str] = field(default_factory=dict)  # what the log carried that is not imported, and why


def metric_column(task: str, metric: str) -> str:
    """The metric column of a task's per-sample value: ``tiny_mc/acc``."""
    return f"{task}/{metric}"


def file_digest(paths: list[Path]) -> str:
    """sha256 over the files' names and contents, in name order."""
    sha = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        sha.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()


READERS: Registry[Callable[[Path], ImportedLog]] = Registry("log reader")
READERS.register("lm-eval", "reportgen.imports.lm_eval:read_log")
READERS.register("inspect", "reportgen.imports.inspect_logs:read_log")


def read_log(tool: str, path: Path) -> ImportedLog:
    """Read ``path`` with the reader registered for ``tool``; raises UnreadableLog."""
    return READERS.get(tool)(Path(path))
