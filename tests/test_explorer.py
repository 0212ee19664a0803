"""The prompt explorer of report.html: its data (report.explorer) and the page in headless Chromium at 1280 × 800
and 390 × 844 — every prompt listed, each filter and the search showing exactly the prompts they should, the word
diff, the keyboard, axe, hostile answers kept as text — and the demo's 32 prompts run by tiny models through the CLI.

The synthetic study (tests/test_sections.py) has twenty prompts in four categories and three models; here model 3
also fails on "water". On exact match (the headline) model 1 is right on capital-france only, model 2 on the first
eight prompts, model 3 on capital-france only: the models disagree on the seven prompts from capital-japan to mul.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reportgen.report.explorer import explorer_data, explorer_json, script_json
from test_browser import CHROMIUM, browser, open_report  # noqa: F401 (browser: the module's fixture)
from test_sections import HOSTILE, LONG_LINE, MANIFEST, NAMES, PROMPTS, default_outputs, make_study

ROOT = Path(__file__).resolve().parents[1]
AXE = ROOT / ".cache" / "node" / "node_modules" / "axe-core" / "axe.min.js"
IDS = list(PROMPTS)
FAILURE = "backend crashed: <b>out of memory</b>"
LEADING = "  I do not know, really."  # an answer that starts with spaces
DISAGREE = ["capital-japan", "largest-planet", "red-planet", "water", "author", "add", "mul"]
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}

_no_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (make test installs it)")


def needs_chromium(test):
    """A browser test (the ``browser`` mark), skipped without Debian's chromium."""
    return pytest.mark.browser(_no_chromium(test))


def heading(prompt_id: str) -> str:
    return f"Prompt {IDS.index(prompt_id) + 1}: {prompt_id} ({PROMPTS[prompt_id][0]})"


def headings(*prompt_ids: str) -> list[str]:
    return [heading(p) for p in prompt_ids]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explorer")
    outputs = default_outputs()
    outputs["lora"]["yes"] = LEADING  # still wrong, as the others' answers
    study, tables, deltas = make_study(folder, outputs, failures={"q4": {"water": FAILURE}})
    out = folder / "report"
    from reportgen.report.assemble import render_report

    render_report(study, out_dir=out, formats=["markdown", "html"], tables=tables, deltas=deltas, manifest=MANIFEST)
    return study, tables, out


# ------------------------------------------------------------------------------------------------
# the data


def test_the_data_holds_every_prompt_and_every_answer(synthetic):
    study, tables, _ = synthetic
    data = explorer_data(study, tables, {p: text for p, (_, text, _) in PROMPTS.items()})
    assert data["ids"] == IDS
    assert data["text"][0] == "What is the capital of France?"
    assert data["models"] == [f"1. {NAMES['base']}", f"2. {NAMES['lora']}", f"3. {NAMES['q4']}"]
    assert data["cats"] == ["factual", "arithmetic", "instruction", "open <i>ended</i> | x"]
    assert data["cat"] == [0] * 6 + [1] * 5 + [2] * 4 + [3] * 5
    assert data["refs"][0] == ["Paris"] and data["refs"][IDS.index("poem")] == []
    assert data["metrics"][data["correct"]][:3] == ["exact_match", "exact match", 1]
    exact = data["correct"]
    assert [i for i, v in enumerate(data["answers"][1]["m"][exact]) if v == 1] == list(range(8))
    q4 = data["answers"][2]
    water = IDS.index("water")
    assert q4["t"][water] == FAILURE and data["fins"][q4["f"][water]] == "error" and q4["n"][water] is None
    assert q4["m"][exact][water] is None
    assert q4["loop"] == [IDS.index("poem"), IDS.index("story")] and data["answers"][0]["loop"] == []
    assert data["answers"][1]["t"][IDS.index("recipe")] == HOSTILE["recipe"]  # raw: the page shows it as text
    assert data["answers"][0]["t"][IDS.index("essay")] == HOSTILE["essay"] + "\n" + LONG_LINE
    assert data["judges"] == [] and data["baseline"] == 0


