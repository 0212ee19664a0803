"""The HTTP backend against a real local server with injected faults (tests/fault_server.py)."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from email.utils import formatdate

import pytest

from reportgen.backends import create_backend
from reportgen.records import GenerationRequest
from reportgen.backends.http import HTTPBackend, api_usage_snippet, endpoint_url, parse_retry_after
from reportgen.study.config import GenerationSettings, HTTPSource, ModelConfig
from reportgen.errors import BackendError
from fault_server import FaultServer

TOKEN = "hf_SeCrEtToKeN_0123456789abcdefXYZ"
TOKEN_ENV = "REPORTGEN_TEST_HF_TOKEN"


@pytest.fixture
def server():
    srv = FaultServer().start()
    try:
        yield srv
    finally:
        srv.stop()


def make_backend(url: str, protocol: str = "hf-inference", **source: object) -> HTTPBackend:
    defaults: dict[str, object] = {"concurrency": 4, "timeout_s": 5.0, "max_retries": 4, "stream": True}
    defaults.update(source)
    model = ModelConfig(id="remote", name="Remote model", source=HTTPSource(type="http", url=url, protocol=protocol, **defaults))
    backend = create_backend(model)
    assert isinstance(backend, HTTPBackend)
    backend.backoff_base_s = 0.01  # keep the tests fast; the schedule itself is exponential with jitter
    return backend


def requests_for(texts: list[str], **settings: object) -> list[GenerationRequest]:
    gen = GenerationSettings(**{"max_new_tokens": 16, **settings})
    return [
        GenerationRequest(prompt_id=f"p{i}", messages=({"role": "user", "content": t},), text=t, format="chat", settings=gen)
        for i, t in enumerate(texts)
    ]


def reverse_words(text: str, n: int = 16) -> str:
    return " ".join(text.split()[::-1][:n])


def check_complete(requests: list[GenerationRequest], results) -> None:
    assert len(results) == len(requests)
    assert [r.prompt_id for r in results] == [q.prompt_id for q in requests]
    assert len({r.prompt_id for r in results}) == len(results)


def test_hf_inference_answers(server):
    backend = make_backend(server.hf_url)
    info = backend.load()
    assert (info.precision, info.device) == ("remote", "remote")
    texts = [f"prompt number {i} says hello" for i in range(6)]
    reqs = requests_for(texts)
    results = backend.generate(reqs)
    check_complete(reqs, results)
    for text, result in zip(texts, results):
        assert not result.failed
        assert result.text == reverse_words(text)
        assert result.prompt_tokens is None and result.output_tokens is None  # the API does not say
        assert result.finish_reason == "eos"
    body = server.requests[0].body
    assert body["options"] == {"wait_for_model": False, "use_cache": False}
    assert body["parameters"]["return_full_text"] is False
    assert body["parameters"]["do_sample"] is False
    assert body["parameters"]["max_new_tokens"] == 16
    assert "temperature" not in body["parameters"]  # greedy: no sampling knobs
    backend.close()


def test_faults_every_prompt_ends_with_result_or_recorded_failure(server):
    server.script("flaky", ["500", "500"])
    server.script("drop", ["drop"])
    server.script("junk", ["malformed"])
    server.script("dead", ["500"], repeat=True)
    server.script("sluggish", [("slow", 60.0)], repeat=True)  # would answer after a minute
    server.script("denied", ["401"], repeat=True)
    backend = make_backend(server.hf_url, timeout_s=0.4, max_retries=4)
    texts = ["fine one", "flaky two", "drop three", "junk four", "dead five", "sluggish six", "denied seven", "fine eight"]
    reqs = requests_for(texts)
    results = backend.generate(reqs)
    check_complete(reqs, results)
    by = {r.prompt_id: r for r in results}
    assert by["p0"].text == "one fine" and by["p7"].text == "eight fine"
    assert by["p1"].text == "two flaky" and by["p1"].extra["attempts"] == 3
    assert len(server.hits("flaky")) == 3
    assert by["p2"].text == "three drop" and len(server.hits("drop")) == 2
    assert by["p3"].failed and by["p3"].error.startswith("malformed JSON")
    assert len(server.hits("junk")) == 1  # not retried
    assert by["p4"].failed and by["p4"].error.startswith("HTTP 500 after 4 retries")
    assert len(server.hits("dead")) == 5
    assert by["p5"].failed and by["p5"].error.startswith("timeout after 0.4 s after 4 retries")
    sluggish = server.hits("sluggish")
    assert len(sluggish) == 5
    # each attempt gave up at its 0.4 s timeout, long before the minute the server would take (the attempts
    # are about 0.45 s apart on two busy cores; 10 s allows 20 times that)
    assert max(b.time - a.time for a, b in zip(sluggish, sluggish[1:])) < 10
    assert by["p6"].failed and by["p6"].error.startswith("HTTP 401") and len(server.hits("denied")) == 1
    for r in results:
        assert (r.error is None) != r.failed


def test_stop_strings_are_cut_off_hf(server):
    backend = make_backend(server.hf_url)
    results = backend.generate(requests_for(["a b STOP c d", "a b c"], stop=["STOP"]))
    assert [(r.text, r.finish_reason) for r in results] == [("d c ", "stop"), ("c b a", "eos")]
    assert server.requests[0].body["parameters"]["stop"] == ["STOP"]


def test_retry_counts_follow_max_retries(server):
    server.script("dead", ["500"], repeat=True)
    backend = make_backend(server.hf_url, max_retries=2)
    [result] = backend.generate(requests_for(["dead end"]))
    assert result.error.startswith("HTTP 500 after 2 retries")
    assert len(server.requests) == 3
    backend = make_backend(server.hf_url, max_retries=0)
    [result] = backend.generate(requests_for(["dead again"]))
    assert result.error.startswith("HTTP 500 (no retry)") and len(server.requests) == 4


def test_backoff_is_exponential_with_jitter(server):
    server.script("dead", ["500"], repeat=True)
    backend = make_backend(server.hf_url, max_retries=4)
    waits: list[float] = []
    backend._sleep = waits.append
    [result] = backend.generate(requests_for(["dead end"]))
    assert result.failed and len(waits) == 4
    for n, wait in enumerate(waits):
        assert 0.01 * 2**n * 0.5 <= wait <= 0.01 * 2**n


def test_fault_by_request_number(server):
    server.script_request(1, "500")
    backend = make_backend(server.hf_url, concurrency=1)
    results = backend.generate(requests_for(["a b", "c d"]))
    assert [r.text for r in results] == ["b a", "d c"]
    assert len(server.requests) == 3 and results[0].extra["attempts"] == 2


def test_retry_after_and_loading_waits_are_honoured(server):
    server.script("busy", [("429", 0.3)])
    server.script("warming", [("503-loading", 0.25), ("503-loading", 0.25)])
    backend = make_backend(server.hf_url, max_retries=0 + 1)
    results = backend.generate(requests_for(["busy signal", "warming up"]))
    assert [r.text for r in results] == ["signal busy", "up warming"]
    busy = server.hits("busy")
    assert len(busy) == 2 and busy[1].time - busy[0].time >= 0.28
    warm = server.hits("warming")
    assert len(warm) == 3  # two loading waits do not use up the single retry
    assert warm[1].time - warm[0].time >= 0.23 and warm[2].time - warm[1].time >= 0.23
    assert results[1].extra["loading_wait_s"] == pytest.approx(0.5)


def test_retry_after_is_capped(server):
    server.script("busy", [("429", 30)])
    backend = make_backend(server.hf_url)
    backend.retry_after_cap_s = 0.05
    start = time.perf_counter()
    [result] = backend.generate(requests_for(["busy again"]))
    # about 0.2 s with the cap; 30 s (the server's Retry-After) without it
    assert result.text == "again busy" and time.perf_counter() - start < 5


def test_parse_retry_after():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    assert parse_retry_after(formatdate(now + 10, usegmt=True), now=now) == pytest.approx(10, abs=1)
    assert parse_retry_after(formatdate(now - 10, usegmt=True), now=now) == 0.0


def test_concurrency_limit_respected():
    with FaultServer(delay_s=0.08) as srv:
        backend = make_backend(srv.hf_url, concurrency=3)
        reqs = requests_for([f"prompt {i}" for i in range(12)])
        results = backend.generate(reqs)
        check_complete(reqs, results)
        assert all(not r.failed for r in results)
        assert srv.max_in_flight == 3
        backend = make_backend(srv.hf_url, concurrency=1)
        srv.max_in_flight = 0
        backend.generate(reqs[:4])
        assert srv.max_in_flight == 1


def test_token_sent_but_never_leaked(server, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server.script("echo", ["500-echo-auth"], repeat=True)
    backend = make_backend(server.hf_url, token_env=TOKEN_ENV, max_retries=1)
    backend.load()
    reqs = requests_for(["plain prompt", "echo my header"])
    results = backend.generate(reqs)
    assert {h.authorization for h in server.requests} == {f"Bearer {TOKEN}"}
    assert results[0].text == "prompt plain"
    assert results[1].failed and "HTTP 500 after 1 retry" in results[1].error and "***" in results[1].error
    everything = [repr(backend), str(backend), repr(backend.fingerprint_parts()), repr(backend.load())]
    for result in results:
        everything += [repr(result), repr(dataclasses.asdict(result))]
    assert not any(TOKEN in item for item in everything)


def test_missing_token_variable_is_a_backend_error(server, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    backend = make_backend(server.hf_url, token_env=TOKEN_ENV)
    with pytest.raises(BackendError) as info:
        backend.load()
    message = info.value.format_message()
    assert f"environment variable {TOKEN_ENV}" in message and "source.token_env" in message
    assert f"export {TOKEN_ENV}=" in message and message.startswith("model remote:")
    with pytest.raises(BackendError):
        backend.generate(requests_for(["x"]))
    assert server.requests == []


def test_api_usage_snippet_reads_token_from_environment():
    source = HTTPSource(type="http", url="https://api-inference.huggingface.co/models/a/b", token_env="HF_TOKEN")
    snippet = api_usage_snippet(source)
    assert 'os.environ["HF_TOKEN"]' in snippet and "import requests" in snippet
    assert 'API_URL = "https://api-inference.huggingface.co/models/a/b"' in snippet
    assert '"inputs":' in snippet and "Bearer" in snippet and TOKEN not in snippet
    compile(snippet, "snippet", "exec")
    chat = api_usage_snippet(HTTPSource(type="http", url="http://127.0.0.1:8000", protocol="openai-chat", model="m"))
    assert "http://127.0.0.1:8000/v1/chat/completions" in chat and "os.environ" not in chat and '"messages"' in chat
    compile(chat, "chat", "exec")


def test_endpoint_urls():
    def url(u: str, p: str) -> str:
        return endpoint_url(HTTPSource(type="http", url=u, protocol=p))

    assert url("http://h:1", "openai-chat") == "http://h:1/v1/chat/completions"
    assert url("http://h:1/v1/", "openai-completions") == "http://h:1/v1/completions"
    assert url("http://h:1/v1/completions", "openai-completions") == "http://h:1/v1/completions"
    assert url("http://h:1/models/x", "hf-inference") == "http://h:1/models/x"


def test_fingerprint_parts():
    a = make_backend("http://127.0.0.1:9/models/x", concurrency=2, timeout_s=3, max_retries=1, token_env=TOKEN_ENV)
    b = make_backend("http://127.0.0.1:9/models/x", concurrency=9, timeout_s=30, max_retries=7)
    assert a.fingerprint_parts() == b.fingerprint_parts()
    assert a.fingerprint_parts() == {"url": "http://127.0.0.1:9/models/x", "protocol": "hf-inference", "model": None}


@pytest.mark.parametrize("protocol", ["openai-chat", "openai-completions"])
def test_openai_streaming(server, protocol):
    backend = make_backend(server.url, protocol, model="test-model")
    texts = ["one two three four five", "alpha beta gamma delta epsilon zeta"]
    reqs = requests_for(texts, max_new_tokens=4, stop=["omega"])
    reqs.append(requests_for(["a b omega c d"], max_new_tokens=10, stop=["omega"])[0])
    reqs.append(requests_for(["x y"], max_new_tokens=10)[0])
    reqs = [dataclasses.replace(r, prompt_id=f"q{i}") for i, r in enumerate(reqs)]
    results = backend.generate(reqs)
    check_complete(reqs, results)
    assert results[0].text == "five four three two" and results[0].finish_reason == "length"
    assert results[0].prompt_tokens == 5 and results[0].output_tokens == 4
    assert results[0].ttft_s is not None and 0 <= results[0].ttft_s <= results[0].latency_s
    assert results[0].extra["streamed"] is True
    assert results[2].text == "d c " and results[2].finish_reason == "stop"  # the server's stop_reason says so
    assert results[3].text == "y x" and results[3].finish_reason == "eos"
    body = server.requests[0].body
    assert body["stream"] is True and body["model"] == "test-model" and body["temperature"] == 0.0
    assert ("messages" in body) == (protocol == "openai-chat") and ("prompt" in body) == (protocol != "openai-chat")


def test_openai_falls_back_when_streaming_is_rejected():
    with FaultServer(reject_stream=True) as srv:
        backend = make_backend(srv.url, "openai-completions", concurrency=1)
        results = backend.generate(requests_for(["a b c", "d e f"]))
        assert [r.text for r in results] == ["c b a", "f e d"]
        assert [r.output_tokens for r in results] == [3, 3] and results[0].ttft_s is None
        # streaming with the extra fields, streaming without them, then plainly (remembered for the next prompt)
        assert [bool(h.body.get("stream")) for h in srv.requests] == [True, True, False, False]


def test_openai_drops_non_standard_fields_when_rejected():
    with FaultServer(strict_params=True) as srv:
        backend = make_backend(srv.url, "openai-chat", concurrency=1)
        results = backend.generate(requests_for(["a b c", "d e f"], repetition_penalty=1.2))
        assert [r.text for r in results] == ["c b a", "f e d"] and results[0].ttft_s is not None
        assert results[1].extra["ignored_settings"]
        sent = [(h.body.get("repeat_penalty"), h.body.get("repetition_penalty"), h.body.get("stream")) for h in srv.requests]
        assert sent == [(1.2, 1.2, True), (None, None, True), (None, None, True)]  # remembered after one rejection
    with FaultServer() as srv:  # a lenient server gets them: llama.cpp servers default to repeat_penalty 1.1
        make_backend(srv.url, "openai-completions").generate(requests_for(["x"]))
        assert srv.requests[0].body["repeat_penalty"] == 1.0 and "repetition_penalty" not in srv.requests[0].body


def test_openai_non_streaming(server):
    backend = make_backend(server.url, "openai-chat", stream=False)
    [result] = backend.generate(requests_for(["hello there world"]))
    assert result.text == "world there hello" and result.output_tokens == 3 and result.prompt_tokens == 3
    assert result.finish_reason == "eos" and result.ttft_s is None
    assert "stream" not in server.requests[0].body


def test_unreachable_server_is_recorded_per_prompt():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = make_backend(f"http://127.0.0.1:{port}/models/x", max_retries=1, timeout_s=1)
    reqs = requests_for(["a", "b", "c"])
    results = backend.generate(reqs)
    check_complete(reqs, results)
    assert all(r.failed and r.error.startswith("connection failed") and "after 1 retry" in r.error for r in results)


@pytest.mark.parametrize(
    ("status", "retried"),
    [(400, False), (401, False), (403, False), (404, False), (405, False), (501, False), (505, False)]
    + [(408, True), (425, True), (429, True), (500, True), (502, True), (503, True), (504, True)],
)
def test_only_answers_that_may_pass_are_retried(server, status: int, retried: bool):
    server.script("marks", [str(status)], repeat=True)
    backend = make_backend(server.hf_url, max_retries=2)
    backend.retry_after_cap_s = 0.01  # the test server's 429 asks for a second
    [result] = backend.generate(requests_for(["x marks"]))
    assert result.failed and result.error.startswith(f"HTTP {status} after 2 retries: " if retried else f"HTTP {status}: ")
    assert len(server.requests) == (3 if retried else 1)


def test_breaker_judges_only_the_first_wave():
    from reportgen.backends.http.breaker import FirstWaveBreaker

    dead = FirstWaveBreaker(3)
    assert [dead.admit(), dead.admit(), dead.admit()] == [None] * 3  # the first wave goes
    held: list[str | None] = []
    waiting = threading.Thread(target=lambda: held.append(dead.admit()))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive() and held == []  # the fourth waits for the wave to be decided
    assert [dead.record("refused"), dead.record("other"), dead.record("refused")] == [False, False, True]
    waiting.join(5)
    assert held == ["not sent: the endpoint failed each of the first 3 requests (refused)"] == [dead.reason]
    assert dead.record("refused") is False and dead.admit() == dead.reason  # opens once, stays open
    alive = FirstWaveBreaker(3)
    assert [alive.admit(), alive.admit(), alive.admit()] == [None] * 3
    waiting = threading.Thread(target=lambda: held.append(alive.admit()))
    waiting.start()
    assert [alive.record("refused"), alive.record(None), alive.record("x"), alive.record("y")] == [False] * 4
    waiting.join(5)
    assert not waiting.is_alive() and held[-1] is None  # an answer lets the held request go
    assert alive.reason is None and all(alive.record("z") is False and alive.admit() is None for _ in range(10))
