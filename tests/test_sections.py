"""The results sections: a real results store with synthetic generations → Tables → README / HTML / PDF.

Three models of one source (a base, the base + a LoRA adapter, the same weights under llama.cpp), twenty
prompts in four categories, outputs written so that the numbers are known: the adapter is clearly
better on exact match, llama.cpp is faster, smaller and agrees with the base on most prompts, loops on
two prompts and hits the token limit on three, and some outputs are hostile. Tests change the data and
check that the analysis text follows.
"""

from __future__ import annotations

import json
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from reportgen import analysis  # noqa: E402
from reportgen.report.markdown import markdown_style  # noqa: E402
from reportgen.stats.tables import compute_tables  # noqa: E402
from reportgen.records import GenerationResult, LogLikelihoodResult, RunManifest  # noqa: E402
from reportgen.study.config import load_config  # noqa: E402
from reportgen.errors import ClaimError  # noqa: E402
from reportgen.specs.study import study_specs  # noqa: E402
from reportgen.study.prompts import load_prompt_set  # noqa: E402
from reportgen.report.assemble import render_in_memory, render_report  # noqa: E402
from reportgen.report import charts as ch  # noqa: E402
from reportgen.report.charts import static_charts_available  # noqa: E402
from reportgen.stats.metrics import metric_value  # noqa: E402
from reportgen.report.markdown import _parser, headings  # noqa: E402
from reportgen.util.atomic import write_files  # noqa: E402
from reportgen.store import Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MD = markdown_style()  # statements as the report writes them (Markdown-escaped)
needs_chromium = pytest.mark.skipif(not static_charts_available(), reason="no Chrome/Chromium for kaleido's SVG export")

# ------------------------------------------------------------------------------------------------
# the synthetic study

HOSTILE = {
    "poem": "<script>alert('x')</script> and <img src=x onerror=alert(1)>",
    "story": "| a | b |\n|---|---|\n| c | d |",
    "recipe": '![x](file:///etc/passwd) [click](javascript:alert(1)) <img src="file:///etc/passwd">',
    "letter": "&lt;b&gt;entity&amp; &#x3C;script&#x3E; ``` `tick` ````\n```\nbreak out of the fence\n```",
    "essay": '# not a heading\n## nor this\n</details><script>alert(2)</script>\n<div class="chart" data-chart="speed"></div>',
}
LONG_LINE = "x" * 2500  # no spaces: must wrap, not widen the page

PROMPTS = {
    # id: (category, prompt, reference or None)
    "capital-france": ("factual", "What is the capital of France?", "Paris"),
    "capital-japan": ("factual", "What is the capital of Japan?", "Tokyo"),
    "largest-planet": ("factual", "Which planet is the largest?", "Jupiter"),
    "red-planet": ("factual", "Which planet is the Red Planet?", "Mars"),
    "water": ("factual", "Chemical formula of water?", "H2O"),
    "author": ("factual", "Who wrote Romeo and Juliet?", "Shakespeare"),
    "add": ("arithmetic", "What is 2 + 2?", "4"),
    "mul": ("arithmetic", "What is 6 × 7?", "42"),
    "sub": ("arithmetic", "What is 10 − 3?", "7"),
    "div": ("arithmetic", "What is 12 / 4?", "3"),
    "square": ("arithmetic", "What is 9 squared?", "81"),
    "opposite": ("instruction", "Opposite of hot, one word.", "cold"),
    "plural": ("instruction", "Plural of mouse, one word.", "mice"),
    "color": ("instruction", "Colour of the sky, one word.", "blue"),
    "yes": ("instruction", "Answer yes.", "yes"),
    "poem": ("open <i>ended</i> | x", "Write a short poem.", None),
    "story": ("open <i>ended</i> | x", "Tell a story.", None),
    "recipe": ("open <i>ended</i> | x", "Give a recipe.", None),
    "letter": ("open <i>ended</i> | x", "Write a letter.", None),
    "essay": ("open <i>ended</i> | x", "Write an essay.", None),
}
REFERENCED = [p for p, (_, _, ref) in PROMPTS.items() if ref]
PROMPT_IDS = list(PROMPTS)
NAMES = {"base": "Tiny base (transformers)", "lora": "Tiny base + LoRA", "q4": "Tiny Q4_1 <i>llama.cpp</i> | fast"}
LOOP = "the cat sat on the mat " * 8


def answers(exact: set[str], contains: set[str]) -> dict[str, str]:
    """Outputs of one model: the bare reference (exact match), a sentence with it (contains), else a wrong answer."""
    out = {}
    for prompt_id, (_, _, ref) in PROMPTS.items():
        if ref is None:
            out[prompt_id] = f"An answer to {prompt_id}, in a few plain words."
        elif prompt_id in exact:
            out[prompt_id] = ref
        elif prompt_id in contains:
            out[prompt_id] = f"I think the answer is {ref}, surely."
        else:
            out[prompt_id] = "I do not know."
    return out


def default_outputs() -> dict[str, dict[str, str]]:
    # the adapter's lead over the base (7 more exact matches, none fewer) and its drop after retraining
    # (7 exact matches lost, none gained) are both significant under McNemar's exact test (p = 2/2^7)
    base = answers(set(REFERENCED[:1]), set(REFERENCED[1:8]))
    lora = answers(set(REFERENCED[:8]), set(REFERENCED[8:10]))
    q4 = dict(base)
    q4["author"] = "Somebody wrote it."  # five answers differ from the base, three stop at the token limit
    q4["poem"] = LOOP
    q4["story"] = LOOP
    q4["sub"] = base["sub"] = "Ten minus three is a question that I would like to think about for a long …"
    lora["recipe"] = HOSTILE["recipe"]
    lora["letter"] = HOSTILE["letter"]
    base["essay"] = HOSTILE["essay"] + "\n" + LONG_LINE
    q4["letter"] = HOSTILE["story"]
    return {"base": base, "lora": lora, "q4": q4}


EFFICIENCY = {  # model: (tokens/s, latency per prompt, peak memory, weight bytes, device)
    "base": (100.0, 0.50, 900 * 2**20, 540 * 2**20, "cpu"),
    "lora": (90.0, 0.55, 950 * 2**20, 560 * 2**20, "cpu"),
    "q4": (300.0, 0.15, 160 * 2**20, 90 * 2**20, "cpu"),
}


def write_study(folder: Path, *, claims: list[tuple[str, str]] = (), samples: int | str = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg").mkdir(exist_ok=True)
    (folder / "cfg" / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_attention_heads": 4,
                "num_key_value_heads": 4,
                "num_hidden_layers": 2,
                "max_position_embeddings": 512,
                "vocab_size": 1000,
                "torch_dtype": "float32",
                "hidden_act": "silu",
                "tie_word_embeddings": True,
            }
        )
    )
    (folder / "cfg" / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "r": 8,
                "lora_alpha": 16,
                "lora_dropout": 0.1,
                "target_modules": ["q_proj", "v_proj"],
                "task_type": "CAUSAL_LM",
                "base_model_name_or_path": "tiny",
            }
        )
    )
    prompts = {
        "name": "synthetic",
        "format": "chat",
        "prompts": [
            {"id": pid, "category": cat, "prompt": text, **({"reference": ref} if ref else {})}
            for pid, (cat, text, ref) in PROMPTS.items()
        ],
    }
    (folder / "prompts.json").write_text(json.dumps(prompts))  # JSON is YAML
    source = "{type: gguf, path: weights/tiny.gguf}"
    claim_lines = "".join(f"  - text: {json.dumps(text)}\n    check: {json.dumps(check)}\n" for text, check in claims)
    body = f"""
title: A synthetic study
prompts: prompts.json
generation: {{max_new_tokens: 16}}
models:
  - id: base
    name: {json.dumps(NAMES["base"])}
    source: {source}
    backend: transformers
    config: cfg/config.json
  - id: lora
    name: {json.dumps(NAMES["lora"])}
    source: {source}
    backend: transformers
    config: cfg/config.json
    adapter: {{config: cfg/adapter_config.json}}
  - id: q4
    name: {json.dumps(NAMES["q4"])}
    source: {source}
    backend: llamacpp
    config: cfg/config.json
{"claims:" + chr(10) + claim_lines if claims else ""}
output: {{samples: {json.dumps(samples)}}}
"""
    path = folder / "study.yaml"
    path.write_text(body, encoding="utf-8")
    return path


