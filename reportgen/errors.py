"""One exception tree for every error a user can cause.

Each is a ``click.ClickException`` so the command line prints one clear line (no traceback). Exit
status: 2 for a usage or input error (bad config, missing file, absent extra, unreadable store); 1 when
the job ran but something in it failed (``JobFailed``: a model or prompts failed; ``ClaimError``: a
claim is false). Bugs are not wrapped: they keep their traceback.
"""

from __future__ import annotations

import click


class ReportgenError(click.ClickException):
    """Base class: a problem the user can fix. Exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:  # one line (or one block for multi-error reports), no "Usage:"
        click.echo(f"Error: {self.format_message()}", err=True, file=file)


class ConfigError(ReportgenError):
    """A study config, prompt set or file it names is invalid. May carry several problems."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(message)


class MissingExtraError(ReportgenError):
    """An optional package is not installed."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed. Fix: pip install 'reportgen[{extra}]'"
        )


class BackendError(ReportgenError):
    """A model could not be loaded or queried (missing weights, corrupt checkpoint, unreachable endpoint)."""


class StoreError(ReportgenError):
    """The results store is unreadable or from an incompatible version."""


class JobFailed(ReportgenError):
    """The job ran and what could be saved is saved, but part of it failed (a model, some prompts). Exit 1."""

    exit_code = 1


class ClaimError(ReportgenError):
    """A hand-written claim in the config is false (or cannot be checked). Exit 1."""

    exit_code = 1


class RenderError(ReportgenError):
    """A template or an output file could not be rendered or written."""
