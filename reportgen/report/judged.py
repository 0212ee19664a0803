"""The judged-comparison section: one JudgedView per judge (its tables, its reliability, its warning, sample
verdicts) and the win-rate chart. Built from ``tables.judged`` (``reportgen.stats.judged``); the sentences
come from the analysis (``analysis.judged`` phrased in ``phrasing``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from reportgen import analysis
from reportgen.analysis.judged import judged_findings
from reportgen.format import num, p_value, percent
from reportgen.stats.metrics import metric_label
from reportgen.report.charts import chart_slug
from reportgen.report.context import JudgedView, Table, empty_table
from reportgen.report.markdown import markdown_style, md_cell, md_code, md_escape

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.report.charts import ChartSet
    from reportgen.stats.tables import Tables
    from reportgen.study.config import Study

__all__ = ["JudgedView", "judged_charts", "judged_views", "win_rate_figure"]

SAMPLE_VERDICTS = 3  # raw verdicts shown per judge


def _pct(value: Any) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else percent(value)


def _ci(value: Any, low: Any, high: Any) -> str:
    return f"{_pct(value)} [{_pct(low)}, {_pct(high)}]"


def _names(study: "Study") -> dict[str, str]:
    return {m.id: m.name for m in study.models}


def _rates_table(c, names) -> Table:
    if c.mode != "pairwise" or c.rates.empty:
        return empty_table()
    rows = [
        [
            md_cell(names.get(r["model_id"], r["model_id"])),
            _pct(r["win"]),
            _pct(r["tie"]),
            _pct(r["loss"]),
            _ci(r["score"], r["score_low"], r["score_high"]),
            num(int(r["n"])),
        ]
        for r in c.rates.to_dict("records")
    ]
    return Table(
        ["Model", "Wins", "Ties", "Losses", "Score [95% CI]", "Prompts"],
        rows,
        ["left", "right", "right", "right", "right", "right"],
        "metrics",
        caption=f"Against {md_escape(names.get(c.baseline, c.baseline))}, judged in both orders",
        legend="Shares of the judge's verdicts (each prompt judged with either answer first); score: wins + ½ ties; "
        "95% CI: bootstrap over prompts (— when every prompt came out the same).",
    )


def _strengths_table(c, names) -> Table:
    if c.mode != "pairwise" or c.strengths.empty:
        return empty_table()
    rows = [
        [
            md_cell(names.get(r["model_id"], r["model_id"])),
            f"{r['strength']:+.2f}",
            f"[{r['strength_low']:+.2f}, {r['strength_high']:+.2f}]",
            _pct(r["p_beats_baseline"]),
        ]
        for r in c.strengths.to_dict("records")
    ]
    return Table(
        ["Model", "Strength", "95% CI", "P(beats baseline)"],
        rows,
        ["left", "right", "right", "right"],
        "metrics",
        caption="Bradley–Terry strengths",
        legend="Log-strength relative to the baseline (0), fitted to every verdict (a tie counts half a win each way); "
        "95% CI: bootstrap over prompts.",
    )


def _scores_table(c, names, scale) -> Table:
    if c.mode != "rubric" or c.rubric.empty:
        return empty_table()
    rows = [
        [
            md_cell(names.get(r["model_id"], r["model_id"])),
            f"{num(r['mean'], 2)} [{num(r['ci_low'], 2)}, {num(r['ci_high'], 2)}]",
            num(int(r["n"])),
        ]
        for r in c.rubric.to_dict("records")
    ]
    return Table(
        ["Model", "Score [95% CI]", "Answers scored"],
        rows,
        ["left", "right", "right"],
        "metrics",
        caption=f"Rubric scores ({scale[0]}–{scale[1]})",
        legend="Mean score; 95% CI: bootstrap over prompts.",
    )


def _reliability_table(c) -> Table:
    r = c.reliability
    rows = [["Verdicts parsed / expected", f"{r.judgements} / {r.expected} ({r.unparsed} unparsed, {r.failed} failed)"]]
    if c.mode == "pairwise":
        rows += [
            [
                "Position consistency",
                f"{_pct(r.consistency)} of {r.consistency_n} answer pairs (required: {_pct(r.min_consistency)})",
            ],
            ["Tie rate", _pct(r.tie_rate)],
            [
                "Chose the answer shown first",
                f"{_pct(r.first_position_rate)} of {r.first_position_n} decisive verdicts "
                f"(binomial test against 50%: p {p_value(r.first_position_p)})",
            ],
            ["Chose the longer answer", f"{_pct(r.longer_wins_rate)} of decisive verdicts"],
            ["Length correlation (Spearman)", num(r.length_correlation, 2) if not math.isnan(r.length_correlation) else "—"],
            [
                f"Agrees with {md_escape(metric_label(r.reference_metric) if r.reference_metric else 'a reference metric')}",
                f"{_pct(r.reference_agreement)} of {r.reference_n} prompts the metric tells apart",
            ],
        ]
    else:
        rows += [
            ["Length correlation (Spearman)", num(r.length_correlation, 2) if not math.isnan(r.length_correlation) else "—"],
            [
                f"Spearman with {md_escape(metric_label(r.reference_metric) if r.reference_metric else 'a reference metric')}",
                num(r.reference_agreement, 2) if not math.isnan(r.reference_agreement) else "—",
            ],
        ]
    return Table(
        ["Measure", "Value"],
        rows,
        ["left", "right"],
        "metrics",
        caption="Judge reliability",
        legend="Position consistency: share of answer pairs whose verdict survives swapping the answers' order "
        "(the same winner, or a tie both times). Every pair is shown in both orders, so a fair judge chooses the "
        "answer shown first in about half of its decisive verdicts; p < 0.05 is position bias.",
    )


def _verdicts(c, names) -> list[tuple[str, str]]:
    samples = c.samples
    if samples is None or samples.empty:
        return []
    out = []
    if c.mode == "pairwise":  # decisive verdicts first, one model after another, so the samples show something
        samples = samples.assign(_tie=samples["verdict"] == "C").sort_values(["_tie", "prompt_id"], kind="stable")
    for r in samples.head(SAMPLE_VERDICTS).to_dict("records"):
        who = md_escape(names.get(r["model_id"], r["model_id"]))
        if c.mode == "pairwise":
            shown = "first" if r["order"] == "first" else "second"
            line = f"Prompt {md_escape(r['prompt_id'])}: {who} shown {shown}, verdict {md_escape(r['verdict'])}"
        else:
            line = f"Prompt {md_escape(r['prompt_id'])}: {who}, score {num(r['score'])}"
        out.append((line, md_code(str(r["raw"] or "").strip() or "(empty)")))
    return out


def judged_views(study: "Study", tables: "Tables", charts: "ChartSet | None" = None) -> list[JudgedView]:
    judged = getattr(tables, "judged", None) or []
    if not judged:
        return []
    names = _names(study)
    style = markdown_style()
    statements = analysis.phrase_all(judged_findings(tables), names, style)
    views = []
    for c in judged:
        config = next(j for j in study.judges if j.id == c.judge_id)
        mine = [s.text for s in statements if s.numbers.get("judge") == c.judge_id]
        warning = next((s.text for s in statements if s.numbers.get("judge") == c.judge_id and "unreliable" in s.text), "")
        heading = (
            f"Judge {md_escape(c.judge_name)}: pairwise against {md_escape(names.get(c.baseline, c.baseline))}"
            if c.mode == "pairwise"
            else f"Judge {md_escape(c.judge_name)}: rubric scores"
        )
        chart = chart_slug(f"judged-{c.judge_id}")
        views.append(
            JudgedView(
                heading,
                c.reliable,
                warning,
                [t for t in mine if t != warning],
                _rates_table(c, names),
                _strengths_table(c, names),
                _scores_table(c, names, config.scale),
                _reliability_table(c) if c.reliability is not None else empty_table(),
                chart if charts is not None and chart in charts.charts else "",
                _verdicts(c, names),
            )
        )
    return views


def win_rate_figure(rates, names, colours, baseline_name: str):
    """Each model's score against the baseline (wins + ½ ties) with its 95% CI; the dashed line is 50% (even)."""
    import plotly.graph_objects as go

    from reportgen.report import charts as ch

    if rates is None or rates.empty:
        return None
    ids = list(rates["model_id"])
    score = rates["score"].astype(float).tolist()
    fig = ch.new_figure()
    for part, colour in (("win", "#2da44e"), ("tie", "#d0d7de"), ("loss", "#cf222e")):
        fig.add_trace(
            go.Bar(
                y=[ch._label(names, m, 24) for m in ids],
                x=rates[part].astype(float).tolist(),
                orientation="h",
                name={"win": "wins", "tie": "ties", "loss": "losses"}[part],
                marker_color=colour,
                opacity=0.55,
                hovertemplate="%{y}: %{x:.0%} " + part + "<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            y=[ch._label(names, m, 24) for m in ids],
            x=score,
            mode="markers",
            name="score (win + ½ tie)",
            marker={
                "color": [colours.get(m, ch.PALETTE[0]) for m in ids],
                "size": 12,
                "symbol": "diamond",
                "line": {"color": "#1f2328", "width": 1},
            },
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [h - s for h, s in zip(rates["score_high"], score)],
                "arrayminus": [s - lo for s, lo in zip(score, rates["score_low"])],
                "color": "#1f2328",
                "thickness": 1.5,
                "width": 8,
            },
            hovertemplate="%{y}: score %{x:.0%}<extra></extra>",
        )
    )
    ch._style(fig, f"Judged against {ch.chart_label(baseline_name)} (score, 95% CI)", legend=True, bottom=110)
    fig.update_layout(barmode="stack", legend={"traceorder": "normal"})
    fig.update_yaxes(autorange="reversed")  # the models top to bottom in study order
    fig.add_vline(x=0.5, line_dash="dash", line_color="#57606a")
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text="share of verdicts")
    return fig


def judged_charts(charts: "ChartSet", study: "Study", tables: "Tables") -> None:
    """One win-rate chart per pairwise judge with verdicts."""
    from reportgen.report import charts as ch

    names = _names(study)
    colours = ch.model_colours([m.id for m in study.models])
    for c in getattr(tables, "judged", None) or []:
        if c.mode != "pairwise" or c.rates.empty:
            continue
        figure = win_rate_figure(c.rates, names, colours, names.get(c.baseline, c.baseline))
        if figure is not None:
            note = "" if c.reliable else " This judge is unreliable (see its reliability table): read no ranking into it."
            charts.add(
                chart_slug(f"judged-{c.judge_id}"),
                figure,
                f"Judge {c.judge_name}: each model against {names.get(c.baseline, c.baseline)}; bars are the "
                f"shares of wins, ties and losses, the diamond is the score (win + ½ tie) with its 95% "
                f"bootstrap CI over prompts; the dashed line is 50% (even).{note}",  # plain text: escaped once, as a caption
                group="judged",
                height=ch.chart_height(len(c.rates), base=220, least=320),
            )