MANIFEST = RunManifest.from_json(
    {
        "config": "/home/someone/study.yaml",
        "config_hash": "c0ffee1234567890",
        "prompt_set": "synthetic",
        "prompt_set_hash": "abcdef0123456789",
        "prompts": len(PROMPTS),
        "generation": {"max_new_tokens": 16},
        "python": "3.11.9",
        "platform": "Linux-6.1-x86_64",
        "seed": 0,
        "packages": {"reportgen": "0.1.0", "torch": "2.5.1", "transformers": "4.57.0", "pandas": "3.1.1"},
        "hardware": {
            "cpu_model": "Synthetic CPU <b>9000</b>",
            "cpu_cores": 16,
            "cpu_physical_cores": 8,
            "cpu_cores_usable": 16,
            "memory_total_bytes": 64 * 2**30,
            "gpus": [],
            "gpu_name": None,
            "cuda_available": False,
            "memory_bandwidth_bytes_per_s": 2.0e10,
            "torch": "2.5.1",
        },
        "fingerprints": {"base": "fp-base", "lora": "fp-lora-2", "q4": "fp-q4"},
        "models": [
            {
                "model_id": "q4",
                "prompts_run": 20,
                "prompts_cached": 0,
                "reason": "first run",
                "notes": ["llama.cpp ran with 4 threads"],
                "error": None,
            }
        ],
    }
)


def fill_store(
    path: Path,
    outputs: dict[str, dict[str, str]],
    *,
    old_lora: dict[str, str] | None = None,
    failures: dict[str, dict[str, str]] | None = None,
) -> None:
    """A real results store: one run per model version, results, efficiency figures, LM scores."""
    failures = failures or {}
    with Store(path) as store:
        versions = []
        if old_lora is not None:
            versions.append(("r0", "lora", "fp-lora-1", old_lora))
        versions += [("r1", model, {"lora": "fp-lora-2"}.get(model, f"fp-{model}"), texts) for model, texts in outputs.items()]
        for run_id, model, fingerprint, texts in versions:
            if run_id not in set(store.runs_frame()["run_id"]):
                store.start_run(run_id, "c0ffee", {})
            store.start_model_run(run_id, model, fingerprint, "s1", {})
            tps, latency, peak, weights, device = EFFICIENCY[model]
            results = []
            for prompt_id, text in texts.items():
                if prompt_id in failures.get(model, {}):
                    results.append(GenerationResult(prompt_id, "", 9, 0, "error", latency, None, failures[model][prompt_id]))
                    continue
                cut = text == LOOP or text.endswith(" …")  # stopped at max_new_tokens
                tokens = 16 if cut else max(1, len(text.split()))
                finish = "length" if cut else "eos"
                results.append(GenerationResult(prompt_id, text, 9, tokens, finish, latency * (1 + len(results) % 3 / 10), None))
            store.save_results(
                fingerprint=fingerprint,
                model_id=model,
                run_id=run_id,
                settings_hash="s1",
                request_hashes={r.prompt_id: "h" for r in results},
                results=results,
                batch_size=1,
            )
            generated = sum(r.output_tokens or 0 for r in results)
            store.update_model_run(
                run_id,
                model,
                generated_tokens=generated,
                generate_time_s=generated / tps,
                device=device,
                weight_bytes=weights,
                peak_memory_bytes=peak,
                load_time_s=0.5,
            )
            store.save_loglik(
                fingerprint=fingerprint,
                model_id=model,
                run_id=run_id,
                text_hashes={f"t{i}": "h" for i in range(6)},
                results=[
                    LogLikelihoodResult(f"t{i}", 40.0 * (1.3 if model == "q4" else 1.0) + i, 20, 100 + 7 * i) for i in range(6)
                ],
            )
            time.sleep(0.01)  # versions are ordered by time


def make_study(folder: Path, outputs=None, *, old_lora=None, failures=None, claims=(), samples=6):
    """(study, tables, deltas) for a synthetic study in ``folder``."""
    from reportgen.stats.history import retraining_delta

    study = load_config(write_study(folder, claims=claims, samples=samples))
    fill_store(folder / "results.sqlite", outputs or default_outputs(), old_lora=old_lora, failures=failures)
    prompt_set = load_prompt_set(folder / "prompts.json")
    with Store(folder / "results.sqlite", create=False) as store:
        tables = compute_tables(store, study, prompt_set, n_boot=1000)
        results, model_runs = store.results_frame(), store.model_runs_frame()
        deltas = [d for d in (retraining_delta(results, model_runs, prompt_set, m.id) for m in study.models) if d is not None]
    return study, tables, deltas


def old_lora_outputs() -> dict[str, str]:
    """The adapter before its retraining: better on exact match than it is now (so it got WORSE)."""
    old = answers(set(REFERENCED), set())
    return old


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    study, tables, deltas = make_study(folder, old_lora=old_lora_outputs(), samples="all")
    return folder, study, tables, deltas


@pytest.fixture(scope="module")
def rendered(synthetic):
    folder, study, tables, deltas = synthetic
    out = folder / "report"
    report = render_in_memory(study, out_dir=out, tables=tables, deltas=deltas, manifest=MANIFEST)
    written = write_files(out, report.files)  # what render_report does after rendering in memory
    return out, report, written


def pdf_text(data: bytes, tmp: Path) -> str:
    from pypdf import PdfReader

    path = tmp / "x.pdf"
    path.write_bytes(data)
    return " ".join(" ".join(page.extract_text() or "" for page in PdfReader(str(path)).pages).split())


# ------------------------------------------------------------------------------------------------
# the data behind the tests is what we think it is


def test_the_synthetic_tables(synthetic):
    _, _, tables, deltas = synthetic
    assert tables.model_ids == ["base", "lora", "q4"]
    means = tables.summary.set_index(["model_id", "metric"])["mean"]
    assert means[("lora", "exact_match")] == pytest.approx(8 / 15)
    assert means[("base", "exact_match")] == pytest.approx(1 / 15)
    assert [d.model_id for d in deltas] == ["lora"] and deltas[0].worse[0] == "exact_match"
    assert analysis.headline_metric(tables) == "exact_match"


# ------------------------------------------------------------------------------------------------
# sections in every format

SECTIONS = [
    "Results at a glance",
    "Results",
    "Quality",
    "Quality by category",
    "Speed and memory",
    "Speed against quality",
    "Language modelling",
    "What retraining changed",
    "Comparative analysis",
    "Computed from the results",
    "Sample outputs",
    "Conclusion",
    "Appendix: run manifest",
    "Software",
    "Hardware",
    "Generation settings",
    "Models as reported",
]


