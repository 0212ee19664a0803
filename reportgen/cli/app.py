"""The Click group, the options shared by several commands, and the terminal.

Streams: data a command produces (tables, JSON, the paths it wrote) goes to stdout; progress, log
messages and warnings go to stderr. Exit status: 0 success; 1 the job ran but something in it failed
(a model or prompts, a false claim); 2 a usage or input error; 130 interrupted (Ctrl-C) after a clean
stop — every batch already committed stays in the store.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import click

from reportgen import __version__

EXIT_INTERRUPTED = 130

config_argument = click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
templates_option = click.option(
    "--templates",
    "templates_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of Jinja templates that override the defaults.",
)
force_option = click.option("--force", is_flag=True, help="Re-run even where stored results exist.")
allow_failures_option = click.option(
    "--allow-failures",
    is_flag=True,
    help="Exit 0 even when some prompts failed (they are retried on the next run); a model that answered none still exits 1.",
)


execute_code_option = click.option(
    "--execute-code",
    is_flag=True,
    help="Run the answers to code prompts in the sandbox (model-written code) even when the study's code.execute is false.",
)


def completing_config(ctx: click.Context) -> Path | None:
    """The config file named on a command line being completed (while an option's value is being typed,
    Click leaves the arguments unparsed in ``ctx.args``)."""
    named = [ctx.params.get("config"), *ctx.args]
    return next((Path(c) for c in named if c is not None and str(c).endswith((".yaml", ".yml")) and Path(c).is_file()), None)


def complete_model_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """Shell completion for ``--models a,b``: the model ids of the config named on the command line (read
    as plain YAML, without validation, so a half-written config still completes)."""
    from click.shell_completion import CompletionItem

    config = completing_config(ctx)
    if config is None:
        return []
    try:
        import yaml

        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return []
    models = data.get("models") if isinstance(data, dict) else None
    ids = [m["id"] for m in models or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
    done, _, last = incomplete.rpartition(",")
    chosen = set(done.split(",")) if done else set()
    prefix = done + "," if done else ""
    return [CompletionItem(prefix + i) for i in ids if i.startswith(last) and i not in chosen]


models_option = click.option(
    "--models",
    "model_ids",
    default=None,
    metavar="A,B",
    shell_complete=complete_model_ids,
    help="Comma-separated model ids (default: all runnable models).",
)


JSON_SCHEMA_VERSION = 1


def json_option(what: str):
    """``--json`` prints ``what`` as a versioned JSON object to stdout; ``--json FILE`` writes it to FILE."""
    return click.option(
        "--json",
        "json_out",
        is_flag=False,
        flag_value="-",
        default=None,
        metavar="[FILE]",
        help=f"Print {what} as JSON to stdout (or write it to FILE).",
    )


def emit_json(kind: str, payload: dict, json_out: str) -> None:
    """One JSON document: ``{"schema": "reportgen.<kind>", "schema_version": N, ...payload}``."""
    import json

    text = (
        json.dumps(
            {"schema": f"reportgen.{kind}", "schema_version": JSON_SCHEMA_VERSION, **payload},
            indent=2,
            sort_keys=True,
            default=str,
        )
        + "\n"
    )
    if json_out == "-":
        click.echo(text, nl=False)
        return
    from reportgen.util.atomic import atomic_write

    click.echo(str(atomic_write(Path(json_out), text)))


def model_list(text: str | None) -> list[str] | None:
    return [m.strip() for m in text.split(",") if m.strip()] if text else None


@functools.lru_cache(maxsize=1)
def console():
    """The stderr console for progress and messages (rich resolves sys.stderr at each write)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())  # a log line is never wrapped


def data_console():
    """Where data commands print tables: a rich console on a terminal; on a pipe or file, :class:`PlainOut`
    (tab-separated, one line per row, never wrapped or cut, no box drawing)."""
    if not sys.stdout.isatty():
        return PlainOut()
    from rich.console import Console

    return Console(highlight=False)


def _plain(value: object) -> str:
    """Rich markup and renderables as one line of plain text (tabs and newlines become spaces)."""
    from rich.text import Text

    if isinstance(value, str):
        value = Text.from_markup(value)
    text = value.plain if isinstance(value, Text) else str(value)
    return " ".join(text.replace("\t", " ").split("\n"))


class PlainOut:
    """The ``print`` of a rich console for pipes: a table becomes ``# title``, a header line and one line per
    row, cells separated by tabs; any other text is printed as plain text. Nothing is wrapped."""

    def print(self, value: object = "", **_: object) -> None:
        from rich.table import Table

        if not isinstance(value, Table):
            click.echo(_plain(value))
            return
        if value.title:
            click.echo(f"# {_plain(value.title)}")
        columns = value.columns
        click.echo("\t".join(_plain(c.header) for c in columns))
        for row in zip(*(list(c.cells) for c in columns)):
            click.echo("\t".join(_plain(cell) for cell in row))
        click.echo("")


