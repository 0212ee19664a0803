"""The report's Markdown fitted into a host file (``render --into README.md``).

Between the host's ``<!-- reportgen:start -->`` and ``<!-- reportgen:end -->`` markers the report must read as
part of the host, where GitHub (or MkDocs) shows it:

* chart images point at the chart files written for the host (``README_files/charts/…`` by default), so every
  ``src`` resolves from the host file's folder;
* headings are shifted to sit under the host's heading at the marker (a host with its own ``# Title`` gets no
  second H1): the report's title becomes one level below it;
* in-page links (the table of contents) use the anchors GitHub gives the headings in the *whole* file: a host
  heading with the same text as one of ours moves ours to ``-1``, and our links follow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from reportgen.report.markdown import _parser, headings

__all__ = ["embed_markdown", "heading_shift"]

_LINK_TO_ANCHOR = re.compile(r"\]\(#([^)\s]+)\)")


def heading_shift(host_before: str, host_after: str) -> int:
    """How many levels the report's headings go down: the level of the host's last heading before the
    marker; with none, 1 when the host has an H1 elsewhere (the report must not add a second one), else 0."""
    before = headings(host_before)
    if before:
        return before[-1][0]
    return 1 if any(level == 1 for level, _, _ in headings(host_after)) else 0


def _image_lines(markdown: str, paths: set[str]) -> set[int]:
    """Lines of paragraphs holding one of our chart images (code blocks never count)."""
    lines: set[int] = set()
    for token in _parser().parse(markdown):
        if (
            token.type == "inline"
            and token.map
            and any(c.type == "image" and c.attrGet("src") in paths for c in token.children or [])
        ):
            lines.update(range(token.map[0], token.map[1]))
    return lines


def _prefix_images(markdown: str, paths: set[str], prefix: str) -> str:
    if not prefix or not paths:
        return markdown
    lines = markdown.split("\n")
    for number in _image_lines(markdown, paths):
        for path in paths:
            lines[number] = lines[number].replace(f"]({path})", f"]({prefix}/{path})")
    return "\n".join(lines)


def _shift_headings(markdown: str, shift: int) -> str:
    if shift <= 0:
        return markdown
    lines = markdown.split("\n")
    for token in _parser().parse(markdown):
        if token.type == "heading_open" and token.map and token.markup.startswith("#"):
            number = token.map[0]
            level = min(6, len(token.markup) + shift)
            lines[number] = re.sub(r"^(\s{0,3})#{1,6}", lambda m: m.group(1) + "#" * level, lines[number], count=1)
    return "\n".join(lines)


def embed_markdown(
    host_before: str, report_markdown: str, host_after: str, *, chart_paths: Iterable[str], asset_prefix: str
) -> str:
    """The text to put between the markers: ``report_markdown`` with its chart paths, heading levels and
    in-page links fitted to the host (``host_before`` / ``host_after``: the host's text around the markers)."""
    body = _prefix_images(report_markdown, set(chart_paths), asset_prefix.rstrip("/"))
    body = _shift_headings(body, heading_shift(host_before, host_after))
    own = [anchor for _, _, anchor in headings(body)]
    whole = headings(f"{host_before}\n{body}\n{host_after}")  # as replace_between_markers joins them
    first = len(headings(host_before))
    placed = [anchor for _, _, anchor in whole[first : first + len(own)]]
    renamed = {old: new for old, new in zip(own, placed) if old != new}
    if not renamed:
        return body
    return _LINK_TO_ANCHOR.sub(lambda m: f"](#{renamed.get(m.group(1), m.group(1))})", body)
