"""The wheel ships the default templates, and a report renders from the installed wheel alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_wheel_ships_templates_and_renders(tmp_path: Path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("reportgen-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"reportgen/templates/report.md.j2", "reportgen/templates/report.html.j2"} <= set(names)
    assert "reportgen/study/data/prompts.yaml" in names  # the starter prompt set `reportgen init` copies

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    work = tmp_path / "work"
    shutil.copytree(ROOT / "configs", work / "configs")
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import reportgen, sys; from reportgen.cli import main; print(reportgen.__file__, file=sys.stderr); main()",
            "render",
            "configs/assignment.yaml",
            "-o",
            "out",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert str(target) in run.stderr  # the installed wheel ran, not the checkout
    assert "6,738,415,616" in (work / "out" / "README.md").read_text()
