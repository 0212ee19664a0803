"""The results sections of a report: measured frames (stats.tables.Tables) → Markdown-safe views and charts.

Two entry points: ``result_charts`` adds the result charts to the report's ChartSet (so every chart of
a report is exported in one kaleido session), and ``result_sections`` returns the views as one typed
record (``context.ResultSections``). Pure functions: the frames, the study and the
prompt texts in, views out; nothing is read or written here.

Conventions every table follows: models are columns headed ``N. name`` (N: the model's position in the
study, as in "Model N"), metrics are rows labelled with ↑ (higher is better) or ↓ (lower is better),
a cell is ``mean [95% CI low, high]``, a missing value is ``—``. Text that came from a model, a prompt or a
config is escaped here (``md_cell``, ``md_code``, ``md_inline_code``).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from reportgen import analysis
from reportgen.report.context import (
    AnalysisGroup,
    ResultSections,
    RetrainingView,
    SampleOutput,
    SampleView,
    Table,
    empty_table,
)
from reportgen.format import MISSING, human_bytes, num, p_value, percent
from reportgen.format import capital as _capital, finite as _finite
from reportgen.stats.metrics import METRICS, metric_ci, metric_label, metric_range, metric_value
from reportgen.stats.efficiency import has_pass_ranges
from reportgen.records import RunManifest
from reportgen.report.charts import chart_slug
from reportgen.report.explorer import explorer_data
from reportgen.report.code import code_view
from reportgen.report.judged import judged_charts, judged_views
from reportgen.report.markdown import markdown_style, md_cell, md_code, md_escape, md_inline_code, md_unblock, md_wrapped

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from reportgen.stats.tables import Tables
    from reportgen.study.config import Study
    from reportgen.report.charts import ChartSet
    from reportgen.specs.extract import ModelSpec
    from reportgen.stats.history import RetrainingDelta

__all__ = [
    "analysis_groups",
    "category_table",
    "choice_tables",
    "efficiency_table",
    "lm_table",
    "manifest_tables",
    "quality_tables",
    "result_charts",
    "result_sections",
    "retraining_views",
    "sample_views",
    "summary_table",
]

#: Characters of one output shown in the samples; longer outputs are cut with a note (the store keeps all).
MAX_SAMPLE_CHARS = 4000
CI_LEGEND = (
    "mean [95% CI over prompts: Wilson score interval for 0/1 metrics (exact match, contains answer, hit "
    "token limit), BCa bootstrap for the others; *n too small* / *all values equal*: no interval can be estimated]"
)
TESTS_LEGEND = (
    "differences between models: McNemar's exact test for 0/1 metrics, the paired sign-flip permutation test "
    "otherwise, Holm-adjusted over each metric's pairs (significant: adjusted p < 0.05)"
)


def _bold_legend(where: str) -> str:
    """What bold means in a table (``_best``): ``where`` says among what (``in its column``)."""
    return f"**bold**: the best value {where}, when only one model has it as printed (on a tie, none is bold)"


#: why a mean has no interval (stats.inference's reasons), as a table cell shows it
NO_INTERVAL = {"n < 2": "n too small", "constant data": "all values equal"}
ARROWS_LEGEND = "↑ higher is better, ↓ lower is better"


# --------------------------------------------------------------------------------------------------
# Helpers


def _ci_cell(metric: str, r: dict) -> str:
    """``mean [low, high]``, or ``mean [n too small]`` when the summary row says no interval could be estimated."""
    text = metric_ci(metric, r["mean"], r["ci_low"], r["ci_high"])
    reason = NO_INTERVAL.get(str(r.get("ci_method")))
    if reason and (not _finite(r["ci_low"]) or not _finite(r["ci_high"])):
        text += f" [*{reason}*]"
    return text


def _numbers(study: Study) -> dict[str, int]:
    return {m.id: i for i, m in enumerate(study.models, 1)}


def _display(study: Study) -> dict[str, str]:
    """model id → display name, raw (for charts, which escape for plotly themselves)."""
    return {m.id: " ".join(m.name.split()) for m in study.models}


def _model_header(study: Study, model_id: str) -> str:
    number = _numbers(study).get(model_id)
    name = md_cell(_display(study).get(model_id, model_id))
    return f"{number}. {name}" if number else name


def _arrow(metric: str) -> str:
    metric_def = METRICS.find(metric)
    if metric_def is None or metric_def.higher_is_better is None:
        return ""
    return " ↑" if metric_def.higher_is_better else " ↓"


def _row_label(metric: str) -> str:
    known = METRICS.find(metric)
    if known is not None and known.kind == "imported":  # a tool's own task/metric name: as the tool wrote it
        return f"{md_cell(known.label)}{_arrow(metric)}"
    return f"{_capital(metric_label(metric))}{_arrow(metric)}"


def _best(values: Mapping[str, Any], higher: bool | None, metric: str) -> set[str]:
    """The model whose value is bold: the one best value of a row or column, as its cell prints it.

    The rule every table follows: **bold marks a unique best value only**. Values are compared as printed
    (``metric_value(metric, v)``: the reader compares 1.063 with 1.063, not the digits behind them), and
    when several models print the best value, none is bold (all-or-none, and a tie is none). Bold is only
    for columns and rows with a direction (↑ / ↓), never for counts such as failures.
    """
    tied = analysis.best_as_shown(values, higher, lambda v: metric_value(metric, v))
    return set(tied) if len(tied) == 1 else set()


def _clear_best(efficiency: Mapping[str, Mapping[str, Any]], column: str) -> set[str]:
    """The model to bold on a speed or memory measure: the one best beyond the noise (analysis.results.clear_best:
    ranges of the timed passes apart, or beyond the noise threshold), else none."""
    from reportgen.analysis.results import clear_best

    best = clear_best({m: dict(r) for m, r in efficiency.items()}, column)
    return {best} if best is not None else set()


def _bold(text: str, on: bool) -> str:
    return f"**{text}**" if on and text != MISSING else text


def _when(epoch: Any) -> str:
    if not _finite(epoch):
        return "unknown time"
    return datetime.fromtimestamp(float(epoch), timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------------------------------
# Tables


def summary_table(study: Study, tables: Tables, headline: str | None) -> Table:
    """One row per model: headline metric with its CI, throughput, latency p50, peak memory, bits per byte, failures."""
    efficiency = {r["model_id"]: r for r in tables.efficiency.to_dict("records")}
    summary = tables.summary
    means = {r["model_id"]: r for r in summary[summary["metric"] == headline].to_dict("records")} if headline else {}
    lm = {r["model_id"]: r for r in tables.lm.to_dict("records")} if not tables.lm.empty else {}
    show_lm = any(_finite(r.get("bits_per_byte")) for r in lm.values())
    ran = not tables.efficiency.empty  # no model ran here (every result imported from a log): no speed, no failures
    header = ["Model"]
    if headline:
        header.append(f"{_row_label(headline)}<br>[95% CI]")
    if ran:
        header += ["Batched throughput ↑<br>(tokens/s)", "Single-stream latency p50 ↓<br>(s per prompt)", "Peak memory ↓"]
    if show_lm:
        header.append("Bits per byte ↓<br>[95% CI]")
    if ran:
        header.append("Failed")
    best = {
        "headline": (
            _best({m: r["mean"] for m, r in means.items()}, METRICS.get(headline).higher_is_better, headline)
            if headline
            else set()
        ),
        "speed": _clear_best(efficiency, "tokens_per_s"),
        "latency": _clear_best(efficiency, "latency_p50_s"),
        "memory": _clear_best(efficiency, "peak_memory_bytes"),
        "bpb": _best({m: r["bits_per_byte"] for m, r in lm.items()}, False, "bits_per_byte"),
    }
    rows = []
    for model_id in tables.model_ids:
        eff = efficiency.get(model_id, {})
        row = [_model_header(study, model_id)]
        if headline:
            r = means.get(model_id)
            cell = _ci_cell(headline, r).replace(" [", "<br>[", 1) if r else MISSING
            row.append(_bold(cell, model_id in best["headline"]))
        if ran:
            row.append(_bold(_speed_cell(eff, "tokens_per_s"), model_id in best["speed"]))
            row.append(_bold(_speed_cell(eff, "latency_p50_s"), model_id in best["latency"]))
            row.append(_bold(metric_value("peak_memory_bytes", eff.get("peak_memory_bytes")), model_id in best["memory"]))
        if show_lm:
            r = lm.get(model_id)
            cell = _bpb_cell(r).replace(" [", "<br>[", 1) if r else MISSING
            row.append(_bold(cell, model_id in best["bpb"]))
        if ran:
            failed, total = int(eff.get("n_failed") or 0), int(eff.get("n_prompts") or 0)
            row.append(f"{failed} of {total}")  # a count, never bold (bold: the best value)
        rows.append(row)
    legend = (
        f"{CI_LEGEND}; {ARROWS_LEGEND}; {_bold_legend('in its column')}, not necessarily significantly "
        f"better (see the analysis; {TESTS_LEGEND}); speed and memory are bold only when best beyond the noise. "
        f"Throughput: batched; latency: single stream. p50: median. {speed_protocol(study, tables)}"
        if ran
        else f"{CI_LEGEND}; {ARROWS_LEGEND}; {_bold_legend('in its column')}, not necessarily significantly better "
        f"(see the analysis; {TESTS_LEGEND}). Every result is imported from another tool's log: nothing was run or timed here."
    )
    return Table(header, rows, ["left", *("right" for _ in header[1:])], "results summary", legend=legend)


def _metric_rows(study: Study, tables: Tables, metrics: Sequence[str]) -> list[list[str]]:
    rows = []
    summary = tables.summary
    for metric in metrics:
        row = _means_row(_row_label(metric), metric, summary[summary["metric"] == metric], tables.model_ids)
        if row is not None:
            rows.append(row)
    return rows


def _means_row(label: str, metric: str, frame: pd.DataFrame, model_ids: Sequence[str]) -> list[str] | None:
    """One table row: ``label``, each model's mean [CI] of ``metric`` (the best in bold), the n; None when no mean is known."""
    mine = {r["model_id"]: r for r in frame.to_dict("records")}
    if not any(_finite(r["mean"]) for r in mine.values()):
        return None
    best = _best(
        {m: r["mean"] for m, r in mine.items()}, METRICS.get(metric).higher_is_better if metric in METRICS else None, metric
    )
    cells = [label]
    for model_id in model_ids:
        r = mine.get(model_id)
        cells.append(_bold(_ci_cell(metric, r) if r is not None and _finite(r["mean"]) else MISSING, model_id in best))
    counts = sorted({int(r["n"]) for r in mine.values()})
    cells.append(num(counts[0]) if len(counts) == 1 else f"{num(counts[0])}–{num(counts[-1])}")
    return cells


