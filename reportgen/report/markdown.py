"""Markdown helpers: escaping untrusted text, GitHub heading slugs, the table of contents, Markdown → HTML.

Everything that comes from a config, a model card or a model's output is *untrusted*: it is escaped
before it reaches a template, so neither GitHub nor markdown-it turns it into HTML, links, images,
headings, lists or tables. That matters because markdown-it runs with ``html`` on (our own templates
emit a few raw tags: ``<details>``, chart placeholders).
"""

from __future__ import annotations

import functools
import re

from markdown_it import MarkdownIt
from mdit_py_plugins.anchors import anchors_plugin

from reportgen.errors import RenderError
from reportgen.util.text import code_fence

__all__ = [
    "TOC_MARKER",
    "insert_toc",
    "markdown_to_html",
    "md_cell",
    "md_code",
    "md_escape",
    "md_inline_code",
    "md_link",
    "slugify",
]

TOC_MARKER = "<!-- reportgen:toc -->"

# Characters that can start inline syntax anywhere in a line (emphasis, code, links, images,
# strikethrough, table pipes, escapes). "_" is handled apart: inside a word it cannot open emphasis.
_INLINE_SPECIAL = re.compile(r"([\\`*\[\]|~])")
_UNDERSCORE_NOT_INTRAWORD = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# Block syntax recognised at the start of a line (after the leading spaces we strip).
_LIST_OR_QUOTE = re.compile(r"^([-+*=#])")
_ORDERED = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")


def _escape_line(line: str) -> str:
    line = line.strip()
    line = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    line = _INLINE_SPECIAL.sub(r"\\\1", line)
    line = _UNDERSCORE_NOT_INTRAWORD.sub(r"\\_", line)
    line = _LIST_OR_QUOTE.sub(r"\\\1", line)  # headings, bullets, setext underlines, thematic breaks
    line = _ORDERED.sub(r"\1\\\2", line)
    return line


def md_escape(text: object) -> str:
    """Escape untrusted text for a Markdown paragraph (or list item), keeping its line breaks.

    Backslash-escapes Markdown syntax, replaces ``< > &`` with entities (so no raw HTML, autolink or
    entity trick survives), strips leading indentation (no accidental code blocks) and turns blank
    lines into a single paragraph break. ``None`` becomes the empty string.
    """
    if text is None:
        return ""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    for line in lines:
        escaped = _escape_line(line)
        if not escaped and (not out or out[-1] == ""):
            continue  # collapse runs of blank lines
        out.append(escaped)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out)


def md_cell(text: object) -> str:
    """Escape untrusted text for a GitHub table cell: as ``md_escape``, newlines become ``<br>``."""
    escaped = md_escape(text)
    return "<br>".join(part for part in escaped.split("\n") if part) if escaped else ""


def md_code(text: object, lang: str = "") -> str:
    """A fenced code block whose fence is longer than any backtick run inside ``text``."""
    return code_fence(text, lang)


def md_inline_code(text: object) -> str:
    """An inline code span for a short untrusted value (safe inside table cells too)."""
    body = "" if text is None else " ".join(str(text).split())
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or not body.strip() else ""
    # A pipe would still split a GitHub table cell inside a code span.
    return f"{ticks}{pad}{body.replace('|', chr(92) + '|')}{pad}{ticks}"


_SAFE_SCHEMES = ("http://", "https://", "mailto:")


def md_link(url: object, title: object | None = None) -> str:
    """A Markdown link to an http(s) URL; any other scheme is shown as escaped text, not linked."""
    url_text = "" if url is None else str(url).strip()
    label = md_escape(title if title else url_text).replace("\n", " ")
    if not url_text.lower().startswith(_SAFE_SCHEMES) or any(c in url_text for c in "\n\r\t"):
        return label if title is None else f"{label} ({md_escape(url_text)})"
    dest = (
        url_text.replace("\\", "%5C")
        .replace(" ", "%20")
        .replace("(", "%28")
        .replace(")", "%29")
        .replace("<", "%3C")
        .replace(">", "%3E")
        .replace("|", "%7C")
        .replace("`", "%60")
    )
    return f"[{label}]({dest})"