def test_every_section_in_every_format(rendered, tmp_path):
    out, report, _ = rendered
    readme = report.files["README.md"].decode()
    found = headings(readme)  # as a Markdown parser sees them: a "# line" inside a code block is no heading
    for title in SECTIONS:
        assert title in [text for _, text, _ in found], title
    top = [text for level, text, _ in found if level == 2]
    assert top == [  # the answer first: the glance table right under the verdict, then the contents
        "Results at a glance",
        "Table of contents",
        "Introduction",
        "Specifications at a glance",
        "Models",
        "Results",
        "What retraining changed",
        "Comparative analysis",
        "Sample outputs",
        "Conclusion",
        "Deep details",
        "Appendix: run manifest",
    ]
    assert not any("heading" in text or "nor this" in text for _, text, _ in found)
    for anchor in ("#results-at-a-glance", "#what-retraining-changed", "#sample-outputs", "#appendix-run-manifest"):
        assert f"]({anchor})" in readme  # in the table of contents
    html = report.files["report.html"].decode()
    for title in SECTIONS:
        assert re.search(rf"<h[2-4] id=\"[^\"]+\">{re.escape(title)}</h", html), title
    text = pdf_text(report.files["report.pdf"], tmp_path)
    for title in SECTIONS + ["Prompt 1: capital-france (factual)", "Tiny base + LoRA got worse after retraining"]:
        assert title in text, title


def test_summary_table_numbers_come_from_the_frames(rendered, synthetic):
    _, report, _ = rendered
    _, _, tables, _ = synthetic
    readme = report.files["README.md"].decode()
    row = tables.summary.set_index(["model_id", "metric"]).loc[("lora", "exact_match")]
    cell = f"{metric_value('exact_match', row['mean'])}<br>[{metric_value('exact_match', row['ci_low'])}, {metric_value('exact_match', row['ci_high'])}]"
    line = next(line for line in readme.splitlines() if line.startswith("| 2. Tiny base + LoRA |"))
    assert f"**{cell}**" in line  # the best exact match, bold
    q4 = next(line for line in readme.splitlines() if line.startswith("| 3. Tiny Q4_1 &lt;i&gt;llama.cpp&lt;/i&gt; \\| fast |"))
    # throughput of the answer runs alone (no timed passes) depends on the answers: never bold; memory beyond the noise is
    assert "| 300 |" in q4 and "**300**" not in q4 and "**160.0 MiB**" in q4 and "0 of 20" in q4


@needs_chromium
def test_charts_as_svg_files_and_plotly_divs(rendered):
    out, report, written = rendered
    names = {p.relative_to(out).as_posix() for p in written}
    expected = [
        "quality-exact-match",
        "quality-contains-answer",
        "quality-rouge-l",
        "quality-chrf",
        "speed",
        "memory",
        "tradeoff",
        "category",
        "bits-per-byte",
        "retraining-lora",
    ]
    for name in expected:
        assert f"charts/{name}.svg" in names, name
        svg = (out / "charts" / f"{name}.svg").read_text()
        assert svg.startswith("<svg") and "file:" not in svg
        assert "![" in report.markdown and f"](charts/{name}.svg)" in report.markdown
    html = report.files["report.html"].decode()
    for name in expected:
        assert html.count(f'id="chart-{name}"') == 1, name
    assert 'src="plotly.min.js"' not in html and html.count("<script") >= len(expected) + 1  # plotly.js inline
    # a hostile model name is escaped in the chart labels
    assert "<i>llama.cpp</i>" not in html.split("<main", 1)[1].replace("\\u003ci\\u003e", "")


def test_rerender_with_tables_is_byte_identical(rendered, synthetic, tmp_path):
    out, report, _ = rendered
    _, study, tables, deltas = synthetic
    again = render_in_memory(study, out_dir=out, tables=tables, deltas=deltas, manifest=MANIFEST)
    assert set(again.files) == set(report.files)
    for name, data in report.files.items():
        assert again.files[name] == data, name


def test_without_tables_the_report_has_no_results_sections(synthetic):
    _, study, _, _ = synthetic
    markdown = render_in_memory(study, formats=["markdown"], out_dir=synthetic[0] / "plain").markdown
    for title in ("## Results", "## Sample outputs", "## Appendix: run manifest", "## What retraining changed"):
        assert title not in markdown


# ------------------------------------------------------------------------------------------------
# hostile model outputs


def _outside_code(markdown: str) -> str:
    """The Markdown with fenced code blocks removed (as GitHub would see the structure)."""
    kept = []
    for token in _parser().parse(markdown):
        if token.type in ("fence", "code_block"):
            continue
        if token.type == "inline":
            kept.append("".join(c.content for c in token.children or [] if c.type != "code_inline"))
        elif token.type == "html_block":
            kept.append(token.content)
    return "\n".join(kept)


def test_hostile_outputs_are_text_in_the_readme(rendered):
    _, report, _ = rendered
    readme = report.markdown
    structure = _parser().render(readme)  # the README as GitHub turns it into HTML
    assert "<script" not in structure.lower()
    images = re.findall(r"<img\b[^>]*>", structure, flags=re.I)
    assert images and all(re.match(r'<img src="charts/[a-z0-9-]+\.svg"', i) for i in images), images  # our charts only
    allowed_html = re.compile(
        r'^(<div class="(table-wrap[^"]*|legend|chart)"( data-chart="[a-z0-9-]+")?>(</div>)?|</div>|'
        r"<details>|</details>|<summary>[^<>]*</summary>|<!-- reportgen:\w+ -->|<br>)\s*$"
    )
    for token in _parser().parse(readme):
        if token.type == "html_block":
            for line in token.content.strip().splitlines():
                assert allowed_html.match(line), line
        for child in token.children or []:
            if child.type == "html_inline":
                assert child.content in ("<br>", "<sub>", "</sub>"), child.content  # <sub>: a table's legend
            if child.type == "image":
                assert child.attrGet("src").startswith("charts/"), child.attrGet("src")
            if child.type == "link_open":
                assert child.attrGet("href").startswith(("https://", "http://", "#")), child.attrGet("href")
    # the hostile texts are there, verbatim, as text (lines with hard breaks: the README's answers wrap)
    shown = _outside_code(readme)
    for text in (HOSTILE["recipe"], HOSTILE["letter"], HOSTILE["story"]):
        assert "".join(text.splitlines()) in shown, text
    assert "<summary>Prompt 16: poem (open &lt;i&gt;ended&lt;/i&gt; | x)</summary>" in readme  # a hostile category
    assert "<summary>Prompt 1: capital-france (factual)</summary>" in readme


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts: list[tuple[dict, str]] = []
        self.tags: list[tuple[str, dict]] = []
        self._in_script: dict | None = None
        self._data = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "script":
            self._in_script, self._data = attrs, ""

    def handle_data(self, data):
        if self._in_script is not None:
            self._data += data

    def handle_endtag(self, tag):
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, self._data))
            self._in_script = None


def test_hostile_outputs_are_text_in_the_html(rendered):
    _, report, _ = rendered
    html = report.files["report.html"].decode()
    parser = _Tags()
    parser.feed(html)
    chart_ids = set(re.findall(r'<div id="(chart-[a-z0-9-]+)"', html))
    bundle = max((body for _, body in parser.scripts), key=len)
    explorer_js = (ROOT / "templates" / "explorer.js").read_text(encoding="utf-8")
    for attrs, body in parser.scripts:
        if attrs.get("src"):
            assert attrs["src"] == "plotly.min.js"
        elif attrs.get("type") == "application/json":  # the prompt explorer's data: text for JSON.parse, never run
            assert attrs.get("id") == "xp-data" and "<" not in body
            assert json.loads(body)["answers"][1]["t"][PROMPT_IDS.index("recipe")] == HOSTILE["recipe"]
        elif body.strip() == explorer_js.strip():  # the prompt explorer's script, as templates/explorer.js has it
            continue
        elif body is bundle or body.strip().startswith("window.PLOTLYENV"):
            continue  # plotly.js itself, inlined (and its settings object)
        elif 'getElementById("contents")' in body:
            assert "alert(" not in body  # ours: opens the contents on a wide screen
        else:  # plotly's own: draws one chart of ours
            drawn = re.findall(r'document.getElementById\("(chart-[a-z0-9-]+)"\)', body)
            assert drawn and set(drawn) <= chart_ids, body[:200]
            assert "alert(" not in body
    for tag, attrs in parser.tags:
        if tag == "img":
            assert not str(attrs.get("src", "")).startswith("file:"), attrs
        assert not any(str(v).startswith(("javascript:", "file:")) for v in attrs.values() if v), (tag, attrs)
        assert "onerror" not in attrs
    assert html.count('data-chart="speed"') == 0  # the injected placeholder stayed text, and ours were replaced
    assert "\\u003c/details\\u003e\\u003cscript\\u003ealert(2)\\u003c/script\\u003e" in html  # in the explorer's JSON
    assert html.count("<details>\n<summary>Prompt ") == 0  # the explorer shows the prompts
    # the raw config.json of each model; the injected one is text; the contents (<details id="contents">) close too
    assert html.count("<details>") == html.count("</details>") - 1 == 3
    assert "white-space: pre-wrap" in html  # long lines wrap