def test_the_json_cannot_leave_its_script_element():
    hostile = {"t": ["</script><script>alert(1)</script>", "<!-- & -->", "é ✓"]}
    text = script_json(explorer_json(hostile))
    assert not any(c in text for c in "<>&") and "é ✓" in text
    assert json.loads(text) == hostile


def test_the_readme_keeps_a_bounded_sample_and_points_at_the_explorer(synthetic):
    _, _, out = synthetic
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert readme.count("<summary>Prompt ") == 6
    assert (
        "The first 6 of the 20 prompts, in prompt-set order (`output.samples` in the study config sets how many; `all` shows "
        "every prompt). Every prompt, filtered by category, disagreement, failures or loops, or found by a search, is in the "
        "prompt explorer of report.html (its Sample outputs section)."
    ) in readme
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('id="prompt-explorer"') == 1 and "<summary>Prompt " not in html


# ------------------------------------------------------------------------------------------------
# the page


@pytest.fixture(params=list(VIEWPORTS))
def explorer(request, browser, synthetic):  # noqa: F811
    page, problems = open_report(browser, synthetic[2] / "report.html")
    page.set_viewport_size(VIEWPORTS[request.param])
    page.wait_for_function("document.getElementById('xp-status').textContent.startsWith('Prompts')")
    yield page, problems, request.param
    page.close()


def shown(page) -> list[str]:
    """The headings of the prompts on the current page of the explorer."""
    return page.eval_on_selector_all("#xp-list h3", "els => els.map(e => e.textContent)")


def all_shown(page) -> list[str]:
    """The headings of every prompt the filters let through, page after page."""
    found = shown(page)
    while not page.is_disabled("#xp-next"):
        page.click("#xp-next")
        found += shown(page)
    return found


def status(page) -> str:
    return page.text_content("#xp-status")


@needs_chromium
def test_it_lists_every_prompt_with_every_answer(explorer):
    page, problems, _ = explorer
    assert status(page) == "Prompts 1–10 of 20 shown."
    assert all_shown(page) == headings(*IDS)
    assert status(page) == "Prompts 11–20 of 20 shown."
    first = page.locator("#xp-list article").first  # square, the first prompt of the second page
    assert first.locator("h4").all_text_contents() == [f"1. {NAMES['base']}", f"2. {NAMES['lora']}", f"3. {NAMES['q4']}"]
    assert first.locator(".xp-meta").first.text_content() == "Reference: 81"
    assert problems == []


@needs_chromium
def test_each_filter_and_the_search_show_exactly_their_prompts(explorer):
    page, problems, _ = explorer
    page.select_option("#xp-cat", label="arithmetic")
    assert all_shown(page) == headings("add", "mul", "sub", "div", "square")
    page.select_option("#xp-cat", label="open <i>ended</i> | x")  # a hostile category name, shown as text
    assert all_shown(page) == headings("poem", "story", "recipe", "letter", "essay")
    page.select_option("#xp-cat", value="")

    page.check("#xp-disagree")
    assert all_shown(page) == headings(*DISAGREE)
    page.select_option("#xp-cat", label="factual")
    assert all_shown(page) == headings(*DISAGREE[:5])
    page.select_option("#xp-cat", value="")
    page.uncheck("#xp-disagree")

    page.check("#xp-ab")
    assert all_shown(page) == [] and status(page) == "No prompt matches (20 in all)."  # right for 1, wrong for 2: none
    page.select_option("#xp-a", value="1")
    page.select_option("#xp-b", value="0")
    assert all_shown(page) == headings(*DISAGREE)
    page.select_option("#xp-b", value="2")  # a failed answer to a prompt with a reference is wrong
    assert all_shown(page) == headings(*DISAGREE)
    page.uncheck("#xp-ab")

    page.check("#xp-failed")
    assert all_shown(page) == headings("water")
    page.uncheck("#xp-failed")
    page.check("#xp-loops")
    assert all_shown(page) == headings("poem", "story")
    page.uncheck("#xp-loops")

    for query, expected in [
        ("TOKYO", ["capital-japan"]),  # a reference, any case
        ("cat sat", ["poem", "story"]),  # every word, anywhere in an answer
        ("out of memory", ["water"]),  # an error message
        ("<img src", ["recipe"]),  # hostile text is searched as text
        ("no such words", []),
    ]:
        page.fill("#xp-search", query)
        assert all_shown(page) == headings(*expected), query
    page.fill("#xp-search", "")
    assert status(page) == "Prompts 1–10 of 20 shown."
    assert problems == []


