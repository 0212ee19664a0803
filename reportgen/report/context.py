"""The one object templates see: ``ReportContext``, built by ``build_context``.

Every field is documented in the class docstring, one ``name: description`` line each, and a test
fails when a template uses a name that is not documented there or a field has no line. Text that
came from a config, a model card or a model is already Markdown-escaped here ("Markdown-safe"), so
a template can print it as it is; raw values (``specs``) are for custom templates and need the
``md`` / ``cell`` filters. The study author's prose (subtitle, introduction, conclusion, card text,
glossary definitions) is "author Markdown": rendered as Markdown, with raw HTML, images and unsafe links
made inert (``report.prose``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import reportgen
from reportgen.format import human_bytes, human_count, is_missing, num, percent
from reportgen.report.markdown import md_cell, md_code, md_escape, md_inline_code, md_link
from reportgen.report.prose import author_blocks, author_inline, author_plain
from reportgen.specs import fields as spec_fields
from reportgen.util.text import TEXT_FIELD_LIMIT, clip, clip_strings

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.analysis import ClaimResult, Statement
    from reportgen.study.config import Card, ModelConfig, Study
    from reportgen.specs.study import ModelFiles
    from reportgen.report.charts import ChartSet
    from reportgen.specs.extract import ModelSpec


@dataclass
class Table:
    """A Markdown table, ready to print.

    header: header cells (Markdown-safe).
    rows: rows of cells (Markdown-safe; no raw newlines or pipes).
    align: per column "left" or "right".
    css_class: a class name for the HTML/PDF table (wide tables get a smaller font in the PDF).
    caption: a short title printed above the table (Markdown-safe), or "".
    legend: what the table's abbreviations and marks mean, printed below it (Markdown-safe), or "".
    """

    header: list[str]
    rows: list[list[str]]
    align: list[str]
    css_class: str = ""
    caption: str = ""
    legend: str = ""

    def __bool__(self) -> bool:
        return bool(self.rows)


def empty_table() -> Table:
    return Table([], [], [])


@dataclass
class ModelView:
    """One model, as the report shows it.

    number: 1-based position in the study.
    id: the model id (Markdown-safe).
    name: display name (Markdown-safe).
    heading: "Model N: name" (Markdown-safe), the model's section heading.
    description: the card's description (author Markdown, one line; "" when absent).
    application: the card's application (author Markdown, one line; "" when absent).
    use: the card's intended use (author Markdown, one line; "" when absent).
    limitation: the card's limitation (author Markdown, one line; "" when absent).
    summary: key spec facts as (label, value) pairs (Markdown-safe), for the Models section.
    overview: the card's metadata as a two-column Table (library, language, pipeline tag, tags, license, base model).
    links: Markdown links (title and http(s) URL), from the card.
    config_table: the config.json facts as a two-column Table (empty when the model has no spec).
    config_source: the file the facts come from, relative to the study config's folder (Markdown-safe).
    config_json: the raw config.json as a fenced code block (Markdown-safe), or "".
    training_procedure: the card's training procedure (author Markdown, paragraphs and lists; "" when absent).
    quantization: the bitsandbytes settings as a two-column Table (empty when none).
    adapter: the adapter (LoRA) settings and counts as a two-column Table (empty when none).
    adapter_source: the adapter_config.json the adapter facts come from, relative to the study config's folder (Markdown-safe), or "".
    api_usage: a fenced code block querying the model's HTTP endpoint (Markdown-safe), or "".
    notes: the card's notes (author Markdown, one line each).
    warnings: consistency warnings about this model (Markdown-safe).
    """

    number: int
    id: str
    name: str
    heading: str
    description: str
    application: str
    use: str
    limitation: str
    summary: list[tuple[str, str]]
    overview: Table
    links: list[str]
    config_table: Table
    config_source: str
    config_json: str
    training_procedure: str
    quantization: Table
    adapter: Table
    adapter_source: str
    api_usage: str
    notes: list[str]
    warnings: list[str]


@dataclass
class ChartView:
    """One chart, as the current target shows it.

    name: the chart's name (file stem of charts/NAME.svg; HTML id chart-NAME).
    title: caption and alt text (Markdown-safe).
    markdown: what the template prints: an SVG image (markdown, pdf) or a placeholder the HTML writer replaces with the interactive chart.
    group: the section the chart belongs to: spec, quality, speed, memory, tradeoff, category, lm, choice or retraining.
    """

    name: str
    title: str
    markdown: str
    group: str = "spec"


@dataclass
class AnalysisGroup:
    """A titled group of statements computed from the measured results.

    title: the group's heading (Markdown-safe).
    statements: the statements (analysis.Statement: .text Markdown-safe, .numbers, .topic).
    """

    title: str
    statements: list[Any]


@dataclass
class SampleOutput:
    """One model's answer to one prompt.

    model: the model's display name (Markdown-safe).
    number: the model's 1-based position in the study.
    status: how the generation ended, its length and its scores, in words (Markdown-safe).
    flagged: True when the answer failed, stopped at the token limit or loops.
    text: the answer as a fenced code block (Markdown-safe whatever the model wrote), or a note when it is empty or failed.
    wrapped: the same answer as lines that wrap (hard line breaks, no code block), for the README on GitHub, where a
        code block never wraps; "" when ``text`` is a note.
    """

    model: str
    number: int
    status: str
    flagged: bool
    text: str
    wrapped: str = ""


@dataclass
class SampleView:
    """One prompt of the prompt set with every model's answer, side by side.

    number: 1-based position among the prompts shown.
    prompt_id: the prompt's id (Markdown-safe).
    category: the prompt's category (Markdown-safe).
    summary: "Prompt N: id (category)", HTML-escaped for a raw <summary> element.
    heading: the same line Markdown-safe, for a heading where <details> does not fit (the PDF).
    prompt: the prompt as a fenced code block (Markdown-safe), or "" when the prompt set is not available.
    references: the accepted answers, each as inline code (Markdown-safe); empty when the prompt has none.
    outputs: SampleOutputs, in study order.
    """

    number: int
    prompt_id: str
    category: str
    summary: str
    heading: str
    prompt: str
    references: list[str]
    outputs: list[SampleOutput]


@dataclass
class RetrainingView:
    """What retraining changed for one model: its last two versions compared on the same prompts.

    model: the model's display name (Markdown-safe).
    heading: the section heading, "MODEL: what changed" (Markdown-safe).
    versions: the old and the new fingerprint and when each last ran (Markdown-safe).
    statement: the verdict in one paragraph (Markdown-safe; bold when the model got worse).
    worse: True when at least one metric got significantly worse.
    table: a Table, per metric: before, after, change, 95% CI, verdict.
    history: a Table of every version of the model, oldest first.
    chart_name: the name of its before/after chart among metric_charts ("" when none).
    """

    model: str
    heading: str
    versions: str
    statement: str
    worse: bool
    table: Table
    history: Table
    chart_name: str = ""


@dataclass
class VerdictLine:
    """One line of the verdict (analysis.verdict): the answer to one need, and where the report proves it.

    text: the sentence (Markdown-safe).
    section: the title of the section that proves it (plain text).
    anchor: that section's anchor (GitHub's slug of its heading).
    lead: the start of ``text`` that gives the answer (empty: all of it); report.html shows only it on a phone.
    evidence: the rest of ``text``, after ``lead`` (empty when ``lead`` is).
    """

    text: str
    section: str
    anchor: str
    lead: str = ""
    evidence: str = ""


@dataclass
class GlossaryItem:
    """A glossary entry.

    term: the term (Markdown-safe).
    definition: its definition (author Markdown, one line).
    """

    term: str
    definition: str


@dataclass
class CodeView:
    """The code-by-execution section (built in report.code).

    how_run: how the answers' code was run: limits and isolation (one Markdown-safe paragraph).
    pass_at_1: pass@1 per model with its 95% Wilson interval, passed count and why the others failed.
    paired: paired comparisons of pass@1 (McNemar's exact test, Holm-adjusted); empty with one model.
    pass_at_k: pass@k of the sampled answers per model (code.samples); empty without samples.
    extraction: how the code was taken from the answers (Markdown-safe), or "".
    """

    how_run: str
    pass_at_1: Table
    paired: Table
    pass_at_k: Table
    extraction: str = ""


@dataclass
class JudgedView:
    """One judge's comparison.

    heading: "Judge NAME: pairwise against BASELINE" or "Judge NAME: rubric scores" (Markdown-safe).
    reliable: False when the judge's position consistency is below its threshold (its verdicts rank nothing).
    warning: the unreliable-judge warning (Markdown-safe), or "".
    statements: the analysis' sentences about this judge (Markdown-safe).
    rates: win / tie / loss rates against the baseline with 95% CIs (pairwise; else empty).
    strengths: Bradley–Terry log-strengths with 95% CIs (pairwise; else empty).
    scores: rubric score means with 95% CIs (rubric; else empty).
    reliability: the judge-reliability Table.
    chart_name: the win-rate chart's name in metric_charts, or "".
    verdicts: sample verdicts: (line saying which answers, the judge's raw text as a code block), Markdown-safe.
    """

    heading: str
    reliable: bool
    warning: str
    statements: list[str]
    rates: Table
    strengths: Table
    scores: Table
    reliability: Table
    chart_name: str = ""
    verdicts: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ResultSections:
    """The views of the measured results (``sections.result_sections``): the ReportContext fields of the same names.

    headline_metric: the quality metric the report leads with, in words (Markdown-safe); "" without one.
    results_summary: the Table at the top, one row per model.
    quality_tables: Tables of the per-prompt metrics: reference metrics, then text statistics.
    category_table: the headline metric per prompt category and model (empty without categories).
    efficiency_table: speed and memory per model.
    lm_table: bits per byte and perplexity per model (empty when no LM texts were scored).
    choice_tables: multiple choice by log-likelihood: acc/acc_norm per model, per category, paired tests (empty without items).
    result_analysis: AnalysisGroups of statements computed from the results.
    samples: SampleViews, prompts with every model's answer side by side.
    samples_note: which prompts the samples show and why (Markdown-safe), or "".
    retraining: RetrainingViews, one per model whose weights changed since its previous run.
    manifest: the run manifest as captioned Tables.
    manifest_notes: notes the run recorded per model (Markdown-safe lines).
    judged: JudgedViews (built in report.judged), one per judge of the study; empty without judges.
    code: the CodeView of the code prompts (report.code), or None without code prompts.
    speed_protocol: how speed was measured (warm-up, timed passes, what latency means), one Markdown-safe sentence.
    explorer: the prompt explorer's data (report.explorer.explorer_data: raw text inside, for report.html only), or {}.
    """

    headline_metric: str
    results_summary: Table
    quality_tables: list[Table]
    category_table: Table
    efficiency_table: Table
    lm_table: Table
    result_analysis: list[AnalysisGroup]
    samples: list[SampleView]
    samples_note: str
    retraining: list[RetrainingView]
    manifest: list[Table]
    manifest_notes: list[str]
    judged: list[JudgedView] = field(default_factory=list)
    code: CodeView | None = None
    speed_protocol: str = ""
    explorer: dict[str, Any] = field(default_factory=dict)
    choice_tables: list[Table] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        """The context fields these views fill (shallow: the views stay objects)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass
class ReportContext:
    """Everything a report template can use. Markdown-safe text is already escaped.

    target: "markdown" (README.md), "mkdocs" (index.md of a MkDocs page), "html" (report.html) or "pdf" (the HTML the PDF is printed from).
    generator: "reportgen X.Y.Z", for the footer.
    generated_at: build time (ISO 8601) when output.timestamp is set, else "" (byte-identical rebuilds).
    title: the study title (Markdown-safe).
    title_text: the study title as plain text (for HTML <title> and PDF metadata; HTML-escaped by Jinja).
    subtitle_text: the subtitle as plain text (the PDF's Subject, the HTML's description), or "".
    keywords: the study's keywords as plain text (PDF and HTML metadata): the config's, else the model ids.
    date: the study's date (YYYY-MM-DD, from the config), or "".
    subtitle: the subtitle (author Markdown, one line), or "".
    authors: author names (Markdown-safe).
    introduction: blocks (paragraphs, lists, quotes, code) of the hand-written introduction (author Markdown); a default sentence when absent.
    models: one ModelView per model, in study order.
    comparison: the spec comparison Table, one column per model: only the facts in which the models differ.
    comparison_shared: the facts every model shares, as one Markdown-safe sentence ("All three models — Task: …"), or "".
    charts: ChartViews of the spec charts (empty when charts are off).
    statements: the computed comparative statements (analysis.Statement: .text Markdown-safe, .numbers).
    warnings: consistency warnings across all models (Markdown-safe).
    claims: the checked claims as sentences, one Markdown-safe line each (the claim and the numbers it was checked with).
    claim_checks: the check expression of each claim, as inline code (Markdown-safe), in the order of ``claims``.
    conclusion_points: the computed conclusion, one Markdown-safe line each.
    verdict: VerdictLines, the study's answer in a few lines (best quality, fastest single stream, highest batched throughput, least memory, cheapest to retrain, warnings), shown under the title.
    conclusion: blocks of the hand-written conclusion (author Markdown).
    glossary: GlossaryItems, in config order.
    specs: raw ModelSpec.as_dict() by model id (NOT escaped: for custom templates, use the md/cell filters).
    has_results: True when the report shows measured results (the render got non-empty metric tables); the results sections print only then.
    headline_metric: the quality metric the report leads with, in words (Markdown-safe), e.g. "exact match"; "" without one.
    results_summary: the Table at the top: one row per model with the headline metric, speed, memory, bits per byte and failures.
    quality_tables: Tables of the per-prompt metrics (rows: metrics, columns: models; mean and 95% CI): reference metrics, then text statistics.
    category_table: the headline metric per prompt category and model (a Table; empty without categories).
    efficiency_table: speed and memory per model (rows: measurements, columns: models).
    lm_table: bits per byte and perplexity per model (a Table; empty when no LM texts were scored).
    choice_tables: Tables of multiple choice by log-likelihood: MC accuracy (acc) and length-normalised accuracy (acc_norm) per model with Wilson intervals, MC accuracy per category, and the paired tests (McNemar); empty without multiple-choice items.
    metric_charts: ChartViews of the measured results (group says where each belongs); empty without results.
    result_analysis: AnalysisGroups of statements computed from the results (quality, trade-off, speed, variants, behaviour).
    samples: SampleViews: prompts with every model's answer side by side.
    samples_note: which prompts the samples show and why (Markdown-safe), or "".
    retraining: RetrainingViews, one per model whose weights changed since its previous run; empty when none.
    manifest: the run manifest as captioned Tables (software, hardware, run, generation settings, models).
    manifest_notes: notes the run recorded per model (Markdown-safe lines), e.g. a precision fallback.
    judged: JudgedViews (reportgen.report.judged), one per judge: win rates, strengths or rubric scores, reliability, warning.
    code: CodeView (reportgen.report.code): pass@1 with Wilson intervals, McNemar pairs, pass@k, how the code was run; None without code prompts.
    speed_protocol: how speed was measured (warm-up, timed passes, what latency means), one Markdown-safe sentence.
    explorer: the prompt explorer's data (report.explorer.explorer_data: every prompt, every model; raw text, NOT escaped: report.html embeds it as JSON for its script), or {} without results.
    """

    target: str
    generator: str
    generated_at: str
    title: str
    title_text: str
    subtitle: str
    subtitle_text: str
    keywords: list[str]
    date: str
    authors: list[str]
    introduction: list[str]
    models: list[ModelView]
    comparison: Table
    comparison_shared: str = ""
    charts: list[ChartView] = field(default_factory=list)
    statements: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    claim_checks: list[str] = field(default_factory=list)
    conclusion_points: list[str] = field(default_factory=list)
    verdict: list[VerdictLine] = field(default_factory=list)
    conclusion: list[str] = field(default_factory=list)
    glossary: list[GlossaryItem] = field(default_factory=list)
    specs: dict[str, dict] = field(default_factory=dict)
    has_results: bool = False
    headline_metric: str = ""
    results_summary: Table = field(default_factory=empty_table)
    quality_tables: list[Table] = field(default_factory=list)
    category_table: Table = field(default_factory=empty_table)
    efficiency_table: Table = field(default_factory=empty_table)
    lm_table: Table = field(default_factory=empty_table)
    choice_tables: list[Table] = field(default_factory=list)
    metric_charts: list[ChartView] = field(default_factory=list)
    result_analysis: list[AnalysisGroup] = field(default_factory=list)
    samples: list[SampleView] = field(default_factory=list)
    samples_note: str = ""
    retraining: list[RetrainingView] = field(default_factory=list)
    manifest: list[Table] = field(default_factory=list)
    manifest_notes: list[str] = field(default_factory=list)
    judged: list[JudgedView] = field(default_factory=list)
    code: CodeView | None = None
    speed_protocol: str = ""
    explorer: dict[str, Any] = field(default_factory=dict)

    def variables(self) -> dict[str, Any]:
        """The template variables: one per field (shallow: the views stay objects)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def documented_fields(cls: type) -> dict[str, str]:
    """``name: description`` lines of a view class docstring (used by the template-context test)."""
    out = {}
    for line in (cls.__doc__ or "").splitlines():
        line = line.strip()
        if ":" in line:
            name, _, text = line.partition(":")
            if name.isidentifier() and text.strip():
                out[name] = text.strip()
    return out


# --------------------------------------------------------------------------------------------------
# Building


def _inline(text: object) -> str:
    """Untrusted text for one list item or line: escaped, its line breaks folded into spaces."""
    return " ".join(line for line in md_escape(text).split("\n") if line)


def _short(name: str) -> str:
    """A spec field's label in the side-by-side comparison (specs.fields)."""
    return spec_fields.field(name).short


def _label(name: str) -> str:
    """A spec field's label in a model's summary (specs.fields)."""
    return spec_fields.field(name).label


def _detailed(name: str) -> str:
    """A spec field's label with its qualifier, in the model's config / adapter tables (specs.fields)."""
    return spec_fields.field(name).detailed


def _kv_table(pairs: Sequence[tuple[str, str]], header: tuple[str, str] = ("Property", "Value")) -> Table:
    rows = [[label, value] for label, value in pairs if value not in (None, "")]
    return Table(list(header), rows, ["left", "left"], "kv")


def _code(value: object) -> str:
    return "—" if is_missing(value) else md_inline_code(clip(value))


def _yes_no(value: object) -> str:
    return "—" if is_missing(value) else ("yes" if value else "no")


def _task(task: str | None) -> str:
    return {"causal-lm": "causal (decoder-only) LM", "seq2seq-lm": "encoder-decoder (seq2seq) LM"}.get(task or "", "—")


def _dtype_bytes(spec: ModelSpec) -> str:
    if spec.weight_bytes is None:
        return "—"
    return f"{human_bytes(spec.weight_bytes)} ({md_escape(spec.dtype)})" if spec.dtype else human_bytes(spec.weight_bytes)


def _heads(spec: ModelSpec) -> str:
    if spec.num_attention_heads is None:
        return "—"
    kv = spec.num_key_value_heads
    if kv is None or kv == spec.num_attention_heads:
        return num(spec.num_attention_heads)
    return f"{num(spec.num_attention_heads)} ({num(kv)} key/value)"


def _adapter_short(spec: ModelSpec | None) -> str:
    if spec is None or spec.adapter is None:
        return "—"
    a = spec.adapter
    kind = "LoRA" if a.peft_type == "LORA" else md_escape(a.peft_type)
    bits = [f"r = {num(a.r)}" if a.r is not None else "", f"alpha = {num(a.alpha)}" if a.alpha is not None else ""]
    text = f"{kind} ({', '.join(b for b in bits if b)})" if any(bits) else kind
    if a.trainable_parameters is not None:
        text += f", {num(a.trainable_parameters)} trainable"
        if a.share_of_base is not None:
            text += f" ({percent(a.share_of_base)})"
    return text


def _quant_short(model: ModelConfig) -> str:
    q = model.quantization
    if q is None:
        return "—"
    if q.load_in_4bit:
        return f"bitsandbytes 4-bit {q.bnb_4bit_quant_type.upper()}" + (", double quant" if q.bnb_4bit_use_double_quant else "")
    if q.load_in_8bit:
        return "bitsandbytes 8-bit (LLM.int8())"
    return "bitsandbytes (no 4/8-bit loading)"


def comparison_table(study: Study, specs: Mapping[str, ModelSpec]) -> Table:
    """Spec facts side by side: one row per fact, one column per model."""
    models = list(study.models)
    header = ["", *(f"{i}. {md_cell(m.name)}" for i, m in enumerate(models, 1))]

    def row(label: str, show) -> list[str]:
        cells = []
        for m in models:
            spec = specs.get(m.id)
            cells.append("—" if spec is None else show(spec))
        return [label, *cells]

    rows = [
        row(_short("architecture"), lambda s: _code(s.architecture)),
        row(_short("family"), lambda s: md_cell(s.family) if s.family else "—"),
        row(_short("task"), lambda s: _task(s.task)),
        row(_short("parameters"), lambda s: f"{num(s.parameters)}<br>({human_count(s.parameters)})" if s.parameters else "—"),
        row(_short("num_hidden_layers"), lambda s: num(s.num_hidden_layers)),
        row(_short("hidden_size"), lambda s: num(s.hidden_size)),
        row(_short("intermediate_size"), lambda s: num(s.intermediate_size)),
        row(_short("num_attention_heads"), _heads),
        row(_short("context_length"), lambda s: num(s.context_length)),
        row(_short("vocab_size"), lambda s: num(s.vocab_size)),
        row(_short("activation"), lambda s: _code(s.activation)),
        row(_short("dtype"), lambda s: _code(s.dtype)),
        row(_short("weight_bytes"), lambda s: human_bytes(s.weight_bytes)),
        row(_short("weight_bytes_4bit"), lambda s: human_bytes(s.weight_bytes_4bit)),
        row(_short("tie_word_embeddings"), lambda s: _yes_no(s.tie_word_embeddings)),
        row("Adapter", _adapter_short),
        ["Quantization (configured)", *(_quant_short(m) for m in models)],
        row(_short("transformers_version"), lambda s: md_cell(s.transformers_version) if s.transformers_version else "—"),
    ]
    if any(s.source == "gguf" for s in specs.values()):
        rows.append(row(_short("gguf_file_type"), lambda s: _code(s.gguf_file_type)))
    return Table(header, rows, ["left", *("right" for _ in models)], "comparison")


_COUNTS = {2: "Both", 3: "All three", 4: "All four", 5: "All five", 6: "All six", 7: "All seven", 8: "All eight"}


def shared_rows(table: Table) -> tuple[Table, str]:
    """Say each fact once: the rows of a comparison in which every model has the same value leave the table and
    become one sentence, "All five models — Family: Llama; Task: causal (decoder-only) LM." (with one model, or
    when no row is shared, the table stays as it is)."""
    models = len(table.header) - 1
    if models < 2:
        return table, ""
    differ, shared = [], []
    for row in table.rows:
        values = set(row[1:])
        if len(values) == 1 and row[1] != "—":
            shared.append(f"{row[0]}: {row[1].replace('<br>', ' ')}")
        else:
            differ.append(row)
    if not shared:
        return table, ""
    who = _COUNTS.get(models, f"All {models}")
    return dataclasses.replace(table, rows=differ), f"{who} models — {'; '.join(shared)}."


def _summary(model: ModelConfig, spec: ModelSpec | None) -> list[tuple[str, str]]:
    if spec is None:
        return [("Specifications", "not available (no config.json or GGUF file for this model)")]
    pairs = [
        (_label("architecture"), _code(spec.architecture)),
        (_label("parameters"), f"{num(spec.parameters)} ({human_count(spec.parameters)})" if spec.parameters else "—"),
        (_label("hidden_size"), num(spec.hidden_size)),
        (_label("intermediate_size"), num(spec.intermediate_size)),
        (_label("num_attention_heads"), _heads(spec)),
        (_label("num_hidden_layers"), num(spec.num_hidden_layers)),
        (_label("context_length"), f"{num(spec.context_length)} tokens" if spec.context_length else "—"),
        (_label("vocab_size"), f"{num(spec.vocab_size)} tokens" if spec.vocab_size else "—"),
        (_label("dtype"), _code(spec.dtype)),
        (_label("transformers_version"), md_escape(clip(spec.transformers_version)) if spec.transformers_version else "—"),
    ]
    if spec.adapter is not None:
        pairs.append(("Adapter", _adapter_short(spec)))
    if model.quantization is not None:
        pairs.append(("Quantization", _quant_short(model)))
    return pairs


def _config_table(spec: ModelSpec | None, files: ModelFiles | None) -> Table:
    if spec is None:
        return Table(["Property", "Value"], [], ["left", "left"], "kv")
    init = (files.config or {}).get("_name_or_path") if files is not None else None
    pairs = [
        ("Initialised from (`_name_or_path`)", _code(init) if init else ""),
        (_detailed("architecture"), _code(spec.architecture)),
        (_detailed("model_type"), _code(spec.model_type)),
        (_detailed("family"), md_cell(clip(spec.family)) if spec.family else ""),
        (_detailed("task"), _task(spec.task)),
        (_detailed("parameters"), num(spec.parameters) if spec.parameters else "—"),
        (_detailed("hidden_size"), num(spec.hidden_size)),
        (_detailed("intermediate_size"), num(spec.intermediate_size)),
        (_detailed("num_attention_heads"), num(spec.num_attention_heads)),
        (_detailed("num_key_value_heads"), num(spec.num_key_value_heads)),
        (_detailed("num_hidden_layers"), num(spec.num_hidden_layers)),
        (_detailed("context_length"), num(spec.context_length)),
        (_detailed("vocab_size"), num(spec.vocab_size)),
        (_detailed("activation"), _code(spec.activation)),
        (_detailed("dtype"), _code(spec.dtype)),
        (_detailed("weight_bytes"), _dtype_bytes(spec)),
        (_detailed("weight_bytes_4bit"), human_bytes(spec.weight_bytes_4bit)),
        (_detailed("tie_word_embeddings"), _yes_no(spec.tie_word_embeddings)),
        (_detailed("transformers_version"), md_cell(clip(spec.transformers_version)) if spec.transformers_version else ""),
        (_detailed("gguf_file_type"), _code(spec.gguf_file_type) if spec.gguf_file_type else ""),
        (
            _detailed("gguf_tensor_types"),
            md_cell(", ".join(f"{k}: {v}" for k, v in spec.gguf_tensor_types.items())) if spec.gguf_tensor_types else "",
        ),
    ]
    for note in spec.notes:
        pairs.append(("Note", md_cell(note)))
    return _kv_table(pairs)


def _quant_table(model: ModelConfig) -> Table:
    q = model.quantization
    if q is None:
        return Table(["Setting", "Value"], [], ["left", "left"], "kv")
    skip = ", ".join(q.llm_int8_skip_modules) if q.llm_int8_skip_modules else None
    pairs = [
        ("Quantization method", md_cell(q.method)),
        ("Load in 8-bit (`load_in_8bit`)", _yes_no(q.load_in_8bit)),
        ("Load in 4-bit (`load_in_4bit`)", _yes_no(q.load_in_4bit)),
        ("LLM.int8() outlier threshold (`llm_int8_threshold`)", num(q.llm_int8_threshold, 1)),
        ("LLM.int8() skipped modules (`llm_int8_skip_modules`)", _code(skip) if skip else "none"),
        ("LLM.int8() FP32 CPU offload (`llm_int8_enable_fp32_cpu_offload`)", _yes_no(q.llm_int8_enable_fp32_cpu_offload)),
        ("LLM.int8() has FP16 weight (`llm_int8_has_fp16_weight`)", _yes_no(q.llm_int8_has_fp16_weight)),
        ("4-bit quantization type (`bnb_4bit_quant_type`)", _code(q.bnb_4bit_quant_type)),
        ("4-bit double quantization (`bnb_4bit_use_double_quant`)", _yes_no(q.bnb_4bit_use_double_quant)),
        ("4-bit compute dtype (`bnb_4bit_compute_dtype`)", _code(q.bnb_4bit_compute_dtype)),
    ]
    return _kv_table(pairs, ("Setting", "Value"))


def _adapter_table(spec: ModelSpec | None) -> Table:
    if spec is None or spec.adapter is None:
        return Table(["Setting", "Value"], [], ["left", "left"], "kv")
    a = spec.adapter
    pairs = [
        (_detailed("adapter_peft_type"), _code(a.peft_type)),
        (_detailed("adapter_r"), num(a.r) if a.r is not None else ""),
        (_detailed("adapter_alpha"), num(a.alpha) if a.alpha is not None else ""),
        ("Scaling alpha / r", num(a.alpha / a.r) if a.alpha is not None and a.r else ""),
        (_detailed("adapter_dropout"), num(a.dropout) if a.dropout is not None else ""),
        (_detailed("adapter_target_modules"), ", ".join(md_inline_code(t) for t in a.target_modules) or "—"),
        (_detailed("adapter_task_type"), _code(a.task_type) if a.task_type else ""),
        (_detailed("adapter_base_model"), _code(a.base_model) if a.base_model else ""),
        (
            _detailed("adapter_trainable_parameters"),
            f"{num(a.trainable_parameters)} ({human_count(a.trainable_parameters)})"
            if a.trainable_parameters is not None
            else "not counted (no base config)",
        ),
        (_detailed("adapter_share_of_base"), percent(a.share_of_base) if a.share_of_base is not None else ""),
    ]
    return _kv_table(pairs, ("Setting", "Value"))


def clipped_card(card: Card) -> Card:
    """The card with every text clipped to ``TEXT_FIELD_LIMIT`` characters (a visible "…" where cut)."""
    update: dict[str, Any] = {}
    for name, value in card:
        if isinstance(value, str):
            update[name] = clip(value)
        elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            update[name] = tuple(clip(v) for v in value)
    update["links"] = tuple(link.model_copy(update={"title": clip(link.title)}) for link in card.links)
    return card.model_copy(update=update)


def _link(url: str, title: str) -> str:
    if len(url) > TEXT_FIELD_LIMIT:  # cut, it would lead somewhere else: the title alone, and why
        return f"{md_escape(title)} (its address is longer than {TEXT_FIELD_LIMIT} characters: not linked)"
    return md_link(url, title)


def _overview(card: Card) -> Table:
    pairs = [
        ("Library", md_cell(card.library) if card.library else ""),
        ("Language", md_cell(", ".join(card.language)) if card.language else ""),
        ("Pipeline tag", _code(card.pipeline_tag) if card.pipeline_tag else ""),
        ("Tags", ", ".join(md_inline_code(t) for t in card.tags) if card.tags else ""),
        ("License", md_cell(card.license) if card.license else ""),
        ("Base model", _code(card.base_model) if card.base_model else ""),
    ]
    return _kv_table(pairs, ("Card field", "As the model card states it"))


def _display_path(path: Path | None, base: Path | None) -> str:
    """A path as the study config names it: relative to the config's folder (the same on every machine)."""
    if path is None:
        return ""
    import os

    shown = Path(os.path.relpath(Path(path).resolve(), base.resolve())) if base is not None else Path(path)
    return md_inline_code(shown.as_posix())


def api_usage_snippet(model: ModelConfig) -> str:
    """The Python snippet querying the model's HTTP endpoint ("" when the model has none)."""
    from reportgen.study.config import HTTPSource

    if not isinstance(model.source, HTTPSource):
        return ""
    try:
        from reportgen.backends.http.usage import api_usage_snippet as snippet
    except ImportError:  # the http backend's extra (httpx) is not installed: build it here
        return _fallback_snippet(model.source)
    return snippet(model.source)


def _fallback_snippet(source) -> str:
    lines = ["import os", "import requests", "", f"API_URL = {json.dumps(source.url)}"]
    if source.token_env:
        lines.append(f'headers = {{"Authorization": "Bearer " + os.environ[{json.dumps(source.token_env)}]}}')
    else:
        lines.append("headers = {}")
    lines += [
        "",
        "def query(payload):",
        "    response = requests.post(API_URL, headers=headers, json=payload)",
        "    return response.json()",
        "",
        "output = query({",
        '    "inputs": "Can you please let us know more details about your ",',
        "})",
    ]
    return "\n".join(lines) + "\n"


def model_view(
    number: int,
    model: ModelConfig,
    spec: ModelSpec | None,
    files: ModelFiles | None,
    warnings: list[str],
    base: Path | None = None,
) -> ModelView:
    card = clipped_card(model.card)
    config_json = ""
    if files is not None and files.config is not None:
        config_json = md_code(json.dumps(clip_strings(files.config), indent=2, ensure_ascii=False), "json")
    name = md_escape(model.name).replace("\n", " ")
    return ModelView(
        number=number,
        id=md_escape(model.id),
        name=name,
        heading=f"Model {number}: {name}",
        description=author_inline(card.description),
        application=author_inline(card.application),
        use=author_inline(card.use),
        limitation=author_inline(card.limitation),
        summary=_summary(model, spec),
        overview=_overview(card),
        links=[_link(link.url, link.title) for link in card.links],
        config_table=_config_table(spec, files),
        config_source=(_display_path(files.config_path, base) or _display_path(files.gguf_path, base)) if files else "",
        config_json=config_json,
        training_procedure="\n\n".join(author_blocks(card.training_procedure)),
        quantization=_quant_table(model),
        adapter=_adapter_table(spec),
        adapter_source=_display_path(files.adapter_config_path, base)
        if files is not None and spec is not None and spec.adapter
        else "",
        api_usage=md_code(snippet, "python") if (snippet := api_usage_snippet(model)) else "",
        notes=[author_inline(n) for n in card.notes],
        warnings=warnings,
    )


def chart_views(charts: ChartSet | None, *, interactive: bool = False) -> list[ChartView]:
    """The charts as a format shows them: SVG images, or placeholders for the interactive charts (HTML)."""
    if not charts:
        return []
    views = []
    for chart in charts:
        title = md_escape(chart.title).replace("\n", " ")
        if interactive:
            markdown = f'<div class="chart" data-chart="{chart.name}"></div>'
        else:
            markdown = f"![{title}]({chart.svg_path})"
        views.append(ChartView(chart.name, title, markdown, chart.group))
    return views


def _default_introduction(n_models: int, has_results: bool) -> str:
    """The introduction of a study that writes none: what the report compares and where its numbers come from."""
    start = (
        f"This report compares {n_models} language model{'s' if n_models != 1 else ''}: what each one is "
        "for, its architecture and size, its adapter and quantization settings, and "
    )
    if not has_results:
        return start + "how the models differ. Every number in it is computed from the models' configuration files."
    return start + (
        "how each one behaves on the same prompts: quality against the references, speed, memory, and what "
        "it writes. Every number in it is computed from the models' configuration files and the stored generations."
    )


def build_context(
    study: Study,
    specs: Mapping[str, ModelSpec],
    statements: Sequence[Statement],
    warnings: Sequence[str],
    claim_results: Sequence[ClaimResult],
    *,
    target: str = "markdown",
    files: Mapping[str, ModelFiles] | None = None,
    warnings_by_model: Mapping[str, list[str]] | None = None,
    conclusion_points: Sequence[Statement] = (),
    verdict: Sequence[Statement] = (),
    charts: ChartSet | None = None,
    generated_at: str = "",
    results: ResultSections | None = None,
) -> ReportContext:
    """Assemble the context; ``results`` (the views of the measured results) fill the results fields.

    Charts are shown as static images here; each format sets its own chart views (``chart_views``).
    """
    from reportgen.analysis import claim_sentences
    from reportgen.report.markdown import markdown_style

    files = files or {}
    base = Path(study.path).parent if getattr(study, "_path", None) is not None else None
    per_model = warnings_by_model or {}
    models = [
        model_view(i, m, specs.get(m.id), files.get(m.id), list(per_model.get(m.id, [])), base)
        for i, m in enumerate(study.models, 1)
    ]
    introduction = author_blocks(study.introduction) or [_default_introduction(len(models), results is not None)]
    comparison, shared = shared_rows(comparison_table(study, specs))
    return ReportContext(
        target=target,
        generator=f"reportgen {reportgen.__version__}",
        generated_at=generated_at,
        title=md_escape(study.title).replace("\n", " "),
        title_text=" ".join(study.title.split()),
        subtitle=author_inline(study.subtitle),
        subtitle_text=author_plain(study.subtitle),
        keywords=[" ".join(k.split()) for k in (study.keywords or tuple(m.id for m in study.models))],
        date=study.date.isoformat() if study.date else "",
        authors=[md_escape(a).replace("\n", " ") for a in study.authors],
        introduction=introduction,
        models=models,
        comparison=comparison,
        comparison_shared=shared,
        charts=[v for v in chart_views(charts) if v.group == "spec"],
        statements=list(statements),
        warnings=list(warnings),
        claims=claim_sentences(claim_results, {m.id: m.name for m in study.models}, markdown_style()),
        claim_checks=[md_inline_code(r.claim.check) for r in claim_results],
        conclusion_points=[s.text for s in conclusion_points],
        verdict=[
            VerdictLine(s.text, s.numbers["section"], s.numbers["anchor"], s.lead, s.text[len(s.lead) :] if s.lead else "")
            for s in verdict
        ],
        conclusion=author_blocks(study.conclusion),
        glossary=[GlossaryItem(_inline(g.term), author_inline(g.definition)) for g in study.glossary],
        specs={model_id: spec.as_dict() for model_id, spec in specs.items()},
        has_results=results is not None,
        **(results.fields() if results is not None else {}),
    )
