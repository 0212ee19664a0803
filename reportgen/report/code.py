"""The code-by-execution section: pass@1 per model (Wilson intervals), paired McNemar tests, pass@k of
the samples, how each answer ended, and how the code was run (limits, isolation)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from reportgen.code.jobs import SAMPLE_SEPARATOR
from reportgen.format import MISSING, num, p_value, percent
from reportgen.report.context import CodeView, Table, empty_table
from reportgen.report.markdown import md_cell, md_escape
from reportgen.stats.metrics import metric_ci

if TYPE_CHECKING:
    import pandas as pd

    from reportgen.stats.tables import Tables
    from reportgen.study.config import Study

__all__ = ["code_view"]

REASON_ORDER = ("assertion", "error", "timeout", "memory", "killed", "output-limit", "not run")


def code_view(study: "Study", tables: "Tables") -> CodeView | None:
    """The section's view, or None when the study's answers include no code prompt."""
    code = tables.code
    if code is None or code.empty:
        return None
    names = {m.id: m.name or m.id for m in study.models}
    return CodeView(
        how_run=how_run(study, code),
        pass_at_1=_pass_at_1(tables, names),
        paired=_paired(tables, names),
        pass_at_k=_pass_at_k(study, tables.pass_at_k, names),
        extraction=_extraction(code),
    )


def how_run(study: "Study", code: "pd.DataFrame") -> str:
    """One Markdown-safe paragraph: the limits and what isolated the runs."""
    c = study.code
    isolation = sorted({str(i) for i in code.get("isolation", []) if i})
    isolated = isolation[0] if len(isolation) == 1 else "; ".join(isolation) if isolation else "recorded by each run"
    return md_escape(
        "Each answer's code ran with the prompt's tests (HumanEval style: the tests' check() is called with the entry "
        f"point) in a sandbox of its own: {num(c.timeout)} s of CPU time unless the prompt sets its own (wall clock: 1 s "
        f"more, to start), {c.memory_mb} MiB of memory, {c.processes} processes, 8 MiB per file written (its output "
        "included), an empty working folder, an environment holding PATH, HOME and LANG only; "
        f"{isolated}. A program is run once: its verdict is stored by its content."
    )


def _pass_at_1(tables: "Tables", names: dict[str, str]) -> Table:
    rows = []
    summary = tables.summary[tables.summary["metric"] == "code_pass"]
    for r in summary.to_dict("records"):
        own = tables.code[tables.code["model_id"] == r["model_id"]]
        reasons = Counter(str(x) for x in own["reason"] if x != "passed")
        failed = ", ".join(f"{reason} {reasons[reason]}" for reason in REASON_ORDER if reasons.get(reason)) or "none"
        passed = int((own["passed"] == 1).sum())
        rows.append(
            [
                md_cell(names.get(r["model_id"], r["model_id"])),
                metric_ci("code_pass", r["mean"], r["ci_low"], r["ci_high"]),
                f"{passed} of {int(r['n'])}",
                md_cell(failed),
            ]
        )
    return Table(
        ["Model", "pass@1 (95% CI)", "Passed", "Failed: why"],
        rows,
        ["left", "right", "right", "left"],
        caption="Code prompts: pass@1 of each model's own answers",
        legend="pass@1: share of code prompts whose answer passed its tests; 95% CI: Wilson.",
    )


def _paired(tables: "Tables", names: dict[str, str]) -> Table:
    pairs = tables.pairwise[tables.pairwise["metric"] == "code_pass"]
    if pairs.empty:
        return empty_table()
    rows = [
        [
            md_cell(f"{names.get(r['model_a'], r['model_a'])} − {names.get(r['model_b'], r['model_b'])}"),
            str(int(r["n"])),
            f"{float(r['diff']) * 100:+.1f} points",
            p_value(r["p_value"]).replace("= ", ""),
            p_value(r["p_holm"]).replace("= ", ""),
            "yes" if bool(r["significant"]) else "no",
        ]
        for r in pairs.to_dict("records")
    ]
    return Table(
        ["Pair", "Prompts", "Difference", "p", "p (Holm)", "Significant"],
        rows,
        ["left", "right", "right", "right", "right", "left"],
        caption="Code prompts: paired comparisons of pass@1",
        legend="On the code prompts both models answered; p: McNemar's exact test; Holm-adjusted over the pairs; significant: p (Holm) < 0.05.",
    )


def _pass_at_k(study: "Study", frame: "pd.DataFrame", names: dict[str, str]) -> Table:
    if frame is None or frame.empty:
        return empty_table()
    ks = sorted(set(int(k) for k in frame["k"]))
    rows = []
    for model_id, own in frame.groupby("model_id", sort=False):
        by_k = {int(r["k"]): r for r in own.to_dict("records")}
        cells = []
        for k in ks:
            r = by_k.get(k)
            cells.append(
                MISSING
                if r is None
                else f"{percent(r['pass_at_k'])} [{percent(r['ci_low'])}, {percent(r['ci_high'])}]"
                if r["ci_low"] == r["ci_low"]
                else percent(r["pass_at_k"])
            )
        rows.append([md_cell(names.get(str(model_id), str(model_id))), *cells, str(int(own["n"].max()))])
    c = study.code
    return Table(
        ["Model", *(f"pass@{k} (95% CI)" for k in ks), "Prompts"],
        rows,
        ["left", *("right" for _ in ks), "right"],
        caption=f"Code prompts: pass@k of {c.samples} sampled answers per prompt",
        legend=(
            f"Samples at temperature {num(c.temperature)}, top-p {num(c.top_p)}; pass@k: the unbiased estimator of "
            "Chen et al. (2021), averaged over prompts; 95% CI: bootstrap over prompts."
        ),
    )


def _extraction(code: "pd.DataFrame") -> str:
    own = code[~code["prompt_id"].astype(str).str.contains(SAMPLE_SEPARATOR, regex=False)]
    counts = Counter(str(h) for h in own["how"])
    words = {
        "fenced": "a fenced code block defining the entry point",
        "fenced continuation": "a fenced block continuing the prompt's code",
        "bare": "the answer as written (it defines the entry point)",
        "continuation": "the prompt's code followed by the answer",
    }
    parts = [f"{counts[h]} × {words.get(h, h)}" for h in words if counts.get(h)]
    return md_escape("Code taken from the answers: " + "; ".join(parts) + ".") if parts else ""
