"""One timed pass of lm-evaluation-harness's HFLM ``generate_until``, run inside lm-eval's own virtual environment.

``bench/peers.py`` starts this script with that environment's Python once per round and writes a JSON
request to its stdin: ``{"model_dir", "texts", "max_new_tokens", "threads", "batch_size", "stop"}``. The
model is loaded and warmed up untimed; then one pass over all texts is timed, greedy (``do_sample:
False``), batched by HFLM itself. Prints one JSON line: wall and CPU seconds, new tokens (the
continuations re-tokenized with the model's tokenizer) and the texts.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    job = json.load(sys.stdin)
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    torch.set_num_threads(job["threads"])
    lm = HFLM(pretrained=job["model_dir"], batch_size=job["batch_size"], device="cpu", dtype="float32")
    settings = {"until": job["stop"], "max_gen_toks": job["max_new_tokens"], "do_sample": False}

    def requests(texts: list[str]) -> list[Instance]:
        return [
            Instance(request_type="generate_until", doc={}, arguments=(text, dict(settings)), idx=i)
            for i, text in enumerate(texts)
        ]

    lm.generate_until(requests(job["texts"][:2]), disable_tqdm=True)  # warm-up, untimed
    started, cpu = time.perf_counter(), time.process_time()
    out = lm.generate_until(requests(job["texts"]), disable_tqdm=True)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    tokens = sum(len(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in out)
    print(json.dumps({"wall": wall, "cpu": cpu, "tokens": tokens, "texts": out}))


if __name__ == "__main__":
    main()