@needs_chromium
def test_the_word_diff_marks_the_words_that_differ(explorer):
    page, problems, _ = explorer
    card = page.locator("#xp-list article[aria-labelledby='xp-prompt-9']")  # div: 1 "I do not know.", 2 "I think … 3, surely."
    assert card.locator("ins, del").count() == 0
    page.select_option("#xp-diff", value="0")
    base, lora, q4 = (card.locator(".xp-answer").nth(i) for i in range(3))
    assert lora.locator("del").all_text_contents() == ["do not know"]  # words and punctuation apart: "." is common
    assert lora.locator("ins").all_text_contents() == ["think the answer is 3, surely"]
    assert lora.locator("pre").text_content() == "I do not knowthink the answer is 3, surely."
    assert base.locator("ins, del").count() == 0 and q4.locator("ins, del").count() == 0  # itself; the same words
    assert q4.locator("pre").text_content() == "I do not know."
    page.select_option("#xp-diff", value="1")  # against model 2 instead
    assert base.locator("ins").all_text_contents() == ["do not know"]
    assert base.locator("del").all_text_contents() == ["think the answer is 3, surely"]
    page.select_option("#xp-diff", value="0")
    japan = page.locator("#xp-list article[aria-labelledby='xp-prompt-1']").locator(".xp-answer").nth(1)
    # "Tokyo" against "I think the answer is Tokyo, surely.": the word in common is found inside the punctuation
    assert japan.locator("del").all_text_contents() == ["I think the answer is ", ", surely."]
    assert japan.locator("ins").count() == 0 and japan.locator("pre").text_content() == "I think the answer is Tokyo, surely."
    page.fill("#xp-search", "yes")
    assert shown(page) == headings("yes")
    lora = page.locator("#xp-list .xp-answer").nth(1)
    assert lora.locator("pre").text_content() == LEADING and lora.locator("ins").all_text_contents() == [", really"]
    page.select_option("#xp-diff", value="")
    assert page.locator("#xp-list ins, #xp-list del").count() == 0
    assert problems == []


def focused(page) -> str:
    return page.evaluate("document.activeElement.id")


@needs_chromium
def test_the_keyboard_reaches_and_works_every_control(explorer):
    page, problems, _ = explorer
    page.focus("#xp-search")
    page.keyboard.type("tokyo")
    assert shown(page) == headings("capital-japan")
    page.keyboard.press("Control+A")
    page.keyboard.press("Backspace")
    assert status(page) == "Prompts 1–10 of 20 shown."
    order = []
    for _ in range(9):
        page.keyboard.press("Tab")
        order.append(focused(page))
    assert order == ["xp-cat", "xp-disagree", "xp-ab", "xp-a", "xp-b", "xp-failed", "xp-loops", "xp-diff", "xp-next"]
    page.keyboard.press("Enter")  # the next page; the focus moves to its first prompt
    assert status(page) == "Prompts 11–20 of 20 shown." and focused(page) == "xp-prompt-10"
    assert page.evaluate("document.activeElement.textContent") == heading("square")
    page.focus("#xp-prev")
    page.keyboard.press("Enter")
    assert focused(page) == "xp-prompt-0"
    page.focus("#xp-loops")
    page.keyboard.press("Space")
    assert shown(page) == headings("poem", "story")
    page.keyboard.press("Space")
    page.focus("#xp-cat")
    page.keyboard.press("ArrowDown")  # the first category
    assert shown(page) == headings(*IDS[:6])
    assert problems == []


