"""Shared fixtures: tiny real models built once per session, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    from tiny_models import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    from tiny_models import make_tiny_gpt2

    return make_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    from tiny_models import make_tiny_t5

    return make_tiny_t5(tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="session")
def tiny_lora_dir(tmp_path_factory, tiny_llama_dir) -> Path:
    from tiny_models import make_lora_adapter

    return make_lora_adapter(tiny_llama_dir, tmp_path_factory.mktemp("tiny-lora"))


@pytest.fixture(scope="session")
def tiny_gguf_path(tmp_path_factory) -> Path:
    """A tiny llama GGUF file (float32 tensors, BPE tokenizer, chat template) that transformers can load."""
    from tiny_models import make_tiny_gguf

    return make_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def stored_run_report(tmp_path_factory, tiny_llama_dir, tiny_gpt2_dir) -> Path:
    """The HTML report of a study run and rendered by the test session through the real CLI (``reportgen run``
    stores the answers, timed passes and peak memory of two tiny models; ``reportgen render`` reads them back),
    so the browser and accessibility checks see what today's code and templates write from a stored run,
    not a committed report that nothing keeps current."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    folder = tmp_path_factory.mktemp("stored-run")
    categories = ("facts", "arithmetic")
    (folder / "prompts.yaml").write_text(
        "prompts:\n"
        + "".join(
            f"  - {{id: p{i}, category: {categories[i % 2]}, prompt: 'Say the number {i} twice.', reference: '{i} {i}'}}\n"
            for i in range(6)
        )
    )
    (folder / "study.yaml").write_text(
        f"""title: A stored run
prompts: prompts.yaml
generation: {{max_new_tokens: 6}}
measure: {{warmup: 0, repeats: 2, prompts: 2, new_tokens: 4}}
output: {{dir: report, formats: [html]}}
models:
  - {{id: llama, name: Tiny Llama, source: {{type: local, path: {tiny_llama_dir}}}, batch_size: 3}}
  - {{id: gpt2, name: Tiny GPT-2, source: {{type: local, path: {tiny_gpt2_dir}}}, batch_size: 3}}
"""
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(root)}
    for command in (["run"], ["render", "-f", "html"]):
        done = subprocess.run(
            [sys.executable, "-m", "reportgen", "-q", *command, str(folder / "study.yaml")],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            cwd=folder,
        )
        assert done.returncode == 0, f"reportgen {command[0]}: {done.stderr[-3000:]}"
    return folder / "report" / "report.html"


@pytest.fixture(autouse=True)
def _statistics_computed_afresh():
    """Each test computes its resampled statistics itself: stats.memo remembers them for the whole process."""
    from reportgen.stats.memo import SHARED_STATS

    SHARED_STATS.values.clear()
    SHARED_STATS.added.clear()
    yield
