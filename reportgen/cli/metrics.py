"""``reportgen metrics`` and ``reportgen diff``: the metric tables, and what retraining changed, in the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reportgen.cli.app import (
    JSON_SCHEMA_VERSION,
    completing_config,
    config_argument,
    data_console,
    emit_json,
    json_option,
    load,
    main,
    model_list,
    models_option,
)


def _open_store(study):
    from reportgen.errors import ReportgenError
    from reportgen.store import Store, store_path

    path = store_path(study)
    if not path.exists():
        raise ReportgenError(f"{path}: no results yet for {study.path}. Fix: run `reportgen run {study.path}` first")
    return Store(path, create=False)


def print_tables(tables, out) -> None:
    from rich.table import Table

    from reportgen.stats.metrics import metric_value as value

    if tables.per_prompt.empty:
        out.print("no results in the store yet")
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
            cells.append(
                f"{value(metric, row['mean'])} [{value(metric, row['ci_low'])}, {value(metric, row['ci_high'])}] n={int(row['n'])}"
            )
        summary.add_row(metric, *cells)
    out.print(summary)
    if not tables.efficiency.empty:
        print_efficiency(tables.efficiency, out)
    if not tables.lm.empty:
        lm = Table(title="Language modelling on the reference texts")
        for column in ("model_id", "bits_per_byte", "bpb_ci_low", "bpb_ci_high", "perplexity", "n_texts"):
            lm.add_column(column)
        for _, row in tables.lm.iterrows():
            lm.add_row(
                str(row["model_id"]),
                *(value("bits_per_byte", row[c]) for c in ("bits_per_byte", "bpb_ci_low", "bpb_ci_high", "perplexity")),
                str(row["n_texts"]),
            )
        out.print(lm)
    if len(getattr(tables, "choices", ())):
        print_choices(tables.choice_summary, out)
    significant = tables.pairwise[tables.pairwise["significant"] == True]  # noqa: E712 (pandas mask)
    if len(significant):
        print_significant_pairs(significant, out)
    if tables.judged:
        print_judged(tables.judged, out)


def print_choices(summary, out) -> None:
    """Multiple choice by log-likelihood: acc and acc_norm per model, mean [95% Wilson interval], n items."""
    from rich.table import Table

    from reportgen.stats.metrics import metric_ci

    table = Table(title="Multiple choice by log-likelihood (share of items [95% CI], n)")
    for column in ("model_id", "mc_acc", "mc_acc_norm"):
        table.add_column(column)
    for model_id, rows in summary.groupby("model_id", sort=False):
        cells = {
            r["metric"]: f"{metric_ci(r['metric'], r['mean'], r['ci_low'], r['ci_high'])} n={int(r['n'])}"
            for r in rows.to_dict("records")
        }
        table.add_row(str(model_id), cells.get("mc_acc", "—"), cells.get("mc_acc_norm", "—"))
    out.print(table)


def print_significant_pairs(pairs_frame, out) -> None:
    """The pairs that differ significantly: significant means the Holm-adjusted p-value (``p_holm``, over the
    metric's pairs) is below 0.05, so it is printed beside the raw p-value and the paired-bootstrap CI,
    which is not adjusted (it can exclude 0 for a pair that is not significant, and such pairs are not here)."""
    from rich.table import Table

    from reportgen.format import p_value
    from reportgen.stats.metrics import metric_value as value

    pairs = Table(
        title="Significant pairwise differences (significant: Holm-adjusted p < 0.05 over each metric's pairs; "
        "McNemar exact or sign-flip test; unadjusted 95% paired-bootstrap CI)"
    )
    for column in ("metric", "model_a", "model_b", "diff", "unadjusted 95% CI", "p", "Holm-adjusted p", "better"):
        pairs.add_column(column)
    for _, row in pairs_frame.iterrows():
        pairs.add_row(
            row["metric"],
            row["model_a"],
            row["model_b"],
            value(row["metric"], row["diff"], signed=True),
            f"[{value(row['metric'], row['ci_low'])}, {value(row['metric'], row['ci_high'])}]",
            p_value(row["p_value"]).removeprefix("= "),
            p_value(row["p_holm"]).removeprefix("= "),
            str(row["better"]),
        )
    out.print(pairs)


#: the efficiency columns ``reportgen metrics`` prints; those measured in timed passes carry the passes' range
EFFICIENCY_COLUMNS = (
    "load_time_s",
    "ttft_p50_s",
    "latency_p50_s",
    "latency_p95_s",
    "tokens_per_s",
    "single_tokens_per_s",
    "answer_tokens_per_s",
    "peak_memory_bytes",
    "bandwidth_share",
    "speed_passes",
)


def print_efficiency(efficiency_frame, out) -> None:
    """Efficiency per model; a figure from timed passes is ``median (lowest–highest)`` over the passes."""
    from rich.table import Table

    from reportgen.format import finite, num
    from reportgen.stats.efficiency import has_pass_ranges
    from reportgen.stats.metrics import metric_range, metric_value

    title = "Efficiency per model" + (" (timed passes: median (lowest–highest))" if has_pass_ranges(efficiency_frame) else "")
    table = Table(title=title)
    table.add_column("model", style="bold")
    for column in EFFICIENCY_COLUMNS:
        table.add_column(column)
    for _, row in efficiency_frame.iterrows():
        cells = []
        for column in EFFICIENCY_COLUMNS:
            if column == "speed_passes":
                passes = row.get(column)
                cells.append(num(int(float(passes))) if finite(passes) else "—")
                continue
            text = metric_value(column, row.get(column))
            spread = metric_range(column, row.get(f"{column}_low"), row.get(f"{column}_high"))
            cells.append(f"{text} ({spread})" if spread else text)
        table.add_row(str(row["model_id"]), *cells)
    out.print(table)


def print_judged(judged, out) -> None:
    """The judged comparisons: win rates (or rubric scores), strengths, and the judge-reliability table."""
    from rich.table import Table

    from reportgen import format as fmt

    def pct(x) -> str:
        return fmt.percent(x) if x == x else "—"  # NaN: not measured

    for c in judged:
        if c.mode == "pairwise":
            rates = Table(
                title=f"Judge {c.judge_id}: against {c.baseline} (share of judgements, both orders; 95% CI over prompts)"
            )
            for column in ("model", "win", "tie", "loss", "score (win + ½ tie)", "prompts"):
                rates.add_column(column)
            for r in c.rates.itertuples():
                rates.add_row(
                    r.model_id,
                    *(
                        f"{pct(getattr(r, k))} [{pct(getattr(r, k + '_low'))}, {pct(getattr(r, k + '_high'))}]"
                        for k in ("win", "tie", "loss", "score")
                    ),
                    str(r.n),
                )
            out.print(rates)
            strengths = Table(title=f"Judge {c.judge_id}: Bradley–Terry log-strength (baseline {c.baseline} = 0; 95% CI)")
            for column in ("model", "strength", "95% CI", "P(beats baseline)"):
                strengths.add_column(column)
            for r in c.strengths.itertuples():
                strengths.add_row(
                    r.model_id, f"{r.strength:+.2f}", f"[{r.strength_low:+.2f}, {r.strength_high:+.2f}]", pct(r.p_beats_baseline)
                )
            out.print(strengths)
        else:
            scores = Table(title=f"Judge {c.judge_id}: rubric score (mean [95% CI], n)")
            for column in ("model", "score", "n"):
                scores.add_column(column)
            for r in c.rubric.itertuples():
                scores.add_row(r.model_id, f"{fmt.num(r.mean)} [{fmt.num(r.ci_low)}, {fmt.num(r.ci_high)}]", str(r.n))
            out.print(scores)
        rel = c.reliability
        table = Table(title=f"Judge {c.judge_id}: reliability")
        table.add_column("measure")
        table.add_column("value")
        table.add_row(
            "judgements parsed / expected", f"{rel.judgements} / {rel.expected} ({rel.unparsed} unparsed, {rel.failed} failed)"
        )
        if c.mode == "pairwise":
            table.add_row(
                "position consistency", f"{pct(rel.consistency)} of {rel.consistency_n} (threshold {pct(rel.min_consistency)})"
            )
            table.add_row("tie rate", pct(rel.tie_rate))
            table.add_row(
                "first answer chosen (decisive)",
                f"{pct(rel.first_position_rate)} of {rel.first_position_n} (binomial p {fmt.p_value(rel.first_position_p)})",
            )
            table.add_row("longer answer chosen (decisive)", pct(rel.longer_wins_rate))
            table.add_row(
                f"agreement with {rel.reference_metric or 'a reference metric'}",
                f"{pct(rel.reference_agreement)} of {rel.reference_n}",
            )
        else:
            table.add_row(
                f"Spearman with {rel.reference_metric or 'a reference metric'}",
                fmt.num(rel.reference_agreement) if rel.reference_agreement == rel.reference_agreement else "—",
            )
        table.add_row(
            "length correlation (Spearman)",
            fmt.num(rel.length_correlation) if rel.length_correlation == rel.length_correlation else "—",
        )
        out.print(table)
        if not rel.reliable:
            why = (
                f"it chose the answer shown first in {pct(rel.first_position_rate)} of {rel.first_position_n} decisive verdicts "
                f"(binomial p {fmt.p_value(rel.first_position_p)}: position bias)"
                if rel.consistent
                else f"its verdicts survive swapping the answers' order in {pct(rel.consistency)} of prompts "
                f"(threshold {pct(rel.min_consistency)})"
            )
            out.print(f"[bold red]Judge {c.judge_id} is unreliable: {why}; nothing is called better on its evidence.[/bold red]")


def print_analysis(study, tables, deltas) -> None:
    """The analysis the report writes, phrased plainly on stdout: one heading per group, one line per sentence
    (never wrapped, so a pipe gets whole sentences)."""
    from reportgen.analysis import analysis_sections
    from reportgen.specs.study import study_specs

    for title, lines in analysis_sections(study, study_specs(study), tables, deltas):
        click.echo(f"\n{title}")
        for line in lines:
            click.echo(f"- {line}")


def _frames(tables) -> dict:
    frames = {
        "per_prompt": tables.per_prompt,
        "summary": tables.summary,
        "category_summary": tables.category_summary,
        "pairwise": tables.pairwise,
        "efficiency": tables.efficiency,
        "lm": tables.lm,
    }
    if len(getattr(tables, "choices", ())):  # multiple choice by log-likelihood, when the study has items
        frames.update(
            choices=tables.choices,
            choice_summary=tables.choice_summary,
            choice_categories=tables.choice_categories,
            choice_pairwise=tables.choice_pairwise,
        )
    if getattr(tables, "judged", None):
        from reportgen.stats.judged import judged_frames

        frames.update(judged_frames(tables.judged))
    code = getattr(tables, "code", None)
    if code is not None and len(code):  # code prompts: each answer's sandbox verdict, pass@k of the samples
        frames["code"] = code
        if len(tables.pass_at_k):
            frames["pass_at_k"] = tables.pass_at_k
    return frames


def _exportable(frame):
    """Integers stay integers (nullable), reference answers a JSON list, not Python tuple text."""
    out = frame.copy()
    if "references" in out:
        out["references"] = [
            json.dumps(list(r) if isinstance(r, (list, tuple)) else [], ensure_ascii=False) for r in out["references"]
        ]
    return out.convert_dtypes(convert_string=False, convert_boolean=False, convert_floating=False)


def tables_payload(tables) -> dict:
    payload = {}
    for name, frame in _frames(tables).items():
        records = json.loads(_exportable(frame).to_json(orient="records"))
        if name == "per_prompt":
            for record in records:
                record["references"] = json.loads(record["references"])
        payload[name] = records
    return payload


def write_csv(tables, csv_dir: Path) -> list[Path]:
    """One CSV per table, each beginning with a ``# reportgen.metrics schema_version N`` comment line."""
    from reportgen.util.atomic import atomic_write

    written = []
    for name, frame in _frames(tables).items():
        header = f"# reportgen.metrics.{name} schema_version {JSON_SCHEMA_VERSION}\n"
        written.append(atomic_write(Path(csv_dir) / f"{name}.csv", header + _exportable(frame).to_csv(index=False)))
    return written


@main.command()
@config_argument
@click.option(
    "--csv", "csv_dir", type=click.Path(path_type=Path, file_okay=False), default=None, help="Write each table as CSV here."
)
@click.option("--analysis", "show_analysis", is_flag=True, help="Also print the computed analysis, in plain words.")
@json_option("every table (schema reportgen.metrics)")
@models_option
def metrics(
    config: Path, csv_dir: Path | None, json_out: str | None, show_analysis: bool = False, model_ids: str | None = None
) -> None:
    """Print the metric tables (with 95% confidence intervals) computed from the store; ``--models`` computes
    them, paired tests included, over those models only."""
    from reportgen.report.inputs import tables_and_deltas
    from reportgen.run.plan import select_models

    study = load(config)
    if wanted := model_list(model_ids):
        chosen = {m.id for m in select_models(study, wanted)}  # unknown ids: one line naming them, exit 2
        study = study.model_copy(update={"models": tuple(m for m in study.models if m.id in chosen)})
    with _open_store(study) as store:
        tables, deltas = tables_and_deltas(store, study)
    if json_out:
        emit_json("metrics", {"tables": tables_payload(tables)}, json_out)
    if csv_dir:
        for path in write_csv(tables, csv_dir):
            click.echo(str(path))
    if json_out != "-":
        print_tables(tables, data_console())
        if show_analysis:
            print_analysis(study, tables, deltas)


def _verdict(improved, significant: bool = True) -> str:
    if improved is True:
        return "better"
    if improved is False:
        return "WORSE"
    return "changed" if significant else "no significant change"


def _speed_verdict(row) -> str:
    """A speed or memory row's verdict: better/WORSE only for a change beyond the noise (stats.rundiff)."""
    if row.improved is not None:
        return _verdict(row.improved)
    return "same" if row.change == 0 else "no clear change"


def _side(side) -> str:
    return f"run {side.run_id} ({side.fingerprint[:8]})"


def print_diff(d, out) -> None:
    """One model's diff: the quality table (paired, when the weights changed), then speed and memory."""
    from rich.table import Table

    from reportgen import format as fmt
    from reportgen.stats.metrics import metric_value as value

    title = f"{d.model_id}: {_side(d.old)} → {_side(d.new)}"
    if "same_weights" in d.notes:
        out.print(f"{d.model_id}: same weights and settings in both runs, so the answers are the same; speed and memory below")
    elif "no_answers" in d.notes:
        out.print(f"{d.model_id}: one of the two runs has no stored answers; speed and memory below")
    if len(d.quality):
        table = Table(
            title=f"{title} (new − old, 95% paired-bootstrap CI; McNemar exact or sign-flip test, significant: p < 0.05)"
        )
        for column in ("metric", "old", "new", "change", "95% CI", "p", "verdict"):
            table.add_column(column)
        for row in d.quality.itertuples():
            table.add_row(
                row.metric,
                value(row.metric, row.mean_old),
                value(row.metric, row.mean_new),
                value(row.metric, row.diff),
                f"[{value(row.metric, row.ci_low)}, {value(row.metric, row.ci_high)}]",
                fmt.p_value(row.p_value).removeprefix("= "),
                _verdict(row.improved, row.significant),
            )
        out.print(table)
    if len(d.speed):
        from reportgen.format import human_bytes
        from reportgen.stats.efficiency import NOISE_FLOORS as floor
        from reportgen.stats.efficiency import NOISE_THRESHOLDS as noise

        table = Table(
            title=f"{title}: speed and memory (a change counts where the timed passes' ranges separate, or beyond "
            f"{noise['peak_memory_bytes']:.0%} and {human_bytes(floor['peak_memory_bytes'])} for peak memory, "
            f"{noise['load_time_s']:.0%} and {floor['load_time_s']:g} s for load time)"
        )
        for column in ("measure", "old", "new", "change", "new ÷ old", "verdict"):
            table.add_column(column)
        for row in d.speed.itertuples():
            table.add_row(
                row.measure,
                value(row.measure, row.old),
                value(row.measure, row.new),
                value(row.measure, row.change),
                "—" if row.ratio != row.ratio else f"{fmt.num(row.ratio)}×",
                _speed_verdict(row),
            )
        out.print(table)
    if d.worse:
        out.print(f"[bold red]{d.model_id} got worse on: {', '.join(d.worse)}[/bold red]")


def diff_payload(d) -> dict:
    def records(frame) -> list[dict]:
        return json.loads(frame.to_json(orient="records")) if len(frame) else []

    return {
        "model_id": d.model_id,
        "old": d.old.as_dict(),
        "new": d.new.as_dict(),
        "same_weights": d.same_weights,
        "quality": records(d.quality),
        "speed": records(d.speed),
        "worse": d.worse,
    }


def complete_runs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """Shell completion for ``--against``: the run ids in the store of the config on the command line."""
    from click.shell_completion import CompletionItem

    config = completing_config(ctx)
    if config is None:
        return []
    try:
        from reportgen.store import Store, store_path

        path = store_path(load(config))
        if not path.exists():
            return []
        with Store(path, create=False) as store:
            runs = store.model_runs_frame()
    except Exception:  # noqa: BLE001 - completion never fails the shell: no config, no store, a bad config
        return []
    wanted = model_list(ctx.params.get("model_ids"))
    if wanted:
        runs = runs[runs["model_id"].isin(wanted)]
    ids = list(dict.fromkeys(reversed(list(runs["run_id"].astype(str)))))  # newest first
    return [CompletionItem(run_id) for run_id in ids if run_id.startswith(incomplete)]


@main.command()
@config_argument
@models_option
@click.option("--model", "single_model", default=None, hidden=True, help="Deprecated: use --models.")
@click.option(
    "--against",
    default=None,
    metavar="RUN|FINGERPRINT",
    shell_complete=complete_runs,
    help="Compare the latest run with this earlier run id or fingerprint (a prefix is enough; default: the run before).",
)
@json_option("the comparison (schema reportgen.diff)")
def diff(config: Path, model_ids: str | None, single_model: str | None, against: str | None, json_out: str | None) -> None:
    """What changed between a model's last two runs (or --against RUN): every metric with significance when
    the weights changed, and speed and memory."""
    from reportgen.errors import JobFailed, ReportgenError
    from reportgen.stats.rundiff import UnknownRun, run_diff
    from reportgen.study.prompts import study_prompt_set

    study = load(config)
    known = [m.id for m in study.models]
    wanted = model_list(model_ids) or ([single_model] if single_model else None)
    for model_id in wanted or []:
        if model_id not in known:
            raise ReportgenError(f"--models: no model '{model_id}' in {study.path}. Known: {', '.join(known)}")
    prompt_set = study_prompt_set(study)
    diffs, single = [], []
    with _open_store(study) as store:
        results, runs, speed = store.results_frame(), store.model_runs_frame(), store.speed_frame()
        for model_id in wanted or [m.id for m in study.models if m.runnable]:
            try:
                d = run_diff(results, runs, speed, prompt_set, model_id, against)
            except UnknownRun as exc:
                raise ReportgenError(f"--against: {model_id}: {exc}") from None
            (diffs.append(d) if d is not None else single.append(model_id))
    if not diffs:
        raise JobFailed(
            f"{', '.join(single) or 'no model'}: a single run (or none) in the store, nothing to compare. Run again (--force) or retrain"
        )
    if json_out:
        emit_json("diff", {"models": [diff_payload(d) for d in diffs], "single_run": single}, json_out)
        if json_out == "-":
            return
    out = data_console()
    for d in diffs:
        print_diff(d, out)
    if single:
        import logging

        logging.getLogger(__name__).info("a single run (or none), nothing to compare: %s", ", ".join(single))
