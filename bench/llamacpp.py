"""Benchmark: llama-cpp-python called directly vs reportgen's LlamaCppBackend vs reportgen's
TransformersBackend (the same GGUF weights dequantized to float32), in one process.

Same prompts (the first 32 of configs/prompts/demo.yaml when it exists, else 32 built-in ones), 32 new
tokens, greedy. "Direct" is what a user would write: ``Llama.create_completion`` on the chat-formatted
prompt text (with llama-cpp-python's usual prompt-prefix reuse between calls). Prints tokens/s and the
ratio backend/direct (target: >= 0.9), and the transformers backend on the same requests
(``--no-transformers`` skips it).

    .venv/bin/python bench/llamacpp.py [--prompts N] [--tokens N] [--threads N] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import demo_requests, fed_prompts, smollm2_llamacpp  # noqa: E402
from reportgen.backends.llamacpp import LlamaCppBackend  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each; the best is reported")
    parser.add_argument("--no-transformers", action="store_true", help="skip reportgen's transformers backend")
    args = parser.parse_args()

    from llama_cpp import Llama

    model = smollm2_llamacpp(args.threads)
    requests = demo_requests(args.prompts, args.tokens)
    backend = LlamaCppBackend(model)
    info = backend.load()
    threads = backend.n_threads
    # The exact prompt texts the backend feeds (chat template applied), so both sides see the same tokens.
    prompt_texts = [r.prompt_text for r in fed_prompts(backend, requests)]

    llm = Llama(
        model_path=str(backend.path),
        n_ctx=info.details["n_ctx"],
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        n_gpu_layers=0,
        verbose=False,
    )

    def run_direct() -> tuple[float, float, int, list[str]]:
        start, cpu = time.perf_counter(), time.process_time()
        tokens, texts = 0, []
        for text in prompt_texts:
            out = llm.create_completion(text, max_tokens=args.tokens, temperature=0.0, top_k=1, repeat_penalty=1.0)
            tokens += out["usage"]["completion_tokens"]
            texts.append(out["choices"][0]["text"])
        return time.perf_counter() - start, time.process_time() - cpu, tokens, texts

    def run_backend() -> tuple[float, float, int, list[str]]:
        start, cpu = time.perf_counter(), time.process_time()
        results = backend.generate(requests)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert not any(r.failed for r in results), [r.error for r in results if r.failed]
        return wall, cpu, sum(r.output_tokens for r in results), [r.text for r in results]

    runners = [("direct", run_direct), ("backend", run_backend)]
    if not args.no_transformers:
        from reportgen.backends.transformers.backend import TransformersBackend

        hf = TransformersBackend(model.model_copy(update={"backend": "transformers", "threads": args.threads}))
        hf.load()

        def run_transformers() -> tuple[float, float, int, list[str]]:
            start, cpu = time.perf_counter(), time.process_time()
            results = hf.generate(requests)
            return (
                time.perf_counter() - start,
                time.process_time() - cpu,
                sum(r.output_tokens for r in results),
                [r.text for r in results],
            )

        runners.append(("hf", run_transformers))
    for _, fn in runners:  # warm-up (page cache, thread pools)
        fn()
    best: dict[str, tuple[float, float, int, list[str]]] = {}
    for _ in range(args.repeats):  # interleaved, so that load from other processes hits all alike
        for name, fn in runners:
            run = fn()
            if name not in best or run[0] < best[name][0]:
                best[name] = run

    print(
        f"model: {backend.path.name} ({info.precision}), threads={threads}, prompts={len(requests)}, "
        f"max_new_tokens={args.tokens}, greedy, cpus={os.cpu_count()}"
    )
    rate, cpu_rate = {}, {}
    for name, (wall, cpu, tokens, _) in best.items():
        rate[name], cpu_rate[name] = tokens / wall, tokens / cpu
        print(
            f"  {name:8s} {tokens:5d} tokens in {wall:6.2f} s = {rate[name]:7.1f} tokens/s"
            f"   ({cpu:6.2f} CPU s = {cpu_rate[name]:7.1f} tokens per CPU second)"
        )
    same = sum(a == b for a, b in zip(best["direct"][3], best["backend"][3]))
    print(
        f"  ratio backend/direct: {rate['backend'] / rate['direct']:.2f}x wall, "
        f"{cpu_rate['backend'] / cpu_rate['direct']:.2f}x CPU  (same text for {same}/{len(requests)} prompts)"
    )
    if "hf" in rate:
        same_hf = sum(a == b for a, b in zip(best["direct"][3], best["hf"][3]))
        print(
            f"  ratio transformers/direct: {rate['hf'] / rate['direct']:.2f}x wall "
            f"(float32 dequantized weights, batched; same text as Q4_1 for {same_hf}/{len(requests)} prompts)"
        )
    print(
        f"  load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} (other processes skew wall times; "
        f"CPU seconds are steadier with --threads 1)"
    )
    backend.close()
    llm.close()


if __name__ == "__main__":
    main()
