"""The "html" format, report.html: the Markdown body converted by markdown-it, wrapped in ``report.html.j2`` with the CSS.

The table of contents is not in the body: it is the page's side navigation (``nav``), open beside the
report on a wide screen and a collapsed block above it on a phone.

Charts: the body holds ``<div class="chart" data-chart="NAME"></div>`` placeholders (the Markdown
template prints them for the "html" target); they are replaced here, after the Markdown conversion,
by plotly's divs, so plotly's ``<script>`` never passes through the Markdown parser. The prompt explorer's
slot (``explorer.md.j2``) is replaced the same way by ``explorer.html.j2``: its controls, its data as JSON and
its script (``explorer.js``); its stylesheet (``explorer.css``) goes into the page's head.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jinja2
from markupsafe import Markup

from reportgen.report.charts import PLOTLY_JS, inline_plotly_script, plotly_js
from reportgen.report.formats import FORMATS, Format, FormatInput, FormatOutput
from reportgen.report.explorer import explorer_json, script_json
from reportgen.report.markdown import markdown_to_html, toc_list
from reportgen.report.templates import render_template, template_text

#: Variables report.html.j2 gets besides the ReportContext fields (the template-context test reads this).
WRAPPER_VARIABLES = {
    "body": "the report body: the Markdown rendered to HTML (trusted: untrusted text was escaped in the Markdown).",
    "head": "extra <head> HTML: plotly.js, inline (one file) or a <script src> loading plotly.min.js beside the page (two files).",
    "css": "the stylesheet (the report.css template).",
    "nav": "the table of contents as a nested HTML list of links (the side navigation of report.html; empty for the PDF).",
}

#: Variables explorer.html.j2 gets (the template-context test reads these two).
EXPLORER_VARIABLES = {
    "data": "the explorer's data (report.explorer.explorer_data; its module docstring documents every key), for the options.",
    "json": "the same data as JSON, safe inside <script type=application/json> (report.explorer.script_json).",
    "script": "the explorer's script (the explorer.js template, as it is).",
}
#: The keys of ``data`` the template reads (all of them: report.explorer's docstring).
EXPLORER_DATA_KEYS = {
    "models": "display names, study order.",
    "baseline": "the index of the baseline model.",
    "metrics": "[key, label, binary, decimals] of each per-prompt metric.",
    "correct": "the index in metrics of the 0/1 metric that says right or wrong, or -1.",
    "cats": "the category names.",
}

EXPLORER_SLOT = '<div class="explorer-slot"></div>'
_PLACEHOLDER = re.compile(r'<div class="chart" data-chart="([a-z0-9-]+)"></div>')


def replace_chart_placeholders(html: str, divs: Mapping[str, str]) -> str:
    """Swap each chart placeholder for its plotly div (unknown names are left as they are)."""
    return _PLACEHOLDER.sub(
        lambda m: f'<div class="chart-figure">{divs[m.group(1)]}</div>' if m.group(1) in divs else m.group(0),
        html,
    )


def explorer_parts(env: jinja2.Environment, data: Mapping[str, object]) -> tuple[str, str]:
    """The prompt explorer: (its HTML, controls + data + script, for the slot; its ``<style>`` for the head)."""
    markup = render_template(
        env,
        "explorer.html.j2",
        {"data": data, "json": Markup(script_json(explorer_json(data))), "script": Markup(template_text(env, "explorer.js"))},
    )
    return markup, f"<style>\n{template_text(env, 'explorer.css')}</style>"


def html_page(env: jinja2.Environment, variables: dict, body_html: str, *, head: str = "", nav: str = "") -> str:
    """Wrap an HTML body in report.html.j2 with the stylesheet (and ``nav``, the contents as HTML, if any)."""
    css = render_template(env, "report.css", variables)
    page = dict(variables, body=Markup(body_html), head=Markup(head), css=Markup(css), nav=Markup(nav))
    return render_template(env, "report.html.j2", page)


def render_html(
    env: jinja2.Environment, variables: dict, body_markdown: str, *, chart_divs: Mapping[str, str], single_file: bool
) -> str:
    """The interactive report page: plotly.js inlined (``single_file``) or a relative <script src>; the body's
    headings as the side navigation."""
    body = replace_chart_placeholders(markdown_to_html(body_markdown), chart_divs)
    head = ""
    if chart_divs:
        head = inline_plotly_script() if single_file else f'<script src="{PLOTLY_JS}" charset="utf-8"></script>'
    if variables.get("explorer") and EXPLORER_SLOT in body:
        explorer, style = explorer_parts(env, variables["explorer"])
        body = body.replace(EXPLORER_SLOT, explorer, 1)
        head = f"{head}\n{style}" if head else style
    nav = markdown_to_html(toc_list(body_markdown))
    return html_page(env, variables, body, head=head, nav=nav)


class HtmlFormat(Format):
    """report.html with interactive plotly charts: one file that works alone (plotly.js inlined), or, with
    ``single_file`` off, a smaller page with plotly.min.js beside it."""

    name = "html"
    file_name = "report.html"
    template_suffixes = (".md.j2", ".html.j2", ".css", ".js")
    static_charts = False

    def render(self, job: FormatInput) -> FormatOutput:
        divs = job.charts.html_divs() if job.charts else {}  # plotly.js itself goes into <head> (render_html)
        page = render_html(job.env, job.context.variables(), job.body, chart_divs=divs, single_file=job.single_file)
        files = {self.file_name: page.encode("utf-8")}
        if divs and not job.single_file:
            files[PLOTLY_JS] = plotly_js()
        return FormatOutput(files)


FORMATS.register(HtmlFormat.name, HtmlFormat())
