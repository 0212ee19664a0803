"""The study author's own prose (subtitle, introduction, conclusion, card text, claims, glossary) as Markdown.

Model outputs are untrusted and escaped (``report.markdown.md_escape``). The author's fields are Markdown
they wrote on purpose: ``**bold**``, ``*emphasis*``, ``code``, links, lists, quotes and code blocks should
render. They are still not allowed to change the page itself, in any format: the text is parsed
(markdown-it, raw HTML off) and written out again from a whitelist, with our own escaping for every piece
of text. So:

* raw HTML (``<script>``, ``<img>``) is shown as text, never passed through to the HTML or a README;
* a link keeps its target only for http(s), mailto and in-page ``#anchors``; any other link (``javascript:``,
  ``file:``) is its text alone;
* an image never loads: it becomes a link to its address (http(s) only) or its alt text, so no format
  fetches a file or URL while rendering;
* a heading becomes a bold line (the report owns the page's structure and its table of contents);
* control characters are shown as visible symbols (``util.text.visible_controls``).

The same output then goes into every format: GitHub renders it, markdown-it turns it into the HTML and PDF,
MkDocs' Python-Markdown into its pages.
"""

from __future__ import annotations

import functools
import re

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from reportgen.report.markdown import md_code, md_escape_inline, md_inline_code, md_link, md_link_destination, md_unblock
from reportgen.util.text import visible_controls

__all__ = ["author_blocks", "author_inline", "author_plain"]

_ANCHOR = re.compile(r"^#[\w-]+$")  # an in-page link, e.g. to a section of the report


@functools.lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "typographer": False})
    md.enable("strikethrough")
    return md


def _tree(text: object) -> SyntaxTreeNode:
    source = visible_controls(str(text).replace("\r\n", "\n").replace("\r", "\n"))
    return SyntaxTreeNode(_parser().parse(source))


# ------------------------------------------------------------------------------------------------
# Inline content


def _inline(node: SyntaxTreeNode) -> str:
    """One line of Markdown for an ``inline`` node's children."""
    out = "".join(_span(child) for child in node.children)
    return " ".join(out.split())  # soft breaks and runs of spaces: one space, as every renderer shows them


def _span(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind == "text":
        return md_escape_inline(node.content)
    if kind in ("softbreak", "hardbreak"):
        return " "
    if kind == "code_inline":
        return md_inline_code(node.content)
    if kind == "strong":
        return _wrap("**", node)
    if kind == "em":
        return _wrap("*", node)
    if kind == "s":
        return _wrap("~~", node)
    if kind == "link":
        label = "".join(_span(child) for child in node.children).strip()
        href = str(node.attrs.get("href", ""))
        dest = href if _ANCHOR.match(href) else md_link_destination(href)
        return f"[{label}]({dest})" if dest and label else label
    if kind == "image":
        alt = "".join(_span(child) for child in node.children).strip()
        src = str(node.attrs.get("src", ""))
        if src.lower().startswith(("http://", "https://")):
            return md_link(src, f"image: {node.content or src}")  # a link, never an image that loads
        return alt
    return "".join(_span(child) for child in node.children) or md_escape_inline(node.content)


def _wrap(marker: str, node: SyntaxTreeNode) -> str:
    inner = "".join(_span(child) for child in node.children).strip()
    return f"{marker}{inner}{marker}" if inner else ""


def _line(node: SyntaxTreeNode) -> str:
    """An inline node as one line that starts no block: text that begins with ``-``, ``#`` or ``1.`` is
    escaped there (markup of our own, such as ``**``, is left alone)."""
    line = _inline(node)
    starts_with_text = bool(node.children) and node.children[0].type == "text"
    return md_unblock(line) if starts_with_text else line


# ------------------------------------------------------------------------------------------------
# Blocks


def _blocks(node: SyntaxTreeNode) -> list[str]:
    """Markdown blocks (separated by blank lines where they are joined) for a container's children."""
    out: list[str] = []
    for child in node.children:
        block = _block(child)
        if block:
            out.append(block)
    return out


def _block(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind == "paragraph":
        return _line(node.children[0]) if node.children else ""
    if kind == "heading":
        text = _inline(node.children[0]) if node.children else ""
        return f"**{text}**" if text else ""
    if kind in ("fence", "code_block"):
        return md_code(node.content, str(node.info or "") if kind == "fence" else "")
    if kind == "blockquote":
        inner = "\n\n".join(_blocks(node))
        return "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))
    if kind in ("bullet_list", "ordered_list"):
        return _list(node)
    if kind == "hr":
        return ""
    return md_escape_inline(node.content)


def _list(node: SyntaxTreeNode) -> str:
    start = int(node.attrs.get("start", 1) or 1) if node.type == "ordered_list" else 1
    lines: list[str] = []
    for index, item in enumerate(node.children):
        marker = f"{start + index}." if node.type == "ordered_list" else "-"
        pad = " " * (len(marker) + 1)
        tight = any(child.type == "paragraph" and child.hidden for child in item.children)
        body = ("\n" if tight else "\n\n").join(_blocks(item)).split("\n") or [""]
        lines.append(f"{marker} {body[0]}".rstrip())
        lines.extend(f"{pad}{line}" if line else "" for line in body[1:])
    return "\n".join(lines)


def _flat(node: SyntaxTreeNode) -> list[str]:
    """Every piece of inline text in reading order, for a field shown on one line."""
    if node.type == "inline":
        return [_line(node)]
    if node.type in ("fence", "code_block"):
        return [md_inline_code(node.content)]
    if node.type == "heading":
        return [f"**{_inline(node.children[0])}**"] if node.children else []
    pieces: list[str] = []
    start = int(node.attrs.get("start", 1) or 1) if node.type == "ordered_list" else None
    for index, child in enumerate(node.children):
        inner = _flat(child)
        if start is not None and inner:  # keep an ordered item's number ("2024. was a year")
            inner[0] = f"{start + index}\\. {inner[0]}"
        pieces.extend(inner)
    return pieces


# ------------------------------------------------------------------------------------------------
# The two shapes the templates use


def author_blocks(text: str | None) -> list[str]:
    """The author's multi-paragraph field (introduction, conclusion) as Markdown blocks, one per paragraph,
    list, quote or code block; ``[]`` when empty."""
    if not text or not str(text).strip():
        return []
    return _blocks(_tree(text))


def author_inline(text: object) -> str:
    """The author's one-line field (subtitle, card text, claim, glossary definition) as Markdown on one
    line: emphasis, code and links render; paragraphs and list items are joined with "; "."""
    if text is None or not str(text).strip():
        return ""
    return "; ".join(p for p in _flat(_tree(text)) if p)


def author_plain(text: object) -> str:
    """The author's field as plain text on one line (for metadata: the PDF's Subject, a <meta> description)."""
    if text is None or not str(text).strip():
        return ""

    def words(node: SyntaxTreeNode) -> str:
        if node.type in ("text", "code_inline"):
            return node.content
        if node.type in ("softbreak", "hardbreak"):
            return " "
        return "".join(words(child) for child in node.children)

    return " ".join(words(_tree(text)).split())
