"""`make lint`, which `make test` runs before pytest, fails on a lint error, a format error and a type error
(basic in every module, strict in the pure layers), each named with its file and line.

Each test copies the package, pyproject.toml and the Makefile to a temporary folder, breaks one thing and
runs the real `make lint` there with this environment's tools. mypy's cache from the checkout (written by
`make test`'s own run) is copied along, so a type check takes seconds instead of a minute.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent  # the environment running the tests has ruff and mypy

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _copy(tmp_path: Path) -> Path:
    for tool in ("ruff", "mypy"):
        if not (VENV / "bin" / tool).exists():
            pytest.skip(f"{tool} is not installed in {VENV} (the dev extra)")
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copytree(ROOT / "reportgen", tree / "reportgen", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "Makefile"):
        shutil.copy(ROOT / name, tree / name)
    if (ROOT / ".mypy_cache").is_dir():
        shutil.copytree(ROOT / ".mypy_cache", tree / ".mypy_cache")
    return tree


def _lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(tree), "lint", f"VENV={VENV}"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + code, encoding="utf-8")


def test_the_tree_passes_and_a_lint_error_fails(tmp_path):
    tree = _copy(tmp_path)
    clean = _lint(tree)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Success: no issues found" in clean.stdout
    module = tree / "reportgen" / "format.py"
    _append(module, "\n\ndef _unused_name() -> None:\n    undefined_name_here()\n")
    broken = _lint(tree)
    assert broken.returncode != 0
    assert "reportgen/format.py" in broken.stdout and "F821" in broken.stdout, broken.stdout


def test_a_format_error_fails(tmp_path):
    tree = _copy(tmp_path)
    _append(tree / "reportgen" / "format.py", "\n\nSPACED = [1,2 ,3]\n")  # valid, lint-clean, badly formatted
    result = _lint(tree)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "would be reformatted" in output and "reportgen/format.py" in output, output


def test_type_errors_fail_basic_everywhere_and_strict_in_the_pure_layers(tmp_path):
    tree = _copy(tmp_path)
    # a wrong return type in the CLI (basic checking) and an unannotated function in stats/ (strict)
    _append(tree / "reportgen" / "cli" / "app.py", '\n\ndef _answer() -> int:\n    return "forty-two"\n')
    _append(tree / "reportgen" / "stats" / "frames.py", "\n\ndef _untyped(rows):\n    return rows\n")
    # the same unannotated function outside the strict layers is allowed
    _append(tree / "reportgen" / "publish.py", "\n\ndef _untyped(rows):\n    return rows\n")
    result = _lint(tree)
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert any(line.startswith("reportgen/cli/app.py:") and "[return-value]" in line for line in errors), errors
    assert any(line.startswith("reportgen/stats/frames.py:") and "[no-untyped-def]" in line for line in errors), errors
    assert not any(line.startswith("reportgen/publish.py:") for line in errors), errors
    assert len(errors) == 2, errors
