"""The transformers backend on tiny real checkpoints (Llama, GPT-2, T5, LoRA, GGUF), all offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from reportgen.records import GenerationRequest
from reportgen.backends.transformers.backend import CPU_BATCH_CAP, TransformersBackend
from reportgen.backends.transformers.batching import buckets as _buckets
from reportgen.backends.transformers.cpu import ThreadGovernor as _ThreadGovernor
from reportgen.study.config import GenerationSettings, ModelConfig
from reportgen.errors import BackendError

SYSTEM = "You are a helpful assistant."
PROMPTS = [
    "Hi",
    "What is the capital of France?",
    "Write a short poem about the sea and the sky, please.",
    "Two plus two is four. Six times seven is",
    "def add(a, b):",
    "Summarise the text in one sentence, please. The quick brown fox jumps over the lazy dog.",
]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Digests and GGUF conversions go to a per-test folder, never to ~/.cache."""
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "reportgen-cache"))


def model(path: Path, **extra) -> ModelConfig:
    kind = "gguf" if Path(path).suffix == ".gguf" else "local"
    return ModelConfig(id="m", name="m", source={"type": kind, "path": str(path)}, **extra)


def backend(path: Path, engine: str = "auto", packing: str = "on", **extra) -> TransformersBackend:
    b = TransformersBackend(model(path, **extra))
    b.engine = engine
    b.packing = packing
    return b


def requests(prompts=PROMPTS, fmt: str = "chat", system: bool = True, **settings) -> list[GenerationRequest]:
    s = GenerationSettings(**{"max_new_tokens": 10, **settings})
    out = []
    for i, text in enumerate(prompts):
        messages = ({"role": "system", "content": SYSTEM},) if system else ()
        messages += ({"role": "user", "content": text},)
        out.append(GenerationRequest(prompt_id=f"p{i}", messages=messages, text=text, format=fmt, settings=s))
    return out


def mixed_requests(**settings) -> list[GenerationRequest]:
    """Chat with and without a system turn, plain text, prompts sharing long prefixes, very different lengths."""
    reqs = requests(**settings)
    reqs += requests(prompts=["Write a short poem about the sea and the moon.", "Hello"], system=False, **settings)
    reqs += requests(
        prompts=["The quick brown fox", "Write a short poem about the sea and the sky, please. " * 3], fmt="plain", **settings
    )
    return [
        GenerationRequest(prompt_id=f"m{i}", messages=r.messages, text=r.text, format=r.format, settings=r.settings)
        for i, r in enumerate(reqs)
    ]


def summary(results):
    return [(r.prompt_id, r.text, r.output_tokens, r.finish_reason) for r in results]


def reference_tokens(folder: Path, prompt_ids: list[int], n: int) -> list[int]:
    """Greedy tokens from plain transformers (no reportgen code involved)."""
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.inference_mode():
        out = m.generate(
            torch.tensor([prompt_ids]), max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0, min_new_tokens=n
        )
    return out[0, len(prompt_ids) :].tolist()


# ------------------------------------------------------------------------------------------------ paths


def test_llama_chat_generation(tiny_llama_dir):
    b = backend(tiny_llama_dir)
    info = b.load()
    assert info.precision == "float32" and info.device == "cpu" and info.notes == []
    assert info.details["engine"] == "fast" and info.details["chat_template"] is True
    assert info.details["onednn_packed_linears"] > 0
    assert info.weight_bytes > 0 and info.details["rss_delta_bytes"] is not None
    reqs = requests()
    results = b.generate(reqs)
    assert [r.prompt_id for r in results] == [r.prompt_id for r in reqs]
    for req, res in zip(reqs, results):
        assert not res.failed, res.error
        assert res.prompt_text.startswith("<|system|>\n" + SYSTEM) and res.prompt_text.endswith("<|assistant|>\n")
        assert req.messages[-1]["content"] in res.prompt_text
        assert res.prompt_tokens == len(b._tokenizer(res.prompt_text, add_special_tokens=False)["input_ids"])
        assert 1 <= res.output_tokens <= 10
        assert res.finish_reason in ("length", "eos")
        assert 0 < res.ttft_s <= res.latency_s
        assert res.extra["batch_size"] == len(reqs) and res.extra["engine"] == "fast"
    assert b.peak_memory_bytes() > 0
    assert 1 <= b.suggested_batch_size(reqs) <= CPU_BATCH_CAP


def test_gpt2_without_chat_template_uses_plain_text(tiny_gpt2_dir):
    b = backend(tiny_gpt2_dir)
    assert b.load().details["chat_template"] is False
    reqs = requests(system=False)
    results = b.generate(reqs)
    for req, res in zip(reqs, results):
        assert not res.failed, res.error
        assert res.prompt_text == req.text and res.extra["prompt_format"] == "plain"
        assert res.output_tokens == 10 and res.finish_reason == "length"


