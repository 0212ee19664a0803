"""Benchmark: what a failing endpoint costs a `reportgen run` (issue 27, items 4 and 5).

Through the real command line (``python -m reportgen -q run``, the reportgen found on ``--code``, default this
checkout), one OpenAI-compatible model over 20 prompts with the default source settings (concurrency 4,
max_retries 4, streaming on):

* against the test server answering 501 to every request: the requests it received, per prompt;
* against the same server answering 501 to 19 prompts and answering the first (shortest) one: the requests
  each 501 prompt cost, where no circuit breaker can stop the model;
* against a refused port (nothing listening): the wall time of the run, and of ``reportgen --version``
  (the interpreter's and reportgen's start, to subtract).

    .venv/bin/python bench/endpoint_failures.py [--code DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fault_server import FaultServer  # noqa: E402

PROMPTS = 20


def study(folder: Path, url: str, first: str = "Say the number 0") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    texts = [first] + [f"Say the number {i}" for i in range(1, PROMPTS)]
    (folder / "prompts.yaml").write_text(
        "prompts:\n" + "".join(f"  - {{id: p{i:02d}, prompt: '{t}'}}\n" for i, t in enumerate(texts))
    )
    (folder / "study.yaml").write_text(f"""title: Endpoint failures
prompts: prompts.yaml
generation: {{max_new_tokens: 4}}
output: {{dir: out, formats: [markdown]}}
models:
  - {{id: served, name: Served, source: {{type: http, url: "{url}", protocol: openai-completions, model: m}}}}
""")
    return folder / "study.yaml"


def run(code: Path, *args: str, cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "reportgen", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="the folder whose reportgen package runs")
    code = parser.parse_args().code.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        with FaultServer() as server:
            server.script("", ["501"], repeat=True)
            _, result = run(code, "-q", "run", str(study(Path(tmp) / "all-501", server.url)), cwd=Path(tmp))
            print(
                f"501 to every request: {len(server.requests)} requests for {PROMPTS} prompts "
                f"({len(server.requests) / PROMPTS:.2f} per prompt), exit {result.returncode}"
            )
        with FaultServer() as server:
            server.script("number", ["501"], repeat=True)
            _, result = run(code, "-q", "run", str(study(Path(tmp) / "some-501", server.url, first="Hi")), cwd=Path(tmp))
            failing = server.hits("number")
            print(
                f"501 to 19 prompts, one answered: {len(failing)} requests for the 19 ({len(failing) / 19:.2f} per prompt), "
                f"exit {result.returncode}"
            )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = study(Path(tmp) / "refused", f"http://127.0.0.1:{port}")
        startup, _ = run(code, "--version", cwd=Path(tmp))
        wall, result = run(code, "run", str(config), cwd=Path(tmp))
        print(
            f"refused port: {PROMPTS} prompts failed in {wall:.1f} s wall ({startup:.1f} s of it start-up), exit {result.returncode}"
        )
        print("  " + "\n  ".join(line for line in result.stderr.splitlines() if "served" in line))


if __name__ == "__main__":
    main()
