"""Benchmark: reportgen's LlamaCppBackend (one sequence at a time) vs multi-sequence batched greedy decoding
with llama-cpp-python's low-level API, in one process, on the same chat-formatted prompt tokens.

Same prompts as bench/llamacpp.py (the first 32 of configs/prompts/demo.yaml, topped up with built-in ones),
``--tokens`` new tokens, greedy, the backend's thread count unless ``--threads``. "Batched B" decodes B
prompts together in one llama.cpp context made on the same weights with ``n_seq_max = B`` (a KV cache
stream per sequence unless ``--kv-unified``): each prompt is its own sequence (seq_id), all B prompts are
prefilled in one ``llama_decode`` call, then each step is one ``llama_decode`` of the next token of every
live sequence, that token being the argmax of the sequence's logits; a sequence that ends (end-of-generation
token, or ``--tokens`` reached) drops out, and the KV cache is cleared between batches. "Batched 1" is the
same loop one prompt at a time. The batched side gets the prompts already formatted and tokenized, and its
prefill does not reuse the KV cache of the prompts' shared chat preamble, which the backend does (the
phase breakdown shows what prefill and decoding cost).

The variants run interleaved over ``--rounds`` rounds after a warm-up round; each is reported as its
median round (tokens/s, and tokens per CPU second of the process, all threads) and its ratio to the
backend's median. The texts are compared with the backend's: how many are identical, and for those that
differ, the first output token at which they do (prompt@token).

    .venv/bin/python bench/llamacpp_batched.py [--prompts N] [--tokens N] [--threads N]
                                              [--batch-sizes 1,4,8,16] [--rounds N] [--kv-unified]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from common import demo_requests, fed_prompts, smollm2_llamacpp  # noqa: E402
from reportgen.backends.llamacpp import LlamaCppBackend  # noqa: E402


class BatchedGreedy:
    """Greedy decoding of up to ``n_seq`` prompts at once in one llama.cpp context (one sequence each)."""

    def __init__(self, llm: Any, n_seq: int, n_ctx_seq: int, threads: int, kv_unified: bool):
        import llama_cpp

        self.llama_cpp, self.llm, self.n_seq = llama_cpp, llm, n_seq
        self.n_vocab = llm.n_vocab()
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_seq * n_ctx_seq  # split among the sequences unless the cache is unified
        params.n_seq_max = n_seq
        params.kv_unified = kv_unified
        params.n_batch = params.n_ctx  # a whole batch's prompts in one llama_decode call
        params.n_ubatch = 512
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as the backend's Llama
        self.ctx = llama_cpp.llama_init_from_model(llm.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a context for {n_seq} sequences")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self.phases = {"prefill": [0.0, 0], "decode": [0.0, 0], "steps": [0.0, 0]}  # seconds, tokens

    def reset_phases(self) -> None:
        self.phases = {k: [0.0, 0] for k in self.phases}

    def close(self) -> None:
        self.llama_cpp.llama_batch_free(self.batch)
        self.llama_cpp.llama_free(self.ctx)

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> np.ndarray:
        """Decode (token, position, seq_id, wants logits) entries; the logits of those that want them, in order."""
        batch = self.batch
        batch.n_tokens = len(entries)
        n_out = 0
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
            n_out += logits
        if self.llama_cpp.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        ptr = self.llama_cpp.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_out, self.n_vocab))

    def _count(self, phase: str, t0: float, n: int) -> None:
        self.phases[phase][0] += time.perf_counter() - t0
        self.phases[phase][1] += n

    def generate(self, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        llama_cpp = self.llama_cpp
        outputs: list[list[int]] = []
        for start in range(0, len(prompts), self.n_seq):
            group = prompts[start : start + self.n_seq]
            llama_cpp.llama_memory_clear(self.memory, True)
            entries = [(t, p, s, p == len(toks) - 1) for s, toks in enumerate(group) for p, t in enumerate(toks)]
            t0 = time.perf_counter()
            logits = self._decode(entries)
            self._count("prefill", t0, len(entries))
            out: list[list[int]] = [[] for _ in group]
            live = list(range(len(group)))
            while live:
                nexts = logits.argmax(axis=1)
                still = []
                for s, token in zip(live, nexts.tolist()):
                    if llama_cpp.llama_vocab_is_eog(self.vocab, token):
                        continue
                    out[s].append(token)
                    if len(out[s]) < max_new_tokens:
                        still.append((s, token))
                live = [s for s, _ in still]
                if live:
                    t0 = time.perf_counter()
                    logits = self._decode([(t, len(group[s]) + len(out[s]) - 1, s, True) for s, t in still])
                    self._count("decode", t0, len(still))
                    self._count("steps", t0, 1)
            outputs.extend(out)
        llama_cpp.llama_memory_clear(self.memory, True)
        return outputs


def first_difference(llm: Any, tokens: list[int], reference: str) -> int | None:
    """The first output token whose text leaves ``reference``; None when the texts are the same."""
    text = llm.detokenize(tokens).decode("utf-8", errors="replace")
    if text == reference:
        return None
    for k in range(1, len(tokens) + 1):
        if not reference.startswith(llm.detokenize(tokens[:k]).decode("utf-8", errors="ignore")):
            return k - 1
    return len(tokens)  # a prefix of the reference: the reference goes on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per prompt")
    parser.add_argument("--threads", type=int, default=None, help="default: what LlamaCppBackend uses")
    parser.add_argument(
        "--batch-sizes", default="1,4,8,16", help="sequences per batch, comma-separated (1: the same loop, one sequence)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds (after a warm-up); the median is reported")
    parser.add_argument("--kv-unified", action="store_true", help="one KV cache shared by the batch's sequences")
    args = parser.parse_args()
    sizes = [int(x) for x in args.batch_sizes.split(",")]

    from llama_cpp import Llama

    model = smollm2_llamacpp(args.threads)
    requests = demo_requests(args.prompts, args.tokens)
    backend = LlamaCppBackend(model)
    info = backend.load()
    threads = backend.n_threads
    # The exact prompt texts the backend feeds (chat template applied), tokenized as it does.
    probe = fed_prompts(backend, requests)
    # A second Llama for the model and its tokenizer; the batched contexts are made on its weights.
    llm = Llama(model_path=str(backend.path), n_ctx=512, n_threads=threads, n_gpu_layers=0, verbose=False)
    prompts = []
    for r in probe:
        assert r.prompt_text is not None and not r.failed, r.error
        tokens = llm.tokenize(r.prompt_text.encode("utf-8"), add_bos=r.extra["chat_template"] != "gguf", special=True)
        assert len(tokens) == r.prompt_tokens, (r.prompt_id, len(tokens), r.prompt_tokens)
        prompts.append(tokens)
    per_seq = -(-(max(map(len, prompts)) + args.tokens) // 256) * 256
    batched = {b: BatchedGreedy(llm, b, per_seq, threads, args.kv_unified) for b in sizes}

    Run = tuple[float, float, int, list[str], list[list[int]] | None]

    def run_sequential() -> Run:
        start, cpu = time.perf_counter(), time.process_time()
        results = backend.generate(requests)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert not any(r.failed for r in results), [r.error for r in results if r.failed]
        return wall, cpu, sum(r.output_tokens or 0 for r in results), [r.text for r in results], None

    phases: dict[int, list[dict[str, list[float]]]] = {b: [] for b in sizes}  # per timed round

    def run_batched(b: int) -> Run:
        batched[b].reset_phases()
        start, cpu = time.perf_counter(), time.process_time()
        outs = batched[b].generate(prompts, args.tokens)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        phases[b].append(batched[b].phases)
        texts = [llm.detokenize(o).decode("utf-8", errors="replace") for o in outs]
        return wall, cpu, sum(map(len, outs)), texts, outs

    runners: list[tuple[str, Any]] = [("sequential", run_sequential)]
    runners += [(f"batched {b}", lambda b=b: run_batched(b)) for b in sizes]
    for _, fn in runners:  # warm-up (page cache, thread pools, buffers)
        fn()
    for rounds in phases.values():
        rounds.clear()
    runs: dict[str, list[Run]] = {name: [] for name, _ in runners}
    for _ in range(args.rounds):  # interleaved, so that load from other processes hits all alike
        for name, fn in runners:
            runs[name].append(fn())

    print(
        f"model: {backend.path.name} ({info.precision}), threads={threads}, prompts={len(requests)}, "
        f"max_new_tokens={args.tokens}, greedy, rounds={args.rounds} (median), kv_unified={args.kv_unified}, "
        f"cpus={os.cpu_count()}"
    )
    reference = runs["sequential"][0][3]
    base_rate = statistics.median(r[2] / r[0] for r in runs["sequential"])
    for name, rs in runs.items():
        rate = statistics.median(r[2] / r[0] for r in rs)
        cpu_rate = statistics.median(r[2] / r[1] for r in rs)
        tokens = rs[0][2]
        line = (
            f"  {name:11s} {tokens:5d} tokens, median {statistics.median(r[0] for r in rs):6.2f} s = "
            f"{rate:7.1f} tokens/s ({cpu_rate:7.1f} per CPU s), {rate / base_rate:.2f}x sequential"
        )
        texts, outs = rs[0][3], rs[0][4]
        consistent = all(r[3] == texts for r in rs)
        if outs is None:
            line += f"; same text every round: {consistent}"
        else:
            diffs = [(q.prompt_id, first_difference(llm, o, ref)) for q, o, ref in zip(requests, outs, reference)]
            differ = [(pid, k) for pid, k in diffs if k is not None]
            line += f"; same text as sequential {len(diffs) - len(differ)}/{len(diffs)}"
            if not consistent:
                line += " (varies between rounds)"
            if differ:
                line += "; first differing token: " + ", ".join(f"{pid}@{k}" for pid, k in differ)
        print(line)
    print(f"  batched phases (median round; prompts: {sum(map(len, prompts))} tokens, no prefix reuse):")
    for b, rounds in phases.items():
        seconds = {k: statistics.median(r[k][0] for r in rounds) for k in ("prefill", "decode")}
        ms = {k: statistics.median(1e3 * r[k][0] / r[k][1] for r in rounds) for k in ("prefill", "decode", "steps")}
        per_step = statistics.median(r["decode"][1] / r["steps"][1] for r in rounds)
        print(
            f"    batch {b:2d}: prefill {ms['prefill']:5.2f} ms per prompt token ({seconds['prefill']:5.2f} s), "
            f"decode {ms['decode']:5.2f} ms per token ({seconds['decode']:5.2f} s, "
            f"{ms['steps']:5.2f} ms per step of {per_step:4.1f} sequences on average)"
        )
    print(f"  load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for b in batched.values():
        b.close()
    backend.close()
    llm.close()


if __name__ == "__main__":
    main()
