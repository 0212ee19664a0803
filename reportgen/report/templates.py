"""The Jinja environment: the user's template folder first, then the packaged defaults.

A user template can replace a default one by name (``report.md.j2``), or extend it and override one
block: ``{% extends "default:report.md.j2" %}`` always means the packaged default, even from a
template of the same name. Undefined variables are errors (``StrictUndefined``), so a typo in a
template fails the render instead of printing nothing.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from reportgen.errors import RenderError
from reportgen.util.resources import default_templates_dir
from reportgen import format as fmt
from reportgen.report import markdown as md

FILTERS = {
    "md": md.md_escape,
    "cell": md.md_cell,
    "code_block": md.md_code,
    "code": md.md_inline_code,
    "link": md.md_link,
    "md_html": md.markdown_to_html,  # already-safe Markdown → HTML, for raw HTML blocks MkDocs does not parse
    "slugify": md.slugify,
    "num": fmt.num,
    "bytes": fmt.human_bytes,
    "pct": fmt.percent,
    "ratio": fmt.ratio,
}


def make_environment(templates_dir: str | Path | None = None) -> jinja2.Environment:
    """Environment with the loader chain ``templates_dir`` → defaults, and ``default:`` for the defaults."""
    default = jinja2.FileSystemLoader(str(default_templates_dir()))
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        user = Path(templates_dir)
        if not user.is_dir():
            raise RenderError(f"--templates {user}: no such folder. Fix: point it at a folder of .j2 templates")
        loaders.append(jinja2.FileSystemLoader(str(user)))
    loaders.append(default)
    loader = jinja2.PrefixLoader({"default": default}, delimiter=":")  # "default:report.md.j2"
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([*loaders, loader]),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def render_template(env: jinja2.Environment, name: str, variables: dict) -> str:
    """Render one template; template errors become RenderError naming the template and line."""
    try:
        return env.get_template(name).render(variables)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{exc.filename or exc.name}:{exc.lineno}: template syntax error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        where = _template_line(exc) or f"template {name}"
        raise RenderError(f"{where}: {exc.message}. Fix: use a variable the report context documents") from None
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template not found: {exc.name}") from None


def template_text(env: jinja2.Environment, name: str) -> str:
    """A template file's text as it is, not rendered (a script or stylesheet); the user's folder wins here too."""
    try:
        if env.loader is None:
            raise jinja2.TemplateNotFound(name)
        source, _, _ = env.loader.get_source(env, name)
    except jinja2.TemplateNotFound:
        raise RenderError(f"template not found: {name}") from None
    return source


def _template_line(exc: BaseException) -> str | None:
    """``file:line`` of the innermost template frame of a rendering error (Jinja rewrites tracebacks)."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found