class _ConsoleHandler(logging.Handler):
    """reportgen's log records, one line each, on stderr (warnings in yellow, errors in red)."""

    def emit(self, record: logging.LogRecord) -> None:
        from rich.markup import escape

        text = escape(record.getMessage())
        if record.levelno >= logging.ERROR:
            text = f"[red]{text}[/red]"
        elif record.levelno >= logging.WARNING:
            text = f"[yellow]{text}[/yellow]"
        console().print(text, soft_wrap=True)


def setup_logging(verbosity: int) -> None:
    """One logging channel: the ``reportgen`` logger on stderr. ``-q`` shows errors only; ``-v`` adds
    debug messages and third-party logs, progress bars and warnings, which are silenced otherwise."""
    logger = logging.getLogger("reportgen")
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler())
    logger.propagate = False  # reportgen's messages are printed once, by its own handler, even under -v
    logger.setLevel({-1: logging.ERROR, 0: logging.INFO}.get(verbosity, logging.DEBUG))
    if verbosity > 0:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)  # third-party logs
        for name in ("weasyprint", "fontTools", "transformers", "peft", "httpx", "kaleido", "choreographer"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        return
    # third-party progress bars ("Loading weights" …) and known-harmless warnings stay out of logs and CI
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for name in ("weasyprint", "fontTools", "transformers", "peft", "httpx", "kaleido", "choreographer"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(peft|transformers)(\.|$)")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(peft|transformers|torch)(\.|$)")


def load(config: Path):
    from reportgen.study.config import load_config

    return load_config(config)


class LineProgress:
    """Progress for a log or CI: one line per model per batch (at most every few seconds), with counts and rate."""

    def __init__(self, every_s: float = 3.0):
        self.every_s = every_s
        self._tasks: dict[int, dict] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: int) -> int:
        task = len(self._tasks)
        self._tasks[task] = {"name": description, "total": total, "done": 0, "start": time.monotonic(), "shown": 0.0}
        logging.getLogger("reportgen.progress").info("%s: 0/%d prompts", description, total)
        return task

    def advance(self, task: int, advance: int) -> None:
        state = self._tasks[task]
        state["done"] += advance
        now = time.monotonic()
        if state["done"] >= state["total"] or now - state["shown"] >= self.every_s:
            state["shown"] = now
            elapsed = now - state["start"]
            rate = state["done"] / elapsed if elapsed > 0 else 0.0
            logging.getLogger("reportgen.progress").info(
                "%s: %d/%d prompts, %.1f s, %.2f prompts/s", state["name"], state["done"], state["total"], elapsed, rate
            )


def progress():
    """Rich bars on a terminal; plain progress lines on a pipe; nothing with -q."""
    if logging.getLogger("reportgen").getEffectiveLevel() > logging.INFO:
        return LineProgress(every_s=float("inf"))
    if not console().is_terminal:
        return LineProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:>16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(),
        transient=False,
    )


_VERBOSITY = "reportgen.verbosity"


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """``-q``/``-v`` given before the subcommand, after it, or both: the totals set the logging."""
    state = ctx.meta.setdefault(_VERBOSITY, {"quiet": False, "verbose": 0})  # meta is shared by nested contexts
    if param.name == "quiet":
        state["quiet"] = state["quiet"] or bool(value)
    else:
        state["verbose"] += int(value or 0)
    setup_logging(-1 if state["quiet"] else state["verbose"])


def verbosity_options() -> list[click.Option]:
    """``-q`` and ``-v``, declared once: the group has them, and every command too."""
    return [
        click.Option(
            ["-q", "--quiet", "quiet"],
            is_flag=True,
            expose_value=False,
            callback=_set_verbosity,
            help="Errors only: no progress, no messages.",
        ),
        click.Option(
            ["-v", "--verbose", "verbose"],
            count=True,
            expose_value=False,
            callback=_set_verbosity,
            help="Debug messages, with third-party logs and warnings.",
        ),
    ]


class ReportgenGroup(click.Group):
    """Ctrl-C ends with status 130 and one line saying that nothing stored is lost. Every command takes
    ``-q``/``-v`` as the group does, before or after the command's name."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(verbosity_options())
        super().add_command(cmd, name)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        try:
            return super().main(*args, **{**kwargs, "standalone_mode": False})
        except (KeyboardInterrupt, click.exceptions.Abort):
            click.echo("interrupted: every batch committed so far is kept in the store; run again to resume", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)


@click.group(
    cls=ReportgenGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit status: 0 success; 1 the job ran but something failed (a model or prompts, a false claim); "
    "2 a usage or input error; 130 interrupted.",
)
@click.version_option(__version__, prog_name="reportgen")
def main() -> None:
    """Comparative studies of language models: run, measure, render (README, HTML, PDF), publish."""


main.params.extend(verbosity_options())
