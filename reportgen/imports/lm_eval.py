"""lm-evaluation-harness logs: the folder ``lm_eval --output_path DIR --log_samples`` writes.

The format is lm-eval's own code (``lm_eval/loggers/evaluation_tracker.py`` writes ``results_<time>.json`` and
``samples_<task>_<time>.jsonl`` side by side; ``lm_eval/evaluator.py`` builds each sample's dict: ``doc_id``,
``doc``, ``target``, ``arguments``, ``resps``, ``filtered_resps``, ``filter``, ``metrics`` and the metric values,
``doc_hash``, ``prompt_hash``, ``target_hash``). lm-eval has no reader API, so the JSON is read as written.

``path`` is the output folder (searched recursively; per task the latest results file that has the task wins)
or one ``results_*.json`` (that run's tasks). A sample's identity is its task and ``doc_hash``; each scalar metric
value (per filter: ``exact_match,strict-match`` unless the filter is ``none``) becomes a column. A metric is
imported only when the mean of its per-sample values is the value lm-eval's results file reports for it (mean
aggregation): a corpus-level metric (BLEU, F1 over the corpus, perplexity) is listed as not imported.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from reportgen.imports import ImportedLog, ImportedMetric, ImportedSample, UnreadableLog, file_digest, metric_column

#: lm-eval versions whose output format reportgen reads (the ``lm_eval_version`` of the results file)
READS = ("0.4",)
_RESULTS = re.compile(r"^results_(?P<time>.+)\.json$")
_AGREE = 1e-9  # a per-sample mean and lm-eval's own aggregate agree to this (float sums in another order)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnreadableLog(f"{path} is not a readable lm-eval results file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise UnreadableLog(f"{path} has no 'results' mapping: not an lm-eval results file")
    return data


def _format_version(data: dict[str, Any], path: Path) -> str:
    version = str(data.get("lm_eval_version") or "unknown")
    if not any(version == known or version.startswith(known + ".") for known in READS):
        raise UnreadableLog(
            f"{path} was written by lm-eval {version}; reportgen reads the results of lm-eval "
            f"{', '.join(v + '.x' for v in READS)}. Fix: evaluate again with a supported lm-eval, or convert the log"
        )
    return version


def _runs(path: Path) -> list[tuple[Path, str]]:
    """(results file, its time stamp), oldest first."""
    if path.is_file():
        match = _RESULTS.match(path.name)
        if not match:
            raise UnreadableLog(f"{path} is not a results_<time>.json file that lm-eval writes")
        return [(path, match["time"])]
    found = sorted(((p, m["time"]) for p in path.rglob("results_*.json") if (m := _RESULTS.match(p.name))), key=lambda r: r[1])
    if not found:
        raise UnreadableLog(f"{path} holds no results_*.json. Fix: point it at the folder lm-eval's --output_path wrote")
    return found


def _samples_file(results: Path, task: str, stamp: str) -> Path:
    samples = results.parent / f"samples_{task}_{stamp}.jsonl"
    if not samples.is_file():
        raise UnreadableLog(
            f"{results}: task '{task}' has no per-sample log ({samples.name}). Fix: run lm-eval with --log_samples"
        )
    return samples


def _scalar(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
        return float(value)
    return None


def _texts(record: dict[str, Any]) -> tuple[str, str, str]:
    """(input, output, target) of a sample as text: the prompt, the filtered answer (or the likeliest choice)."""
    arguments = [a for a in (record.get("arguments") or {}).values() if isinstance(a, dict)]
    prompt = str(arguments[0].get("arg_0", "")) if arguments else ""
    responses = record.get("filtered_resps") or []
    target = record.get("target")
    choices = [a.get("arg_1") for a in arguments if isinstance(a.get("arg_1"), str)]
    if choices and len(choices) == len(responses) and all(isinstance(r, list) and r for r in responses):
        # multiple choice: a [log-likelihood, is-greedy] pair per choice; the answer is the likeliest choice
        scores = [float(r[0]) for r in responses]
        output = str(choices[scores.index(max(scores))]).strip()
        if isinstance(target, (int, str)) and str(target).isdigit() and int(target) < len(choices):
            target = str(choices[int(target)]).strip()
    else:
        output = str(responses[0]) if isinstance(responses, list) and responses else str(responses)
    return prompt, output, "" if target is None else str(target)


def _read_task(task: str, samples: Path) -> tuple[list[ImportedSample], dict[str, list[float]], set[str]]:
    merged: dict[str, ImportedSample] = {}
    values: dict[str, list[float]] = {}
    skipped: set[str] = set()
    for number, line in enumerate(samples.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            doc_hash = str(record["doc_hash"])
        except (ValueError, KeyError, TypeError):
            raise UnreadableLog(f"{samples}:{number}: not an lm-eval sample record (no doc_hash)") from None
        filter_name = str(record.get("filter") or "none")
        own: dict[str, float] = {}
        for metric in record.get("metrics") or []:
            name = metric if filter_name == "none" else f"{metric},{filter_name}"
            value = _scalar(record.get(metric))
            if value is None:
                skipped.add(name)
                continue
            own[metric_column(task, name)] = value
            values.setdefault(name, []).append(value)
        key = doc_hash[:16]
        if key in merged:  # the same document under another filter: one sample, more values
            previous = merged[key]
            merged[key] = ImportedSample(**{**previous.__dict__, "values": {**previous.values, **own}})
            continue
        prompt, output, target = _texts(record)
        merged[key] = ImportedSample(task, key, f"doc_id {record.get('doc_id')}", prompt, output, target, own)
    return list(merged.values()), values, skipped


def read_log(path: Path) -> ImportedLog:
    """Every task's latest per-sample log under ``path`` (see the module's docstring)."""
    if not path.exists():
        raise UnreadableLog(f"{path} does not exist. Fix: point it at the folder lm-eval's --output_path wrote")
    latest: dict[str, tuple[Path, str, dict[str, Any]]] = {}
    every_name: set[str] = set()  # of every run in the folder: one model's folder, or an ambiguous one
    for results, stamp in _runs(path):
        data = _load_json(results)
        every_name.add(str(data.get("model_name") or ""))
        for task in data["results"]:
            if task in (data.get("configs") or {}) or task in (data.get("n-samples") or {}):  # a task, not a group
                latest[task] = (results, stamp, data)
    if not latest:
        raise UnreadableLog(f"{path}: the results files name no task")
    names = sorted(every_name)
    if len(names) > 1:
        raise UnreadableLog(
            f"{path} holds the results of several models ({', '.join(names)}). Fix: point it at one model's folder"
        )
    samples: list[ImportedSample] = []
    metrics: list[ImportedMetric] = []
    unused: dict[str, str] = {}
    files: set[Path] = set()
    versions: set[str] = set()
    for task in sorted(latest):
        results, stamp, data = latest[task]
        versions.add(_format_version(data, results))
        log = _samples_file(results, task, stamp)
        files |= {results, log}
        task_samples, values, skipped = _read_task(task, log)
        samples += task_samples
        for name in sorted(skipped):
            unused[metric_column(task, name)] = "not a number per sample (a corpus-level metric)"
        reported = data["results"][task]
        directions = (data.get("higher_is_better") or {}).get(task) or {}
        for name, column_values in values.items():
            own = _scalar(reported.get(name if "," in name else f"{name},none"))
            mean = math.fsum(column_values) / len(column_values)
            if own is None or abs(mean - own) > _AGREE:
                unused[metric_column(task, name)] = (
                    f"the mean of its per-sample values ({mean:.6g}) is not lm-eval's aggregate ({own}): not mean-aggregated"
                )
                continue
            direction = directions.get(name.split(",")[0])
            metrics.append(
                ImportedMetric(
                    name=metric_column(task, name),
                    task=task,
                    metric=name,
                    binary=all(v in (0.0, 1.0) for v in column_values),
                    higher_is_better=direction if isinstance(direction, bool) else None,
                    reported=own,
                )
            )
    kept = {m.name for m in metrics}
    samples = [ImportedSample(**{**s.__dict__, "values": {k: v for k, v in s.values.items() if k in kept}}) for s in samples]
    first = next(iter(latest.values()))[2]
    config = first.get("config") or {}
    settings = {
        "model": config.get("model"),
        "model_args": config.get("model_args"),
        "batch_size": config.get("batch_size"),
        "gen_kwargs": config.get("gen_kwargs"),
        "limit": config.get("limit"),
        "n-shot": {t: (latest[t][2].get("n-shot") or {}).get(t) for t in sorted(latest)},
        "task versions": {t: (latest[t][2].get("versions") or {}).get(t) for t in sorted(latest)},
    }
    for key in ("pretty_env_info", "task_hashes", "chat_template", "system_instruction", "git_hash"):
        if first.get(key):
            unused[key] = "recorded by lm-eval, not shown"
    return ImportedLog(
        tool="lm-eval",
        tool_version=", ".join(sorted(versions)),
        format_version=", ".join(sorted(versions)),
        model_name=names[0] or "unnamed",
        settings=settings,
        files=tuple(str(f) for f in sorted(files)),
        digest=file_digest(sorted(files)),
        logged_at=max(stamp for _, stamp, _ in latest.values()),
        samples=tuple(samples),
        metrics=tuple(metrics),
        unused=unused,
    )