def quality_tables(study: Study, tables: Tables) -> list[Table]:
    """Two Tables, rows = metrics and columns = models: the reference metrics, then the text statistics."""
    header = ["Metric", *(_model_header(study, m) for m in tables.model_ids), "n"]
    align = ["left", *("right" for _ in tables.model_ids), "right"]
    css = "metrics with-n wide" if len(tables.model_ids) >= 5 else "metrics with-n"
    reference = [m for m in tables.metrics if m in METRICS and METRICS.get(m).kind == "reference"]
    text = [m for m in tables.metrics if m in METRICS and METRICS.get(m).kind == "text"]
    out = []
    rows = _metric_rows(study, tables, reference)
    if rows:
        out.append(
            Table(
                header,
                rows,
                align,
                css,
                caption="Quality against the references",
                legend=(
                    f"{CI_LEGEND}; {ARROWS_LEGEND}; {_bold_legend('in its row')}. n: prompts scored (prompts with a "
                    "reference that the model answered). Exact match and contains answer are shares of prompts "
                    "(0–1); ROUGE-L is an F1 score (0–1); BLEU and chrF are on sacrebleu's 0–100 scale; "
                    f"{TESTS_LEGEND}."
                ),
            )
        )
    out += imported_tables(study, tables)
    rows = _metric_rows(study, tables, text)
    if rows:
        out.append(
            Table(
                header,
                rows,
                align,
                css,
                caption="Text statistics",
                legend=(
                    f"{CI_LEGEND}; {ARROWS_LEGEND}. Distinct-n: unique n-grams / n-grams of an answer; "
                    "repeated 4-grams: share of an answer's word 4-grams that repeat an earlier one (looping "
                    "text nears 1); hit token limit: share of answers that stopped at max_new_tokens."
                ),
            )
        )
    return out


