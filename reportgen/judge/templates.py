"""The judge prompts: Jinja templates, the user's ``--templates`` folder first, then the packaged defaults
(``judge/pairwise.j2``, ``judge/rubric.j2``: a ``judge/`` folder inside the templates folder), the same lookup order as the report's templates.

Answers, questions and references reach a template as data through the ``fenced`` filter: a code fence
longer than any backtick run inside the text, so that an answer cannot close its fence and pass itself
off as the judge's instructions.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from reportgen.errors import ConfigError
from reportgen.util.resources import default_templates_dir
from reportgen.util.text import code_fence

__all__ = ["DEFAULT_TEMPLATES", "JudgeTemplates", "fenced"]

DEFAULT_TEMPLATES = {"pairwise": "judge/pairwise.j2", "rubric": "judge/rubric.j2"}


def fenced(text: str | None) -> str:
    """``text`` inside a backtick fence that nothing in it can close (see util.text.code_fence)."""
    return code_fence(text, "text")


class JudgeTemplates:
    """Renders judge prompts; ``user_dir`` (a ``--templates`` folder) overrides the defaults by name."""

    def __init__(self, user_dir: str | Path | None = None):
        loaders: list[jinja2.BaseLoader] = []
        if user_dir is not None:
            if not Path(user_dir).is_dir():
                raise ConfigError(f"--templates {user_dir}: no such folder. Fix: point it at a folder of .j2 templates")
            loaders.append(jinja2.FileSystemLoader(str(user_dir)))
        default = jinja2.FileSystemLoader(str(default_templates_dir()))
        loaders += [default, jinja2.PrefixLoader({"default": default}, delimiter=":")]
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["fenced"] = fenced

    def name_for(self, mode: str, template: str | None) -> str:
        return template or DEFAULT_TEMPLATES[mode]

    def source(self, name: str) -> str:
        """The template's text (part of the judge's settings: editing the template re-judges)."""
        try:
            assert self.env.loader is not None  # the environment is built with a loader
            return self.env.loader.get_source(self.env, name)[0]
        except jinja2.TemplateNotFound:
            raise ConfigError(
                f"judge template '{name}' not found in the --templates folder or the defaults. Fix: name an existing .j2 file"
            ) from None

    def render(self, name: str, variables: dict) -> str:
        try:
            return self.env.get_template(name).render(variables).strip() + "\n"
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"{exc.filename or exc.name}:{exc.lineno}: judge template syntax error: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise ConfigError(f"judge template {name}: {exc.message}. Fix: use the documented variables") from None
        except jinja2.TemplateNotFound:
            raise ConfigError(f"judge template '{name}' not found. Fix: name an existing .j2 file") from None