def test_hostile_outputs_in_the_pdf(rendered, tmp_path):
    out, report, _ = rendered
    assert report.refused == []
    base = out.resolve().as_uri() + "/"
    assert report.fetched and all(u.startswith((base + "charts/", "data:")) for u in report.fetched), report.fetched
    text = pdf_text(report.files["report.pdf"], tmp_path)
    assert "</details><script>alert(2)</script>" in text.replace(" ", "") or "<script>alert(2)</script>" in text
    assert "![x](file:///etc/passwd)" in text
    # the line without spaces wraps inside its box (a clipped line would come out whole, 2,500 characters long)
    from pypdf import PdfReader

    (tmp_path / "r.pdf").write_bytes(report.files["report.pdf"])
    lines = "\n".join(page.extract_text() or "" for page in PdfReader(str(tmp_path / "r.pdf")).pages)
    runs = [len(run) for run in re.findall(r"x{20,}", lines)]
    assert runs and max(runs) < 200 and len(LONG_LINE) - 20 < sum(runs) <= len(LONG_LINE)


def test_samples_follow_output_samples(tmp_path, synthetic):
    folder, _, tables, _ = synthetic
    study = load_config(write_study(tmp_path / "all", samples="all"))
    markdown = render_in_memory(study, formats=["markdown"], out_dir=tmp_path / "o", tables=tables).markdown
    assert markdown.count("<summary>Prompt ") == len(PROMPTS) and "All 20 prompts" in markdown
    # the long line is kept whole in the README (GitHub scrolls code), but cut at 4,000 characters
    assert LONG_LINE in markdown
    study = load_config(write_study(tmp_path / "two", samples=2))
    markdown = render_in_memory(study, formats=["markdown"], out_dir=tmp_path / "o", tables=tables).markdown
    assert markdown.count("<summary>Prompt ") == 2 and "The first 2 of the 20 prompts" in markdown


# ------------------------------------------------------------------------------------------------
# the analysis follows the data


def _statement(statements, start: str):
    found = [s for s in statements if s.text.startswith(start)]
    assert found, [s.text for s in statements]
    return found[0]


def test_best_model_is_computed_and_significant(synthetic):
    _, study, tables, _ = synthetic
    statements = analysis.result_statements(study, tables, style=MD)
    exact = _statement(statements, "**Exact match:**")
    test = analysis.paired_difference(tables, "exact_match", "lora", "base")
    assert exact.numbers["best"] == "lora" and exact.numbers["runner_up"] == "base" and test["significant"]
    assert (
        f"Tiny base + LoRA is best, {metric_value('exact_match', 8 / 15)}" in exact.text
        and "significantly better than the runner-up Tiny base (transformers)" in exact.text
    )
    assert (
        f"diff {metric_value('exact_match', test['diff'])}, unadjusted 95% CI [{metric_value('exact_match', test['ci_low'])}, "
        f"{metric_value('exact_match', test['ci_high'])}], Holm-adjusted p = {test['p_holm']:.3f} over 3 comparisons"
        in exact.text
    ) and test["p_holm"] < 0.05


def test_swapping_the_data_swaps_the_best(tmp_path):
    outputs = default_outputs()
    outputs["base"], outputs["lora"] = answers(set(REFERENCED[:13]), set()), answers(set(REFERENCED[:4]), set())
    study, tables, _ = make_study(tmp_path, outputs)
    exact = _statement(analysis.result_statements(study, tables, style=MD), "**Exact match:**")
    assert exact.numbers["best"] == "base" and "Tiny base (transformers) is best" in exact.text
    conclusion = analysis.result_conclusion(study, tables, style=MD)
    assert any("**Best exact match:** Tiny base (transformers)" in s.text for s in conclusion)
    adapter = _statement(analysis.result_statements(study, tables, study_specs(study), style=MD), "**The LoRA adapter:**")
    assert "**significantly worse**" in adapter.text


def test_a_small_difference_is_called_not_significant(tmp_path):
    outputs = default_outputs()
    outputs["lora"] = answers(set(REFERENCED[:2]), set(REFERENCED[2:8]))  # one more exact match than the base
    study, tables, _ = make_study(tmp_path, outputs)
    statements = analysis.result_statements(study, tables, style=MD)
    exact = _statement(statements, "**Exact match:**")
    test = analysis.paired_difference(tables, "exact_match", "lora", "base")
    assert not test["significant"]
    assert (
        f"Tiny base + LoRA and Tiny base (transformers) are not significantly different on exact match "
        f"(diff {metric_value('exact_match', test['diff'])}, unadjusted 95% CI [{metric_value('exact_match', test['ci_low'])}, "
        f"{metric_value('exact_match', test['ci_high'])}], Holm-adjusted p = {test['p_holm']:.3f} over 3 comparisons)"
    ) in exact.text
    conclusion = analysis.result_conclusion(study, tables, style=MD)
    assert any(s.text.startswith("**Best exact match: no clear winner.**") for s in conclusion)
    markdown = render_in_memory(study, formats=["markdown"], out_dir=tmp_path / "out", tables=tables).markdown
    assert "are not significantly different on exact match" in markdown and "no clear winner" in markdown


def test_an_interval_that_excludes_0_is_labelled_unadjusted_beside_the_adjusted_p_value(tmp_path):
    """Four more exact matches and none fewer: the paired-bootstrap interval excludes 0, but McNemar's p (2/2^4),
    Holm-adjusted over the three pairs, is not below 0.05. No sentence may show that interval as if it decided."""
    outputs = default_outputs()
    outputs["lora"] = answers(set(REFERENCED[:5]), set(REFERENCED[5:8]))
    study, tables, _ = make_study(tmp_path, outputs)
    test = analysis.paired_difference(tables, "exact_match", "lora", "base")
    assert test["ci_low"] > 0 and not test["significant"] and test["p_holm"] >= 0.05  # the case of the demo's BLEU line
    assert test["comparisons"] == 3
    evidence = (
        f"unadjusted 95% CI [{metric_value('exact_match', test['ci_low'])}, {metric_value('exact_match', test['ci_high'])}], "
        f"Holm-adjusted p = {test['p_holm']:.3f} over 3 comparisons"
    )
    statements = analysis.result_statements(study, tables, study_specs(study), style=MD)
    exact = _statement(statements, "**Exact match:**")
    assert "are not significantly different on exact match" in exact.text and evidence in exact.text, exact.text
    adapter = _statement(statements, "**The LoRA adapter:**")
    assert f"{evidence}: not significant" in adapter.text, adapter.text
    best = _statement(analysis.result_conclusion(study, tables, style=MD), "**Best exact match: no clear winner.**")
    assert evidence in best.text, best.text
    plain = f"95% CI [{metric_value('exact_match', test['ci_low'])}"  # never without the label
    for text in (exact.text, adapter.text, best.text):
        assert text.count(plain) == text.count(f"unadjusted {plain}"), text


