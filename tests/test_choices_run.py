"""Multiple choice by log-likelihood through the run: prompt-set items and their errors, the store (resumable
per fingerprint + item + choice), an OpenAI-compatible completions endpoint on 127.0.0.1 that echoes the
prompt's log-probabilities (computed by a real tiny model), and an endpoint that cannot, which is asked once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reportgen.backends import create_backend
from reportgen.backends.base import Unsupported
from reportgen.errors import ConfigError
from reportgen.run.plan import choice_requests
from reportgen.study.config import HTTPSource, ModelConfig
from reportgen.study.prompts import load_prompt_set

ROOT = Path(__file__).resolve().parents[1]

ITEMS_YAML = """\
prompts:
  - {id: p0, prompt: 'Say hello'}
multiple_choice:
  - id: capital
    category: geography
    context: 'What is the capital of France? Answer:'
    choices: [Paris, London, the sea]
    answer: Paris
  - id: sum
    category: arithmetic
    context: Two plus two is
    choices: [four, five, forty-two]
    answer: 0
  - id: fox
    category: language
    context: The quick brown fox jumps over the
    choices: [lazy dog., moon]
    answer: 0
"""


# ------------------------------------------------------------------------------------------- the items


def test_items_load_with_gold_and_continuations(tmp_path):
    (tmp_path / "p.yaml").write_text(ITEMS_YAML)
    items = load_prompt_set(tmp_path / "p.yaml").multiple_choice
    assert [(i.id, i.category, i.gold) for i in items] == [
        ("capital", "geography", 0),
        ("sum", "arithmetic", 0),
        ("fox", "language", 0),
    ]
    assert items[0].continuations()[1] == ("What is the capital of France? Answer:", " London")


@pytest.mark.parametrize(
    "item, problem",
    [
        (
            "{id: q, context: c, choices: [a, b], answer: z}",
            "p.yaml:4: multiple_choice[0]: 'answer' 'z' is not one of 'choices'. Fix: give a choice's text or its index (from 0)",
        ),
        (
            "{id: q, context: c, choices: [a, b], answer: 2}",
            "p.yaml:4: multiple_choice[0]: 'answer' 2 is not an index of 'choices' (0 to 1). Fix: count from 0",
        ),
        (
            "{id: q, context: c, choices: [a, a], answer: 0}",
            "p.yaml:4: multiple_choice[0]: 'choices' has the same choice twice. Fix: make every choice different",
        ),
        ("{id: q, context: c, choices: [a, b]}", "p.yaml:4: multiple_choice[0].answer: required key is missing. Fix: add it."),
    ],
)
def test_bad_items_are_one_line_with_file_and_line(tmp_path, item, problem):
    (tmp_path / "p.yaml").write_text(f"prompts:\n  - {{id: p0, prompt: hi}}\nmultiple_choice:\n  - {item}\n")
    with pytest.raises(ConfigError) as caught:
        load_prompt_set(tmp_path / "p.yaml")
    assert caught.value.problems == [f"{tmp_path}/{problem}"]


def test_jsonl_lines_with_choices_are_items(tmp_path):
    lines = [
        {"id": "p0", "prompt": "hi"},
        {"id": "q0", "context": "Sky is", "choices": ["blue", "green"], "answer": "blue"},
        {"id": "q1", "context": "Grass is", "choices": ["blue", "green"], "answer": 5},
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ConfigError) as caught:
        load_prompt_set(tmp_path / "p.jsonl")
    assert caught.value.problems == [
        f"{tmp_path}/p.jsonl:3: multiple_choice[1]: 'answer' 5 is not an index of 'choices' (0 to 1). Fix: count from 0"
    ]


# ------------------------------------------------------------------------------------------- an endpoint


class EchoServer:
    """``POST /v1/completions`` on 127.0.0.1. mode "model": echo requests get the prompt's tokens and their
    log-probabilities from a real tiny model (as vLLM answers them, BOS first with none); "plain": no
    log-probabilities at all; "reject": HTTP 400 for echo. Other requests get a short completion."""

    def __init__(self, mode: str, model_dir: Path | None = None):
        self.mode, self.echo_requests = mode, 0
        if model_dir is not None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.torch = torch
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = server.answer(body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, body: dict) -> tuple[int, dict]:
        if not body.get("echo"):
            return 200, {
                "choices": [{"text": " ok", "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            }
        self.echo_requests += 1
        if self.mode == "reject":
            return 400, {"error": {"message": "echo is not supported with this model"}}
        if self.mode == "plain":
            return 200, {"choices": [{"text": " ok", "finish_reason": "length", "logprobs": None}]}
        torch, prompt = self.torch, body["prompt"]
        encoded = self.tokenizer(prompt, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"], [start for start, _ in encoded["offset_mapping"]]
        with torch.inference_mode():
            logp = torch.log_softmax(self.model(torch.tensor([ids])).logits[0].float(), dim=-1)
        pieces = [self.tokenizer.decode([i]) for i in ids]
        values = [None] + [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]
        top = [None] + [
            {self.tokenizer.decode([int(logp[i - 1].argmax())]): float(logp[i - 1].max())} for i in range(1, len(ids))
        ]
        generated = int(logp[-1].argmax())
        logprobs = {
            "tokens": pieces + [self.tokenizer.decode([generated])],
            "token_logprobs": values + [float(logp[-1].max())],
            "text_offset": offsets + [len(prompt)],
            "top_logprobs": top + [{}],
        }
        return 200, {"choices": [{"text": prompt, "logprobs": logprobs, "finish_reason": "length"}]}


def http_backend(url: str):
    source = HTTPSource(type="http", url=url, protocol="openai-completions", max_retries=0, timeout_s=30)
    return create_backend(ModelConfig(id="remote", name="Remote", source=source))


def test_endpoint_loglikelihoods_equal_the_transformers_backend(tmp_path, tiny_llama_dir, monkeypatch):
    """The same tiny model behind an echoing endpoint and loaded locally: the same log-likelihood per choice
    (within 1e-4), the same tokens counted, the same greedy flags."""
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "p.yaml").write_text(ITEMS_YAML)
    requests = choice_requests(load_prompt_set(tmp_path / "p.yaml"))
    server = EchoServer("model", tiny_llama_dir)
    try:
        remote = http_backend(server.url)
        assert "continuation" in remote.request_kinds
        remote.load()
        theirs = remote.continuations(requests)
    finally:
        server.stop()
    local = create_backend(ModelConfig(id="m", name="m", source={"type": "local", "path": str(tiny_llama_dir)}))
    local.load()
    ours = local.continuations(requests)
    local.close()
    assert (
        [(r.item_id, r.choice) for r in theirs]
        == [(r.item_id, r.choice) for r in ours]
        == [(r.item_id, r.choice) for r in requests]
    )
    for a, b in zip(theirs, ours):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4), (a.item_id, a.choice)
        assert (a.n_tokens, a.is_greedy) == (b.n_tokens, b.is_greedy)


@pytest.mark.parametrize("mode", ["plain", "reject"])
def test_endpoint_without_prompt_logprobs_refuses_in_one_line(mode):
    server = EchoServer(mode)
    try:
        backend = http_backend(server.url)
        with pytest.raises(Unsupported) as caught:
            backend.continuations(choice_requests(load_prompt_set_text(ITEMS_YAML)))
    finally:
        server.stop()
    message = caught.value.format_message()
    assert "\n" not in message
    assert message.startswith(f"{server.url}/v1/completions gives no prompt log-probabilities (")
    assert message.endswith(
        "Fix: serve the model with a completions endpoint that honours echo and logprobs (vLLM, llama.cpp's server)"
    )
    if mode == "reject":
        assert "(HTTP 400: 'echo is not supported with this model')" in message


def load_prompt_set_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "p.yaml").write_text(text)
        return load_prompt_set(Path(folder) / "p.yaml")


def test_an_encoder_decoder_model_refuses_multiple_choice(tmp_path, tiny_t5_dir, monkeypatch):
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    backend = create_backend(ModelConfig(id="t5", name="t5", source={"type": "local", "path": str(tiny_t5_dir)}))
    backend.load()
    try:
        with pytest.raises(Unsupported, match="^an encoder-decoder model: multiple choice by log-likelihood is scored"):
            backend.continuations(choice_requests(load_prompt_set_text(ITEMS_YAML)))
    finally:
        backend.close()


def test_chat_endpoint_is_never_planned_for_choices():
    source = HTTPSource(type="http", url="http://127.0.0.1:9", protocol="openai-chat")
    assert "continuation" not in create_backend(ModelConfig(id="c", name="c", source=source)).request_kinds


# ------------------------------------------------------------------------------------------- the real CLI


def reportgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT), "REPORTGEN_CACHE": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


def test_run_stores_choices_resumes_and_settles_a_refusal(tmp_path, tiny_llama_dir):
    """``reportgen run``: the local model's choices land in the store, one row per item and choice; the endpoint
    that cannot give prompt log-probabilities says so in one line and is asked once; a second run asks
    nobody again, and a new item is the only work of a third."""
    (tmp_path / "prompts.yaml").write_text(ITEMS_YAML)
    server = EchoServer("plain")
    study = tmp_path / "study.yaml"
    study.write_text(
        f"""title: Multiple choice