def test_seq2seq_t5(tiny_t5_dir):
    b = backend(tiny_t5_dir)
    info = b.load()
    assert info.details["model_class"] == "T5ForConditionalGeneration" and info.details["engine"] == "generate"
    results = b.generate(requests(fmt="plain", max_new_tokens=6))
    assert all(not r.failed and 1 <= r.output_tokens <= 6 for r in results)
    assert summary(results) == summary([b.generate([r])[0] for r in requests(fmt="plain", max_new_tokens=6)])
    (score,) = b.loglikelihood([("t", "The quick brown fox.")])
    assert score.nll_nats > 0 and score.n_tokens == len(
        b._tokenizer("The quick brown fox.", add_special_tokens=False)["input_ids"]
    )


def test_gguf_source(tiny_gguf_path, tiny_llama_dir, tmp_path):
    b = backend(tiny_gguf_path)
    parts = b.fingerprint_parts()
    from reportgen.util.hashing import file_digest

    assert parts["source"] == "gguf" and parts["weights"] == file_digest(tiny_gguf_path)
    assert not (tmp_path / "reportgen-cache" / "gguf").exists()  # the fingerprint did not convert anything
    info = b.load()
    assert Path(info.details["model_dir"]).parent == tmp_path / "reportgen-cache" / "gguf"
    assert info.details["chat_template"] is True
    # the GGUF holds the same weights as the tiny llama of the same seed: same greedy outputs
    reference = backend(tiny_llama_dir)
    assert summary(b.generate(requests())) == summary(reference.generate(requests()))


# -------------------------------------------------------------------------------- batching & determinism


@pytest.mark.parametrize("which", ["llama", "gpt2"])
@pytest.mark.parametrize("packing", ["on", "off"])
def test_batched_greedy_equals_one_by_one_and_hf_generate(which, packing, tiny_llama_dir, tiny_gpt2_dir):
    folder = tiny_llama_dir if which == "llama" else tiny_gpt2_dir
    reqs = mixed_requests(max_new_tokens=12)
    fast = backend(folder, engine="fast", packing=packing)
    batched = summary(fast.generate(reqs))
    one_by_one = [summary(fast.generate([r]))[0] for r in reqs]
    assert batched == one_by_one
    shuffled = summary(fast.generate(list(reversed(reqs))))
    assert sorted(shuffled) == sorted(batched)
    reference = backend(folder, engine="generate", packing=packing)  # model.generate, same prompts
    assert summary(reference.generate(reqs)) == batched


def test_fast_loop_matches_plain_transformers_tokens(tiny_llama_dir):
    """Against transformers alone (no packing, no reportgen loop): the greedy token ids are the same."""
    b = backend(tiny_llama_dir, engine="fast", packing="on")
    b.load()
    (req,) = requests(prompts=["Hello, how are you today?"], fmt="plain", max_new_tokens=8)
    ids = b._prepare(0, req).ids
    expected = reference_tokens(tiny_llama_dir, ids, 8)
    if b._pad_id in b._eos_ids and b._tokenizer.eos_token_id in expected:
        expected = expected[: expected.index(b._tokenizer.eos_token_id) + 1]
    (result,) = b.generate([req])
    assert result.output_tokens == len(expected)
    assert result.text == b._tokenizer.decode([t for t in expected if t not in b._eos_ids], skip_special_tokens=True)


def test_greedy_is_deterministic_across_runs_and_instances(tiny_llama_dir):
    reqs = requests(max_new_tokens=12)
    first = backend(tiny_llama_dir)
    one = summary(first.generate(reqs))
    assert summary(first.generate(reqs)) == one
    assert summary(backend(tiny_llama_dir).generate(reqs)) == one


def test_sampling_is_seeded_and_independent_of_the_batch(tiny_llama_dir):
    b = backend(tiny_llama_dir)
    reqs = requests(max_new_tokens=12, do_sample=True, temperature=1.5, top_p=0.95, seed=3)
    first = summary(b.generate(reqs))
    assert summary(b.generate(reqs)) == first
    assert [summary(b.generate([r]))[0] for r in reqs] == first
    other = summary(b.generate(requests(max_new_tokens=12, do_sample=True, temperature=1.5, top_p=0.95, seed=4)))
    assert other != first
    greedy = summary(b.generate(requests(max_new_tokens=12)))
    assert greedy != first


