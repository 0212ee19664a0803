"""The "summary" format, summary.md: a compact report for a pull-request comment.

The headline table, for every model that re-ran its change against its previous run (regressions first,
in bold), the failure counts and a link to the full report — valid GitHub Markdown, and always under
GitHub's comment limit however many models and prompts the study has: models are shown in full while
they fit, then as one line each, then counted.
"""

from __future__ import annotations

import dataclasses

from reportgen.report.formats import FORMATS, Format, FormatInput, FormatOutput

#: Variables summary.md.j2 gets besides the ReportContext fields (the template-context test reads this).
SUMMARY_VARIABLES = {
    "regressions": "how many re-run models got significantly worse on some metric.",
    "failures": "how many prompts failed across the models (stored as failures, retried on the next run).",
    "report_link": "where the full report is (ci.report_url, else README.md).",
    "more": "how many re-run models did not fit in the summary (counted, not shown).",
}
#: Attributes of each ``retraining`` entry in summary.md.j2 besides RetrainingView's.
SUMMARY_VIEW_ATTRIBUTES = {"full": "whether the model's table is printed (False once the comment limit is near)."}

GITHUB_COMMENT_LIMIT = 65_536  # characters
BUDGET = GITHUB_COMMENT_LIMIT - 4_096  # headroom for the CI's own wrapper text


class SummaryFormat(Format):
    """summary.md, for a pull-request comment."""

    name = "summary"
    file_name = "summary.md"
    template_suffixes = ("summary.md.j2", "_macros.md.j2")
    static_charts = False

    def render(self, job: FormatInput) -> FormatOutput:
        template = job.env.get_template("summary.md.j2")
        base = dict(job.context.variables(), target="markdown")
        ordered = sorted(job.context.retraining, key=lambda r: not r.worse)  # regressions first
        base.update(regressions=sum(1 for r in ordered if r.worse), failures=_failures(job), report_link=_link(job))
        text = ""
        for full in range(len(ordered), -1, -1):  # as many in full as fit, the rest as a line, then counted
            for shown in (len(ordered), *range(len(ordered) - 1, -1, -1)):
                views = [_View(r, full=i < full) for i, r in enumerate(ordered[:shown])]
                text = template.render({**base, "retraining": views, "more": len(ordered) - shown})
                if len(text) <= BUDGET:
                    return FormatOutput({self.file_name: text.encode("utf-8")})
                if full:
                    break  # first fewer models in full, then fewer models at all
        raise AssertionError("a summary without any model detail cannot exceed the limit")  # pragma: no cover


@dataclasses.dataclass
class _View:
    """A RetrainingView with ``full``: whether its table is printed."""

    view: object
    full: bool

    def __getattr__(self, name: str):
        return getattr(self.view, name)


def _failures(job: FormatInput) -> int:
    tables = job.tables
    if tables is None or tables.per_prompt.empty:
        return 0
    return int(tables.per_prompt["failed"].sum())


def _link(job: FormatInput) -> str:
    return (job.study.ci.report_url if job.study is not None else None) or "README.md"


FORMATS.register(SummaryFormat.name, SummaryFormat())