def imported_tables(study: Study, tables: Tables) -> list[Table]:
    """The values other tools logged per sample (lm-eval, Inspect), per task and metric; then where each model's
    came from (tool, version, files) and how many samples each task has per model and in common."""
    names = [m for m in tables.metrics if m in METRICS and METRICS.get(m).kind == "imported"]
    rows = _metric_rows(study, tables, names)
    if not rows:
        return []
    header = ["Task/metric", *(_model_header(study, m) for m in tables.model_ids), "n"]
    out = [
        Table(
            header,
            rows,
            ["left", *("right" for _ in tables.model_ids), "right"],
            "metrics with-n",
            caption="Imported results, as the tools logged them per sample",
            legend=(
                f"{CI_LEGEND}; {ARROWS_LEGEND}; {_bold_legend('in its row')}. Each row is a task's metric as the tool "
                "computed it for each sample (lm-eval: acc, acc_norm, exact_match…, with its filter after a comma; "
                "Inspect: each scorer's value, C = 1, I = 0); the mean is the tool's own aggregate. n: samples. "
                f"Samples are paired across models by their identity (lm-eval: task and doc_hash; Inspect: task, "
                f"sample id and epoch); {TESTS_LEGEND}, on the samples both models have."
            ),
        )
    ]
    sources = []
    for row in tables.imports.to_dict("records"):
        if row["model_id"] not in tables.model_ids:
            continue
        files = json.loads(row["files"])
        sources.append(
            [
                _model_header(study, row["model_id"]),
                md_cell(f"{row['tool']} {row['tool_version']}"),
                md_cell(row["model_name"]),
                md_cell(str(row["logged_at"])),
                md_cell(_imported_settings(json.loads(row["settings"]))),
                "<br>".join(md_inline_code(f) for f in files),
            ]
        )
    if sources:
        out.append(
            Table(
                ["Model", "Tool", "Model as logged", "Logged at", "Settings", "Files"],
                sources,
                ["left"] * 6,
                "kv",
                caption="Where the imported results come from",
                legend="Read from the files named, never re-run; an unchanged file is imported once.",
            )
        )
    if not tables.coverage.empty:
        gaps = [
            [md_cell(r["task"]), _model_header(study, r["model_id"]), num(r["samples"]), num(r["common"]), num(r["missing"])]
            for r in tables.coverage.to_dict("records")
        ]
        out.append(
            Table(
                ["Task", "Model", "Samples", "In common", "Missing"],
                gaps,
                ["left", "left", "right", "right", "right"],
                "kv",
                caption="Samples per task",
                legend="In common: the samples every model of the task has (the paired tests use these); missing: "
                "samples another model has and this one lacks.",
            )
        )
    return out


#: Characters of an imported model's settings shown in the sources table (the store keeps them all).
MAX_SETTINGS_CHARS = 240


def _imported_settings(settings: Mapping[str, Any]) -> str:
    """``key: value; …`` of the settings a tool logged (lm-eval: model, model_args, batch size, n-shot…; Inspect:
    per task, the model's arguments and generation config), empty values left out, cut at MAX_SETTINGS_CHARS."""

    def flat(value: Any) -> str:
        if isinstance(value, Mapping):
            return ", ".join(f"{k}={flat(v)}" for k, v in value.items() if v not in (None, "", {}, []))
        return str(value)

    text = "; ".join(f"{key}: {flat(value)}" for key, value in settings.items() if value not in (None, "", {}, []))
    return text if len(text) <= MAX_SETTINGS_CHARS else text[: MAX_SETTINGS_CHARS - 1] + "…"


def category_table(study: Study, tables: Tables, headline: str | None) -> Table:
    """The headline metric per category (rows) and model (columns), with the number of prompts scored."""
    if headline is None or tables.category_summary.empty:
        return empty_table()
    frame = tables.category_summary[tables.category_summary["metric"] == headline]
    categories = list(dict.fromkeys(frame["category"]))
    if len(categories) < 2:
        return empty_table()
    header = ["Category", *(_model_header(study, m) for m in tables.model_ids), "n"]
    rows = []
    for category in categories:
        row = _means_row(md_cell(category), headline, frame[frame["category"] == category], tables.model_ids)
        if row is not None:
            rows.append(row)
    if not rows:
        return empty_table()
    label = metric_label(headline)
    return Table(
        header,
        rows,
        ["left", *("right" for _ in tables.model_ids), "right"],
        "metrics with-n wide" if len(tables.model_ids) >= 5 else "metrics with-n",
        caption=f"{_capital(label)} per category",
        legend=(
            f"{CI_LEGEND}; {_bold_legend('in the category')}. n: prompts of the category with a reference. "
            "Few prompts per category give wide intervals."
        ),
    )


def speed_protocol(study: Study, tables: Tables) -> str:
    """How speed, memory and load were measured, in a few sentences (the report states it beside them)."""
    from reportgen.stats.efficiency import BUSY_SHARE, NOISE_FLOORS, NOISE_THRESHOLDS, timed_on_a_busy_machine

    rows = tables.efficiency.to_dict("records") if not tables.efficiency.empty else []
    passes = sorted({int(r["speed_passes"]) for r in rows if _finite(r.get("speed_passes")) and r["speed_passes"] > 0})
    measure = study.measure
    warm = (
        f"after {measure.warmup} untimed warm-up batch{'es' if measure.warmup != 1 else ''} of a few prompts (endpoints excepted)"
        if measure.warmup
        else "with no warm-up"
    )
    prompts = f"the first {measure.prompts} prompts" if measure.prompts else "every prompt"
    tokens = measure.new_tokens or study.generation.max_new_tokens
    workload = f"{prompts}, each generating exactly {tokens} tokens (end-of-sequence ignored), the same for every model"
    isolation = (
        "Each local model is loaded in a fresh worker process (a Ray actor on a cluster), so no model pays or skips "
        "another's one-time costs; peak memory is the memory the model added over its load, the warm-up and a "
        f"batch of the same workload at its batch size, before its answers. A model is called lighter only beyond "
        f"{NOISE_THRESHOLDS['peak_memory_bytes']:.0%} (and {human_bytes(NOISE_FLOORS['peak_memory_bytes'])}) less "
        f"peak memory, quicker to load only beyond {NOISE_THRESHOLDS['load_time_s']:.0%} (and "
        f"{NOISE_FLOORS['load_time_s']:g} s)."
    )
    if passes:
        counts = " or ".join(str(n) for n in passes)
        regimes = " and ".join(
            {
                "single": "single stream (one prompt at a time: latency per prompt, time to first token)",
                "batched": "batched (the model's batch size: total tokens/s)",
            }[r]
            for r in measure.regimes
        )
        busy = [r for r in rows if timed_on_a_busy_machine(r)]
        names = _display(study)
        crowded = (
            f" Other processes used up to {max(r['others_cpu_share'] for r in busy):.0%} of the machine's CPU while "
            f"{', '.join(md_escape(names.get(r['model_id'], r['model_id'])) for r in busy)} {'was' if len(busy) == 1 else 'were'} "
            "timed: no model is called faster."
            if busy
            else ""
        )
        return (
            f"Speed: a fixed workload, {workload}, timed {warm} in {counts} passes per regime, interleaved: {regimes}; "
            f"the median with the range of the passes (lowest–highest). A model is called faster only where its "
            f"passes' range does not overlap any other's and other processes used at most {BUSY_SHARE:.0%} of the "
            f"machine's CPU while it was timed.{crowded} {isolation}"
        )
    return (
        f"Speed: no timed passes (measure.repeats: 0): the figures are the answer run's own, {warm}, and depend on "
        f"the answers each model wrote, so no model is called faster; latency is the time from the start of a "
        f"prompt's batch to its last token. {isolation}"
    )


