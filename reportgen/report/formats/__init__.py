"""Output formats, registered once: each module of this package registers one ``Format`` in ``FORMATS``.

Every format renders from the same two things: the report's Markdown body (``report.md.j2`` rendered
for the format's target, table of contents inserted) and the ReportContext it was rendered from. A
format says which file it writes, which template files its output depends on (the build's staleness
digest reads ``template_suffixes``) and how charts appear in its body (static SVG images or interactive
placeholders). Adding a format is one new module here plus its template: the modules of this package
are imported (and so registered) when it is first imported.

The study config keeps ``output.formats`` as plain names (the config sits below the report layer);
``study_formats`` checks them against this registry, naming the config file, the key and the known names.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from reportgen.errors import ConfigError, RenderError
from reportgen.util.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import jinja2

    from reportgen.report.charts import ChartSet
    from reportgen.report.context import ReportContext
    from reportgen.stats.tables import Tables
    from reportgen.study.config import Study

__all__ = [
    "FORMATS",
    "Format",
    "FormatInput",
    "FormatOutput",
    "choose_formats",
    "format_problems",
    "prepare_formats",
    "study_formats",
]


@dataclass
class FormatInput:
    """What a format renders from: the Markdown body and the context of its own target."""

    env: jinja2.Environment
    context: ReportContext  # target set to the format's name, charts shown as the format shows them
    body: str  # the Markdown body rendered for this target, table of contents inserted
    charts: ChartSet
    folder: Path  # the report folder (the PDF resolves relative URLs inside it)
    pending: Mapping[str, bytes]  # the charts rendered (charts/*.svg), not yet written
    single_file: bool = True  # report.html with plotly.js inlined (False: plotly.min.js beside it)
    study: Study | None = None  # the study config (e.g. ci.report_url for the summary)
    tables: Tables | None = None  # the measured tables, when the report has results


@dataclass
class FormatOutput:
    """The files a format rendered (paths relative to the report folder) and what it fetched."""

    files: dict[str, bytes]
    fetched: list[str] = field(default_factory=list)  # URLs the renderer asked for (the PDF)
    refused: list[str] = field(default_factory=list)  # ... and was refused


class Format(ABC):
    """One output format. ``name`` is what ``output.formats`` and ``--format`` say, and the template's ``target``."""

    name: ClassVar[str]
    file_name: ClassVar[str]  # the main file it writes, relative to the report folder
    template_suffixes: ClassVar[tuple[str, ...]]  # template files (by suffix) its output depends on
    static_charts: ClassVar[bool] = True  # charts as SVG images (else interactive placeholders)
    anchors: ClassVar[str] = "github"  # the heading-anchor rule of the tool that shows it (markdown.ANCHOR_RULES)
    runs_apart: ClassVar[bool] = False  # its work happens in another process: started first, waited for on a thread

    def prepare(self) -> None:
        """Called as a render starts, before any work: start a slow engine early (the PDF's printer process)."""

    @abstractmethod
    def render(self, job: FormatInput) -> FormatOutput:
        """Every file of this format, in memory; writes nothing."""


FORMATS: Registry[Format] = Registry("output format")


def choose_formats(names: Iterable[str], *, where: str = "") -> list[Format]:
    """The formats named, in the order named (once each); unknown or no names raise.

    ``where`` (``file:line: output.formats``) says where the names came from: then the error is a
    ConfigError naming it, else a RenderError (formats passed by a caller).
    """
    chosen = tuple(dict.fromkeys(names))
    problems = _problems(chosen)
    if problems:
        if where:
            raise ConfigError([f"{where}: {p}" for p in problems])
        raise RenderError(problems[0])
    return [FORMATS.get(name) for name in chosen]


def _problems(names: tuple[str, ...]) -> list[str]:
    known = ", ".join(FORMATS.names())
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        return [f"unknown output format(s): {', '.join(unknown)}. Known formats: {known}"]
    if not names:
        return [f"no output format chosen. Known formats: {known}"]
    return []


def _where(study: Study) -> str:
    return f"{study.where('output', 'formats')}: output.formats"


def format_problems(study: Study) -> list[str]:
    """``output.formats`` of a study checked against the registry, as ``file:line: output.formats: …`` lines."""
    return [f"{_where(study)}: {p}" for p in _problems(tuple(dict.fromkeys(study.output.formats)))]


def study_formats(study: Study) -> list[Format]:
    """The formats the study's config asks for; a ConfigError naming the file, the key and the known names."""
    return choose_formats(study.output.formats, where=_where(study))


def prepare_formats(study: Study, names: Iterable[str] | None = None) -> list[Format]:
    """The formats a render will write (``names``, else the study's), each told to start its slow engine now
    (``Format.prepare``: the PDF's printer process loads WeasyPrint while the caller carries on)."""
    chosen = study_formats(study) if names is None else choose_formats(names)
    for fmt in chosen:
        fmt.prepare()
    return chosen


def _register_builtin() -> None:
    """Import every module of this package: each registers its format."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_register_builtin()