# --------------------------------------------------------------------------------------------------
# Heading slugs (GitHub's algorithm) and the table of contents


def slugify(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation removed, each space a hyphen.

    Mirrors github-slugger (used by github.com): characters that are not letters, digits, ``_``,
    ``-`` or spaces are dropped; runs of spaces are not collapsed (``a — b`` → ``a--b``).
    """
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


@functools.lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.use(anchors_plugin, min_level=1, max_level=6, slug_func=slugify)
    return md


def mkdocs_slugify(title: str) -> str:
    """The anchor MkDocs gives a heading (Python-Markdown's ``toc`` extension, the default of both themes)."""
    try:
        from markdown.extensions.toc import slugify as toc_slugify
    except ImportError:  # pragma: no cover - publish needs mkdocs, which brings Python-Markdown
        raise RenderError("MkDocs pages need Python-Markdown. Fix: pip install 'reportgen[publish]'") from None
    return toc_slugify(title, "-")


def _mkdocs_unique(anchor: str, seen: set[str]) -> str:
    from markdown.extensions.toc import unique

    return unique(anchor, seen)


#: Heading-anchor rules by name: each is (slug of a heading's text, make it unique among the ids so far).
#: "github": github-slugger's rule (README.md on github.com, and the HTML/PDF, whose ids markdown-it sets the same way);
#: "mkdocs": Python-Markdown's toc rule (MkDocs pages: ``_1``, ``_2`` suffixes for repeats).
ANCHOR_RULES = ("github", "mkdocs")


def headings(markdown: str, *, anchors: str = "github") -> list[tuple[int, str, str]]:
    """``(level, text, anchor)`` of every heading, anchors as the target (GitHub / the HTML, or MkDocs) will make them."""
    tokens = _parser().parse(markdown)
    out = []
    seen: set[str] = set()
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            inline = tokens[index + 1]
            text = "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))
            anchor = token.attrGet("id") or ""
            if anchors == "mkdocs":
                anchor = _mkdocs_unique(mkdocs_slugify(text), seen)
            out.append((int(token.tag[1]), text, str(anchor)))
    return out


def insert_toc(
    markdown: str,
    *,
    min_level: int = 2,
    max_level: int = 3,
    skip: tuple[str, ...] = ("table-of-contents",),
    anchors: str = "github",
) -> str:
    """Replace the line ``<!-- reportgen:toc -->`` with a nested list of links to the headings.

    Links use the anchors computed from the final document by the target's rule (``anchors``: "github"
    or "mkdocs", see ANCHOR_RULES), so duplicates get the suffixes the target gives them (GitHub's
    ``-1``, MkDocs' ``_1``). Without the marker the text is returned unchanged.
    """
    if TOC_MARKER not in markdown:
        return markdown
    lines = []
    for level, text, anchor in headings(markdown, anchors=anchors):
        if min_level <= level <= max_level and anchor not in skip:
            indent = "  " * (level - min_level)
            lines.append(f"{indent}- [{md_escape(text)}](#{anchor})")
    return markdown.replace(TOC_MARKER, "\n".join(lines), 1)


def markdown_to_html(markdown: str) -> str:
    """Render GitHub-flavoured Markdown (CommonMark + tables + strikethrough) to an HTML fragment.

    Headings get ``id`` anchors from ``slugify`` (the same as GitHub's), so the table of contents
    works in the HTML and PDF too.
    """
    return _parser().render(markdown)


def md_bold(text: str) -> str:
    """Strong emphasis around text that is already Markdown-safe."""
    return f"**{text}**"


@functools.lru_cache(maxsize=1)
def markdown_style():
    """The style the analysis is phrased in for a report (analysis.phrasing.Style): escaped text, code spans, bold."""
    from reportgen.analysis.phrasing import Style

    return Style(escape=md_escape, code=md_inline_code, bold=md_bold)
