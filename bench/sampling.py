"""Benchmark: sampled vs greedy decoding throughput of reportgen's transformers backend, in one process.

The demo model (SmolLM2-135M-Instruct from its GGUF), the same prompts (the first ``--prompts`` of
configs/prompts/demo.yaml, topped up with built-in ones), ``--tokens`` new tokens, the demo's sampling
settings (temperature 0.7, top-p 0.9) unless told otherwise. Three sides, interleaved round by round so a
busy moment on a shared machine hurts all alike:

(a) greedy;
(b) sampled, batched on the top candidates (``backends.transformers.sampling``, what the backend runs);
(c) sampled the way the engine did before: transformers' Temperature/TopK/TopP warpers on the full
    vocabulary (a sort per row and step) and one ``torch.multinomial`` per sequence.

Prints tokens per second and per CPU second of each (medians of rounds; the latter is steadier on a
shared machine) and the ratios to greedy (target: sampled >= 0.85x greedy).

    .venv/bin/python bench/sampling.py [--prompts N] [--tokens N] [--rounds N] [--top-k K] [--top-p P] [--temperature T]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import demo_requests  # noqa: E402
from throughput import model_config  # noqa: E402


def warper_choose(self, logits, rows, generators):
    """FastEngine._choose as it was: full-vocabulary warpers, one multinomial per row."""
    import torch
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    s = self.settings
    warpers = LogitsProcessorList()
    if s.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(s.temperature))
    if s.top_k is not None:
        warpers.append(TopKLogitsWarper(s.top_k))
    if s.top_p < 1.0:
        warpers.append(TopPLogitsWarper(s.top_p))
    scores = warpers(self._history(rows), logits.float())
    probs = torch.softmax(scores, dim=-1)
    return [int(torch.multinomial(probs[r], 1, generator=generators[r]).item()) for r in range(len(rows))]


def timed(backend, requests) -> tuple[float, int, float]:
    started, cpu = time.perf_counter(), time.process_time()
    results = backend.generate(requests)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    bad = [r for r in results if r.failed]
    if bad:
        raise SystemExit(f"failed: {bad[0].prompt_id}: {bad[0].error}")
    return seconds, sum(r.output_tokens for r in results), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--top-k", type=int, default=None)
    args = parser.parse_args()

    from reportgen.backends.transformers import decoding
    from reportgen.backends.transformers.backend import TransformersBackend

    greedy = demo_requests(args.prompts, args.tokens)
    sample = {"do_sample": True, "temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k, "seed": 0}
    sampled = [dataclasses.replace(r, settings=r.settings.model_copy(update=sample)) for r in greedy]
    backend = TransformersBackend(model_config(args.threads))
    info = backend.load()
    print(
        f"model: {info.details['model_dir']} ({info.precision}); prompts {len(greedy)}, {args.tokens} new tokens, "
        f"sampling {sample}"
    )
    timed(backend, greedy[:2])  # warm up
    batched = decoding.FastEngine._choose
    rates: dict[str, list[float]] = {"greedy": [], "sampled (batched)": [], "sampled (warpers, before)": []}
    per_cpu: dict[str, list[float]] = {name: [] for name in rates}
    for _ in range(args.rounds):
        for name, requests, choose in (
            ("greedy", greedy, batched),
            ("sampled (batched)", sampled, batched),
            ("sampled (warpers, before)", sampled, warper_choose),
        ):
            decoding.FastEngine._choose = choose
            seconds, tokens, cpu = timed(backend, requests)
            rates[name].append(tokens / seconds)
            per_cpu[name].append(tokens / cpu)
    decoding.FastEngine._choose = batched
    base, base_cpu = statistics.median(rates["greedy"]), statistics.median(per_cpu["greedy"])
    for name, values in rates.items():
        rate, cpu_rate = statistics.median(values), statistics.median(per_cpu[name])
        print(
            f"{name:<27} {rate:8.1f} tok/s  {rate / base:5.2f}x greedy | {cpu_rate:7.1f} tok per CPU-s "
            f"{cpu_rate / base_cpu:5.2f}x  (rounds: {', '.join(f'{v:.0f}' for v in values)})"
        )
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
