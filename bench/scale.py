"""Benchmark: studies at scale — run, cold render, warm render and a re-render after one model retrained.

A loopback OpenAI-compatible server (``/v1/completions`` on 127.0.0.1, in this process) answers every
request at once, so the times are reportgen's own. Each size builds a fresh study folder: ``--models``
HTTP models, N prompts in a JSONL prompt set with references and 8 categories, 24 new tokens, all
report formats but the PDF (``--formats`` to change). Answers are deterministic words drawn from the
reference and a filler vocabulary, different for every (model, prompt).

For every N of ``--prompts`` it prints, in one table:

run       ``reportgen run`` (the client side of the requests, scoring of what is stored);
cold      ``reportgen render`` with an empty reportgen cache (``REPORTGEN_CACHE`` a fresh folder);
warm      the same render again, nothing changed;
retrained the first model's served model renamed (a new fingerprint, new answers), ``run`` again,
          then ``render`` timed: what a retraining costs;
another   the second model retrained the same way, ``run``, then ``render`` timed: a retraining when another
          model already has a history (its retraining delta is read back, not rebuilt);
sizes     the bytes of each output file after the last render.

Every command is the real CLI in a fresh process (``python -m reportgen``), timed after ``os.sync()`` (what the
step before wrote is on disk first, so no step pays for the write-back of another).

    .venv/bin/python bench/scale.py [--prompts 100 1000 10000] [--models 4] [--formats markdown html]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ["science", "history", "code", "math", "geography", "health", "language", "business"]
FILLER = (
    "the a of and to in is it that was for on are with as be at by this from or an which one all "
    "water light energy cells river city time system people work form number part place state"
).split()


def answer(model: str, prompt: str, max_tokens: int) -> str:
    """Deterministic words for (model, prompt): some of the prompt's reference words, some filler."""
    digest = hashlib.sha256(f"{model}\0{prompt}".encode()).digest()
    words = prompt.split()[-6:]
    out = []
    for i in range(max_tokens):
        byte = digest[i % len(digest)] ^ i
        out.append(words[byte % len(words)] if byte % 3 else FILLER[byte % len(FILLER)])
    return " ".join(out)


class Instant(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        text = answer(str(body.get("model")), str(body.get("prompt")), int(body.get("max_tokens") or 16))
        tokens = len(text.split())
        payload = json.dumps(
            {
                "id": "x",
                "object": "text_completion",
                "model": body.get("model"),
                "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
                "usage": {"prompt_tokens": len(str(body.get("prompt")).split()), "completion_tokens": tokens},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def write_study(folder: Path, n: int, models: int, url: str, formats: list[str], retrained: int = 0) -> Path:
    """The study with its first ``retrained`` models serving a retrained version (new answers, new fingerprint)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "prompts.jsonl", "w", encoding="utf-8") as out:
        for i in range(n):
            topic = CATEGORIES[i % len(CATEGORIES)]
            reference = f"{topic} fact number {i} says the answer is {i * 7 % 1000} units of {FILLER[i % len(FILLER)]}"
            prompt = f"Question {i} about {topic}: state the fact. {reference}"
            out.write(json.dumps({"id": f"p{i:06d}", "category": topic, "prompt": prompt, "reference": reference}) + "\n")
    lines = [
        f"title: Scale study ({n} prompts)",
        "prompts: prompts.jsonl",
        "generation: {max_new_tokens: 24}",
        f"output: {{dir: out, formats: [{', '.join(formats)}]}}",
        "models:",
    ]
    for m in range(models):
        served = f"m{m}-v2" if m < retrained else f"m{m}"
        lines.append(
            f"  - {{id: model-{m}, name: Model {m}, source: {{type: http, url: '{url}', protocol: openai-completions, model: {served}}}}}"
        )
    (folder / "study.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "study.yaml"


def timed(args: list[str], env: dict[str, str]) -> float:
    # what the step before wrote (a run stores ~50 MB at 10,000 prompts) is flushed to disk first: otherwise
    # the kernel writes it back during this step, and its time (up to a second here) depends on the disk
    os.sync()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "reportgen", "-q", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"reportgen {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def bench_size(n: int, models: int, url: str, formats: list[str], work: Path) -> dict[str, object]:
    folder = work / f"study-{n}"
    config = write_study(folder, n, models, url, formats)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "REPORTGEN_CACHE": str(folder / "cache")}
    row: dict[str, object] = {"prompts": n}
    row["run"] = timed(["run", str(config)], env)
    row["cold"] = timed(["render", str(config)], env)
    row["warm"] = timed(["render", str(config)], env)
    write_study(folder, n, models, url, formats, retrained=1)
    row["rerun"] = timed(["run", str(config)], env)
    row["retrained"] = timed(["render", str(config)], env)
    write_study(folder, n, models, url, formats, retrained=2)
    timed(["run", str(config)], env)
    row["another"] = timed(["render", str(config)], env)
    out = folder / "out"
    row["sizes"] = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file() and p.suffix != ".sqlite"}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--formats", nargs="+", default=["markdown", "html"])
    parser.add_argument("--keep", type=Path, help="build the studies in this folder and keep them")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Instant)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    work = args.keep or Path(tempfile.mkdtemp(prefix="reportgen-scale-"))
    try:
        print(f"{args.models} models, formats {' '.join(args.formats)}, {os.cpu_count()} CPUs; seconds")
        print(f"{'prompts':>8} {'run':>7} {'cold':>7} {'warm':>7} {'re-run':>7} {'retrained':>9} {'another':>7}  sizes")
        for n in args.prompts:
            row = bench_size(n, args.models, url, args.formats, work)
            sizes = ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in row["sizes"].items())  # type: ignore[attr-defined]
            print(
                f"{n:>8} {row['run']:7.1f} {row['cold']:7.1f} {row['warm']:7.1f} {row['rerun']:7.1f} {row['retrained']:9.1f}"
                f" {row['another']:7.1f}  {sizes}",
                flush=True,
            )
    finally:
        server.shutdown()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
