"""The "mkdocs" format, index.md: the Markdown body for Python-Markdown, as MkDocs shows it (``reportgen publish``).

Python-Markdown differs from GitHub in two ways this target allows for: it does not read Markdown
inside raw HTML blocks (so tables carry no wrapper ``<div>``, and the content of each ``<details>``
arrives already converted to HTML), and its ``toc`` extension makes other heading anchors (``anchors =
"mkdocs"``: the table of contents links to the ids MkDocs gives). Works with the default theme and
with Material, without any extension beyond MkDocs' defaults; the page starts with MkDocs metadata
(``FRONT_MATTER``) that asks Material to give the report the width of the site navigation.
"""

from __future__ import annotations

from reportgen.report.formats import FORMATS, Format, FormatInput, FormatOutput

#: Page metadata: Material hides its site navigation on this page (other themes ignore the key), so the report's
#: tables and 900-px charts get a column as wide as the window allows, and the charts are shown at their natural
#: size instead of ~75% (Material's column between both sidebars is ~690 px at 1280 px). The page's own
#: headings stay in Material's contents sidebar; the site's pages stay in the header's menu on narrow screens.
FRONT_MATTER = "---\nhide:\n  - navigation\n---\n\n"


class MkDocsFormat(Format):
    """index.md, a page of a MkDocs site (static SVG charts under charts/)."""

    name = "mkdocs"
    file_name = "index.md"
    template_suffixes = (".md.j2",)
    anchors = "mkdocs"

    def render(self, job: FormatInput) -> FormatOutput:
        return FormatOutput({self.file_name: (FRONT_MATTER + job.body).encode("utf-8")})


FORMATS.register(MkDocsFormat.name, MkDocsFormat())
