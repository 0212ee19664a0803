"""`reportgen render --into README.md` in a host repository: the charts land beside the host with paths that
resolve from it, the report's headings sit under the host's, and every in-page link lands on the heading
GitHub gives that anchor in the whole file. Checked in the HTML cmark-gfm (GitHub's renderer) writes, with the
anchors github-slugger (the slug rule GitHub's pages use, from npm) gives its headings, not reportgen's slugger."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reportgen.report.embed import embed_markdown, heading_shift
from reportgen.report.markdown import headings

ROOT = Path(__file__).parent.parent
SLUGGER = ROOT / ".cache" / "node" / "node_modules" / "github-slugger" / "index.js"

# github-slugger's anchors for heading texts (JSON on stdin), in document order: one slugger, so a repeated
# heading gets "-1", "-2", ... as on GitHub.
SLUG = """
import {readFileSync} from 'node:fs';
import {pathToFileURL} from 'node:url';
const {default: GithubSlugger} = await import(pathToFileURL(process.argv[1]).href);
const slugger = new GithubSlugger();
console.log(JSON.stringify(JSON.parse(readFileSync(0, 'utf8')).map((title) => slugger.slug(title))));
"""

HOST = """\
# My project

Some words about it.

## Results

Our own results, written by hand: a heading the report also has.

## The study

<!-- reportgen:start -->
<!-- reportgen:end -->

## License

MIT
"""


class _Images(HTMLParser):
    """The images, the number of H1s, and the text of every heading (as GitHub slugs it) in rendered HTML."""

    HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")

    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.h1 = 0
        self.headings: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs).get("src") or "")
        if tag == "h1":
            self.h1 += 1
        if tag in self.HEADINGS:
            self._in_heading = True
            self.headings.append("")

    def handle_endtag(self, tag):
        if tag in self.HEADINGS:
            self._in_heading = False

    def handle_data(self, data):
        if self._in_heading:
            self.headings[-1] += data


def _github_anchors(titles: list[str]) -> list[str]:
    if shutil.which("node") is None or not SLUGGER.exists():
        pytest.skip("npm github-slugger is not installed (make test installs it under .cache/node)")
    done = subprocess.run(
        ["node", "--input-type=module", "-e", SLUG, str(SLUGGER)],
        input=json.dumps(titles),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_github_slugger_gives_githubs_anchors():
    """The reference itself, on headings whose anchors GitHub is known to give."""
    titles = ["Results", "Results", "Model 3: Securix Fine Tune GPT Neo", "What “retraining” changed — 95% CI", "C++ & Rust"]
    assert _github_anchors(titles) == [
        "results",
        "results-1",
        "model-3-securix-fine-tune-gpt-neo",
        "what-retraining-changed--95-ci",
        "c--rust",
    ]


def _gfm(markdown: str) -> str:
    if shutil.which("cmark-gfm") is None:
        pytest.skip("cmark-gfm is not installed (make test installs the Debian package)")
    args = ["cmark-gfm", "-e", "table", "-e", "strikethrough", "-e", "autolink", "-e", "tagfilter"]
    return subprocess.run(args, input=markdown, capture_output=True, text=True, check=True, timeout=60).stdout


def test_heading_shift_rules():
    assert heading_shift("# Title\n\n## Section\n", "") == 2
    assert heading_shift("Some text\n", "\n# Title after\n") == 1
    assert heading_shift("Some text\n", "no headings\n") == 0


def test_links_follow_anchors_made_unique_by_the_host():
    report = "# Study\n\n- [Results](#results)\n\n## Results\n\ntext\n"
    body = embed_markdown(
        "# Host\n\n## Results\n\n<!-- reportgen:start -->", report, "<!-- reportgen:end -->\n", chart_paths=[], asset_prefix=""
    )
    assert body.startswith("### Study")  # under the host's "## Results", the last heading before the marker
    assert "- [Results](#results-1)" in body and "#### Results" in body


@pytest.mark.slow
def test_render_into_a_host_readme(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    readme = repo / "README.md"
    readme.write_text(HOST, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "reportgen",
        "-q",
        "render",
        str(ROOT / "configs" / "assignment.yaml"),
        "--into",
        str(readme),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    text = readme.read_text(encoding="utf-8")
    before, after = HOST.split("<!-- reportgen:start -->\n<!-- reportgen:end -->")
    assert text.startswith(before + "<!-- reportgen:start -->") and text.endswith("<!-- reportgen:end -->" + after)

    html = _gfm(text)
    parser = _Images()
    parser.feed(html)
    assert parser.h1 == 1, "the host's H1 stays the only one"
    assert parser.srcs, "the report's charts are shown"
    for src in parser.srcs:
        assert not src.startswith(("/", "http")) and (repo / src).is_file(), f"{src} does not resolve from the host file"
    assert all(src.startswith("README_files/charts/") for src in parser.srcs)

    anchors = set(_github_anchors(parser.headings))  # what GitHub calls every heading of the whole file
    assert len(parser.headings) == len(headings(text)) > 5
    region = text.split("<!-- reportgen:start -->", 1)[1].split("<!-- reportgen:end -->", 1)[0]
    links = re.findall(r"\]\(#([^)]+)\)", region)
    assert links and all(link in anchors for link in links), sorted(set(links) - anchors)
    levels = [level for level, _, _ in headings(region)]
    assert min(levels) == 3  # the report's title sits under "## The study"

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and readme.read_text(encoding="utf-8") == text  # a second render changes nothing