def test_thread_count_does_not_change_outputs(tiny_llama_dir):
    reqs = mixed_requests(max_new_tokens=12)
    one = summary(backend(tiny_llama_dir, threads=1).generate(reqs))
    assert summary(backend(tiny_llama_dir, threads=2).generate(reqs)) == one


def test_thread_governor_follows_the_faster_count_and_explores_less_when_it_loses():
    speed = {1: 1.0, 2: 10.0}  # seconds per step-row: two threads are crowded out
    governor = _ThreadGovernor([2, 1])
    used = []
    for _ in range(200):
        n = governor.choose()
        used.append(n)
        governor.record(n, speed[n] * 32, 16)
    assert governor.best() == 1
    assert used.count(2) <= 8  # tried first and then ever more rarely
    speed = {1: 1.0, 2: 0.5}  # the machine became quiet: two threads win again
    for _ in range(600):
        n = governor.choose()
        governor.record(n, speed[n] * 32, 16)
    assert governor.best() == 2
    vetoed = _ThreadGovernor([1, 2], probe=lambda c: {1: 0.001, 2: 0.1})
    for _ in range(50):
        n = vetoed.choose()
        assert n == 1  # the probe keeps the crowded count from ever being tried
        vetoed.record(n, 1.0, 16)


def test_bucketing_is_optimal_and_keeps_order():
    assert _buckets([]) == []
    assert _buckets([5]) == [[0]]
    spans = _buckets([100, 99, 98, 10, 9, 8, 8], overhead=5)
    assert spans == [[0, 1, 2], [3, 4, 5, 6]]
    assert _buckets([10, 9, 8], overhead=1000) == [[0, 1, 2]]


# ------------------------------------------------------------------------------------------ finish reasons


@pytest.mark.parametrize("engine", ["fast", "generate"])
def test_finish_reason_length_and_stop(engine, tiny_llama_dir):
    b = backend(tiny_llama_dir, engine=engine)
    (free,) = b.generate(requests(prompts=["Hello there"], max_new_tokens=8))
    assert free.finish_reason == "length" and free.output_tokens == 8
    stop = free.text[3:5]
    assert stop and stop in free.text
    (stopped,) = b.generate(requests(prompts=["Hello there"], max_new_tokens=8, stop=(stop,)))
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[: free.text.index(stop)]
    assert stopped.output_tokens < 8


@pytest.mark.parametrize("engine", ["fast", "generate"])
def test_finish_reason_eos(engine, tiny_llama_dir, tmp_path):
    """A copy of the model whose generation config lists one of its greedy tokens as an extra EOS."""
    folder = tmp_path / "eos-llama"
    shutil.copytree(tiny_llama_dir, folder)
    probe = backend(folder)
    probe.load()
    (req,) = requests(prompts=["Hello there"], fmt="plain", max_new_tokens=8)
    tokens = reference_tokens(folder, probe._prepare(0, req).ids, 8)
    target = tokens[3]
    config_path = folder / "generation_config.json"
    config = json.loads(config_path.read_text())
    config["eos_token_id"] = [config["eos_token_id"], target]
    config_path.write_text(json.dumps(config))
    b = backend(folder, engine=engine)
    other = requests(prompts=["What is the capital of France?"], fmt="plain", max_new_tokens=8)
    result, _ = b.generate([req, *other])
    assert result.finish_reason == "eos"
    assert result.output_tokens == tokens.index(target) + 1  # up to and including the EOS
    # rows ending at different steps (dropped from the batch, or carried along until worth dropping)
    for new_tokens in (9, 16):  # finishing near the end keeps finished rows in the batch for a few steps
        mixed = mixed_requests(max_new_tokens=new_tokens)
        batched = summary(b.generate(mixed))
        assert len({r[2] for r in batched}) > 1 and any(r[3] == "eos" for r in batched)
        assert batched == [summary(b.generate([r]))[0] for r in mixed]


# ------------------------------------------------------------------------------------------------- LoRA


def test_lora_changes_outputs_and_merge_matches_unmerged(tiny_llama_dir, tiny_lora_dir):
    base = backend(tiny_llama_dir)
    plain = backend(tiny_llama_dir, adapter={"path": str(tiny_lora_dir)})
    merged = backend(tiny_llama_dir, adapter={"path": str(tiny_lora_dir), "merge": True})
    assert plain.load().details["adapter"] == str(tiny_lora_dir)
    text = [("t", "The quick brown fox jumps over the lazy dog.")]
    nll_base = base.loglikelihood(text)[0].nll_nats
    nll_plain = plain.loglikelihood(text)[0].nll_nats
    nll_merged = merged.loglikelihood(text)[0].nll_nats
    assert abs(nll_plain - nll_base) > 1e-3
    assert nll_merged == pytest.approx(nll_plain, rel=1e-4, abs=1e-4)
    reqs = requests(max_new_tokens=12)
    assert summary(plain.generate(reqs)) != summary(base.generate(reqs))
    assert summary(merged.generate(reqs)) == summary(plain.generate(reqs))
    fp_base, fp_plain, fp_merged = (x.fingerprint_parts() for x in (base, plain, merged))
    assert fp_base["adapter"] is None and fp_plain["adapter"] == fp_merged["adapter"] is not None
    assert fp_plain["adapter_merge"] is False and fp_merged["adapter_merge"] is True