def test_bold_marks_a_unique_best_value_as_printed_and_never_a_failure_count(synthetic):
    import dataclasses

    from reportgen.report.sections import efficiency_table, lm_table, summary_table

    _, study, tables, _ = synthetic

    def with_bpb(values: dict[str, float]):
        lm = tables.lm.copy()
        lm["bits_per_byte"] = lm["model_id"].map(values)
        efficiency = tables.efficiency.copy()
        efficiency.loc[efficiency["model_id"] == "q4", "n_failed"] = 20  # every prompt failed
        return dataclasses.replace(tables, lm=lm, efficiency=efficiency)

    def bold_bpb(t) -> list[bool]:
        return [row[1].startswith("**") for row in lm_table(study, t).rows]

    # 1.0631 and 1.0634 both print as 1.063: a tie as the reader sees it, so neither is bold
    tied = with_bpb({"base": 1.0631, "lora": 1.0634, "q4": 1.2})
    assert [metric_value("bits_per_byte", v) for v in (1.0631, 1.0634)] == ["1.063", "1.063"]
    assert bold_bpb(tied) == [False, False, False]
    summary = summary_table(study, tied, "exact_match")
    bpb_column = summary.header.index("Bits per byte ↓<br>[95% CI]")
    assert not any(row[bpb_column].startswith("**") for row in summary.rows)
    # exactly equal values: none bold either (all-or-none, and a tie is none)
    assert bold_bpb(with_bpb({"base": 1.063, "lora": 1.3, "q4": 1.063})) == [False, False, False]
    # one best value as printed: bold
    assert bold_bpb(with_bpb({"base": 1.0631, "lora": 1.0644, "q4": 1.2})) == [True, False, False]
    # failures are a count: never bold, in the summary or in the efficiency table
    failed = summary.header.index("Failed")
    assert [row[failed] for row in summary.rows] == ["0 of 20", "0 of 20", "20 of 20"]
    (failures,) = [row for row in efficiency_table(study, tied).rows if row[0].startswith("Failed prompts")]
    assert failures[1:] == ["0 of 20", "0 of 20", "20 of 20"]
    assert "when only one model has it as printed (on a tie, none is bold)" in summary.legend


def test_variants_speed_memory_and_agreement(synthetic):
    _, study, tables, _ = synthetic
    pairs = analysis.model_pairs(study)
    assert [(p.kind, p.base, p.variant) for p in pairs] == [("adapter", "base", "lora"), ("runtime", "base", "q4")]
    runtime = _statement(analysis.result_statements(study, tables, style=MD), "**Backend and precision:**")
    n = runtime.numbers
    eff = tables.efficiency.set_index("model_id")
    assert n["speed_ratio"] == pytest.approx(eff.at["q4", "tokens_per_s"] / eff.at["base", "tokens_per_s"])
    assert n["memory_ratio"] == pytest.approx(160 / 900)
    assert (n["identical_outputs"], n["shared_prompts"]) == (15, 20)
    assert "(llama.cpp)" in runtime.text and "(transformers)" in runtime.text
    assert "identical greedy output on 15 of 20 prompts (75.0%)" in runtime.text
    # one answer run each, no timed passes: the factor is shown, but no speed difference is claimed
    assert "no clear difference in batched throughput (300 vs 100 tokens/s)" in runtime.text
    assert "peak memory 0.18×" in runtime.text  # far beyond the memory noise threshold


def test_a_variant_identical_on_every_prompt_is_called_the_same_not_an_empty_interval(tmp_path):
    outputs = default_outputs()
    outputs["q4"] = dict(outputs["base"])  # the same answer to every prompt: every paired difference is 0
    study, tables, _ = make_study(tmp_path, outputs)
    runtime = _statement(analysis.result_statements(study, tables, style=MD), "**Backend and precision:**")
    assert "(the same on every prompt both answered)" in runtime.text, runtime.text
    assert "[—, —]" not in runtime.text and "—]" not in runtime.text
    assert f"identical greedy output on {len(PROMPTS)} of {len(PROMPTS)} prompts" in runtime.text


def test_rambling_looping_and_failures_are_shown(tmp_path):
    outputs = default_outputs()
    outputs["q4"] = {p: LOOP for p in PROMPTS}  # every answer loops until the limit
    study, tables, _ = make_study(tmp_path, outputs, failures={"base": {"add": "<script>boom</script>", "mul": "timeout"}})
    statements = analysis.result_statements(study, tables, style=MD)
    texts = " ".join(s.text for s in statements)
    assert (
        "**Tiny Q4_1 &lt;i&gt;llama.cpp&lt;/i&gt; \\| fast hit the 16-token limit on 20 of 20 prompts (100.0%): it rambles"
        in texts
    )
    assert "**Tiny Q4_1 &lt;i&gt;llama.cpp&lt;/i&gt; \\| fast loops:**" in texts
    assert "**Tiny base (transformers) failed on 2 of 20 prompts**; first error: `<script>boom</script>`" in texts
    watch = _statement(analysis.result_conclusion(study, tables, style=MD), "**Watch out:**")
    assert "rambles" in watch.text and "loops" in watch.text and "failed on 2 prompts" in watch.text


def test_no_rambling_when_nobody_hits_the_limit(tmp_path):
    outputs = default_outputs()
    outputs["base"]["sub"] = "7"
    outputs["q4"] = dict(outputs["base"])
    study, tables, _ = make_study(tmp_path, outputs)
    texts = [s.text for s in analysis.result_statements(study, tables, style=MD)]
    assert "No model hit the token limit: every answer ended on its own." in texts
    assert any(t.startswith("No generation failed (60 generations over 3 models)") for t in texts)


def test_pareto_front():
    assert analysis.pareto_front({"a": (1, 1), "b": (2, 0.5), "c": (0.5, 0.5), "d": (2, 0.5)}) == ["a", "b", "d"]
    assert analysis.pareto_front({"a": (3, 0.9), "b": (1, 0.5)}) == ["a"]


def test_retraining_worse_is_bold_everywhere(rendered, synthetic):
    _, report, _ = rendered
    _, _, _, deltas = synthetic
    readme = report.markdown
    row = deltas[0].deltas.set_index("metric").loc["exact_match"]
    sentence = (
        f"**Tiny base + LoRA got worse after retraining: exact match {metric_value('exact_match', row.mean_old)} → "
        f"{metric_value('exact_match', row.mean_new)} (change {metric_value('exact_match', row['diff'], signed=True)}"
    )
    assert sentence in readme
    assert re.search(r"\| Exact match ↑ \| 1\.00 \| 0\.53 \| -0\.47 \| \[[^]]+\] \| 15 \| 0\.016 \| \*\*worse\*\* \|", readme)
    assert "**Tiny base + LoRA got worse after retraining** on exact match, ROUGE-L, BLEU and chrF." in readme  # the conclusion
    assert "<strong>Tiny base + LoRA got worse after retraining" in report.files["report.html"].decode()


# ------------------------------------------------------------------------------------------------
# claims over measured values


def test_metric_claims_true_pass_and_are_listed(tmp_path):
    claims = [
        ("The adapter beats its base on exact match.", "lora.exact_match > base.exact_match"),
        ("llama.cpp is at least twice as fast.", "q4.tokens_per_s >= 2 * base.tokens_per_s"),
        ("The base predicts text better than Q4.", "base.bits_per_byte < q4.bits_per_byte and q4.n_failed == 0"),
    ]
    study, tables, _ = make_study(tmp_path, claims=claims)
    markdown = render_in_memory(study, formats=["markdown"], out_dir=tmp_path / "out", tables=tables).markdown
    # a sentence with its numbers; the check expressions in a details block below
    assert (
        "- ✓ The adapter beats its base on exact match. (exact match: Tiny base + LoRA 0.5333, Tiny base (transformers) 0.06667)"
        in markdown
    )
    assert (
        "- ✓ llama.cpp is at least twice as fast. (throughput: Tiny Q4_1 &lt;i&gt;llama.cpp&lt;/i&gt; \\| fast 300, Tiny base (transformers) 100)"
        in markdown
    )
    assert "<summary>The checks as written in the study config</summary>\n\n1. `lora.exact_match > base.exact_match`" in markdown
    # without results the metric claims are shown as not checked, and the render does not fail
    plain = render_in_memory(study, formats=["markdown"], out_dir=tmp_path / "out2").markdown
    assert plain.count("not checked yet") == 3


