"""``python -m reportgen``: the same command line as the ``reportgen`` script."""

from reportgen.cli import main

main(prog_name="reportgen")  # so help, errors and shell completion (_REPORTGEN_COMPLETE) say reportgen
