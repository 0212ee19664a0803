"""Benchmark: the prompt explorer of report.html at 100, 1,000 and 10,000 prompts × 4 models, in Chromium.

For each size, a real results store is filled with synthetic answers (about 50 words each; six categories;
references on half the prompts, right or wrong by model; some failures and loops), the tables are computed
from it and report.html is rendered by ``render_report`` — the path every report takes. Then headless
Chromium (Playwright, ``/usr/bin/chromium``) opens the page in a fresh tab, three times:

- **open**: milliseconds from the navigation's start to the explorer's ``performance.mark("explorer-ready")``
  (the page parsed, its charts drawn, the JSON parsed, the first page of prompts shown); the median of three;
- **explorer**: the explorer's own part of that, from its script's first line (``explorer-start``) to
  ``explorer-ready``: JSON.parse, the per-prompt flags, the first page (the charts above it draw before);
- **filter**: for each control (a category, "models disagree", "right for A, wrong for B", failures, loops, a
  search of two words, clearing it), milliseconds from the change to the next frame after the explorer's
  update (two ``requestAnimationFrame``s); the median and the slowest over five rounds.

The same is measured for the explorer on a page of its own (report.html's wrapper and stylesheet, no
charts), which separates its cost from the charts'. Also prints the data's size: the JSON in the page per prompt, in all and without the texts (prompts,
references, answers), which cost their own length plus JSON's quotes and escapes.

    .venv/bin/python bench/explorer.py [--sizes 100,1000,10000] [--models 4] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CATEGORIES = ["factual", "arithmetic", "instruction", "summary", "code", "reasoning"]
WORDS = (
    "the a model answer question paris tokyo number seven because therefore result first second then value "
    "city planet water light energy function return list string reason simple short example text word each"
).split()
TARGET_OPEN_MS, TARGET_FILTER_MS = 2000, 200


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_study(folder: Path, n_prompts: int, n_models: int, seed: int = 0) -> Path:
    """A study of ``n_prompts`` prompts and ``n_models`` models, and its store filled with synthetic answers."""
    from reportgen.records import GenerationResult
    from reportgen.store import Store

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
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
            }
        )
    )
    prompts = []
    for i in range(n_prompts):
        entry = {"id": f"p{i:05d}", "category": CATEGORIES[i % len(CATEGORIES)], "prompt": _sentence(rng, 12)}
        if i % 2 == 0:
            entry["reference"] = rng.choice(WORDS)
        prompts.append(entry)
    (folder / "prompts.json").write_text(json.dumps({"name": "bench", "format": "chat", "prompts": prompts}))
    models = "".join(
        f"  - {{id: m{k}, name: Model {k}, source: {{type: gguf, path: weights/m.gguf}}, backend: transformers, config: config.json}}\n"
        for k in range(n_models)
    )
    (folder / "study.yaml").write_text(
        f"title: Explorer benchmark\nprompts: prompts.json\ngeneration: {{max_new_tokens: 64}}\n"
        f"output: {{dir: report, formats: [html]}}\nmodels:\n{models}"
    )
    with Store(folder / "results.sqlite") as store:
        store.start_run("r1", "bench", {})
        for k in range(n_models):
            store.start_model_run("r1", f"m{k}", f"fp{k}", "s1", {})
            results = []
            for i, p in enumerate(prompts):
                if rng.random() < 0.01:
                    results.append(GenerationResult(p["id"], "", 9, 0, "error", 0.5, None, "backend error: out of memory"))
                    continue
                if rng.random() < 0.02:  # a loop, cut at the token limit
                    text, finish = "the model repeats itself " * 12, "length"
                else:
                    text, finish = _sentence(rng, rng.randint(20, 80)), "eos"
                    if "reference" in p and rng.random() < 0.3 + 0.15 * k:
                        text = p["reference"] if rng.random() < 0.5 else f"{text} {p['reference']}"
                results.append(GenerationResult(p["id"], text, 9, len(text.split()), finish, 0.5, None))
            store.save_results(
                fingerprint=f"fp{k}",
                model_id=f"m{k}",
                run_id="r1",
                settings_hash="s1",
                request_hashes={r.prompt_id: "h" for r in results},
                results=results,
                batch_size=1,
            )
            store.update_model_run("r1", f"m{k}", generated_tokens=1000, generate_time_s=10.0, device="cpu", load_time_s=0.5)
    return folder / "study.yaml"


def render(config: Path) -> tuple[Path, dict]:
    """report.html of the study, rendered from its store; and the explorer's data."""
    from reportgen.report.assemble import render_report
    from reportgen.report.explorer import explorer_data
    from reportgen.stats.tables import compute_tables
    from reportgen.store import Store
    from reportgen.study.config import load_config
    from reportgen.study.prompts import load_prompt_set

    study = load_config(config)
    prompt_set = load_prompt_set(config.parent / "prompts.json")
    with Store(config.parent / "results.sqlite", create=False) as store:
        tables = compute_tables(store, study, prompt_set, n_boot=200)
    out = config.parent / "report"
    render_report(study, out_dir=out, formats=["html"], tables=tables)
    texts = {p.id: str(p.prompt) for p in prompt_set.prompts}
    return out / "report.html", explorer_data(study, tables, texts)