def test_missing_or_broken_adapter_is_a_clear_error(tiny_llama_dir, tiny_lora_dir, tmp_path):
    missing = tmp_path / "no-adapter"
    with pytest.raises(BackendError, match="no-adapter.*Fix:"):
        backend(tiny_llama_dir, adapter={"path": str(missing)}).load()
    broken = tmp_path / "broken-adapter"
    shutil.copytree(tiny_lora_dir, broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(BackendError) as caught:
        backend(tiny_llama_dir, adapter={"path": str(broken)}).load()
    assert str(broken) in caught.value.format_message() and "\n" not in caught.value.format_message()


# ------------------------------------------------------------------------------------------ fingerprints


def test_fingerprint_follows_weights_not_batch_size_and_does_not_load(tiny_llama_dir, tmp_path):
    folder = tmp_path / "llama"
    shutil.copytree(tiny_llama_dir, folder)
    b = backend(folder)
    parts = b.fingerprint_parts()
    assert b._model is None  # nothing loaded
    assert parts["backend"] == "transformers" and parts["source"] == "local"
    assert parts["dtype"] == "float32" and parts["quantization"] is None
    assert backend(folder, batch_size=7, threads=1).fingerprint_parts() == parts
    assert backend(folder, dtype="bfloat16").fingerprint_parts()["dtype"] == "bfloat16"

    from tiny_models import make_tiny_llama

    make_tiny_llama(folder, seed=99)  # "retrained": same file names, new weights
    assert backend(folder).fingerprint_parts()["weights"] != parts["weights"]


def test_quantization_on_cpu_runs_full_precision_with_a_note(tiny_llama_dir):
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU fallback")
    b = backend(tiny_llama_dir, quantization={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"})
    info = b.load()
    assert info.precision == "float32"
    assert info.notes == ["4-bit nf4 asked; no CUDA GPU here, ran float32"]
    parts = b.fingerprint_parts()
    assert parts["quantization"]["load_in_4bit"] is True and parts["quantization_applied"] is False
    assert not b.generate(requests(prompts=["Hi"]))[0].failed


# --------------------------------------------------------------------------------------------- failures


def test_truncated_weights_are_a_one_line_error(tiny_llama_dir, tmp_path):
    folder = tmp_path / "truncated"
    shutil.copytree(tiny_llama_dir, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(BackendError) as caught:
        backend(folder).load()
    message = caught.value.format_message()
    assert str(folder) in message and "Fix:" in message and "\n" not in message


def test_missing_config_is_a_one_line_error(tiny_llama_dir, tmp_path):
    folder = tmp_path / "no-config"
    shutil.copytree(tiny_llama_dir, folder)
    (folder / "config.json").unlink()
    with pytest.raises(BackendError, match=r"no-config.*config\.json"):
        backend(folder).load()
    with pytest.raises(BackendError, match="not found"):
        backend(tmp_path / "nowhere").fingerprint_parts()


def test_hub_repo_missing_from_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path))
    b = TransformersBackend(ModelConfig(id="m", name="m", source={"type": "hub", "repo": "nobody/nothing"}))
    with pytest.raises(BackendError) as caught:
        b.load()
    message = caught.value.format_message()
    assert "model m: 'nobody/nothing' is not in the local Hugging Face cache" in message
    assert f"HF_HOME={tmp_path}" in message and "hf download nobody/nothing" in message
    assert "\n" not in message


def test_hub_repo_found_in_cache(tiny_llama_dir, tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-llama"
    shutil.copytree(tiny_llama_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    b = TransformersBackend(ModelConfig(id="m", name="m", source={"type": "hub", "repo": "someone/tiny-llama"}))
    from reportgen.util.hashing import folder_digest

    assert b.fingerprint_parts()["weights"] == folder_digest(repo / "snapshots" / commit)
    assert summary(b.generate(requests(prompts=["Hi"]))) == summary(backend(tiny_llama_dir).generate(requests(prompts=["Hi"])))


def test_prompt_longer_than_the_context_fails_alone(tiny_llama_dir):
    b = backend(tiny_llama_dir)
    long_prompt = "word " * 600  # the tiny llama has 512 positions
    results = b.generate(requests(prompts=["Hi", long_prompt], fmt="plain", system=False))
    assert not results[0].failed
    assert results[1].failed and "exceeds the model's context" in results[1].error


# -------------------------------------------------------------------------------------------- scoring


@pytest.mark.parametrize("which", ["llama", "gpt2"])
def test_loglikelihood_equals_manual_computation(which, tiny_llama_dir, tiny_gpt2_dir):
    folder = tiny_llama_dir if which == "llama" else tiny_gpt2_dir
    texts = [("a", "The quick brown fox jumps over the lazy dog."), ("b", "Hi"), ("c", "Two plus two is four. " * 5)]
    b = backend(folder)
    scores = b.loglikelihood(texts)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    for (text_id, text), score in zip(texts, scores):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        full = [tokenizer.bos_token_id] + ids
        with torch.inference_mode():
            logits = m(torch.tensor([full])).logits[0, :-1]
        logp = torch.log_softmax(logits.double(), dim=-1)
        manual = -logp[torch.arange(len(ids)), torch.tensor(full[1:])].sum().item()
        assert score.text_id == text_id
        assert score.n_tokens == len(ids) and score.n_bytes == len(text.encode())
        assert score.nll_nats == pytest.approx(manual, rel=1e-4)


@pytest.mark.parametrize("max_len", [1, 2, 5, 16])
def test_rolling_windows_are_lm_evals(max_len):
    """The windows are lm-evaluation-harness's own (lm_eval.utils, imported: the dev extra installs lm-eval), as
    HFLM.loglikelihood_rolling asks for them: context_len=1, each made disjoint."""
    lm_eval_utils = pytest.importorskip("lm_eval.utils", reason="lm-eval is a dev dependency (pip install -e '.[dev]')")
    from reportgen.backends.rolling import rolling_windows

    for n in range(0, 60):
        tokens = list(range(100, 100 + n))
        ours = rolling_windows(tokens, 7, max_len)
        theirs = [
            lm_eval_utils.make_disjoint_window(pair)
            for pair in lm_eval_utils.get_rolling_token_windows(
                token_list=tokens, prefix_token=7, max_seq_len=max_len, context_len=1
            )
        ]
        # the same (context, continuation) pairs; every token predicted once; the model reads at most max_len tokens
        assert [(w.tokens[: len(w.tokens) - w.n_predicted], w.tokens[len(w.tokens) - w.n_predicted :]) for w in ours] == theirs
        assert sum(w.n_predicted for w in ours) == n and all(len(w.tokens) - 1 <= max_len for w in ours)


def test_loglikelihood_matches_lm_eval_loglikelihood_rolling(tiny_llama_dir, tmp_path):
    """A text four times the context: reportgen's NLL is what lm-eval's own HFLM.loglikelihood_rolling computes on
    the same model folder (lm-eval loads it, windows it and sums the windows itself)."""
    pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency (pip install -e '.[dev]')")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    max_len = 16
    folder = tmp_path / "short-context"
    shutil.copytree(tiny_llama_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = max_len
    (folder / "config.json").write_text(json.dumps(config))
    text = "Two plus two is four, and four plus four is eight. " * 4
    (score,) = backend(folder).loglikelihood([("t", text)])

    # add_bos_token=False: the text's own tokens, no BOS among them (lm-eval 0.4.13 otherwise lets the tokenizer
    # prepend one, which it then scores as a token of the text); the prefix token is BOS either way
    lm = HFLM(pretrained=str(folder), backend="causal", device="cpu", batch_size=1, dtype="float32", add_bos_token=False)
    assert lm.max_length == max_len
    request = Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,), idx=0)
    (theirs,) = lm.loglikelihood_rolling([request], disable_tqdm=True)

    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 3 * max_len
    assert score.n_tokens == len(ids)
    assert score.nll_nats == pytest.approx(-theirs, rel=1e-5)

    # the negative control: windows that restart with one token of context give another number, so the
    # comparison above can tell the schemes apart
    m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    restart = 0.0
    with torch.inference_mode():
        full = [tokenizer.bos_token_id] + ids
        for start in range(0, len(full) - 1, max_len - 1):
            chunk = full[start : start + max_len]
            logp = torch.log_softmax(m(torch.tensor([chunk])).logits[0, :-1].float(), dim=-1)
            restart += -float(logp.gather(1, torch.tensor(chunk[1:])[:, None]).double().sum())
    assert abs(restart + theirs) > 1e-3 * abs(theirs)
