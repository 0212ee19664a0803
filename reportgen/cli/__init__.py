"""The command line: one module per command (validate, specs, init, run, render/build, metrics/diff,
publish) on one Click group; shared options and all terminal printing live here.

Heavy modules are imported inside the commands so that ``reportgen --help`` stays fast.
"""

from reportgen.cli import check, init, judge, metrics, publish, render, run, schema, specs, validate  # noqa: F401 (register the commands)
from reportgen.cli.app import main

__all__ = ["main"]
