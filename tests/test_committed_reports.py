"""The committed reports/assignment/ is what the config renders today (regenerate: make assignment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reportgen.study.config import load_config
from reportgen.report.assemble import render_in_memory

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("name", ["README.md", "report.html"])
def test_assignment_report_is_up_to_date(name: str):
    committed = ROOT / "reports" / "assignment" / name
    report = render_in_memory(load_config(ROOT / "configs" / "assignment.yaml"), formats=["markdown", "html"])
    assert committed.exists(), "reports/assignment is missing: run `make assignment` and commit it"
    assert report.files[name].decode() == committed.read_text(encoding="utf-8"), (
        f"reports/assignment/{name} is stale: run `make assignment` and commit the result"
    )