def test_a_false_metric_claim_stops_the_render_with_the_numbers(tmp_path):
    claims = [("The base beats the adapter.", "base.exact_match > lora.exact_match")]
    study, tables, _ = make_study(tmp_path, claims=claims)
    with pytest.raises(ClaimError) as err:
        render_report(study, out_dir=tmp_path / "out", formats=["markdown"], tables=tables)
    message = err.value.format_message()
    assert "claim 'The base beats the adapter.' is false" in message
    assert "base.exact_match = 0.06666" in message and "lora.exact_match = 0.53333" in message
    assert not (tmp_path / "out").exists()


def test_metrics_claim_table(synthetic):
    _, _, tables, _ = synthetic
    table = analysis.metrics_claim_table(tables)
    assert list(table.index) == ["base", "lora", "q4"]
    assert table.at["q4", "tokens_per_s"] == pytest.approx(300.0)
    assert table.at["lora", "exact_match"] == pytest.approx(8 / 15)
    assert table.at["base", "bits_per_byte"] < table.at["q4", "bits_per_byte"]


# ------------------------------------------------------------------------------------------------
# layout: nothing runs off the A4 page


@pytest.mark.skipif(not __import__("shutil").which("pdftoppm"), reason="needs pdftoppm (poppler-utils) to rasterise the PDF")
def test_nothing_crosses_the_right_margin_of_the_pdf(rendered, tmp_path):
    """Wide tables, long lines without spaces and charts stay inside the page: the right margin stays blank."""
    import subprocess

    from PIL import Image

    _, report, _ = rendered
    (tmp_path / "r.pdf").write_bytes(report.files["report.pdf"])
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(tmp_path / "r.pdf"), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages
    for page in pages:
        image = Image.open(page).convert("L")
        width, height = image.size
        margin = int(12 / 25.4 * 40)  # the outer 12 of the 16 mm right margin
        strip = image.crop((width - margin, 0, width, height))
        assert strip.getextrema()[0] > 240, f"{page.name}: something is drawn in the right margin"


def test_without_chromium_the_charts_are_named_not_drawn(synthetic, tmp_path, monkeypatch):
    from reportgen.report import charts

    _, study, tables, deltas = synthetic
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "empty-cache"))  # no SVG drawn by an earlier render
    monkeypatch.setattr(charts, "_SVG_CACHE", {})  # ... in this process either
    monkeypatch.setattr(charts, "static_charts_available", lambda: False)
    report = render_in_memory(study, out_dir=tmp_path, tables=tables, deltas=deltas, formats=["markdown", "html"])
    assert not [name for name in report.files if name.startswith("charts/")]
    # 10 results charts; no spec-size chart, since all three models share one config (identical sizes)
    assert report.markdown.count("*(chart not drawn: no Chromium for the static export; see report.html)*") == 10
    assert report.files["report.html"].decode().count('<div id="chart-') == 10  # interactive charts need no Chromium


@needs_chromium
def test_a_chart_that_went_away_is_removed(synthetic, tmp_path):
    _, study, tables, deltas = synthetic
    render_report(study, out_dir=tmp_path, formats=["markdown"], tables=tables, deltas=deltas)
    assert (tmp_path / "charts" / "retraining-lora.svg").exists()
    (tmp_path / "charts" / "notes.txt").write_text("mine")  # not a chart of ours: kept
    render_report(study, out_dir=tmp_path, formats=["markdown"], tables=tables)  # no retraining this time
    assert not (tmp_path / "charts" / "retraining-lora.svg").exists()
    assert (tmp_path / "charts" / "speed.svg").exists() and (tmp_path / "charts" / "notes.txt").exists()
    render_report(study, out_dir=tmp_path, formats=["html"])  # draws no SVG: leaves the README's charts alone
    assert (tmp_path / "charts" / "speed.svg").exists()


# ------------------------------------------------------------------------------------------------
# small pieces


@pytest.mark.parametrize(
    "metric, value, kwargs, shown",
    [
        ("exact_match", 0.625, {}, "0.62"),
        ("exact_match", -0.06, {}, "-0.06"),
        ("exact_match", 0.03, {"signed": True}, "+0.03"),
        ("exact_match", 0.004, {}, "0.004"),
        ("exact_match", -0.0, {}, "0.00"),
        ("chrf", 45.33, {}, "45.3"),
        ("bits_per_byte", 1.23456, {}, "1.235"),
        ("tokens_per_s", 123.4, {"unit": True}, "123 tokens/s"),
        ("tokens_per_s", 12.34, {}, "12.3"),
        ("latency_p50_s", 0.55, {"unit": True}, "0.550 s"),
        ("peak_memory_bytes", 900 * 2**20, {}, "900.0 MiB"),
        ("bandwidth_share", 0.0805, {}, "8.05%"),
        ("exact_match", float("nan"), {}, "—"),
    ],
)
def test_metric_value(metric, value, kwargs, shown):
    assert metric_value(metric, value, **kwargs) == shown


def test_chart_builders_draw_nothing_from_empty_frames():
    import pandas as pd

    from reportgen.stats.frames import CATEGORY_COLUMNS, SUMMARY_COLUMNS
    from reportgen.stats.efficiency import EFFICIENCY_COLUMNS
    from reportgen.stats.lm import LM_COLUMNS

    names, colours = {"a": "A"}, {"a": ch.PALETTE[0]}
    summary, efficiency = pd.DataFrame(columns=SUMMARY_COLUMNS), pd.DataFrame(columns=EFFICIENCY_COLUMNS)
    assert ch.quality_figure(summary, "exact_match", names, colours) is None
    assert ch.speed_figure(efficiency, names, colours) is None
    assert ch.memory_figure(efficiency, names, colours) is None
    assert ch.tradeoff_figure(summary, efficiency, "exact_match", names, colours, []) is None
    assert ch.category_figure(pd.DataFrame(columns=CATEGORY_COLUMNS), "exact_match", names, colours) is None
    assert ch.bits_per_byte_figure(pd.DataFrame(columns=LM_COLUMNS), names, colours) is None
    assert ch.retraining_figure(pd.DataFrame(), ch.PALETTE[0]) is None


def test_model_colours_follow_the_study_order():
    assert ch.model_colours(["x", "y", "x", "z"]) == {"x": ch.PALETTE[0], "y": ch.PALETTE[1], "z": ch.PALETTE[2]}


def test_each_model_has_one_colour_in_every_chart(synthetic):
    from reportgen.report.charts import ChartSet
    from reportgen.report.sections import result_charts

    _, study, tables, deltas = synthetic
    charts = ChartSet()
    result_charts(charts, study, tables, deltas, analysis.headline_metric(tables))
    expected = {"base": ch.PALETTE[0], "lora": ch.PALETTE[1], "q4": ch.PALETTE[2]}
    for name in ("quality-exact-match", "speed", "memory", "bits-per-byte"):
        bars = [t for t in charts[name].figure.data if t.type == "bar"]
        assert list(bars[0].marker.color) == list(expected.values()), name
    for trace in charts["category"].figure.data:
        model = {"Tiny base (transformers)": "base", "Tiny base + LoRA": "lora"}.get(trace.name, "q4")
        assert trace.marker.color == expected[model]
    points = [t for t in charts["tradeoff"].figure.data if t.mode == "markers+text"]
    assert [t.marker.color for t in points] == list(expected.values())
    after = [t for t in charts["retraining-lora"].figure.data if t.name == "after retraining"]
    assert after and all(t.marker.color == expected["lora"] for t in after)


