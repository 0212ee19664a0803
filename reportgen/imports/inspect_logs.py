"""Inspect logs (``.eval`` or ``.json``), read through inspect_ai's own API (``read_eval_log``), never by parsing
the files: the log format is inspect_ai's to change, and its reader knows every version it wrote.

``path`` is one log or a folder of logs (``list_eval_logs``; per task the latest log wins). A sample's identity is
its task, its id and its epoch; each scorer's per-sample value becomes a column ``<task>/<scorer>`` (a scorer that
returns a mapping gives one column per key, ``<task>/<scorer>.<key>``), turned into a number by inspect_ai's own
``value_to_float`` (C → 1, I → 0, P → 0.5). Higher is better for every scorer value (Inspect records no direction).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reportgen.errors import MissingExtraError
from reportgen.imports import ImportedLog, ImportedMetric, ImportedSample, UnreadableLog, file_digest, metric_column

#: Inspect log format versions (``EvalLog.version``) reportgen reads
READS = (2,)
_AGREE = 1e-9


def _inspect() -> Any:
    try:
        import inspect_ai.log as inspect_log
    except ImportError:
        raise MissingExtraError("inspect_ai", "inspect", "Importing an Inspect log") from None
    return inspect_log


def _version() -> str:
    from importlib.metadata import version

    return version("inspect_ai")


def _unreadable(file: Path, exc: Exception) -> UnreadableLog:
    return UnreadableLog(
        f"{file}: inspect_ai {_version()} cannot read it ({type(exc).__name__}: {exc}); reportgen reads Inspect log "
        f"format version {', '.join(map(str, READS))}. Fix: import a log that inspect_ai version wrote, or convert it "
        "(inspect log convert)"
    )


def _logs(path: Path) -> list[Path]:
    inspect_log = _inspect()
    if path.is_file():
        return [path]
    infos = inspect_log.list_eval_logs(str(path))
    latest: dict[str, tuple[str, Path]] = {}
    models: set[str] = set()  # of every log in the folder: one model's logs, or an ambiguous folder
    for info in infos:
        file = Path(info.name.removeprefix("file://"))
        try:
            header = inspect_log.read_eval_log(str(file), header_only=True)
        except Exception as exc:  # inspect_ai's own error for a log it cannot read
            raise _unreadable(file, exc) from None
        models.add(str(header.eval.model))
        created = str(header.eval.created)
        if header.eval.task not in latest or created > latest[header.eval.task][0]:
            latest[header.eval.task] = (created, file)
    if not latest:
        raise UnreadableLog(f"{path} holds no Inspect log (.eval or .json). Fix: point it at the log folder inspect eval wrote")
    if len(models) > 1:
        raise UnreadableLog(
            f"{path} holds logs of several models ({', '.join(sorted(models))}). Fix: point it at one model's logs"
        )
    return [file for _, file in sorted(latest.values(), key=lambda item: str(item[1]))]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    return str(getattr(value, "text", value))


def _values(task: str, scores: dict[str, Any], to_float: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for scorer, score in (scores or {}).items():
        value = score.value
        parts = value.items() if isinstance(value, dict) else [(None, value)]
        for key, part in parts:
            if isinstance(part, (list, dict)):
                continue
            number = float(to_float(part))
            if math.isfinite(number):
                out[metric_column(task, scorer if key is None else f"{scorer}.{key}")] = number
    return out


def _read_one(file: Path) -> tuple[Any, list[ImportedSample], dict[str, float | None]]:
    inspect_log = _inspect()
    from inspect_ai.scorer import value_to_float

    try:
        log = inspect_log.read_eval_log(str(file))
    except Exception as exc:  # inspect_ai raises its own errors for a file it cannot read (a newer format among them)
        raise _unreadable(file, exc) from None
    if log.version not in READS:
        raise UnreadableLog(
            f"{file} is an Inspect log of format version {log.version}; reportgen reads format version "
            f"{', '.join(map(str, READS))}. Fix: convert it with a matching inspect_ai (inspect log convert)"
        )
    if log.status != "success":
        raise UnreadableLog(f"{file}: the evaluation ended with status '{log.status}'. Fix: import a log that finished")
    task = str(log.eval.task)
    to_float = value_to_float()
    samples = [
        ImportedSample(
            task=task,
            key=f"{sample.id}#{sample.epoch}",
            label=f"id {sample.id}, epoch {sample.epoch}",
            input=_text(sample.input),
            output=sample.output.completion if sample.output is not None else "",
            target=_text(sample.target),
            values=_values(task, sample.scores or {}, to_float),
        )
        for sample in log.samples or []
    ]
    reported: dict[str, float | None] = {}
    for score in (log.results.scores if log.results else []) or []:
        accuracy = score.metrics.get("accuracy") or score.metrics.get("mean")
        reported[metric_column(task, score.name)] = float(accuracy.value) if accuracy is not None else None
    return log, samples, reported


def read_log(path: Path) -> ImportedLog:
    """The samples of the log at ``path`` (or of each task's latest log in a folder)."""
    if not path.exists():
        raise UnreadableLog(f"{path} does not exist. Fix: point it at an Inspect log or the folder of logs")
    files = _logs(path)
    samples: list[ImportedSample] = []
    metrics: list[ImportedMetric] = []
    unused: dict[str, str] = {}
    models, versions, created, settings = set(), set(), [], {}
    for file in files:
        log, own, reported = _read_one(file)
        samples += own
        models.add(str(log.eval.model))
        versions.add(str(log.eval.packages.get("inspect_ai", "unknown")))
        created.append(str(log.eval.created))
        settings[str(log.eval.task)] = {
            "model": log.eval.model,
            "model_args": log.eval.model_args or {},
            "generate_config": log.eval.model_generate_config.model_dump(exclude_none=True),
            "task_args": log.eval.task_args or {},
            "epochs": log.eval.config.epochs,
        }
        names = sorted({name for s in own for name in s.values})
        for name in names:
            values = [s.values[name] for s in own if name in s.values]
            mean = math.fsum(values) / len(values)
            own_value = reported.get(name)
            if own_value is not None and abs(own_value - mean) > _AGREE:
                unused[name] = f"the mean of its per-sample values ({mean:.6g}) is not Inspect's accuracy ({own_value})"
                continue
            metrics.append(
                ImportedMetric(
                    name=name,
                    task=str(log.eval.task),
                    metric=name.split("/", 1)[1],
                    binary=all(v in (0.0, 1.0) for v in values),
                    higher_is_better=True,
                    reported=own_value,
                )
            )
        unused["events, messages, model usage"] = "recorded by Inspect per sample, not shown"
    if len(models) > 1:
        raise UnreadableLog(
            f"{path} holds logs of several models ({', '.join(sorted(models))}). Fix: point it at one model's log"
        )
    return ImportedLog(
        tool="inspect",
        tool_version=", ".join(sorted(versions)),
        format_version=", ".join(str(v) for v in READS),
        model_name=models.pop(),
        settings=settings,
        files=tuple(str(f) for f in files),
        digest=file_digest(files),
        logged_at=max(created),
        samples=tuple(samples),
        metrics=tuple(metrics),
        unused=unused,
    )
