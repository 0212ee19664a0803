"""The pipeline stages the commands call: tables from the store, render, build, diff.

Side effects (the store, output files, the terminal) live here and in the modules it calls at the
edges; what is computed comes from the pure functions in aggregate and analysis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from reportgen.stats.aggregate import Tables, compute_tables, latest_results, per_prompt_frame, run_delta
from reportgen.study.config import Study
from reportgen.errors import ReportgenError
from reportgen.study.prompts import PromptSet
from reportgen.run.runner import store_path, study_prompt_set
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
    """The terminal writes numbers exactly as the report does."""
    from reportgen.stats.metrics import metric_value

    return metric_value(metric, value)


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
    from reportgen.util.atomic import atomic_write as write_atomic

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
    from reportgen.stats.aggregate import history_frame, metric_columns

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


# -- render and build ---------------------------------------------------------------------------

BUILD_STATE = ".reportgen-build.json"
FORMAT_TEMPLATES = {  # which template files each output format depends on
    "markdown": (".md.j2",),
    "html": (".md.j2", ".html.j2", ".css"),
    "pdf": (".md.j2", ".html.j2", ".css"),
}


@dataclass
class ReportInputs:
    """What the store adds to a report: metric tables, retraining deltas, the latest run manifest."""

    tables: Tables | None = None
    deltas: list[RetrainingDelta] | None = None
    manifest: dict | None = None

    def as_kwargs(self) -> dict:
        return {"tables": self.tables, "deltas": self.deltas or [], "manifest": self.manifest}


def report_inputs(study: Study) -> ReportInputs:
    """Read everything the report needs from the store, in one open (nothing when there are no results)."""
    path = store_path(study)
    if not path.exists():
        return ReportInputs()
    prompt_set = _prompt_set_or_none(study)
    with Store(path, create=False) as store:
        tables = compute_tables(store, study, prompt_set)
        if tables.per_prompt.empty:
            return ReportInputs()
        deltas = [
            d for d in (retraining_delta(store, study, prompt_set, m.id) for m in study.models if m.runnable) if d is not None
        ] if prompt_set is not None else []
        row = store.db.execute("SELECT manifest FROM runs WHERE status != 'running' ORDER BY started_at DESC LIMIT 1").fetchone()
    return ReportInputs(tables, deltas, json.loads(row["manifest"]) if row else None)


def render_study(
    study: Study,
    *,
    templates_dir: Path | None = None,
    into: Path | None = None,
    single_file: bool = False,
    out_dir: Path | None = None,
    formats: list[str] | None = None,
    log: Log = print,
) -> list[Path]:
    """Render the report from the specs and whatever the store holds; never loads a model."""
    from reportgen.report import assemble as render

    inputs = report_inputs(study).as_kwargs()
    if into is not None:
        report = render.render_in_memory(study, templates_dir=templates_dir, formats=["markdown"], out_dir=out_dir, **inputs)
        return [render.replace_between_markers(into, report.markdown)]
    return render.render_report(
        study, templates_dir=templates_dir, formats=formats, out_dir=out_dir, single_file=single_file, **inputs
    )


def _digest_files(paths: list[Path]) -> str:
    import hashlib

    sha = hashlib.sha256()
    for path in sorted(paths):
        sha.update(str(path.name).encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()


def render_inputs(study: Study, templates_dir: Path | None) -> dict[str, str]:
    """A digest per output format of everything that can change it: config and the files it names,
    the prompt set, the stored results, the templates that format uses, and reportgen's own code."""
    import hashlib

    import reportgen
    from reportgen.report.templates import default_templates_dir

    named: list[Path] = [study.path]
    if study.prompts is not None and study.prompts.exists():
        named.append(study.prompts)
    for model in study.models:
        for path in (model.config, model.adapter.config_file if model.adapter else None):
            if path is not None and Path(path).is_file():
                named.append(Path(path))
    data = hashlib.sha256(_digest_files(named).encode())
    path = store_path(study)
    if path.exists():
        with Store(path, create=False) as store:
            for sql in (
                "SELECT fingerprint, prompt_id, request_hash, created_at FROM results ORDER BY 1, 2, 3",
                "SELECT run_id, model_id, finished_at, prompts_run FROM model_runs ORDER BY 1, 2",
                "SELECT fingerprint, text_id, text_hash, created_at FROM loglik ORDER BY 1, 2, 3",
            ):
                for row in store.db.execute(sql):
                    data.update(repr(tuple(row)).encode())
    code = _digest_files(sorted(Path(reportgen.__file__).parent.rglob("*.py")))
    template_dirs = [default_templates_dir()] + ([Path(templates_dir)] if templates_dir else [])
    digests = {}
    for fmt, suffixes in FORMAT_TEMPLATES.items():
        files = [f for d in template_dirs for f in d.rglob("*") if f.is_file() and f.name.endswith(suffixes)]
        digests[fmt] = hashlib.sha256(f"{data.hexdigest()}|{code}|{_digest_files(files)}|{templates_dir}".encode()).hexdigest()
    return digests


@dataclass
class BuildResult:
    reran: list[str]
    rendered: list[str]  # formats re-rendered
    paths: list[Path]


def build_study(
    study: Study,
    *,
    force: bool = False,
    templates_dir: Path | None = None,
    log: Log = print,
    progress_factory=None,
) -> BuildResult:
    """Run the models whose inputs changed, then re-render the formats whose inputs changed."""
    from reportgen.errors import ReportgenError
    from reportgen.util.atomic import atomic_write
    from reportgen.run.runner import run_study

    reran: list[str] = []
    failed = []
    if study.prompts is not None and any(m.runnable for m in study.models):
        summary = run_study(study, force=force, log=log, progress_factory=progress_factory)
        for model in summary.models:
            log(model.line())
        reran = summary.reran_models
        failed = summary.failed_models
        if not reran and not failed:
            log("every stored result is current: no model re-ran")
    out_dir = study.output_dir
    state_file = out_dir / BUILD_STATE
    try:
        previous = json.loads(state_file.read_text()) if state_file.exists() else {}
    except ValueError:
        previous = {}
    digests = render_inputs(study, templates_dir)
    names = {"markdown": "README.md", "html": "report.html", "pdf": "report.pdf"}
    stale = [
        fmt for fmt in study.output.formats
        if force or previous.get(fmt) != digests[fmt] or not (out_dir / names[fmt]).exists()
    ]
    paths: list[Path] = []
    if stale:
        paths = render_study(study, templates_dir=templates_dir, formats=stale, log=log)
        atomic_write(state_file, json.dumps({fmt: digests[fmt] for fmt in study.output.formats}, indent=2, sort_keys=True) + "\n")
        log(f"rendered {', '.join(names[f] for f in stale)} in {out_dir}")
    else:
        log(f"{out_dir}: the report is up to date; nothing rendered")
    if failed:
        raise ReportgenError("; ".join(m.line() for m in failed) + " (everything else is saved and rendered)")
    return BuildResult(reran, stale, paths)
