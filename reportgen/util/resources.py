"""Where the packaged default templates are: inside the installed wheel, else ``templates/`` of a checkout."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from reportgen.errors import RenderError

__all__ = ["REPO_TEMPLATES", "default_templates_dir"]

REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def default_templates_dir() -> Path:
    """The folder of the default templates (report, summary, judge prompts); RenderError when neither exists."""
    try:
        packaged = importlib.resources.files("reportgen") / "templates"
        if packaged.is_dir():
            return Path(str(packaged))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - unusual importers
        pass
    if REPO_TEMPLATES.is_dir():
        return REPO_TEMPLATES
    raise RenderError(
        "the default templates are missing: neither reportgen/templates (installed wheel) nor "
        f"{REPO_TEMPLATES} (source checkout) exists. Fix: reinstall reportgen"
    )