def explorer_alone(html: Path, data: dict) -> Path:
    """The explorer on a page of its own (report.html's stylesheet and wrapper, no charts): what it costs by itself."""
    from reportgen.report.formats.html import explorer_parts, html_page
    from reportgen.report.templates import make_environment

    env = make_environment()
    markup, style = explorer_parts(env, data)
    variables = {
        "target": "html",
        "generator": "bench",
        "authors": [],
        "subtitle_text": "",
        "keywords": [],
        "date": "",
        "generated_at": "",
        "title_text": "Explorer alone",
    }
    alone = html.with_name("explorer-alone.html")
    alone.write_text(html_page(env, variables, markup, head=style), encoding="utf-8")
    return alone


def data_cost(data: dict) -> tuple[int, int]:
    """(bytes of the page's JSON, bytes of it that are the texts: prompts, references, answers)."""
    from reportgen.report.explorer import explorer_json, script_json

    total = len(script_json(explorer_json(data)).encode())
    texts = [*data["text"], *(r for refs in data["refs"] for r in refs), *(t for a in data["answers"] for t in a["t"] if t)]
    text_bytes = sum(len(script_json(json.dumps(t, ensure_ascii=False)).encode()) for t in texts)
    return total, text_bytes


FILTERS = {  # name → a script that changes one control (the explorer listens to change / input events)
    "category": "const s = document.getElementById('xp-cat'); s.value = s.value === '' ? '1' : ''; s.dispatchEvent(new Event('change', {bubbles: true}));",
    "disagree": "document.getElementById('xp-disagree').click();",
    "right A, wrong B": "document.getElementById('xp-ab').click();",
    "failures": "document.getElementById('xp-failed').click();",
    "loops": "document.getElementById('xp-loops').click();",
    "search": "const s = document.getElementById('xp-search'); s.value = 'paris because'; s.dispatchEvent(new Event('input', {bubbles: true}));",
    "clear search": "const s = document.getElementById('xp-search'); s.value = ''; s.dispatchEvent(new Event('input', {bubbles: true}));",
}


def measure(browser, html: Path, rounds: int = 5, opens: int = 3) -> tuple[list[float], list[float], dict[str, list[float]]]:
    opened, own, filters = [], [], {name: [] for name in FILTERS}
    for attempt in range(opens):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(html.resolve().as_uri())
        page.wait_for_function("performance.getEntriesByName('explorer-ready').length > 0", timeout=60000)
        ready, start = page.evaluate(
            "['explorer-ready', 'explorer-start'].map(n => performance.getEntriesByName(n)[0].startTime)"
        )
        opened.append(ready)
        own.append(ready - start)
        if attempt == 0:
            for _ in range(rounds):
                for name, script in FILTERS.items():
                    filters[name].append(
                        page.evaluate(
                            "async () => { const t0 = performance.now(); %s"
                            " await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));"
                            " return performance.now() - t0; }" % script
                        )
                    )
        page.close()
    return opened, own, filters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="prompt counts, comma-separated")
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--work", type=Path, default=None, help="keep the studies here (default: a temporary folder)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = args.work or Path(tempfile.mkdtemp(prefix="explorer-bench-"))
    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for n in (int(s) for s in args.sizes.split(",")):
            started = time.perf_counter()
            config = write_study(work / f"n{n}", n, args.models)
            html, data = render(config)
            built = time.perf_counter() - started
            total, text_bytes = data_cost(data)
            opened, own, filters = measure(browser, html)
            alone, _, alone_filters = measure(browser, explorer_alone(html, data))
            worst = max(max(v) for v in [*filters.values(), *alone_filters.values()])
            medians = [statistics.median(v) for v in [*filters.values(), *alone_filters.values()]]
            rows.append((n, opened, alone, max(medians), worst))
            print(
                f"{n:>6} prompts × {args.models} models: page {html.stat().st_size / 1e6:.2f} MB, data {total / 1e6:.2f} MB "
                f"({total / n:,.0f} B per prompt; {(total - text_bytes) / n:,.0f} B besides the texts); "
                f"open {statistics.median(opened):,.0f} ms (median of {len(opened)}; the explorer's own part "
                f"{statistics.median(own):,.0f} ms; the explorer on a page alone {statistics.median(alone):,.0f} ms); "
                f"filters: "
                + ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in filters.items())
                + f" ms (median), slowest {worst:.0f} ms; built in {built:.0f} s",
                flush=True,
            )
        browser.close()
    verdicts = []
    for n, opened, alone, slowest_median, worst in rows:
        verdicts.append(
            f"{n}: report.html opens in {statistics.median(opened):,.0f} ms, the explorer alone in "
            f"{statistics.median(alone):,.0f} ms (target {TARGET_OPEN_MS} ms); the slowest filter's median "
            f"{slowest_median:.0f} ms, the slowest single filter {worst:.0f} ms (target {TARGET_FILTER_MS} ms)"
        )
    print("\n".join(verdicts))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
