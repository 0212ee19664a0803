"""`reportgen publish --mkdocs DIR`: the study as pages of a MkDocs site.

Writes ``<docs_dir>/<study>/index.md`` (the report for Python-Markdown: the "mkdocs" format, static
SVG charts beside it), ``report.html`` (the interactive page, one file) and, when the study's
``output.formats`` has "pdf", ``report.pdf``, both linked from the top of the page; and adds
a nav entry to mkdocs.yml when the site has an explicit ``nav``. mkdocs.yml is edited in place with
ruamel.yaml's round trip: comments, tags (Material's ``!!python/name:…``), quoting and layout stay as
written; only the nav entry is added. ``dry_run`` writes nothing and returns the change as a diff.
Works with the default theme and with Material.
"""

from __future__ import annotations

import difflib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportgen.study.config import Study
from reportgen.errors import ConfigError, RenderError

log = logging.getLogger(__name__)


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")  # round trip: comments, tags, key order and quoting kept
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    return yaml


def read_mkdocs_config(path: Path) -> Any:
    """mkdocs.yml as ruamel.yaml's round-trip mapping (tags such as ``!!python/name:`` kept, not resolved)."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        data = _yaml().load(path.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: mkdocs.yml is not valid YAML. Fix: check it with `mkdocs build`") from None
    except YAMLError:
        raise ConfigError(f"{path}: mkdocs.yml is not valid YAML. Fix: check it with `mkdocs build`") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: mkdocs.yml is not a mapping of settings")
    return data


def _nav_has(nav: list, target: str) -> bool:
    for item in nav:
        if item == target:
            return True
        if isinstance(item, dict):
            for value in item.values():
                if value == target or (isinstance(value, list) and _nav_has(value, target)):
                    return True
    return False


@dataclass
class Published:
    """What publish wrote (or, dry run, would write) and the change to mkdocs.yml as a unified diff ("" if none)."""

    written: list[Path] = field(default_factory=list)
    config_diff: str = ""


def add_nav_entry(config_file: Path, title: str, target: str) -> tuple[str, str]:
    """(before, after) text of mkdocs.yml with ``- title: target`` added to its nav; equal when nothing changes.

    One line is inserted after the nav's last item, indented as that item's dash: every other byte of
    the file stays as written (comments, tags, quoting, the indentation of other lists). ruamel.yaml
    reads the file (where the nav's items are) and writes the new entry (its quoting); the result is
    read back and must be the old nav plus the entry. No ``nav`` key: MkDocs lists pages itself.
    """
    before = config_file.read_text(encoding="utf-8")
    from ruamel.yaml.comments import CommentedSeq  # a list as read with its positions and flow style

    config = read_mkdocs_config(config_file)
    nav = config.get("nav")
    if nav is None or (isinstance(nav, list) and _nav_has(nav, target)):
        return before, before
    by_hand = f"add `- {title}: {target}` to its nav yourself"
    if not isinstance(nav, list):
        raise RenderError(f"{config_file}: 'nav' is not a list; {by_hand}")
    lines = before.splitlines(keepends=True)
    if not nav or not isinstance(nav, CommentedSeq) or nav.fa.flow_style():
        raise RenderError(f"{config_file}: the nav is empty or written inline ([...]); {by_hand}")
    line, col = nav.lc.item(len(nav) - 1)
    dash = lines[line][:col].rstrip().rfind("-")
    if dash < 0 or lines[line][:dash].strip():
        raise RenderError(f"{config_file}:{line + 1}: the nav's last item is not a '- ' line; {by_hand}")
    end = line + 1  # after the last item's own lines (deeper indented), before blank lines and comments
    for index in range(line + 1, len(lines)):
        text = lines[index]
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        if len(text) - len(text.lstrip(" ")) <= dash:
            break
        end = index + 1
    newline = "\r\n" if lines[line].endswith("\r\n") else "\n"
    if not lines[end - 1].endswith(("\n", "\r")):
        lines[end - 1] += newline
    entry = " " * dash + _entry_line(title, target) + newline
    after = "".join(lines[:end] + [entry] + lines[end:])
    if read_mkdocs_config_text(after, config_file).get("nav") != [*nav, {title: target}]:
        raise RenderError(f"{config_file}: could not add the nav entry safely; {by_hand}")
    return before, after


def _entry_line(title: str, target: str) -> str:
    """``- title: target`` as ruamel.yaml writes it (quoted where YAML needs quotes)."""
    stream = io.StringIO()
    _yaml().dump([{title: target}], stream)
    return stream.getvalue().rstrip("\n")


def read_mkdocs_config_text(text: str, where: Path) -> Any:
    from ruamel.yaml.error import YAMLError

    try:
        return _yaml().load(text)
    except YAMLError:
        raise RenderError(f"{where}: could not add the nav entry safely") from None


def committed_report_files(study: Study) -> dict[str, bytes]:
    """The study's report folder as rendered and committed (README.md as the page, index.md; report.html,
    charts, …), without the results store, the build stamp or other hidden files."""
    from reportgen.report.formats import FORMATS

    folder = study.output_dir
    readme = FORMATS.get("markdown").file_name
    if not (folder / readme).is_file():
        raise ConfigError(
            f"{folder / readme}: there is no rendered report to publish. Fix: `reportgen build {study.path}` "
            "(and commit the report folder), or publish with --from store"
        )
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts) or path.name.startswith("results.sqlite"):
            continue
        name = "index.md" if relative.as_posix() == readme else relative.as_posix()
        files[name] = path.read_bytes()
    return files


def publish_mkdocs(study: Study, site_dir: Path, *, dry_run: bool = False, source: str = "auto") -> Published:
    """Write the study's pages into a MkDocs project (``dry_run``: write nothing); say what changed.

    ``source``: ``store`` renders the pages from the results store and the model files here; ``report``
    publishes the committed report folder as rendered (no store, no model needed: a fresh clone in CI);
    ``auto`` renders from the store when that gives the committed report's very README.md, else publishes
    the committed report and says why (the store differs from what it was built from, or cannot be read
    here) — the site never shows numbers other than the committed report's without saying so.
    """
    from reportgen.errors import ReportgenError
    from reportgen.report.formats import FORMATS
    from reportgen.util.atomic import atomic_write, write_files

    site_dir = Path(site_dir)
    config_file = site_dir / "mkdocs.yml"
    if not config_file.exists():
        raise ConfigError(
            f"{config_file}: no MkDocs project here. Fix: create one with `mkdocs new {site_dir}` (pip install 'reportgen[publish]')"
        )
    config = read_mkdocs_config(config_file)
    docs_dir = site_dir / str(config.get("docs_dir") or "docs")
    page_dir = docs_dir / study.name
    target = f"{study.name}/index.md"
    before, after = add_nav_entry(config_file, study.title, target)  # a bad nav fails before anything is written
    committed = study.output_dir / FORMATS.get("markdown").file_name
    if source == "report":
        files = committed_report_files(study)
        log.info("published the committed report %s as rendered", study.output_dir)
    else:
        files, why = {}, None
        try:
            files = _render_pages(study, page_dir)
        except ReportgenError as exc:
            if source == "store" or not committed.is_file():
                raise
            why = f"it cannot be rendered here ({exc.format_message()})"
        rendered = files.pop(committed.name, None)
        if why is None and committed.is_file() and rendered != committed.read_bytes():
            why = "the results store here (or another input) differs from what it was built from"
            if source == "store":
                log.warning(
                    "%s: %s; published the results store here, as --from store asks: the site differs from the committed report",
                    committed,
                    why,
                )
                why = None
        if why is not None:
            files = committed_report_files(study)
            log.warning(
                "%s: %s; published the committed report as rendered. Fix: `reportgen build %s` and commit, "
                "to publish the results here (or --from store)",
                committed,
                why,
                study.path,
            )
    link = "[Interactive version of this report](report.html)"
    if "report.pdf" in files:
        link += " · [PDF version](report.pdf)"
    link += "\n\n"
    markdown = files["index.md"].decode("utf-8")
    title_end = _title_end(markdown)
    files["index.md"] = (markdown[:title_end] + "\n" + link + markdown[title_end:]).encode("utf-8")
    diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), str(config_file), str(config_file)))
    if dry_run:
        return Published([page_dir / name for name in sorted(files)] + ([config_file] if diff else []), diff)
    written = write_files(page_dir, files)
    if diff:
        atomic_write(config_file, after.encode("utf-8"))
        written.append(config_file)
        log.info("added '%s' to the nav of %s", study.title, config_file)
    log.info("published %d files to %s", len(written), page_dir)
    return Published(written, diff)


def _title_end(markdown: str) -> int:
    """Where the page's title line ends: after its metadata block (``---`` … ``---``), the first line."""
    start = 0
    if markdown.startswith("---\n"):
        close = markdown.find("\n---\n", 3)
        start = close + len("\n---\n") if close >= 0 else 0
        while markdown.startswith("\n", start):
            start += 1
    return markdown.find("\n", start) + 1


def _render_pages(study: Study, page_dir: Path) -> dict[str, bytes]:
    """The pages rendered from the store and the model files here, with the README.md the same inputs give
    (to compare with the committed one)."""
    from reportgen.report import assemble as render
    from reportgen.report.formats import FORMATS
    from reportgen.report.inputs import ReportInputs, read_report_inputs
    from reportgen.store import Store, store_path

    inputs = ReportInputs()
    if store_path(study).exists():
        with Store(store_path(study), create=False) as store:
            inputs = read_report_inputs(store, study)
    formats = ["mkdocs", "html", *(["pdf"] if "pdf" in study.output.formats else [])]
    report = render.render_in_memory(study, formats=formats, out_dir=page_dir, **inputs.as_kwargs())
    files = dict(report.files)
    readme = FORMATS.get("markdown").file_name
    if (study.output_dir / readme).is_file():
        files[readme] = render.render_in_memory(study, formats=["markdown"], **inputs.as_kwargs()).files[readme]
    return files
