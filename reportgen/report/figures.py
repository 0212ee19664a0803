"""Captions and figures in the HTML (and so the PDF): the Markdown's conventions turned into HTML's own.

The Markdown template writes a table's caption as a bold paragraph right before the table, and a chart as
an image (or, for the interactive page, a placeholder ``<div class="chart">``) followed by its caption in
italics. That reads well on GitHub, which allows no ``<caption>`` or ``<figure>``. In the HTML, a core rule
of markdown-it rewrites the two patterns:

* ``**Caption**`` + ``<div class="table-wrap">`` + table → the table's own ``<caption>`` (screen readers
  announce it with the table, and the PDF keeps it with the table's first rows);
* a table's scrolling box gets ``tabindex="0"`` (a keyboard can scroll it);
* a table without a caption → ``<table aria-labelledby=…>``: its section's heading names it;
* chart + ``*caption*`` → ``<figure aria-labelledby=…>`` holding the chart and its ``<figcaption>``.

Nothing else changes; texts inside the captions are rendered by markdown-it as before (already escaped).
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from html import escape
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

__all__ = ["captions_and_figures"]

_TABLE_WRAP = re.compile(r'^<div class="table-wrap[^"]*">\s*$')
_CHART_PLACEHOLDER = re.compile(r'^<div class="chart" data-chart="([a-z0-9-]+)"></div>\s*$')


def _only(inline: Token, kind: str) -> list[Token] | None:
    """The children inside ``kind`` (e.g. strong) when the inline content is exactly one such span."""
    children = [c for c in inline.children or [] if c.type != "text" or c.content]  # markdown-it's empty edges
    if len(children) < 2 or children[0].type != f"{kind}_open" or children[-1].type != f"{kind}_close":
        return None
    depth = 0
    for index, child in enumerate(children):
        depth += child.nesting if child.type in (f"{kind}_open", f"{kind}_close") else 0
        if depth == 0 and index < len(children) - 1:
            return None  # the first span closes before the end: more than one span
    return children[1:-1]


def _paragraph_inline(tokens: list[Token], index: int) -> Token | None:
    if index + 2 < len(tokens) and tokens[index].type == "paragraph_open" and tokens[index + 2].type == "paragraph_close":
        return tokens[index + 1]
    return None


def _focusable(wrap: Token) -> None:
    """A table's box scrolls sideways on a narrow screen: keyboard users must be able to focus it to scroll."""
    wrap.content = wrap.content.replace('">', '" tabindex="0">', 1)


def _html(content: str) -> Token:
    token = Token("html_block", "", 0)
    token.content = content
    return token


def captions_and_figures(md: MarkdownIt) -> None:
    """Register the rule on a markdown-it parser (for the HTML only: the README keeps its Markdown)."""

    renderer = md.renderer
    assert isinstance(renderer, RendererHTML)  # markdown-it's own: the report renders nothing else

    def inline_html(children: list[Token], env: MutableMapping[str, Any]) -> str:
        return renderer.renderInline(children, md.options, env)

    def rule(state: StateCore) -> None:
        tokens, out, index, figures, heading = state.tokens, [], 0, 0, ""
        while index < len(tokens):
            inline = _paragraph_inline(tokens, index)
            caption = _only(inline, "strong") if inline is not None else None
            if (
                caption is not None
                and index + 4 < len(tokens)
                and tokens[index + 3].type == "html_block"
                and _TABLE_WRAP.match(tokens[index + 3].content)
                and tokens[index + 4].type == "table_open"
            ):
                _focusable(tokens[index + 3])
                out += [tokens[index + 3], tokens[index + 4], _html(f"<caption>{inline_html(caption, state.env)}</caption>\n")]
                index += 5
                continue
            if tokens[index].type == "heading_open":
                heading = str(tokens[index].attrGet("id") or "")
            if tokens[index].type == "table_open" and heading:  # no caption of its own: its section's heading names it
                tokens[index].attrSet("aria-labelledby", heading)
            chart = _chart(tokens, index)
            if chart is not None:
                chart_tokens, after = chart
                figcaption = _paragraph_inline(tokens, after)
                text = _only(figcaption, "em") if figcaption is not None else None
                if text is not None:
                    figures += 1
                    label = f"figure-{figures}"
                    out += [_html(f'<figure class="report-figure" aria-labelledby="{label}">\n'), *chart_tokens]
                    out.append(_html(f'<figcaption id="{label}">{inline_html(text, state.env)}</figcaption>\n</figure>\n'))
                    index = after + 3
                    continue
            if tokens[index].type == "html_block" and _TABLE_WRAP.match(tokens[index].content):
                _focusable(tokens[index])
            out.append(tokens[index])
            index += 1
        state.tokens = out

    md.core.ruler.push("reportgen_captions_and_figures", rule)


def _chart(tokens: list[Token], index: int) -> tuple[list[Token], int] | None:
    """(the chart's tokens, the index after them) when a chart starts at ``index``: an image alone in its
    paragraph (the static charts) or the interactive page's placeholder block."""
    token = tokens[index]
    if token.type == "html_block" and _CHART_PLACEHOLDER.match(token.content):
        return [token], index + 1
    inline = _paragraph_inline(tokens, index)
    children = [c for c in inline.children or [] if c.type != "text" or c.content] if inline is not None else []
    if inline is not None and len(children) == 1 and children[0].type == "image":
        return [_html(_image_html(children[0]))], index + 3
    return None


def _image_html(image: Token) -> str:
    """The ``<img>`` of an image-only paragraph, as markdown-it renders it (without the ``<p>``)."""
    src = image.attrGet("src") or ""
    alt = "".join(child.content for child in image.children or [])
    return f'<img src="{escape(str(src))}" alt="{escape(alt)}">\n'