def _speed_cell(row: Mapping[str, Any], column: str) -> str:
    """A speed figure, with the range of its timed passes when there were several."""
    text = metric_value(column, row.get(column))
    spread = metric_range(column, row.get(f"{column}_low"), row.get(f"{column}_high"))
    if spread and _finite(row.get(column)):
        text += f"<br>({spread})"
    return text


_EFFICIENCY_ROWS = (
    ("device", "Device", "text"),
    ("tokens_per_s", "Batched throughput ↑ (tokens/s)", "speed"),
    ("single_tokens_per_s", "Single-stream throughput ↑ (tokens/s)", "speed"),
    ("decode_steps_per_s", "Decode steps/s ↑", "decode_steps_per_s"),
    ("mean_batch_size", "Mean batch size", "plain"),
    ("ttft_p50_s", "Time to first token p50 ↓ (s)", "ttft_p50_s"),
    ("latency_p50_s", "Single-stream latency p50 ↓ (s per prompt)", "speed"),
    ("latency_p95_s", "Latency p95 ↓ (s per prompt)", "latency_p95_s"),
    ("load_time_s", "Load time ↓ (s)", "load_time_s"),
    ("peak_memory_bytes", "Peak memory ↓", "peak_memory_bytes"),
    ("weight_bytes", "Weight memory ↓", "weight_bytes"),
    ("bandwidth_share", "Memory-bandwidth share", "bandwidth_share"),
    ("answer_tokens_per_s", "Answer run: tokens/s (its own answers)", "tokens_per_s"),
    ("generated_tokens", "Answer run: tokens generated", "count"),
    ("speed_passes", "Timed passes", "count"),
    ("n_failed", "Failed prompts ↓", "failed"),
)


def efficiency_table(study: Study, tables: Tables) -> Table:
    """Speed and memory: one row per measurement (rows all missing are left out), one column per model."""
    rows_by_model = {r["model_id"]: r for r in tables.efficiency.to_dict("records")}
    if not rows_by_model:
        return empty_table()
    ids = [m for m in tables.model_ids if m in rows_by_model]
    rows = []
    for column, label, kind in _EFFICIENCY_ROWS:
        values = {m: rows_by_model[m].get(column) for m in ids}
        if kind == "text":
            if not any(isinstance(v, str) and v for v in values.values()):
                continue
            rows.append([label, *(md_inline_code(v) if isinstance(v, str) and v else MISSING for v in values.values())])
            continue
        if not any(_finite(v) for v in values.values()):
            continue
        best = _clear_best(rows_by_model, column)
        cells = [label]
        for m, v in values.items():
            if kind == "plain":
                text = num(float(v), 1) if _finite(v) else MISSING
            elif kind == "count":
                text = num(int(float(v))) if _finite(v) else MISSING
            elif kind == "failed":  # a count, never bold
                text = f"{int(v)} of {int(rows_by_model[m]['n_prompts'])}" if _finite(v) else MISSING
            elif kind == "speed":
                text = _speed_cell(rows_by_model[m], column)
            else:
                text = metric_value(kind, v)
            cells.append(_bold(text, m in best))
        rows.append(cells)
    header = ["Measurement", *(_model_header(study, m) for m in ids)]
    per_stream = [m for m in ids if rows_by_model[m].get("throughput_source") == "latency"]
    legend = (
        f"{speed_protocol(study, tables)} **bold**: best in the row beyond the noise (none when no model is). "
        "Throughput: generated tokens / wall time (all sequences of a batch count); p50/p95: median / 95th percentile "
        "over prompts; decode steps and the answer run's rows: the latest answer run (they depend on the answers); "
        "memory-bandwidth share: weight bytes × decode steps/s ÷ measured bandwidth (near 100%: memory-bound)."
    )
    if per_stream:
        legend += " Throughput of " + ", ".join(_model_header(study, m) for m in per_stream) + " is per request stream."
    return Table(
        header,
        rows,
        ["left", *("right" for _ in ids)],
        "metrics" + (" wide" if len(ids) >= 5 else ""),
        caption="Measured per model, from its latest run",
        legend=legend,
    )


def _bpb_cell(r: dict) -> str:
    """Bits per byte with its interval; one text gives none (``[n too small]``)."""
    text = metric_ci("bits_per_byte", r["bits_per_byte"], r["bpb_ci_low"], r["bpb_ci_high"])
    if _finite(r["bits_per_byte"]) and not _finite(r["bpb_ci_low"]) and int(r.get("n_texts") or 0) < 2:
        text += f" [*{NO_INTERVAL['n < 2']}*]"
    return text


def lm_table(study: Study, tables: Tables) -> Table:
    """Bits per byte (with CI), perplexity and what was scored, one row per model."""
    if tables.lm is None or tables.lm.empty:
        return empty_table()
    rows = []
    best = _best({r["model_id"]: r["bits_per_byte"] for r in tables.lm.to_dict("records")}, False, "bits_per_byte")
    for r in tables.lm.to_dict("records"):
        rows.append(
            [
                _model_header(study, r["model_id"]),
                _bold(_bpb_cell(r), r["model_id"] in best),
                metric_value("perplexity", r["perplexity"]),
                num(int(r["n_texts"])),
                num(int(r["n_tokens"])),
                num(int(r["n_bytes"])),
            ]
        )
    return Table(
        ["Model", "Bits per byte ↓ [95% CI]", "Perplexity ↓", "Texts", "Tokens", "Bytes"],
        rows,
        ["left", "right", "right", "right", "right", "right"],
        "metrics",
        caption="Language modelling on the reference texts",
        legend=(
            f"{_bold_legend('in the column')}. Bits per byte: negative log-likelihood in bits per UTF-8 byte, comparable across tokenizers; "
            "95% CI: percentile bootstrap over texts (a ratio of sums, texts resampled; *n too small*: one "
            "text). Perplexity is per token of the model's own tokenizer: compare it only "
            "between models that share one."
        ),
    )


