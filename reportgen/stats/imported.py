"""Imported per-sample results (another tool's logs, stored by reportgen.imports) as rows of the per-prompt frame.

Each model with ``results_from`` reports its most recent import. A sample becomes one row: ``prompt_id`` is
``<task>/<sample key>`` (lm-eval: task + doc_hash; Inspect: task + sample id + epoch), so the same sample lines up
across models, ``category`` is the task, and each imported value is a metric column ``<task>/<metric>``
registered as kind ``imported`` (binary when every value is 0 or 1: Wilson intervals and McNemar's test follow).
The statistics (summaries, per-category tables, paired tests on the samples both models have) are the frames'
own, unchanged. ``coverage`` says, per task, how many samples each model has and how many all share.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import pandas as pd

from reportgen.stats.frames import PER_PROMPT_COLUMNS
from reportgen.stats.history import RetrainingDelta, run_delta
from reportgen.stats.metrics import register_imported

COVERAGE_COLUMNS = ["task", "model_id", "samples", "common", "missing"]


def latest_imports(imports: pd.DataFrame, model_ids: Sequence[str]) -> pd.DataFrame:
    """Each model's most recent import, in ``model_ids`` order (models without one left out)."""
    if imports.empty:
        return imports
    rows = [
        imports[imports["model_id"] == m].sort_values("imported_at", kind="stable").iloc[-1]
        for m in model_ids
        if (imports["model_id"] == m).any()
    ]
    return pd.DataFrame(rows).reset_index(drop=True) if rows else imports.iloc[0:0]


def register_metrics(imports: pd.DataFrame) -> list[str]:
    """Register every metric the stored imports carry; their names, in first-seen order."""
    names: list[str] = []
    for raw, tool, version in zip(imports.get("metrics", []), imports.get("tool", []), imports.get("tool_version", [])):
        for metric in json.loads(raw):
            register_imported(
                metric["name"],
                binary=bool(metric["binary"]),
                higher_is_better=metric["higher_is_better"],
                description=f"{metric['metric']} of task {metric['task']}, per sample, as {tool} {version} logged it.",
            )
            if metric["name"] not in names:
                names.append(metric["name"])
    return names


def imported_per_prompt(imports: pd.DataFrame, samples: pd.DataFrame, model_ids: Sequence[str]) -> pd.DataFrame:
    """Per-prompt rows (``PER_PROMPT_COLUMNS`` + one column per imported metric) of each model's latest import."""
    return _rows(latest_imports(imports, model_ids), samples)


def _rows(current: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Per-prompt rows of the given import rows (one per model)."""
    names = register_metrics(current)
    if current.empty or samples.empty:
        return pd.DataFrame(columns=PER_PROMPT_COLUMNS + names)
    frames = []
    for _, row in current.iterrows():
        own = samples[samples["log_digest"] == row["log_digest"]]
        scores = [json.loads(s) for s in own["scores"]]
        frame = pd.DataFrame(
            {
                "model_id": row["model_id"],
                "prompt_id": [f"{t}/{k}" for t, k in zip(own["task"], own["sample_key"])],
                "category": own["task"].to_numpy(),
                "output": own["output"].to_numpy(),
                "references": [(t,) if t else () for t in own["target"]],
                "finish_reason": "imported",
                "prompt_tokens": np.nan,
                "output_tokens": np.nan,
                "latency_s": np.nan,
                "ttft_s": np.nan,
                "batch_size": np.nan,
                "failed": False,
                "error": None,
                "fingerprint": f"import:{row['log_digest'][:16]}",
                "run_id": f"import:{row['log_digest'][:16]}",
            }
        )
        for name in names:
            frame[name] = np.asarray([s.get(name, np.nan) for s in scores], dtype=float)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[PER_PROMPT_COLUMNS + names]


def coverage(per_prompt: pd.DataFrame) -> pd.DataFrame:
    """Per imported task and model: its samples, the samples every model of the task has, and its missing ones."""
    rows: list[dict[str, Any]] = []
    imported = per_prompt[per_prompt["finish_reason"] == "imported"] if len(per_prompt) else per_prompt
    for task, group in imported.groupby("category", sort=False):
        keys = {m: set(g["prompt_id"]) for m, g in group.groupby("model_id", sort=False)}
        every = set.union(*keys.values())
        common = set.intersection(*keys.values())
        for model_id, own in keys.items():
            rows.append(
                {"task": task, "model_id": model_id, "samples": len(own), "common": len(common), "missing": len(every - own)}
            )
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS)


def imported_retraining_delta(imports: pd.DataFrame, samples: pd.DataFrame, model_id: str) -> RetrainingDelta | None:
    """A model's change between its last two imported logs (a retrained model evaluated again), metric by metric
    on the samples both logs have (stats.history.run_delta); None with fewer than two imports."""
    mine = imports[imports["model_id"] == model_id].sort_values("imported_at", kind="stable") if len(imports) else imports
    if len(mine) < 2:
        return None
    old, new = (_rows(mine.iloc[[i]], samples) for i in (-2, -1))
    names = [m for m in new.columns[len(PER_PROMPT_COLUMNS) :] if m in old.columns]
    deltas = pd.DataFrame([run_delta(old, new, metric) for metric in names])
    history = pd.DataFrame(
        [
            {
                "fingerprint": f"import:{row['log_digest'][:16]}",
                "first_run_at": float(row["imported_at"]),
                "last_run_at": float(row["imported_at"]),
                "n_runs": 1,
                "last_run_id": f"import:{row['log_digest'][:16]}",
                "n_prompts": int((samples["log_digest"] == row["log_digest"]).sum()),
                "n_failed": 0,
                **_means(_rows(mine.iloc[[i]], samples), names),
            }
            for i, (_, row) in enumerate(mine.iterrows())
        ]
    )
    return RetrainingDelta(
        model_id,
        f"import:{mine.iloc[-2]['log_digest'][:16]}",
        f"import:{mine.iloc[-1]['log_digest'][:16]}",
        float(mine.iloc[-2]["imported_at"]),
        float(mine.iloc[-1]["imported_at"]),
        deltas,
        history,
    )


def _means(frame: pd.DataFrame, names: Sequence[str]) -> dict[str, float]:
    return {n: float(frame[n].mean()) if n in frame and frame[n].notna().any() else float("nan") for n in names}
