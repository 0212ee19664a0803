"""The command line: one module per command; shared options; all terminal printing."""

from reportgen.cli.commands import main

__all__ = ["main"]
