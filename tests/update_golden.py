"""Rewrite tests/golden/assignment_README.md from today's render of configs/assignment.yaml.

Run it after an intended change of the README, then review the diff before committing:

    PYTHONPATH=. .venv/bin/python tests/update_golden.py && git diff tests/golden

The test suite never writes the golden file (a test that rewrites what it compares against passes on any
output), and tests/test_render.py checks the golden file itself against facts computed by hand, so a
regenerated file that carries a wrong count fails even when it matches the render.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reportgen.report.assemble import render_report  # noqa: E402
from reportgen.study.config import load_config  # noqa: E402

GOLDEN = ROOT / "tests" / "golden" / "assignment_README.md"


def main() -> None:
    with tempfile.TemporaryDirectory() as out:
        render_report(load_config(ROOT / "configs" / "assignment.yaml"), out_dir=Path(out), formats=["markdown"])
        GOLDEN.write_text((Path(out) / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    print(f"wrote {GOLDEN.relative_to(ROOT)}: review `git diff tests/golden` before committing")


if __name__ == "__main__":
    main()
