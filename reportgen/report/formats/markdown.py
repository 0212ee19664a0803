"""The "markdown" format, README.md: the Markdown body as it is (static SVG charts under charts/)."""

from __future__ import annotations

from reportgen.report.formats import FORMATS, Format, FormatInput, FormatOutput


class MarkdownFormat(Format):
    """README.md, for GitHub and any Markdown viewer."""

    name = "markdown"
    file_name = "README.md"
    template_suffixes = (".md.j2",)

    def render(self, job: FormatInput) -> FormatOutput:
        return FormatOutput({self.file_name: job.body.encode("utf-8")})


FORMATS.register(MarkdownFormat.name, MarkdownFormat())