prompts: prompts.yaml
generation: {{max_new_tokens: 2}}
measure: {{repeats: 0, warmup: 0}}
output: {{dir: report, formats: [markdown]}}
models:
  - {{id: llama, name: Tiny Llama, source: {{type: local, path: {tiny_llama_dir}}}}}
  - {{id: remote, name: Remote, source: {{type: http, url: {server.url}, protocol: openai-completions, max_retries: 0}}}}
"""
    )
    try:
        first = reportgen("run", str(study), cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        refusal = [line for line in first.stderr.splitlines() if "no multiple-choice scores" in line]
        assert len(refusal) == 1 and "gives no prompt log-probabilities" in refusal[0], first.stderr
        assert server.echo_requests == 1  # the first choice told: the others were not sent
        db = sqlite3.connect(tmp_path / "report" / "results.sqlite")
        rows = db.execute("SELECT model_id, item_id, choice, created_at FROM choice_loglik ORDER BY 2, 3").fetchall()
        assert [(m, i, c) for m, i, c, _ in rows] == [
            ("llama", "capital", 0), ("llama", "capital", 1), ("llama", "capital", 2),
            ("llama", "fox", 0), ("llama", "fox", 1),
            ("llama", "sum", 0), ("llama", "sum", 1), ("llama", "sum", 2),
        ]  # fmt: skip
        assert db.execute("SELECT model_id, request_kind FROM refusals").fetchall() == [("remote", "continuation")]

        second = reportgen("run", str(study), cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert server.echo_requests == 1  # settled: not asked again
        assert db.execute("SELECT model_id, item_id, choice, created_at FROM choice_loglik ORDER BY 2, 3").fetchall() == rows

        (tmp_path / "prompts.yaml").write_text(
            ITEMS_YAML + "  - {id: sky, context: The sky is, choices: [blue, green], answer: 0}\n"
        )
        check = reportgen("check", str(study), cwd=tmp_path)  # the report is stale: one item is new
        assert "model llama would score 2 multiple-choice continuations" in check.stdout + check.stderr, check.stdout
        third = reportgen("run", str(study), cwd=tmp_path)
        assert third.returncode == 0, third.stderr
        assert server.echo_requests == 1
        new = db.execute("SELECT model_id, item_id, choice FROM choice_loglik WHERE created_at > ? ORDER BY 2, 3", (rows[-1][3],))
        assert new.fetchall() == [("llama", "sky", 0), ("llama", "sky", 1)]
        assert "2 multiple-choice continuations are not scored yet" in third.stderr + third.stdout

        rendered = reportgen("render", str(study), cwd=tmp_path)
        assert rendered.returncode == 0, rendered.stderr
        acc, norm, n = check_report((tmp_path / "report" / "README.md").read_text(), db)

        metrics = reportgen("metrics", str(study), "--json", cwd=tmp_path)
        assert metrics.returncode == 0, metrics.stderr
        summary = json.loads(metrics.stdout)["tables"]["choice_summary"]
        assert [(r["model_id"], r["metric"], r["mean"], r["n"]) for r in summary] == [
            ("llama", "mc_acc", acc / n, n),
            ("llama", "mc_acc_norm", norm / n, n),
        ]
    finally:
        server.stop()


def check_report(readme: str, db: sqlite3.Connection) -> tuple[int, int, int]:
    """The multiple-choice section says what the stored log-likelihoods say, computed here by hand: each item's
    argmax (summed, and per character of the choice), Wilson intervals from statsmodels; the endpoint that
    refused has no value; the verdict has a line for it."""
    from statsmodels.stats.proportion import proportion_confint

    prompt_set = load_prompt_set_text(ITEMS_YAML + "  - {id: sky, context: The sky is, choices: [blue, green], answer: 0}\n")
    logprob = {(i, c): lp for i, c, lp in db.execute("SELECT item_id, choice, logprob FROM choice_loglik WHERE model_id='llama'")}
    acc = norm = 0
    for item in prompt_set.multiple_choice:
        values = [logprob[(item.id, c)] for c in range(len(item.choices))]
        acc += values.index(max(values)) == item.gold
        normed = [v / len(choice) for v, choice in zip(values, item.choices)]
        norm += normed.index(max(normed)) == item.gold
    n = len(prompt_set.multiple_choice)

    def cell(k: int) -> str:
        low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
        return f"{k / n:.2f} [{low:.2f}, {high:.2f}]"

    section = readme[readme.index("### Multiple choice") :]
    assert f"| MC accuracy ↑ | {cell(acc)} | — | {n} |" in section, section[:800]
    assert f"| MC accuracy (length-normalised) ↑ | {cell(norm)} | — | {n} |" in section
    assert "**MC accuracy per category**" in section  # geography, arithmetic, language
    verdict = readme[: readme.index("### Multiple choice")]
    assert f"**MC accuracy:** Tiny Llama, {acc / n:.2f}. ([Multiple choice](#multiple-choice))" in verdict
    return acc, norm, n


def test_the_readme_example_items_load(tmp_path):
    """The multiple-choice prompt set a new user copies from the README loads, with the golds it says."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Multiple choice by log-likelihood", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    (tmp_path / "prompts.yaml").write_text(block)
    items = load_prompt_set(tmp_path / "prompts.yaml").multiple_choice
    assert [(i.id, i.gold, i.target_delimiter) for i in items] == [("capital-fr", 0, " "), ("add", 0, "\n    ")]
    assert items[0].continuations()[0] == ("Question: What is the capital of France?\nAnswer:", " Paris")


