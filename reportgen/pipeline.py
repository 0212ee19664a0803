"""The pipeline stages the commands call: tables from the store, render, build, diff.

Side effects (the store, output files, the terminal) live here and in the modules it calls at the
edges; what is computed comes from the pure functions in aggregate and analysis.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from reportgen.aggregate import Tables, compute_tables, latest_results, per_prompt_frame, run_delta
from reportgen.config import Study
from reportgen.errors import ReportgenError
from reportgen.metrics import METRICS
from reportgen.prompts import PromptSet
from reportgen.runner import store_path, study_prompt_set
from reportgen.store import Store

Log = Callable[[str], None]


def _prompt_set_or_none(study: Study) -> PromptSet | None:
    return study_prompt_set(study) if study.prompts is not None else None


def metric_tables(study: Study, *, must_exist: bool = True) -> Tables | None:
    """Every metric table for the study, from its store (None when there is no store and must_exist is False)."""
    path = store_path(study)
    if not path.exists():
        if must_exist:
            raise ReportgenError(f"{path}: no results yet for {study.path}. Fix: run `reportgen run {study.path}` first")
        return None
    with Store(path, create=False) as store:
        return compute_tables(store, study, _prompt_set_or_none(study))


# -- terminal and files ------------------------------------------------------------------------


def format_metric(metric: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    unit = METRICS[metric].unit if metric in METRICS else ""
    if unit == "bytes":
        return f"{value / 2**20:,.0f} MiB"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def print_tables(tables: Tables, console) -> None:
    from rich.table import Table

    if tables.per_prompt.empty:
        console.print("no results in the store yet")
        return
    summary = Table(title="Quality and text metrics per model (mean [95% CI], n)")
    summary.add_column("metric", style="bold")
    for model_id in tables.model_ids:
        summary.add_column(model_id)
    for metric in tables.metrics:
        rows = tables.summary[tables.summary["metric"] == metric].set_index("model_id")
        cells = []
        for model_id in tables.model_ids:
            if model_id not in rows.index:
                cells.append("—")
                continue
            row = rows.loc[model_id]
            cells.append(f"{format_metric(metric, row['mean'])} [{format_metric(metric, row['ci_low'])}, {format_metric(metric, row['ci_high'])}] n={int(row['n'])}")
        summary.add_row(metric, *cells)
    console.print(summary)

    if not tables.efficiency.empty:
        efficiency = Table(title="Efficiency per model")
        columns = ["load_time_s", "ttft_p50_s", "latency_p50_s", "latency_p95_s", "tokens_per_s", "peak_memory_bytes", "bandwidth_share"]
        efficiency.add_column("model", style="bold")
        for column in columns:
            efficiency.add_column(column)
        for _, row in tables.efficiency.iterrows():
            efficiency.add_row(str(row["model_id"]), *(format_metric(c, row[c]) for c in columns))
        console.print(efficiency)
    if not tables.lm.empty:
        lm = Table(title="Language modelling on the reference texts")
        for column in ("model_id", "bits_per_byte", "bpb_ci_low", "bpb_ci_high", "perplexity", "n_texts"):
            lm.add_column(column)
        for _, row in tables.lm.iterrows():
            lm.add_row(str(row["model_id"]), *(format_metric("bits_per_byte", row[c]) for c in ("bits_per_byte", "bpb_ci_low", "bpb_ci_high", "perplexity")), str(row["n_texts"]))
        console.print(lm)
    significant = tables.pairwise[tables.pairwise["significant"] == True]  # noqa: E712 (pandas mask)
    if len(significant):
        pairs = Table(title="Significant pairwise differences (paired bootstrap, 95%)")
        for column in ("metric", "model_a", "model_b", "diff", "ci_low", "ci_high", "better"):
            pairs.add_column(column)
        for _, row in significant.iterrows():
            pairs.add_row(row["metric"], row["model_a"], row["model_b"], *(format_metric(row["metric"], row[c]) for c in ("diff", "ci_low", "ci_high")), str(row["better"]))
        console.print(pairs)


def write_tables(tables: Tables, *, csv_dir: Path | None = None, json_file: Path | None = None) -> list[Path]:
    from reportgen.render.write import write_atomic

    frames = {
        "per_prompt": tables.per_prompt,
        "summary": tables.summary,
        "category_summary": tables.category_summary,
        "pairwise": tables.pairwise,
        "efficiency": tables.efficiency,
        "lm": tables.lm,
    }
    written = []
    if csv_dir is not None:
        for name, frame in frames.items():
            path = Path(csv_dir) / f"{name}.csv"
            write_atomic(path, frame.to_csv(index=False))
            written.append(path)
    if json_file is not None:
        payload = {name: json.loads(frame.to_json(orient="records")) for name, frame in frames.items()}
        write_atomic(Path(json_file), json.dumps(payload, indent=2, sort_keys=True))
        written.append(Path(json_file))
    return written


# -- history: what retraining changed -----------------------------------------------------------


@dataclass
class RetrainingDelta:
    model_id: str
    old_fingerprint: str
    new_fingerprint: str
    old_run_at: float
    new_run_at: float
    deltas: pd.DataFrame  # metric, n, mean_old, mean_new, diff, ci_low, ci_high, p_value, significant, improved
    history: pd.DataFrame  # one row per fingerprint, oldest first (aggregate.history_frame)

    @property
    def worse(self) -> list[str]:
        return [row.metric for row in self.deltas.itertuples() if row.improved is False]

    @property
    def better(self) -> list[str]:
        return [row.metric for row in self.deltas.itertuples() if row.improved is True]


def retraining_delta(store: Store, study: Study, prompt_set: PromptSet, model_id: str) -> RetrainingDelta | None:
    """The change of a model between its last two fingerprints (None if it has had only one)."""
    from reportgen.aggregate import history_frame, metric_columns

    results = store.results_frame()
    history = history_frame(store.model_runs_frame(), results, model_id, prompt_set)
    history = history[history["n_prompts"] > 0].reset_index(drop=True)
    if len(history) < 2:
        return None
    old, new = history.iloc[-2], history.iloc[-1]
    frames = {}
    for which, fingerprint in (("old", old["fingerprint"]), ("new", new["fingerprint"])):
        rows = latest_results(results, {model_id: fingerprint})
        rows = rows[rows["prompt_id"].isin({p.id for p in prompt_set.prompts})]
        frames[which] = per_prompt_frame(rows, prompt_set)
    names = [m for m in metric_columns(frames["new"]) if m in frames["old"].columns]
    deltas = pd.DataFrame([run_delta(frames["old"], frames["new"], metric) for metric in names])
    return RetrainingDelta(model_id, old["fingerprint"], new["fingerprint"], old["last_run_at"], new["last_run_at"], deltas, history)


def retraining_deltas(study: Study) -> list[RetrainingDelta]:
    path = store_path(study)
    if not path.exists() or study.prompts is None:
        return []
    prompt_set = study_prompt_set(study)
    with Store(path, create=False) as store:
        out = [retraining_delta(store, study, prompt_set, m.id) for m in study.models if m.runnable]
    return [d for d in out if d is not None]


def print_diff(study: Study, model_id: str, console) -> None:
    from rich.table import Table

    if model_id not in {m.id for m in study.models}:
        raise ReportgenError(f"--model: no model '{model_id}' in {study.path}. Known: {', '.join(m.id for m in study.models)}")
    path = store_path(study)
    if not path.exists():
        raise ReportgenError(f"{path}: no results yet. Fix: run `reportgen run {study.path}` first")
    with Store(path, create=False) as store:
        delta = retraining_delta(store, study, study_prompt_set(study), model_id)
    if delta is None:
        console.print(f"{model_id} has a single version in the store: nothing to compare. Retrain it and run again.")
        return
    table = Table(title=f"{model_id}: {delta.old_fingerprint[:8]} → {delta.new_fingerprint[:8]} (new − old, paired bootstrap 95%)")
    for column in ("metric", "old", "new", "change", "95% CI", "verdict"):
        table.add_column(column)
    for row in delta.deltas.itertuples():
        verdict = "better" if row.improved is True else "WORSE" if row.improved is False else ("changed" if row.significant else "no significant change")
        table.add_row(row.metric, format_metric(row.metric, row.mean_old), format_metric(row.metric, row.mean_new),
                      format_metric(row.metric, row.diff), f"[{format_metric(row.metric, row.ci_low)}, {format_metric(row.metric, row.ci_high)}]", verdict)
    console.print(table)
    if delta.worse:
        console.print(f"[bold red]{model_id} got worse after retraining on: {', '.join(delta.worse)}[/bold red]")
