"""The project's documentation (mkdocs.yml, docs/): `mkdocs build --strict` passes (no broken link, anchor or
nav entry), and the generated parts are current — the metrics table from the metric registry, the template
variables from ReportContext's docstring. Regenerate: `python tests/test_docs_site.py`."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;")  # <title> is text, not a tag


def metrics_table() -> str:
    from reportgen.stats.metrics import METRICS

    direction = {True: "higher", False: "lower", None: "—"}
    lines = ["| metric | label | kind | unit | better | definition |", "| --- | --- | --- | --- | --- | --- |"]
    for name, m in METRICS.items():
        if m.kind == "imported":  # named by the logs a study imports (tiny_mc/acc): registered at run time, not here
            continue
        lines.append(
            f"| `{name}` | {_cell(m.label)} | {m.kind} | {_cell(m.unit)} | {direction[m.higher_is_better]} | {_cell(m.description)} |"
        )
    return "\n".join(lines)


def context_table() -> str:
    from reportgen.report.context import ReportContext

    described = dict(re.findall(r"^    (\w+): (.+)$", ReportContext.__doc__ or "", flags=re.M))
    lines = ["| variable | what it holds |", "| --- | --- |"]
    for field in dataclasses.fields(ReportContext):
        lines.append(f"| `{field.name}` | {_cell(described.get(field.name, ''))} |")
    return "\n".join(lines)


GENERATED = {"metrics.md": ("metrics", metrics_table), "templates.md": ("context", context_table)}


def with_generated(page: str) -> str:
    marker, make = GENERATED[page]
    text = (DOCS / page).read_text(encoding="utf-8")
    start, end = f"<!-- {marker}:start -->\n", f"<!-- {marker}:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}{make()}\n{end}{tail}"


@pytest.mark.parametrize("page", sorted(GENERATED))
def test_generated_parts_are_current(page):
    assert (DOCS / page).read_text(encoding="utf-8") == with_generated(page), (
        f"docs/{page} is stale: run `python tests/test_docs_site.py` and commit the result"
    )


def test_every_context_variable_is_described():
    assert "| `judged` |" in context_table()
    missing = [line for line in context_table().splitlines()[2:] if line.endswith("|  |")]
    assert missing == [], f"ReportContext fields without a line in its docstring: {missing}"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # Material's banner, not a build warning


def test_site_with_the_assignment_report_published_into_it(tmp_path):
    """The example report goes in with reportgen's own publish, and the site still builds strictly."""
    pytest.importorskip("mkdocs")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copytree(DOCS, project / "docs")
    published = subprocess.run(
        [sys.executable, "-m", "reportgen", "-q", "publish", str(ROOT / "configs" / "assignment.yaml"), "--mkdocs", str(project)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert published.returncode == 0, published.stderr
    assert "assignment/index.md" in (project / "mkdocs.yml").read_text(encoding="utf-8")
    result = _build(project / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    assert not re.search(r"^(WARNING|ERROR)", result.stderr, flags=re.M), result.stderr
    page = (tmp_path / "site" / "assignment" / "index.html").read_text(encoding="utf-8")
    assert "Comparative Study of Language Models" in page and page.count("<table>") >= 3


def test_a_docs_warning_fails_the_build(tmp_path):
    """The strict build this suite runs fails on a warning: a link to a page that does not exist."""
    pytest.importorskip("mkdocs")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copytree(DOCS, project / "docs")
    index = project / "docs" / "index.md"
    index.write_text(index.read_text(encoding="utf-8") + "\nSee [the missing page](no-such-page.md).\n", encoding="utf-8")
    result = _build(project / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr, result.stderr[-2000:]


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    result = _build(ROOT / "mkdocs.yml", site)
    assert result.returncode == 0, result.stderr[-4000:]
    assert not re.search(r"^(WARNING|ERROR)", result.stderr, flags=re.M), result.stderr
    pages = {p.relative_to(site).as_posix(): p for p in site.rglob("index.html")}
    for name in ("config-reference/index.html", "metrics/index.html", "templates/index.html", "cli/index.html"):
        assert name in pages
    # the reference's in-page type links land on a heading of the built page
    parser = _Links()
    parser.feed(pages["config-reference/index.html"].read_text(encoding="utf-8"))
    anchors = {href[1:] for href in parser.hrefs if href.startswith("#") and len(href) > 1}
    assert {"modelconfig", "judgeconfig", "executionconfig", "prompt"} <= anchors
    assert anchors <= parser.ids, f"links to missing ids: {sorted(anchors - parser.ids)}"
    assert "reports/&lt;config file stem&gt;" in pages["config-reference/index.html"].read_text(encoding="utf-8")
    assert "HTML &lt;title&gt;" in pages["templates/index.html"].read_text(encoding="utf-8")  # escaped, not swallowed
    metrics = pages["metrics/index.html"].read_text(encoding="utf-8")
    assert metrics.count("<table>") >= 1 and "bits_per_byte" in metrics


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    for page in GENERATED:
        (DOCS / page).write_text(with_generated(page), encoding="utf-8")
        print(DOCS / page)
