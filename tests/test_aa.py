"""The A/A study: one model listed under three ids, in two orders, through the real CLI.

The guard of every comparative sentence: each copy keeps its row in every table, the copies get identical
quality, speed figures whose timed passes are not apart, peak memory within the noise threshold, and no
finding, verdict, conclusion or ``diff`` line calls one copy better, faster, lighter or quicker to load.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest

from reportgen.stats.efficiency import NOISE_THRESHOLDS, ranges_separate, timed_on_a_busy_machine

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"a": "Copy A", "b": "Copy B", "c": "Copy C"}

#: Phrases that call one model better than another on some measure; none may name a copy in an A/A study.
COMPARATIVE = re.compile(
    r"is the fastest|answers fastest|needs the least|(?<!not )significantly (better|worse|ahead)|dominates|is best|"
    r"has the highest|quicker|lighter|\bWORSE\b|(?<!not significantly )\bbetter\b",
)


def write_study(folder: Path, order: list[str]) -> Path:
    prompts = ["prompts:"]
    for i in range(8):
        category = "arithmetic" if i % 2 else "facts"
        prompts.append(f"  - {{id: p{i}, category: {category}, prompt: 'Say the number {i} twice.', reference: '{i} {i}'}}")
    (folder / "prompts.yaml").write_text("\n".join(prompts) + "\n")
    models = "".join(
        f"""  - id: {model_id}
    name: {NAMES[model_id]}
    source: {{type: local, path: llama}}
    batch_size: 4
"""
        for model_id in order
    )
    (folder / "study.yaml").write_text(
        f"""title: A/A study
prompts: prompts.yaml
generation: {{max_new_tokens: 8}}
measure: {{warmup: 1, repeats: 5, prompts: 8, new_tokens: 64}}
output: {{dir: report}}
models:
{models}"""
    )
    return folder / "study.yaml"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=600, cwd=ROOT, check=False
    )


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = markdown.index(heading + "\n")
    rest = markdown[start + len(heading) + 1 :]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


@pytest.mark.parametrize("order", [["a", "b", "c"], ["c", "a", "b"]], ids=["abc", "cab"])
def test_one_model_under_three_ids_reports_three_equal_rows(tmp_path: Path, tiny_llama_dir: Path, order: list[str]):
    shutil.copytree(tiny_llama_dir, tmp_path / "llama")
    config = write_study(tmp_path, order)

    run = cli("run", str(config))
    assert run.returncode == 0, run.stderr
    metrics = cli("metrics", str(config), "--json")
    assert metrics.returncode == 0, metrics.stderr
    payload = json.loads(metrics.stdout)
    tables = payload["tables"]

    # every configured model is reported, in the config's order, each with its own row
    efficiency = {r["model_id"]: r for r in tables["efficiency"]}
    assert list(efficiency) == order
    summary = [r for r in tables["summary"] if r["metric"] == "exact_match"]
    assert [r["model_id"] for r in summary] == order
    assert {r["model_id"] for r in tables["category_summary"]} == set(order)
    assert len(tables["per_prompt"]) == 3 * 8

    # identical quality: the same answers, shared from the first copy's run
    for metric in {r["metric"] for r in tables["summary"]}:
        means = {r["model_id"]: r["mean"] for r in tables["summary"] if r["metric"] == metric}
        assert len(set(map(str, means.values()))) == 1, (metric, means)
    assert not any(r["significant"] for r in tables["pairwise"])

    # speed: each copy has its own timed passes in both regimes, with the CPU other processes used meanwhile,
    # and no two copies' ranges are apart (unless another job loaded the machine while some were timed: then the
    # verdict below must still call no difference, which is what it is for)
    shares = [efficiency[m]["others_cpu_share"] for m in order]
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in shares), shares
    quiet = not any(timed_on_a_busy_machine(efficiency[m]) for m in order)
    for column in ("tokens_per_s", "single_tokens_per_s", "latency_p50_s"):
        for a, b in combinations(order, 2):
            ra = (efficiency[a][f"{column}_low"], efficiency[a][f"{column}_high"])
            rb = (efficiency[b][f"{column}_low"], efficiency[b][f"{column}_high"])
            assert all(isinstance(v, float) for v in ra + rb), (column, a, b)
            assert not (quiet and ranges_separate(ra, rb)), (column, a, ra, b, rb, shares)
    # memory and load measured for each copy in the same way: within the noise threshold of each other
    peaks = [efficiency[m]["peak_memory_bytes"] for m in order]
    assert all(isinstance(p, (int, float)) and p > 0 for p in peaks), peaks
    assert max(peaks) <= min(peaks) * (1 + NOISE_THRESHOLDS["peak_memory_bytes"]), peaks

    # no sentence of the analysis (verdict first) calls one copy better, faster, lighter or quicker
    analysis = cli("metrics", str(config), "--analysis")
    assert analysis.returncode == 0, analysis.stderr
    text = analysis.stdout[analysis.stdout.index("\nVerdict\n") :]
    verdict = text.split("\n\n")[0]
    assert "Fastest single stream: no clear difference" in verdict
    assert "Highest batched throughput: no clear difference" in verdict
    assert "Least memory: no clear difference" in verdict
    for line in text.splitlines():
        if any(name in line for name in NAMES.values()):
            assert not COMPARATIVE.search(line), line

    # the rendered README: the verdict under the title, three rows in every results table
    render = cli("render", str(config), "-f", "markdown")
    assert render.returncode == 0, render.stderr
    readme = (tmp_path / "report" / "README.md").read_text()
    assert readme.index("**Verdict**") < readme.index("## Table of contents")
    for heading in ("## Results at a glance", "### Quality", "### Quality by category", "### Speed and memory"):
        part = section(readme, heading)
        for name in NAMES.values():
            assert name in part, (heading, name)
    assert "**" not in section(readme, "### Speed and memory").split("\n\n")[1]  # nothing bold: no clear best
    for line in section(readme, "## Comparative analysis").splitlines():
        if any(name in line for name in NAMES.values()):
            assert not COMPARATIVE.search(line.replace("**", "")), line

    # a second measurement of one copy: diff finds no change beyond the noise
    again = cli("run", str(config), "--force", "--models", order[1])
    assert again.returncode == 0, again.stderr
    diff = cli("diff", str(config), "--models", order[1])
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "WORSE" not in diff.stdout and "better" not in diff.stdout, diff.stdout
