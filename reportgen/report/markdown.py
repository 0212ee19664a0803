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
from reportgen.util.text import code_fence, visible_controls

__all__ = [
    "TOC_MARKER",
    "insert_toc",
    "markdown_to_html",
    "md_cell",
    "md_code",
    "md_escape",
    "md_escape_inline",
    "md_inline_code",
    "md_link",
    "md_link_destination",
    "md_unblock",
    "md_wrapped",
    "slugify",
    "toc_list",
]

TOC_MARKER = "<!-- reportgen:toc -->"

# Characters that can start inline syntax anywhere in a line (emphasis, code, links, images,
# strikethrough, table pipes, escapes). "_" is handled apart: inside a word it cannot open emphasis.
_INLINE_SPECIAL = re.compile(r"([\\`*\[\]|~])")
_UNDERSCORE_NOT_INTRAWORD = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# Block syntax recognised at the start of a line (after the leading spaces we strip).
_LIST_OR_QUOTE = re.compile(r"^([-+*=#])")
_ORDERED = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")


def md_escape_inline(text: str) -> str:
    """Untrusted text as a piece of a Markdown line: ``< > &`` as entities, inline syntax backslash-escaped,
    control characters visible; its spaces kept (the caller places it inside a line)."""
    text = visible_controls(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _INLINE_SPECIAL.sub(r"\\\1", text)
    return _UNDERSCORE_NOT_INTRAWORD.sub(r"\\_", text)


def md_unblock(line: str) -> str:
    """``line`` with whatever would start a block at its beginning escaped: headings, bullets, quotes, setext
    underlines, thematic breaks, ordered-list numbers."""
    line = _LIST_OR_QUOTE.sub(r"\\\1", line)
    return _ORDERED.sub(r"\1\\\2", line)


def _escape_line(line: str) -> str:
    return md_unblock(md_escape_inline(line.strip()))


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


def md_wrapped(text: object) -> str:
    """Untrusted text that keeps its lines and wraps where it is read (GitHub shows a code block at its full
    width, scrolling sideways): each line escaped as ``md_escape_inline``, its indentation kept as no-break
    spaces, a hard line break (a trailing backslash) after every line but the last, blank lines kept."""
    lines = ("" if text is None else str(text)).replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    out = []
    for line in lines:
        body = line.lstrip(" \t")
        indent = len(line[: len(line) - len(body)].replace("\t", "    "))
        escaped = md_escape_inline(body.rstrip())
        out.append("&nbsp;" * indent + escaped if indent else md_unblock(escaped) or "&nbsp;")
    return "\\\n".join(out)


def md_cell(text: object) -> str:
    """Escape untrusted text for a GitHub table cell: as ``md_escape``, newlines become ``<br>``."""
    escaped = md_escape(text)
    return "<br>".join(part for part in escaped.split("\n") if part) if escaped else ""


def md_code(text: object, lang: str = "") -> str:
    """A fenced code block whose fence is longer than any backtick run inside ``text``."""
    return code_fence(text, lang)


def md_inline_code(text: object) -> str:
    """An inline code span for a short untrusted value (safe inside table cells too)."""
    body = "" if text is None else " ".join(visible_controls(str(text)).split())
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
    dest = md_link_destination(url_text)
    if dest is None:
        return label if title is None else f"{label} ({md_escape(url_text)})"
    return f"[{label}]({dest})"


def md_link_destination(url: str) -> str | None:
    """A link destination for an http(s) or mailto URL, with the characters that would end or break it
    percent-encoded; None for any other scheme (``javascript:``, ``file:``) or a URL with line breaks."""
    url_text = url.strip()
    if not url_text.lower().startswith(_SAFE_SCHEMES) or any(c in url_text for c in "\n\r\t"):
        return None
    return (
        url_text.replace("\\", "%5C")
        .replace(" ", "%20")
        .replace("(", "%28")
        .replace(")", "%29")
        .replace("<", "%3C")
        .replace(">", "%3E")
        .replace("|", "%7C")
        .replace("`", "%60")
    )


# --------------------------------------------------------------------------------------------------
# Heading slugs (GitHub's algorithm) and the table of contents


def slugify(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation removed, each space a hyphen.

    Mirrors github-slugger (used by github.com): characters that are not letters, digits, ``_``,
    ``-`` or spaces are dropped; runs of spaces are not collapsed (``a — b`` → ``a--b``).
    """
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _gfm_parser() -> MarkdownIt:
    """GitHub-flavoured Markdown as the report uses it: CommonMark, tables, strikethrough, GitHub's heading ids."""
    md = MarkdownIt("commonmark", {"html": True, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.use(anchors_plugin, min_level=1, max_level=6, slug_func=slugify)
    return md


@functools.lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return _gfm_parser()


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
    return markdown.replace(
        TOC_MARKER, toc_list(markdown, min_level=min_level, max_level=max_level, skip=skip, anchors=anchors), 1
    )


def toc_list(
    markdown: str,
    *,
    min_level: int = 2,
    max_level: int = 3,
    skip: tuple[str, ...] = ("table-of-contents",),
    anchors: str = "github",
) -> str:
    """The table of contents of ``markdown``: a nested Markdown list of links to its headings (see ``insert_toc``)."""
    lines = []
    for level, text, anchor in headings(markdown, anchors=anchors):
        if min_level <= level <= max_level and anchor not in skip:
            indent = "  " * (level - min_level)
            lines.append(f"{indent}- [{md_escape(text)}](#{anchor})")
    return "\n".join(lines)


def markdown_to_html(markdown: str) -> str:
    """Render GitHub-flavoured Markdown (CommonMark + tables + strikethrough) to an HTML fragment.

    Headings get ``id`` anchors from ``slugify`` (the same as GitHub's), so the table of contents
    works in the HTML and PDF too. Table captions become ``<caption>`` and charts ``<figure>`` with a
    ``<figcaption>`` (``report.figures``).
    """
    return _html_parser().render(markdown)


@functools.lru_cache(maxsize=1)
def _html_parser() -> MarkdownIt:
    from reportgen.report.figures import captions_and_figures

    return _gfm_parser().use(captions_and_figures).use(identifier_breaks)


# A separator inside an identifier (``LlamaForCausalLM``, ``q_proj``, ``model.safetensors``, ``gelu-new``): a line
# may break after it, and nowhere else inside the identifier.
_IDENTIFIER_SEPARATOR = re.compile(r"(?<=[0-9A-Za-z])([_./-])(?=[0-9A-Za-z])")


def identifier_breaks(md: MarkdownIt) -> None:
    """Inline code in the HTML (and so the PDF) gets a ``<wbr>`` after each ``_ . / -`` between letters or
    digits: a narrow column breaks an identifier there, never in the middle of a word (the stylesheet keeps
    ``code`` from breaking anywhere else). Copying the text copies no extra character."""
    from markdown_it.common.utils import escapeHtml

    def code_inline(self, tokens, index, options, env) -> str:
        token = tokens[index]
        text = _IDENTIFIER_SEPARATOR.sub(r"\1<wbr>", escapeHtml(token.content))
        return f"<code{self.renderAttrs(token)}>{text}</code>"

    md.add_render_rule("code_inline", code_inline)


def md_bold(text: str) -> str:
    """Strong emphasis around text that is already Markdown-safe."""
    return f"**{text}**"


@functools.lru_cache(maxsize=1)
def markdown_style():
    """The style the analysis is phrased in for a report (analysis.phrasing.Style): escaped text, code spans, bold."""
    from reportgen.analysis.phrasing import Style

    return Style(escape=md_escape, code=md_inline_code, bold=md_bold)
