"""`reportgen publish --mkdocs DIR`: the study as pages of a MkDocs site.

Writes ``<docs_dir>/<study>/index.md`` (the Markdown report, static SVG charts beside it) and
``report.html`` (the interactive page, with plotly.min.js next to it) and adds a nav entry to
mkdocs.yml when the site has an explicit ``nav``. Works with the default theme and with Material.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from reportgen.study.config import Study
from reportgen.errors import ConfigError, RenderError

log = logging.getLogger(__name__)


class _Tagged:
    """A value with a YAML tag we do not interpret (e.g. Material's !!python/name:…), kept as written."""

    def __init__(self, tag: str, node: yaml.Node):
        self.tag, self.node = tag, node


class _Loader(yaml.SafeLoader):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: _Tagged(node.tag, node))
_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: _Tagged(node.tag, node))
_Dumper.add_representer(_Tagged, lambda dumper, value: value.node)


def read_mkdocs_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (safe loader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: mkdocs.yml is not valid YAML. Fix: check it with `mkdocs build`") from None
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


def publish_mkdocs(study: Study, site_dir: Path) -> list[Path]:
    """Write the study's pages into a MkDocs project; return the written paths."""
    from reportgen.report import assemble as render
    from reportgen.report.inputs import ReportInputs, read_report_inputs
    from reportgen.store import Store, store_path
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
    inputs = ReportInputs()
    if store_path(study).exists():
        with Store(store_path(study), create=False) as store:
            inputs = read_report_inputs(store, study)
    report = render.render_in_memory(study, formats=["markdown", "html"], out_dir=page_dir, **inputs.as_kwargs())
    files = {name: data for name, data in report.files.items() if name != "README.md"}
    link = "[Interactive version of this report](report.html)\n\n"
    markdown = report.markdown
    first_break = markdown.find("\n") + 1  # after the title line
    files["index.md"] = (markdown[:first_break] + "\n" + link + markdown[first_break:]).encode("utf-8")
    written = write_files(page_dir, files)

    target = f"{study.name}/index.md"
    nav = config.get("nav")
    if isinstance(nav, list) and not _nav_has(nav, target):
        nav.append({study.title: target})
        atomic_write(config_file, yaml.dump(config, Dumper=_Dumper, sort_keys=False, allow_unicode=True))
        written.append(config_file)
        log.info("added '%s' to the nav of %s", study.title, config_file)
    elif nav is not None and not isinstance(nav, list):
        raise RenderError(f"{config_file}: 'nav' is not a list; add `- {study.title}: {target}` yourself")
    log.info("published %d files to %s", len(written), page_dir)
    return written