def test_single_file_html_with_results(synthetic, tmp_path):
    _, study, tables, deltas = synthetic
    written = render_report(study, out_dir=tmp_path, formats=["html"], single_file=True, tables=tables, deltas=deltas)
    assert [p.name for p in written] == ["report.html"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'src="plotly.min.js"' not in html and not re.search(r"<(script|link|img)[^>]+(src|href)=\"?https?:", html)
    assert html.count('<div id="chart-') == 10 and len(html) > 3_000_000  # plotly.js once, inline
    bundle = max(re.findall(r"<script[^>]*>(.*?)</script>", html, re.S), key=len)
    assert "cdn.plot.ly" not in html.replace(bundle, "")  # only plotly.js itself names its CDN (for geo maps we never draw)


def test_the_hand_written_introduction_is_kept_with_results(synthetic, tmp_path):
    _, study, tables, deltas = synthetic
    mine = study.model_copy(update={"introduction": "Our own opening words.\n\nA second paragraph."})
    report = render_in_memory(mine, out_dir=tmp_path, tables=tables, deltas=deltas, formats=["markdown"])
    intro = report.markdown.split("## Introduction", 1)[1].split("\n## ", 1)[0]
    assert "Our own opening words." in intro and "A second paragraph." in intro
    assert "This report compares" not in intro


def test_intervals_name_their_method_and_say_when_they_cannot_be_estimated(rendered):
    _, report, _ = rendered
    readme = report.markdown
    # the base never repeats a 4-gram: constant data, so no interval (not "0.00 [0.00, 0.00]")
    assert "| Repeated 4-grams ↓ | **0.00 [*all values equal*]** |" in readme
    assert "[0.00, 0.00]" not in readme and "[1.00, 1.00]" not in readme
    assert "Wilson score interval for 0/1 metrics" in readme and "BCa bootstrap for the others" in readme
    assert "McNemar's exact test for 0/1 metrics, the paired sign-flip permutation test" in readme
    assert "Holm-adjusted" in readme and "paired bootstrap, 95%" not in readme
    # one value: the cell says so
    from reportgen.report.sections import _bpb_cell, _ci_cell
    import pandas as pd

    from reportgen.stats.frames import model_summary

    one = pd.DataFrame({"model_id": ["m"], "prompt_id": ["p"], "bleu": [12.0]})
    row = model_summary(one, ["bleu"]).iloc[0].to_dict()
    assert row["ci_method"] == "n < 2" and _ci_cell("bleu", row) == f"{metric_value('bleu', 12.0)} [*n too small*]"
    lm_row = {"bits_per_byte": 1.25, "bpb_ci_low": float("nan"), "bpb_ci_high": float("nan"), "n_texts": 1}
    assert _bpb_cell(lm_row) == f"{metric_value('bits_per_byte', 1.25)} [*n too small*]"


def test_models_as_reported_show_fingerprint_and_generation_side_by_side(rendered):
    _, report, _ = rendered
    lines = report.markdown.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Model | Fingerprint (first 16 hex digits) |"))
    assert lines[header].split(" | ")[:3] == ["| Model", "Fingerprint (first 16 hex digits)", "Generation"]
    lora = next(line for line in lines[header:] if line.startswith("| ") and "`fp-lora-2`" in line)
    assert "| `fp-lora-2` | greedy, ≤ 16 new tokens" in lora


# ------------------------------------------------------------------------------------------------
# the verdict


def test_the_verdict_leads_the_report_and_agrees_with_the_analysis(synthetic, rendered):
    from reportgen.analysis.measured import efficiency_rows
    from reportgen.analysis.results import best_finding, memory_finding, throughput_finding
    from reportgen.analysis.verdict import verdict_findings

    _, study, tables, deltas = synthetic
    _, report, _ = rendered
    found = {f.kind: f for f in verdict_findings(study, tables, None, deltas)}
    best = best_finding(tables, "exact_match")
    assert found["verdict.quality"].subjects[0] == best.numbers["best"] == "lora"
    rows = efficiency_rows(tables)
    assert found["verdict.batched"].numbers["winner"] == throughput_finding(rows).numbers["winner"]
    assert found["verdict.memory"].numbers["clear"] == memory_finding(rows).numbers["clear"]
    readme = report.files["README.md"].decode()
    assert readme.index("**Verdict**") < readme.index("## Table of contents") < readme.index("## Introduction")
    for line in analysis.verdict_lines(study, tables, None, deltas, MD):
        assert f"- {line.text} ([{line.numbers['section']}](#{line.numbers['anchor']}))" in readme
        assert f"]({'#' + line.numbers['anchor']})" in readme  # the section it points to is in the contents


def test_each_verdict_line_starts_with_its_answer(synthetic):
    """A verdict line's ``lead`` (what a phone shows, a link to the proof) is the start of its sentence and ends
    where the answer does; the marker between them is in no text of the analysis."""
    from reportgen.analysis.phrasing import LEAD_END

    _, study, tables, deltas = synthetic
    lines = {s.numbers["source"]: s for s in analysis.verdict_lines(study, tables, None, deltas, MD)}
    for line in lines.values():
        assert LEAD_END not in line.text and (line.lead == "" or line.text.startswith(line.lead)), line
    best = lines["conclusion.best"]
    assert best.lead == "**Best exact match:** Tiny base + LoRA, 0.53", best  # significant: the model and its mean
    assert best.text[len(best.lead) :].startswith(" (95% CI [0.30, 0.75]), significantly ahead of Tiny base"), best.text
    for group in analysis.analysis_sections(study, {}, tables, deltas, MD):
        assert not any(LEAD_END in text for text in group[1]), group


def _with_passes(tables, passes: dict[str, dict[str, tuple[float, float, float]]], memory: dict[str, float]):
    """``tables`` with timed-pass figures: model → column → (median, low, high), and peak memory."""
    import dataclasses

    frame = tables.efficiency.copy()
    for model_id, columns in passes.items():
        i = frame.index[frame["model_id"] == model_id][0]
        for column, (median, low, high) in columns.items():
            frame.loc[i, [column, f"{column}_low", f"{column}_high"]] = [median, low, high]
        frame.loc[i, ["speed_passes", "throughput_source", "peak_memory_bytes"]] = [3, "passes", memory[model_id]]
    return dataclasses.replace(tables, efficiency=frame)


def test_the_verdict_names_a_winner_per_regime_only_where_the_passes_are_apart(synthetic):
    from reportgen.analysis.measured import efficiency_rows
    from reportgen.analysis.results import single_stream_finding, throughput_finding

    _, study, tables, _ = synthetic
    speeds = {  # q4 is clearly quickest one prompt at a time, lora clearly has the highest batched throughput
        "base": {"tokens_per_s": (100, 95, 110), "single_tokens_per_s": (20, 19, 21), "latency_p50_s": (0.5, 0.48, 0.52)},
        "lora": {"tokens_per_s": (200, 190, 210), "single_tokens_per_s": (20, 19, 22), "latency_p50_s": (0.5, 0.47, 0.53)},
        "q4": {"tokens_per_s": (105, 90, 120), "single_tokens_per_s": (60, 58, 61), "latency_p50_s": (0.2, 0.19, 0.21)},
    }
    timed = _with_passes(tables, speeds, {"base": 1.00e9, "lora": 1.04e9, "q4": 1.02e9})
    rows = efficiency_rows(timed)
    assert throughput_finding(rows).numbers["winner"] == "lora"
    assert single_stream_finding(rows).numbers["winner"] == "q4"
    lines = {s.numbers["source"]: s.text for s in analysis.verdict_lines(study, timed)}
    names = {m.id: m.name for m in study.models}
    assert lines["conclusion.fastest"].startswith(f"Highest batched throughput: {names['lora']}, 200 tokens/s")
    assert lines["conclusion.fastest_single"].startswith(f"Fastest single stream: {names['q4']}, 0.200 s per prompt")
    assert lines["conclusion.least_memory"].startswith("Least memory: no clear difference")  # within 10%
    # overlapping ranges: no winner, in the verdict and in the analysis alike
    speeds["q4"]["latency_p50_s"] = (0.45, 0.40, 0.49)
    speeds["lora"]["tokens_per_s"] = (115, 108, 130)
    overlapping = _with_passes(tables, speeds, {"base": 1.00e9, "lora": 2.0e9, "q4": 1.02e9})
    rows = efficiency_rows(overlapping)
    assert throughput_finding(rows).numbers["winner"] is None and single_stream_finding(rows).numbers["winner"] is None
    lines = {s.numbers["source"]: s.text for s in analysis.verdict_lines(study, overlapping)}
    assert lines["conclusion.fastest"] == "Highest batched throughput: no clear difference (the timed passes' ranges overlap)."
    assert lines["conclusion.fastest_single"] == "Fastest single stream: no clear difference (the timed passes' ranges overlap)."
    assert lines["conclusion.least_memory"].startswith(f"Least memory: {names['base']} and {names['q4']}, 953.7 MiB at peak")
    assert lines["conclusion.least_memory"].endswith("no clear difference between them.")
    analysis_text = " ".join(s.text for s in analysis.result_statements(study, overlapping))
    assert "is the fastest" not in analysis_text and "answers fastest" not in analysis_text


def test_the_tradeoff_front_reads_every_measured_axis(synthetic):
    """A model slower in batches but clearly quickest per prompt and lightest is on the front (the issue's
    llama.cpp case); on batched throughput alone (the chart's two axes) it is dominated."""
    from reportgen.analysis.measured import tradeoff_front

    _, study, tables, _ = synthetic
    speeds = {
        "base": {"tokens_per_s": (100, 95, 110), "latency_p50_s": (0.5, 0.48, 0.52)},
        "lora": {"tokens_per_s": (200, 190, 210), "latency_p50_s": (0.5, 0.47, 0.53)},
        "q4": {"tokens_per_s": (60, 55, 65), "latency_p50_s": (0.2, 0.19, 0.21)},
    }
    timed = _with_passes(tables, speeds, {"base": 1.00e9, "lora": 1.04e9, "q4": 0.3e9})
    assert tradeoff_front(timed, "exact_match", axes=("tokens_per_s",)) == ["lora"]
    assert tradeoff_front(timed, "exact_match") == ["lora", "q4"]
    names = {m.id: m.name for m in study.models}
    lines = {s.numbers["source"]: s.text for s in analysis.verdict_lines(study, timed)}
    conclusion = " ".join(s.text for s in analysis.result_conclusion(study, timed))
    assert (
        "Best trade-offs (Pareto-optimal on exact match, batched throughput, single-stream latency and peak memory, "
        f"each beyond its noise): {names['lora']} and {names['q4']}."
    ) in conclusion, conclusion
    assert lines["conclusion.least_memory"].startswith(f"Least memory: {names['q4']}, 286.1 MiB at peak")
    text = " ".join(s.text for s in analysis.result_statements(study, timed))
    assert f"{names['base']} is dominated by {names['lora']} (clearly ahead on at least one, clearly behind on none)" in text
    # equal speed and memory (copies of one engine): the measured axes decide nothing, quality alone does
    same = {m: {"tokens_per_s": (100, 95, 110), "latency_p50_s": (0.5, 0.48, 0.52)} for m in speeds}
    equal = _with_passes(tables, same, {"base": 1.0e9, "lora": 1.05e9, "q4": 1.0e9})
    assert tradeoff_front(equal, "exact_match") == tradeoff_front(equal, "exact_match", axes=()) == ["lora"]


def test_best_without_a_clear_winner_names_the_models_or_says_any_other():
    """The verdict's quality line stays short: "any other model" where the best beats none of them
    significantly, the names where it beats some."""
    from reportgen.analysis.findings import Finding
    from reportgen.analysis.phrasing import phrase

    names = {"a": "Model A", "b": "Model B", "c": "Model C"}
    numbers = {
        "metric": "exact_match",
        "best": "a",
        "runner_up": "b",
        "test": None,
        "significant": False,
        "mean": 0.8,
        "ci_low": 0.6,
        "ci_high": 0.9,
        "tied": ["a"],
        "not_better_than": ["b", "c"],
        "others": ["b", "c"],
    }
    text = phrase(Finding("conclusion.best", ("a", "b"), numbers, "conclusion"), names).text
    assert (
        text
        == "Best exact match: no clear winner. Model A has the highest mean (0.80), but it is not significantly better than any other model."
    )
    numbers["not_better_than"] = ["b"]
    text = phrase(Finding("conclusion.best", ("a", "b"), numbers, "conclusion"), names).text
    assert text.endswith("but it is not significantly better than Model B.")


def test_speed_timed_on_a_busy_machine_names_no_winner(synthetic):
    """Ranges apart, but another job used the CPU while a model was timed: no winner in the verdict, the
    analysis, the bold cells or the trade-off; the text says why."""
    import dataclasses

    from reportgen.analysis.measured import _axis_order, efficiency_rows
    from reportgen.analysis.results import clear_best, throughput_finding

    _, study, tables, _ = synthetic
    speeds = {
        "base": {"tokens_per_s": (100, 95, 110), "latency_p50_s": (0.5, 0.48, 0.52)},
        "lora": {"tokens_per_s": (200, 190, 210), "latency_p50_s": (0.5, 0.47, 0.53)},
        "q4": {"tokens_per_s": (60, 55, 65), "latency_p50_s": (0.2, 0.19, 0.21)},
    }
    timed = _with_passes(tables, speeds, {"base": 1.00e9, "lora": 1.04e9, "q4": 1.0e9})
    frame = timed.efficiency.copy()
    frame["others_cpu_share"] = [0.02 if m != "base" else 0.35 for m in frame["model_id"]]
    busy = dataclasses.replace(timed, efficiency=frame)
    rows = efficiency_rows(busy)
    assert throughput_finding(rows).numbers["winner"] is None and clear_best(rows, "tokens_per_s") is None
    names = {m.id: m.name for m in study.models}
    lines = {s.numbers["source"]: s.text for s in analysis.verdict_lines(study, busy)}
    assert lines["conclusion.fastest"] == (
        f"Highest batched throughput: no clear difference (other processes used up to 35.0% of the machine's CPU "
        f"while {names['base']} was timed)."
    )
    frame_all = frame.copy()
    frame_all["others_cpu_share"] = 0.527  # every model timed while another job ran (make report beside CI)
    every = {s.numbers["source"]: s for s in analysis.verdict_lines(study, dataclasses.replace(timed, efficiency=frame_all))}
    assert every["conclusion.fastest"].text == (
        "Highest batched throughput: no clear difference (other processes used up to 52.7% of the machine's CPU "
        "while every model was timed)."
    )
    assert every["conclusion.fastest"].lead == "Highest batched throughput: no clear difference"  # what a phone shows
    text = " ".join(s.text for s in analysis.result_statements(study, busy))
    assert "is the fastest" not in text and "answers fastest" not in text
    # in the trade-off, the busy model's speed is compared with no one's; two quiet models' speeds still count
    assert _axis_order(busy, "tokens_per_s", "lora", "base") == 0 and _axis_order(timed, "tokens_per_s", "lora", "base") == 1
    assert _axis_order(busy, "latency_p50_s", "q4", "lora") == 1
    # the same figures on a quiet machine (shares at or under BUSY_SHARE) name the winner
    frame["others_cpu_share"] = 0.10
    quiet = efficiency_rows(dataclasses.replace(timed, efficiency=frame))
    assert throughput_finding(quiet).numbers["winner"] == "lora"