@needs_chromium
def test_axe_finds_no_violation_and_nothing_overflows(explorer):
    page, problems, viewport = explorer
    if not AXE.exists():
        pytest.skip("npm axe-core is not installed (make test installs it)")
    page.select_option("#xp-diff", value="0")  # the marked words too
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run('#prompt-explorer', {resultTypes: ['violations']})")
    violations = [f"{v['id']} ({v['impact']}): {v['help']}: {v['nodes'][0]['html'][:160]}" for v in result["violations"]]
    assert violations == [], "\n".join(violations)
    width = VIEWPORTS[viewport]["width"]
    assert page.evaluate("document.documentElement.scrollWidth") == width
    boxes = page.eval_on_selector_all(
        "#xp-list article:first-of-type .xp-answer", "els => els.map(e => e.getBoundingClientRect().toJSON())"
    )
    assert all(b["right"] <= width for b in boxes)
    tops = {round(b["top"]) for b in boxes}
    assert len(tops) == (1 if viewport == "desktop" else 3)  # side by side on a desktop, one under another on a phone
    assert problems == []


@needs_chromium
def test_hostile_answers_stay_text(explorer):
    page, problems, _ = explorer
    page.fill("#xp-search", "recipe")
    assert shown(page) == headings("recipe")
    assert page.locator("#xp-list .xp-answer").nth(1).locator("pre").text_content() == HOSTILE["recipe"]
    page.fill("#xp-search", "essay")
    assert page.locator("#xp-list .xp-answer").nth(0).locator("pre").text_content() == HOSTILE["essay"] + "\n" + LONG_LINE
    page.select_option("#xp-diff", value="1")  # marked words are text too
    assert page.locator("#xp-list .xp-answer").nth(0).locator("ins").first.text_content().startswith("# not")
    assert page.locator("#prompt-explorer img, #prompt-explorer a, #xp-list script").count() == 0
    assert page.locator("#prompt-explorer script").count() == 2  # the data and the explorer's own script
    assert problems == []  # includes: no alert() ever ran


# ------------------------------------------------------------------------------------------------
# the demo's prompt set, answered by tiny models through the real CLI


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=900, cwd=ROOT, check=False
    )