def test_the_demo_items_are_valid(tmp_path):
    """The demo's prompt set (configs/prompts/demo.yaml) loads with its 24 multiple-choice items, four categories."""
    items = load_prompt_set(ROOT / "configs" / "prompts" / "demo.yaml").multiple_choice
    assert len(items) == 24
    assert {i.category for i in items} == {"factual", "arithmetic", "reasoning", "coding"}


def test_entries_with_the_same_weights_score_the_choices_once(tmp_path, tiny_llama_dir):
    """A greedy and a sampled entry of the same weights: the first scores the choices, the second is planned
    for none (log-likelihoods do not depend on sampling); both report them (stats.choice reads by fingerprint)."""
    from reportgen.run.plan import plan_models
    from reportgen.store import Store, store_path
    from reportgen.study.config import load_config

    (tmp_path / "prompts.yaml").write_text(ITEMS_YAML)
    source = f"{{type: local, path: {tiny_llama_dir}}}"
    (tmp_path / "study.yaml").write_text(
        f"""title: Same weights
prompts: prompts.yaml
output: {{dir: report}}
models:
  - {{id: greedy, name: Greedy, source: {source}}}
  - {{id: sampled, name: Sampled, source: {source}, generation: {{do_sample: true, temperature: 0.7, seed: 1}}}}
"""
    )
    study = load_config(tmp_path / "study.yaml")
    with Store(store_path(study)) as store:
        greedy, sampled = plan_models(store, study, load_prompt_set(tmp_path / "prompts.yaml"), list(study.models))
    assert greedy.fingerprint == sampled.fingerprint
    assert len(greedy.choices_pending) == 8 and sampled.choices_pending == []