def choice_tables(study: Study, tables: Tables) -> list[Table]:
    """Multiple choice by log-likelihood: acc and acc_norm per model (Wilson intervals), acc per category, and
    each pair's paired test (McNemar, exact, Holm-adjusted per metric). Empty without scored items."""
    summary = tables.choice_summary
    if summary.empty or not (summary["n"] > 0).any():
        return []
    ids = [m.id for m in study.models if m.id in tables.model_ids or m.id in set(summary["model_id"])]
    header = ["Metric", *(_model_header(study, m) for m in ids), "n"]
    align = ["left", *("right" for _ in ids), "right"]
    rows = [
        row
        for metric in ("mc_acc", "mc_acc_norm")
        if (row := _means_row(_row_label(metric), metric, summary[summary["metric"] == metric], ids)) is not None
    ]
    out = [
        Table(
            header,
            rows,
            align,
            "metrics with-n",
            caption="Multiple choice by log-likelihood",
            legend=(
                "Share of items answered correctly [95% Wilson score interval]. MC accuracy: the choice with the "
                "highest summed log-probability as a continuation of the context is the model's answer (lm-eval's "
                "acc); length-normalised: the highest log-probability per character of the choice (lm-eval's "
                f"acc_norm). {_bold_legend('in its row')}. n: items scored. —: the model gives no log-likelihoods "
                "(e.g. a chat endpoint, or a completions endpoint without echo and logprobs)."
            ),
        )
    ]
    categories = tables.choice_categories[tables.choice_categories["metric"] == "mc_acc"]
    if len(set(categories["category"])) >= 2:
        by_category = [
            row
            for category in dict.fromkeys(categories["category"])
            if (row := _means_row(md_cell(category), "mc_acc", categories[categories["category"] == category], ids)) is not None
        ]
        out.append(
            Table(
                ["Category", *header[1:]],
                by_category,
                align,
                "metrics with-n",
                caption="MC accuracy per category",
                legend=(
                    "Share of the category's items answered correctly [95% Wilson score interval]; "
                    f"{_bold_legend('in the category')}. n: items of the category. Few items per category give wide intervals."
                ),
            )
        )
    pairs = tables.choice_pairwise
    if not pairs.empty:
        names = {m: _model_header(study, m) for m in ids}
        out.append(
            Table(
                ["Metric", "Models (a − b)", "n", "Difference [95% CI]", "p (Holm)", "Better"],
                [
                    [
                        _capital(metric_label(r["metric"])),
                        f"{names.get(r['model_a'], md_cell(r['model_a']))} − {names.get(r['model_b'], md_cell(r['model_b']))}",
                        num(int(r["n"])),
                        metric_ci(r["metric"], r["diff"], r["ci_low"], r["ci_high"]),
                        p_value(r["p_holm"]),
                        names.get(r["better"], "—") if r["better"] else "no difference shown",
                    ]
                    for r in pairs.to_dict("records")
                ],
                ["left", "left", "right", "right", "right", "left"],
                "metrics",
                caption="Multiple choice: paired comparisons",
                legend=(
                    "On the items both models scored: the difference of the shares a − b with a paired-bootstrap 95% "
                    "CI; p: McNemar's exact test on the items where one model is right and the other wrong, "
                    "Holm-adjusted over each metric's pairs; better: the model with the higher share when the "
                    "adjusted p is below 0.05."
                ),
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# Charts


def result_charts(
    charts: ChartSet, study: Study, tables: Tables, deltas: Sequence[RetrainingDelta], headline: str | None
) -> None:
    """Add the result charts to ``charts`` (quality per metric, speed, memory, trade-off, category, bits per byte, retraining)."""
    from reportgen.report import charts as ch

    names = _display(study)
    colours = ch.model_colours([m.id for m in study.models])
    order = list(tables.model_ids)
    for metric in [m for m in analysis.HEADLINE_METRICS if m in analysis.quality_metrics(tables)]:
        rows = tables.summary[tables.summary["metric"] == metric]
        if not (rows["mean"].fillna(0) > 0).any():  # every model scores 0: the analysis says so, a chart adds nothing
            continue
        figure = ch.quality_figure(tables.summary, metric, names, colours, order)
        if figure is not None:
            method = "Wilson score intervals" if METRICS.get(metric).binary else "BCa bootstrap intervals over prompts"
            charts.add(
                f"quality-{chart_slug(metric)}",
                figure,
                f"{_capital(metric_label(metric))} per model: bars are means, error bars 95% {method}.",
                group="quality",
                height=ch.ci_bar_height(len(order)),
            )
    for metric in ("mc_acc", "mc_acc_norm"):
        rows = tables.choice_summary[tables.choice_summary["metric"] == metric] if not tables.choice_summary.empty else None
        if rows is None or not (rows["n"] > 0).any():
            continue
        figure = ch.quality_figure(tables.choice_summary, metric, names, colours, order)
        if figure is not None:
            charts.add(
                f"choice-{chart_slug(metric)}",
                figure,
                f"{_capital(metric_label(metric))} per model (multiple choice by log-likelihood): bars are shares of "
                "items, error bars 95% Wilson score intervals.",
                group="choice",
                height=ch.ci_bar_height(len(order)),
            )
    n_models = len(tables.model_ids)
    figure = ch.speed_figure(tables.efficiency, names, colours)
    if figure is not None:
        ranged = has_pass_ranges(tables.efficiency)
        charts.add(
            "speed",
            figure,
            "Batched throughput in generated tokens per second (top) and single-stream latency per prompt (bottom: "
            "bar = median, marker = 95th percentile), over the same fixed workload for every model"
            + ("; whiskers span the slowest to the fastest timed pass." if ranged else "."),
            group="speed",
            height=ch.speed_chart_height(n_models),
        )
    figure = ch.memory_figure(tables.efficiency, names, colours)
    if figure is not None:
        charts.add(
            "memory",
            figure,
            "Peak memory over the load, the warm-up and the fixed workload, and the memory of the weights, per model.",
            group="memory",
            height=ch.chart_height(n_models, per_model=70),
        )
    if headline is not None:
        from reportgen.analysis.measured import tradeoff_front

        batched_front = tradeoff_front(tables, headline, axes=("tokens_per_s",))  # the chart's two axes only
        figure = ch.tradeoff_figure(tables.summary, tables.efficiency, headline, names, colours, batched_front, _numbers(study))
        if figure is not None:
            charts.add(
                "tradeoff",
                figure,
                f"Batched throughput against {metric_label(headline)}: models on the dashed Pareto front "
                "(★, filled) are not clearly beaten on both at once (speed: the timed passes' ranges apart; quality: a "
                "significant paired test); points are numbered as the models; error bars are 95% CIs. The trade-offs "
                "in the analysis also read single-stream latency and peak memory.",
                group="tradeoff",
                height=ch.chart_height(n_models, base=460, per_model=26, least=480),
            )
        figure = ch.category_figure(tables.category_summary, headline, names, colours, order)
        if figure is not None:
            charts.add(
                "category",
                figure,
                f"{_capital(metric_label(headline))} per prompt "
                "category and model, with 95% CIs (few prompts per category: wide intervals).",
                group="category",
            )
    figure = ch.bits_per_byte_figure(tables.lm, names, colours)
    if figure is not None:
        charts.add(
            "bits-per-byte",
            figure,
            "Bits per byte on the reference texts (lower is better), with 95% bootstrap CIs over texts.",
            group="lm",
            height=ch.ci_bar_height(len(tables.model_ids)),
        )
    used: set[str] = set()
    for delta in deltas:
        name = f"retraining-{chart_slug(delta.model_id)}"
        while name in used or name in charts.charts:
            name += "-x"
        figure = ch.retraining_figure(delta.deltas, colours.get(delta.model_id, ch.PALETTE[0]))
        if figure is not None:
            used.add(name)
            charts.add(
                name,
                figure,
                f"{names.get(delta.model_id, delta.model_id)}: each metric before and after retraining "
                "(▲ significantly better, ▼ significantly worse: McNemar's exact test for 0/1 metrics, paired "
                "sign-flip permutation test otherwise, p < 0.05).",  # plain text: the chart view escapes it once
                group="retraining",
                height=460,
            )
    judged_charts(charts, study, tables)


def retraining_chart_name(charts: ChartSet, model_id: str) -> str:
    name = f"retraining-{chart_slug(model_id)}"
    return name if name in charts.charts else ""


# --------------------------------------------------------------------------------------------------
# Samples


_FINISH = {
    "eos": "ended by itself",
    "stop": "ended at a stop string",
    "length": "**stopped at the token limit**",
    "error": "**failed**",
}


def _sample_wrapped(output: str, failed: bool) -> str:
    """The answer as wrapping lines (the README's samples), cut where ``_sample_text`` cuts it; "" for a note."""
    if failed or not output.strip():
        return ""
    note = ""
    if len(output) > MAX_SAMPLE_CHARS:
        note = f"\n\n*… {num(len(output) - MAX_SAMPLE_CHARS)} more characters not shown.*"
    return md_wrapped(output[:MAX_SAMPLE_CHARS]) + note


def _sample_text(output: str, failed: bool, error: Any) -> str:
    if failed:
        message = str(error) if isinstance(error, str) and error else "no error message recorded"
        return "*The generation failed:*\n\n" + md_code(message[:MAX_SAMPLE_CHARS], "text")
    if not output.strip():
        return "*(empty output)*"
    shown = output
    note = ""
    if len(output) > MAX_SAMPLE_CHARS:
        shown = output[:MAX_SAMPLE_CHARS]
        note = f"\n\n*… {num(len(output) - MAX_SAMPLE_CHARS)} more characters not shown.*"
    return md_code(shown, "text") + note


def prompt_text(prompt: Any) -> str:
    """A prompt as its author wrote it: the text, or the chat messages as ``role: content`` lines."""
    if getattr(prompt, "prompt", None) is not None:
        return str(prompt.prompt)
    lines = []
    for message in getattr(prompt, "messages", None) or ():
        lines.append(f"{message.role}: {message.content}")
    return "\n\n".join(lines)


def sample_views(
    study: Study, tables: Tables, prompts: Mapping[str, str] | None = None, limit: int | str | None = None
) -> tuple[list[SampleView], str]:
    """Every model's answer per prompt (the first ``limit`` prompts, or all), and a note on what is shown."""
    frame = tables.per_prompt
    if frame.empty:
        return [], ""
    prompt_ids = list(dict.fromkeys(frame["prompt_id"]))
    total = len(prompt_ids)
    limit = study.output.samples if limit is None else limit
    if limit != "all":
        prompt_ids = prompt_ids[: int(limit)]
    prompts = prompts or {}
    names = _display(study)
    numbers = _numbers(study)
    views = []
    for index, prompt_id in enumerate(prompt_ids, 1):
        rows = frame[frame["prompt_id"] == prompt_id]
        first = rows.iloc[0]
        category = str(first["category"]) if isinstance(first["category"], str) else ""
        line = f"Prompt {index}: {prompt_id}" + (f" ({category})" if category else "")
        references = [md_inline_code(r) for r in (first["references"] or ())]
        outputs = []
        for model_id in tables.model_ids:
            mine = rows[rows["model_id"] == model_id]
            if mine.empty:
                continue
            r = mine.iloc[0]
            failed = bool(r["failed"])
            status = [_FINISH.get(str(r["finish_reason"]), md_escape(str(r["finish_reason"])))]
            if _finite(r["output_tokens"]) and not failed:
                count = int(r["output_tokens"])
                status.append(f"{num(count)} token{'' if count == 1 else 's'}")
            for metric, label in (("exact_match", "exact match"), ("contains_answer", "contains answer")):
                if metric in r and _finite(r[metric]):
                    status.append(f"{label} {'✓' if float(r[metric]) >= 1 else '✗'}")
            loops = (
                "repeated_4gram_rate" in r
                and _finite(r["repeated_4gram_rate"])
                and float(r["repeated_4gram_rate"]) > analysis.LOOP_PROMPT
            )
            if loops:
                status.append(f"**loops** ({percent(float(r['repeated_4gram_rate']))} of 4-grams repeated)")
            outputs.append(
                SampleOutput(
                    model=md_escape(names.get(model_id, model_id)).replace("\n", " "),
                    number=numbers.get(model_id, 0),
                    status=" · ".join(status),
                    flagged=failed or str(r["finish_reason"]) == "length" or loops,
                    text=_sample_text(str(r["output"] or ""), failed, r.get("error")),
                    wrapped=_sample_wrapped(str(r["output"] or ""), failed),
                )
            )
        text = prompts.get(prompt_id)
        views.append(
            SampleView(
                number=index,
                prompt_id=md_escape(prompt_id),
                category=md_escape(category).replace("\n", " "),
                summary=html.escape(" ".join(line.split()), quote=True),
                heading=md_escape(" ".join(line.split())),
                prompt=md_code(text, "text") if text else "",
                references=references,
                outputs=outputs,
            )
        )
    if len(prompt_ids) < total:
        note = (
            f"The first {len(prompt_ids)} of the {total} prompts, in prompt-set order (`output.samples` in the study "
            "config sets how many; `all` shows every prompt)."
        )
    else:
        note = f"All {total} prompts, in prompt-set order."
    if "html" in study.output.formats:
        note += (
            " Every prompt, filtered by category, disagreement, failures or loops, or found by a search, is in the prompt "
            "explorer of report.html (its Sample outputs section)."
        )
    return views, note


# --------------------------------------------------------------------------------------------------
# What retraining changed


def retraining_views(
    study: Study, deltas: Sequence[RetrainingDelta], charts: ChartSet | None, headline: str | None
) -> list[RetrainingView]:
    """One view per re-trained model: the verdict, the per-metric table, its versions, its chart's name."""
    names = _display(study)
    views = []
    for delta in deltas:
        name = md_escape(names.get(delta.model_id, delta.model_id)).replace("\n", " ")
        statement = analysis.retraining_statement(delta, names, markdown_style())
        rows = []
        for row in delta.deltas.itertuples():
            verdict = analysis.metric_verdict(row)
            shown = {"worse": "**worse**", "better": "better"}.get(verdict, verdict)
            interval = (
                f"[{metric_value(row.metric, row.ci_low)}, {metric_value(row.metric, row.ci_high)}]"
                if _finite(row.ci_low)
                else MISSING
            )
            rows.append(
                [
                    _row_label(row.metric),
                    metric_value(row.metric, row.mean_old),
                    metric_value(row.metric, row.mean_new),
                    metric_value(row.metric, row.diff, signed=True),
                    interval,
                    num(int(row.n)),
                    p_value(row.p_value).removeprefix("= "),
                    shown,
                ]
            )
        table = Table(
            ["Metric", "Before", "After", "Change", "95% CI of the change", "n", "p", "Verdict"],
            rows,
            ["left", "right", "right", "right", "right", "right", "right", "left"],
            "metrics retraining",
            legend=(
                "Change = after − before on the prompts both versions answered; 95% CI: paired percentile "
                "bootstrap over prompts (none when every prompt changed by the same amount). p: the paired test "
                "of the change (McNemar's exact test for 0/1 metrics, the paired sign-flip permutation test "
                "otherwise), one per metric, not adjusted. Verdict: better / **worse** when p < 0.05, by the "
                "metric's direction, changed when the metric has no direction; the verdict rests on p, not on "
                "the interval."
            ),
        )
        history = delta.history
        hist_rows = []
        metric = headline if headline and headline in history.columns else None
        for h in history.to_dict("records"):
            cells = [
                md_inline_code(str(h["fingerprint"])[:16]),
                _when(h["first_run_at"]),
                _when(h["last_run_at"]),
                num(int(h["n_runs"])),
                num(int(h["n_prompts"])),
                num(int(h["n_failed"])),
            ]
            if metric:
                cells.append(metric_value(metric, h[metric]))
            hist_rows.append(cells)
        hist_header = ["Version (fingerprint)", "First run", "Last run", "Runs", "Prompts", "Failed"]
        if metric:
            hist_header.append(f"{_row_label(metric)} (mean)")
        history_table = Table(
            hist_header,
            hist_rows,
            ["left", "left", "left", "right", "right", "right", *(["right"] if metric else [])],
            "metrics",
            caption="Every version of the model, oldest first",
        )
        views.append(
            RetrainingView(
                model=name,
                heading=f"{name}: what changed",
                versions=(
                    f"Version {md_inline_code(str(delta.old_fingerprint)[:16])} (last run {_when(delta.old_run_at)}) → "
                    f"{md_inline_code(str(delta.new_fingerprint)[:16])} (last run {_when(delta.new_run_at)}), compared on the "
                    "same prompts."
                ),
                statement=statement.text,
                worse=bool(statement.numbers["worse"]),
                table=table,
                history=history_table if len(hist_rows) else empty_table(),
                chart_name=retraining_chart_name(charts, delta.model_id) if charts is not None else "",
            )
        )
    return views


# --------------------------------------------------------------------------------------------------
# The run manifest


def _kv(pairs: Iterable[tuple[str, str]], caption: str, header: tuple[str, str] = ("Item", "Value")) -> Table:
    rows = [[label, value] for label, value in pairs if value not in (None, "")]
    return Table(list(header), rows, ["left", "left"], "kv", caption=caption)


def _plain(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return num(value)
    if isinstance(value, (list, tuple)):
        return md_cell(", ".join(str(v) for v in value))
    if isinstance(value, dict):
        return md_cell(", ".join(f"{k}: {v}" for k, v in value.items()))
    return md_cell(str(value))


_HARDWARE = (
    ("cpu_model", "CPU"),
    ("cpu_physical_cores", "CPU physical cores"),
    ("cpu_cores", "CPU logical cores"),
    ("cpu_cores_usable", "CPU cores usable by the run"),
    ("memory_total_bytes", "Memory"),
    ("memory_bandwidth_bytes_per_s", "Measured memory bandwidth"),
    ("gpu_name", "GPU"),
    ("gpus", "GPUs"),
    ("cuda_available", "CUDA available"),
    ("cuda_version", "CUDA version"),
    ("torch", "torch (as the run saw it)"),
    ("numpy", "numpy"),
    ("platform", "Platform"),
    ("python", "Python"),
)


def _hardware_value(key: str, value: Any) -> str:
    if key == "memory_total_bytes" and _finite(value):
        return human_bytes(value)
    if key == "memory_bandwidth_bytes_per_s" and _finite(value):
        return f"{float(value) / 1e9:.1f} GB/s"
    if key == "gpus" and isinstance(value, list):
        parts = []
        for gpu in value:
            if isinstance(gpu, dict):
                memory = f" ({human_bytes(gpu['memory_bytes'])})" if _finite(gpu.get("memory_bytes")) else ""
                parts.append(f"{gpu.get('name', '?')}{memory}")
        return md_cell("; ".join(parts)) if parts else "none"
    return _plain(value)


def _decoding(settings: Any) -> str:
    if not settings.do_sample:
        return "greedy"
    parts = [f"T = {num(settings.temperature)}", f"top-p = {num(settings.top_p)}"]
    if settings.top_k:
        parts.append(f"top-k = {num(settings.top_k)}")
    return "sampling, " + ", ".join(parts)


def _generation_summary(settings: Any) -> str:
    """One cell: what decoding produced a model's outputs (decoding, token budget, seed, repetition penalty, stops)."""
    parts = [_decoding(settings), f"≤ {num(settings.max_new_tokens)} new tokens"]
    if settings.do_sample:
        parts.append(f"seed {num(settings.seed)}")
    if settings.repetition_penalty:
        parts.append(f"repetition penalty {num(settings.repetition_penalty)}")
    if settings.stop:
        parts.append("stop " + " ".join(md_inline_code(s) for s in settings.stop))
    return ", ".join(parts)


def manifest_tables(
    study: Study, tables: Tables, manifest: RunManifest | None, specs: Mapping[str, ModelSpec] | None = None
) -> tuple[list[Table], list[str]]:
    """The appendix: software, hardware, run, generation settings per model, models and fingerprints."""
    import reportgen

    out: list[Table] = []
    notes: list[str] = []
    recorded = manifest is not None
    manifest = manifest or RunManifest()
    packages = manifest.packages
    software = [("reportgen (this report)", md_cell(reportgen.__version__))]
    if packages.get("reportgen") and packages.get("reportgen") != reportgen.__version__:
        software.append(("reportgen (the run)", md_cell(packages["reportgen"])))
    software.append(("Python (the run)", _plain(manifest.python)))
    for name, version in sorted(packages.items()):
        if name != "reportgen":
            software.append((md_inline_code(name), md_cell(version)))
    out.append(_kv(software, "Software", ("Package", "Version")))
    hardware = manifest.hardware
    if hardware:
        pairs = [(label, _hardware_value(key, hardware.get(key))) for key, label in _HARDWARE if key in hardware]
        if hardware.get("error"):
            pairs.append(("Hardware facts", f"not recorded: {md_cell(hardware['error'])}"))
        out.append(_kv(pairs, "Hardware"))
    from pathlib import Path

    run = [
        ("Study config", md_inline_code(Path(manifest.config).name) if manifest.config else ""),
        ("Config hash", md_inline_code(manifest.config_hash) if manifest.config_hash else ""),
        ("Prompt set", _plain(manifest.prompt_set)),
        ("Prompt-set hash", md_inline_code(manifest.prompt_set_hash) if manifest.prompt_set_hash else ""),
        ("Prompts", _plain(manifest.prompts)),
        ("Seed (study default)", _plain(manifest.seed)),
        ("Platform", _plain(manifest.platform)),
    ]
    if not recorded:
        run = [("Run manifest", "not recorded: the store holds results but no finished run")]
    out.append(_kv(run, "Run"))

    rows = []
    for model in study.models:
        if model.id not in tables.model_ids:
            continue
        g = study.generation_for(model)
        rows.append(
            [
                _model_header(study, model.id),
                num(g.max_new_tokens),
                _decoding(g),
                num(g.repetition_penalty) if g.repetition_penalty else "none",
                num(g.seed) if g.do_sample else "— (greedy)",
                ", ".join(md_inline_code(s) for s in g.stop) or "none",
            ]
        )
    out.append(
        Table(
            ["Model", "Max new tokens", "Decoding", "Repetition penalty", "Seed", "Stop strings"],
            rows,
            ["left", "right", "left", "right", "right", "left"],
            "metrics",
            caption="Generation settings",
        )
    )

    fingerprints = dict(manifest.fingerprints)
    fingerprints.update(tables.fingerprints)
    rows = []
    for model in study.models:
        if model.id not in tables.model_ids:
            continue
        fingerprint = fingerprints.get(model.id)
        precision = None
        effs = tables.efficiency[tables.efficiency["model_id"] == model.id]
        if "precision" in effs and len(effs) and isinstance(effs.iloc[0]["precision"], str):
            precision = effs.iloc[0]["precision"]
        summary = manifest.model(model.id)
        last = ""
        if summary is not None:
            last = f"{num(summary.prompts_run)} run, {num(summary.prompts_cached)} cached"
            if summary.reason:
                last += f" ({md_cell(summary.reason)})"
        rows.append(
            [
                _model_header(study, model.id),
                md_inline_code(str(fingerprint)[:16]) if fingerprint else MISSING,
                _generation_summary(study.generation_for(model)),
                analysis.runtime_label(model, (specs or {}).get(model.id), precision, markdown_style()),
                last or MISSING,
            ]
        )
        owner = tables.shared_answers.get(model.id)
        if owner is not None:
            notes.append(
                f"{_model_header(study, model.id)}: reuses the stored answers of {_model_header(study, owner)} (same "
                "weights and generation settings); its speed, memory and load time are measured on their own."
            )
        for note in summary.notes if summary is not None else ():
            notes.append(f"{_model_header(study, model.id)}: {md_escape(note)}".replace("\n", " "))
        if summary is not None and summary.error:
            notes.append(f"{_model_header(study, model.id)}: the last run failed: {md_escape(summary.error)}".replace("\n", " "))
    out.append(
        Table(
            ["Model", "Fingerprint (first 16 hex digits)", "Generation", "Backend", "Last run (prompts)"],
            rows,
            ["left", "left", "left", "left", "left"],
            "metrics",
            caption="Models as reported",
            legend=(
                "A model's results are determined by its fingerprint and its generation settings together. The "
                "fingerprint hashes the weights, adapter, quantization and precision: two models with the same "
                "fingerprint and different generation settings give different outputs."
            ),
        )
    )
    return out, [md_unblock(note) for note in notes]  # "4. Name: …" is a note about model 4, not a list starting at 4


# --------------------------------------------------------------------------------------------------
# Everything


def analysis_groups(statements: Sequence[analysis.Statement]) -> list[AnalysisGroup]:
    groups: dict[str, list] = {}
    for statement in statements:
        groups.setdefault(analysis.RESULT_TOPICS.get(statement.topic, "Other findings"), []).append(statement)
    return [AnalysisGroup(title, items) for title, items in groups.items()]


def result_sections(
    study: Study,
    tables: Tables,
    headline: str | None,
    *,
    deltas: Sequence[RetrainingDelta] = (),
    manifest: RunManifest | None = None,
    specs: Mapping[str, ModelSpec] | None = None,
    charts: ChartSet | None = None,
    prompts: Mapping[str, str] | None = None,
) -> ResultSections:
    """The views of the results; ``charts`` (drawn by ``result_charts``) name each retraining view's chart."""
    samples, note = sample_views(study, tables, prompts)
    manifest_views, manifest_notes = manifest_tables(study, tables, manifest, specs)
    return ResultSections(
        headline_metric=metric_label(headline) if headline else "",
        results_summary=summary_table(study, tables, headline),
        quality_tables=quality_tables(study, tables),
        category_table=category_table(study, tables, headline),
        efficiency_table=efficiency_table(study, tables),
        lm_table=lm_table(study, tables),
        choice_tables=choice_tables(study, tables),
        result_analysis=analysis_groups(analysis.result_statements(study, tables, specs, markdown_style())),
        samples=samples,
        samples_note=note,
        retraining=retraining_views(study, deltas, charts, headline),
        manifest=manifest_views,
        manifest_notes=manifest_notes,
        judged=judged_views(study, tables, charts),
        code=code_view(study, tables),
        speed_protocol=speed_protocol(study, tables),
        explorer=explorer_data(study, tables, prompts) if len(tables.per_prompt) else {},
    )