@needs_chromium
def test_the_demo_prompts_in_the_explorer(tmp_path: Path, tiny_llama_dir: Path, tiny_lora_dir: Path, browser):  # noqa: F811
    demo = ROOT / "configs" / "prompts" / "demo.yaml"
    if not demo.exists():
        pytest.skip("the demo's prompt set is not in this checkout")
    shutil.copytree(tiny_llama_dir, tmp_path / "llama")
    shutil.copytree(tiny_lora_dir, tmp_path / "lora")
    own = yaml.safe_load(demo.read_text(encoding="utf-8"))
    for key in ("include", "multiple_choice"):  # the demo's HumanEval problems and choice items: other tests
        own.pop(key, None)
    (tmp_path / "prompts.yaml").write_text(yaml.safe_dump(own, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (tmp_path / "study.yaml").write_text(
        """title: The demo prompts, tiny models
prompts: prompts.yaml
generation: {max_new_tokens: 6}
output: {dir: report, formats: [markdown, html]}
models:
  - {id: base, name: Tiny llama, source: {type: local, path: llama}}
  - {id: lora, name: Tiny llama + LoRA, source: {type: local, path: llama}, adapter: {path: lora}}
"""
    )
    done = cli("build", str(tmp_path / "study.yaml"))
    assert done.returncode == 0, done.stderr[-3000:]
    prompts = yaml.safe_load(demo.read_text(encoding="utf-8"))["prompts"]
    assert len(prompts) == 32
    page, problems = open_report(browser, tmp_path / "report" / "report.html")
    page.wait_for_function("document.getElementById('xp-status').textContent.startsWith('Prompts')")
    assert status(page) == "Prompts 1–10 of 32 shown."
    expected = [f"Prompt {i}: {p['id']} ({p['category']})" for i, p in enumerate(prompts, 1)]
    assert all_shown(page) == expected
    assert status(page) == "Prompts 31–32 of 32 shown."
    assert page.locator("#xp-list article").first.locator("h4").all_text_contents() == ["1. Tiny llama", "2. Tiny llama + LoRA"]
    page.select_option("#xp-cat", label="arithmetic")
    assert all_shown(page) == [h for h, p in zip(expected, prompts) if p["category"] == "arithmetic"]
    readme = (tmp_path / "report" / "README.md").read_text(encoding="utf-8")
    assert "The first 12 of the 32 prompts" in readme and "prompt explorer of report.html (its Sample outputs section)." in readme
    page.close()
    assert problems == []


# ------------------------------------------------------------------------------------------------
# judges' verdicts


def judged_data(study, tables) -> dict:
    """The explorer's data with a pairwise judge (against model 1) and a rubric judge."""
    import dataclasses

    import pandas as pd

    from reportgen.stats.judged import JudgedComparison

    pairwise = pd.DataFrame(
        [
            ("lora", "capital-france", "first", 1.0),
            ("lora", "capital-france", "second", 1.0),
            ("q4", "capital-france", "first", 1.0),
            ("q4", "capital-france", "second", 0.5),
            ("lora", "capital-japan", "first", 0.5),
            ("lora", "capital-japan", "second", 0.5),
            ("q4", "capital-japan", "first", 0.0),
            ("q4", "capital-japan", "second", 0.0),
        ],
        columns=["model_id", "prompt_id", "order", "outcome"],
    )
    rubric = pd.DataFrame(
        [("base", "capital-france", 4.0), ("lora", "capital-france", 5.0)], columns=["model_id", "prompt_id", "score"]
    )
    judged = [
        JudgedComparison("pj", "Pair <judge>", "pairwise", "base", samples=pairwise),
        JudgedComparison("rj", "Rubric judge", "rubric", None, samples=rubric),
    ]
    return explorer_data(study, dataclasses.replace(tables, judged=judged))


def test_judge_verdicts_per_prompt_and_model(synthetic):
    study, tables, _ = synthetic
    data = judged_data(study, tables)
    pair, rubric = data["judges"]
    assert (pair["name"], pair["mode"], pair["baseline"], rubric["baseline"]) == ("Pair <judge>", "pairwise", 0, -1)
    assert [v[:2] for v in pair["v"]] == [[None, None], [1, 0.5], [0.75, 0]]
    assert [v[:2] for v in rubric["v"]] == [[4, None], [5, None], [None, None]]
    assert all(v is None for values in pair["v"] for v in values[2:]) and data["baseline"] == 0


@needs_chromium
def test_judge_verdicts_in_the_page(synthetic, browser, tmp_path):  # noqa: F811
    from reportgen.report.formats.html import explorer_parts, html_page
    from reportgen.report.templates import make_environment

    study, tables, _ = synthetic
    env = make_environment()
    markup, style = explorer_parts(env, judged_data(study, tables))
    variables = dict(
        target="html", generator="t", authors=[], subtitle_text="", keywords=[], date="", generated_at="", title_text="t"
    )
    (tmp_path / "explorer.html").write_text(html_page(env, variables, markup, head=style), encoding="utf-8")
    page, problems = open_report(browser, tmp_path / "explorer.html")
    lines = page.eval_on_selector_all("#xp-list article:first-of-type .xp-judged", "els => els.map(e => e.textContent)")
    base = f"1. {NAMES['base']}"
    assert lines == [
        "Judge Rubric judge: score 4",
        f"Judge Pair <judge>: preferred to {base} · Judge Rubric judge: score 5",
        f"Judge Pair <judge>: 0.75 against {base} (1: preferred)",
    ]
    lines = page.eval_on_selector_all("#xp-list article:nth-of-type(2) .xp-judged", "els => els.map(e => e.textContent)")
    assert lines == [f"Judge Pair <judge>: tie with {base}", f"Judge Pair <judge>: {base} preferred"]
    assert problems == []
