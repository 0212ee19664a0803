"""Publishing: MkDocs pages that pass the real `mkdocs build --strict`, and --into a README's markers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reportgen.cli import main

ROOT = Path(__file__).parent.parent
ASSIGNMENT = ROOT / "configs" / "assignment.yaml"


def mkdocs_build(site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(site / "mkdocs.yml"), "-d", str(site / "site")],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("theme", ["mkdocs", "material"])
def test_publish_passes_mkdocs_build_strict(tmp_path: Path, theme: str):
    pytest.importorskip("mkdocs")
    if theme == "material":
        pytest.importorskip("material")
    site = tmp_path / "site-src"
    (site / "docs").mkdir(parents=True)
    (site / "docs" / "index.md").write_text("# Our models\n\nSee the studies.\n")
    extra = (
        "markdown_extensions:\n  - pymdownx.emoji:\n      emoji_index: !!python/name:material.extensions.emoji.twemoji\n"
        if theme == "material"
        else ""
    )
    (site / "mkdocs.yml").write_text(f"site_name: Studies\ntheme:\n  name: {theme}\nnav:\n  - Home: index.md\n{extra}")
    result = CliRunner().invoke(main, ["publish", str(ASSIGNMENT), "--mkdocs", str(site)])
    assert result.exit_code == 0, result.output
    page = site / "docs" / "assignment" / "index.md"
    assert page.exists() and (site / "docs" / "assignment" / "report.html").exists()
    config = (site / "mkdocs.yml").read_text()
    assert "assignment/index.md" in config
    if theme == "material":
        assert "!!python/name:material.extensions.emoji.twemoji" in config  # kept as written
    build = mkdocs_build(site)
    assert build.returncode == 0, build.stderr[-3000:]
    assert (site / "site" / "assignment" / "index.html").exists()
    # Publishing twice does not add a second nav entry.
    CliRunner().invoke(main, ["publish", str(ASSIGNMENT), "--mkdocs", str(site)])
    assert (site / "mkdocs.yml").read_text().count("assignment/index.md") == 1


def test_publish_without_mkdocs_project_is_a_clear_error(tmp_path: Path):
    result = CliRunner().invoke(main, ["publish", str(ASSIGNMENT), "--mkdocs", str(tmp_path)])
    assert result.exit_code == 2
    assert "mkdocs.yml: no MkDocs project here" in result.output


def test_render_into_replaces_only_between_markers(tmp_path: Path):
    readme = tmp_path / "README.md"
    before = "# My project\r\n\r\nIntro text.\r\n<!-- reportgen:start -->\nold\n<!-- reportgen:end -->\nAfter — ünïcode.\n"
    readme.write_bytes(before.encode())
    result = CliRunner().invoke(main, ["render", str(ASSIGNMENT), "--into", str(readme)])
    assert result.exit_code == 0, result.output
    after = readme.read_bytes().decode()
    head, tail = before.split("<!-- reportgen:start -->")[0], before.split("<!-- reportgen:end -->")[1]
    assert after.startswith(head + "<!-- reportgen:start -->")
    assert after.endswith("<!-- reportgen:end -->" + tail)
    assert "6,738,415,616" in after and "old\n" not in after


@pytest.mark.parametrize(
    "text", ["no markers here\n", "<!-- reportgen:start -->\n<!-- reportgen:start -->\n<!-- reportgen:end -->\n"]
)
def test_render_into_with_bad_markers_leaves_the_file(tmp_path: Path, text: str):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    result = CliRunner().invoke(main, ["render", str(ASSIGNMENT), "--into", str(readme)])
    assert result.exit_code == 2
    assert "reportgen:start" in result.output
    assert readme.read_text() == text
