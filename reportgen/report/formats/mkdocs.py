"""The "mkdocs" format, index.md: the Markdown body for Python-Markdown, as MkDocs shows it (``reportgen publish``).

Python-Markdown differs from GitHub in two ways this target allows for: it does not read Markdown
inside raw HTML blocks (so tables carry no wrapper ``<div>``, and the content of each ``<details>``
arrives already converted to HTML), and its ``toc`` extension makes other heading anchors (``anchors =
"mkdocs"``: the table of contents links to the ids MkDocs gives). Works with the default theme and
with Material, without any extension beyond MkDocs' defaults.
"""

from __future__ import annotations

from reportgen.report.formats import FORMATS, Format, FormatInput, FormatOutput


class MkDocsFormat(Format):
    """index.md, a page of a MkDocs site (static SVG charts under charts/)."""

    name = "mkdocs"
    file_name = "index.md"
    template_suffixes = (".md.j2",)
    anchors = "mkdocs"

    def render(self, job: FormatInput) -> FormatOutput:
        return FormatOutput({self.file_name: job.body.encode("utf-8")})


FORMATS.register(MkDocsFormat.name, MkDocsFormat())