class Recorder:
    """A progress display that keeps what it was told (run_study's ``progress``)."""

    def __init__(self):
        self.tasks: dict[int, list] = {}

    def add_task(self, description: str, total: int) -> int:
        self.tasks[len(self.tasks)] = [description, total, 0]
        return len(self.tasks) - 1

    def advance(self, task: int, advance: int) -> None:
        self.tasks[task][2] += advance


def test_scoring_the_choices_shows_progress(tmp_path, tiny_llama_dir, monkeypatch):
    """Multiple choice has a progress task of its own, advanced batch by batch to its total (from the model's
    worker process, through the driver)."""
    from reportgen.run import execute
    from reportgen.run.runner import run_study
    from reportgen.study.config import load_config

    monkeypatch.setattr(execute, "CHOICE_BATCH", 3)  # batches of whole items: 3, 2, 3 choices
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "prompts.yaml").write_text(ITEMS_YAML)
    (tmp_path / "study.yaml").write_text(
        f"""title: Progress
prompts: prompts.yaml
generation: {{max_new_tokens: 2}}
measure: {{repeats: 0, warmup: 0}}
output: {{dir: report}}
models:
  - {{id: llama, name: Tiny Llama, source: {{type: local, path: {tiny_llama_dir}}}}}
"""
    )
    progress = Recorder()
    assert run_study(load_config(tmp_path / "study.yaml"), progress=progress).models[0].error is None
    assert [t for t in progress.tasks.values() if "multiple choice" in t[0]] == [["llama (multiple choice)", 8, 8]]
