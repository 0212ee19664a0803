"""Benchmark: a cold render vs a re-render after a template edit, and ``reportgen --help``.

For each study (configs/assignment.yaml; configs/demo.yaml when models/demo-lora exists), all in one run:

(a) cold: an empty reportgen cache (``REPORTGEN_CACHE`` pointing at a fresh folder), so the render counts
    parameters on the meta device (torch + transformers), parses GGUF metadata and starts Chromium for
    the SVG charts — what every render cost before the spec and chart caches;
(b) re-render after a template edit: a visible line appended to a copy of ``report.md.j2`` (passed with
    ``--templates``), same cache: the specs and SVGs come back from the cache by content digest.

Every render is ``python -m reportgen render CONFIG --templates T -o OUT`` in a fresh process, with the
study's own formats. Prints seconds (median of ``--repeat`` re-renders), the ratio re-render / cold, and
whether the re-render imported torch (``-X importtime``). Also times ``reportgen --help`` (median of 5).

    .venv/bin/python bench/render.py [--repeat N] [--only assignment|demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
TARGETS = {"assignment": 2.5, "demo": 4.0}


def _run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stderr


def bench_study(name: str, repeat: int, work: Path) -> dict:
    config = ROOT / "configs" / f"{name}.yaml"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "REPORTGEN_CACHE": str(work / f"cache-{name}")}
    templates = work / f"templates-{name}"
    templates.mkdir()
    shutil.copy(TEMPLATES / "report.md.j2", templates / "report.md.j2")
    render = ["-m", "reportgen", "-q", "render", str(config), "--templates", str(templates), "-o", str(work / f"out-{name}")]

    cold, _ = _run(render, env)
    warm = []
    for i in range(repeat):
        with open(templates / "report.md.j2", "a", encoding="utf-8") as handle:  # the template edit
            handle.write(f"\nEdited {i}.\n")
        seconds, _ = _run(render, env)
        warm.append(seconds)
    # one more re-render, untimed, only to see what it imports (-X importtime slows every import it reports)
    with open(templates / "report.md.j2", "a", encoding="utf-8") as handle:
        handle.write("\nEdited once more.\n")
    _, stderr = _run(["-X", "importtime", *render], env)
    imported_torch = any(line.rstrip().endswith("| torch") for line in stderr.splitlines())
    return {"study": name, "cold": cold, "rerender": statistics.median(warm), "torch": imported_torch}


def bench_help() -> float:
    times = []
    for _ in range(5):
        seconds, _ = _run(["-m", "reportgen", "--help"], dict(os.environ))
        times.append(seconds)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="re-renders per study (median reported)")
    parser.add_argument("--only", choices=sorted(TARGETS), default=None)
    args = parser.parse_args()

    studies = [args.only] if args.only else ["assignment"] + (["demo"] if (ROOT / "models" / "demo-lora").exists() else [])
    with tempfile.TemporaryDirectory(prefix="reportgen-bench-") as tmp:
        rows = [bench_study(name, args.repeat, Path(tmp)) for name in studies]
    help_s = bench_help()

    print(f"{'study':<12} {'cold s':>8} {'re-render s':>12} {'ratio':>7} {'target s':>9}  torch imported on re-render")
    for row in rows:
        print(
            f"{row['study']:<12} {row['cold']:>8.2f} {row['rerender']:>12.2f} {row['rerender'] / row['cold']:>7.2f} "
            f"{TARGETS[row['study']]:>9.1f}  {'yes' if row['torch'] else 'no'}"
        )
    print(f"reportgen --help: {help_s:.3f} s (target < 0.2 s); python -c pass for scale: {_python_floor():.3f} s")


def _python_floor() -> float:
    return statistics.median(_run(["-c", "pass"], dict(os.environ))[0] for _ in range(5))


if __name__ == "__main__":
    main()
