"""`reportgen publish` in a docs-deploy job (issue 27, item 17): on a fresh `git clone` there is no results
store (ignored) and no trained adapter, and the committed report folder is what gets published; where a
local store differs from what the committed report was built from, publish says so and which it used."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = "[Interactive version of this report](report.html)\n\n"


def reportgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=CI", "-c", "user.email=ci@example.org", *args], cwd=cwd, check=True, capture_output=True
    )


def site(folder: Path) -> Path:
    (folder / "site" / "docs").mkdir(parents=True)
    (folder / "site" / "docs" / "index.md").write_text("# Studies\n")
    (folder / "site" / "mkdocs.yml").write_text("site_name: Studies\nnav:\n  - Home: index.md\n")
    return folder / "site"


def with_link(readme: str) -> str:
    first_break = readme.find("\n") + 1
    return readme[:first_break] + "\n" + LINK + readme[first_break:]


@pytest.fixture()
def repo(tmp_path: Path, tiny_llama_dir: Path, tiny_lora_dir: Path) -> Path:
    """A repository with a built, committed report of a base model and its trained adapter (not committed)."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_lora_dir, repo / "adapters" / "tiny-lora")
    (repo / "prompts.yaml").write_text(
        "prompts:\n" + "".join(f"  - {{id: p{i}, prompt: 'Count to {i}.', reference: '{i}'}}\n" for i in range(4))
    )
    (repo / "study.yaml").write_text(
        f"""title: Published study
prompts: prompts.yaml
generation: {{max_new_tokens: 4}}
output: {{dir: report, formats: [markdown, html]}}
models:
  - {{id: base, name: Base, source: {{type: local, path: {tiny_llama_dir}}}}}
  - {{id: tuned, name: Tuned, source: {{type: local, path: {tiny_llama_dir}}}, adapter: {{path: adapters/tiny-lora}}}}
"""
    )
    (repo / ".gitignore").write_text("adapters/\nreport/results.sqlite*\nreport/.work/\n")
    build = reportgen("build", "study.yaml", cwd=repo)
    assert build.returncode == 0, build.stderr
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the study and its report", cwd=repo)
    return repo


def test_publish_on_a_fresh_clone_publishes_the_committed_report(tmp_path: Path, repo: Path):
    clone = tmp_path / "clone"
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    assert not (clone / "adapters").exists() and not (clone / "report" / "results.sqlite").exists()
    result = reportgen("publish", "study.yaml", "--mkdocs", "site", cwd=site(clone).parent)
    assert result.returncode == 0, result.stderr
    page = clone / "site" / "docs" / "study"
    committed = clone / "report"
    assert (page / "index.md").read_text() == with_link((committed / "README.md").read_text())
    assert (page / "report.html").read_bytes() == (committed / "report.html").read_bytes()
    charts = sorted(p.name for p in (committed / "charts").iterdir())
    assert charts and sorted(p.name for p in (page / "charts").iterdir()) == charts
    assert not list(page.glob(".*")) and "README.md" not in {p.name for p in page.iterdir()}
    (warning,) = [line for line in result.stderr.splitlines() if "published the committed report" in line]
    assert warning.startswith("report/README.md: it cannot be rendered here (")
    assert "adapter_config.json" in warning and "Fix: `reportgen build study.yaml` and commit" in warning


def test_publish_says_when_the_store_differs_from_the_committed_report(repo: Path):
    site(repo)
    same = reportgen("publish", "study.yaml", "--mkdocs", "site", cwd=repo)
    assert same.returncode == 0, same.stderr
    assert "published the committed report" not in same.stderr  # the store gives the committed report: rendered from it
    index = repo / "site" / "docs" / "study" / "index.md"
    rendered = index.read_text()

    with sqlite3.connect(repo / "report" / "results.sqlite") as db:  # the store moves on: a result is gone
        db.execute("DELETE FROM results WHERE rowid = (SELECT MIN(rowid) FROM results)")
    differs = reportgen("publish", "study.yaml", "--mkdocs", "site", cwd=repo)
    assert differs.returncode == 0, differs.stderr
    assert (
        "report/README.md: the results store here (or another input) differs from what it was built from; "
        "published the committed report as rendered."
    ) in differs.stderr
    assert index.read_text() == with_link((repo / "report" / "README.md").read_text())

    forced = reportgen("publish", "study.yaml", "--mkdocs", "site", "--from", "store", cwd=repo)
    assert forced.returncode == 0, forced.stderr
    assert "published the results store here, as --from store asks" in forced.stderr
    assert index.read_text() != rendered  # the store's numbers, one answer fewer
