"""`reportgen init` on the four kinds of model folder, then `validate` and `build` on the config exactly as
written, each through the real command line in a subprocess (offline, with a temporary Hugging Face cache)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SNAPSHOT_CARD = """---
license: mit
language: en
base_model: /home/someone/checkpoints/gpt2-base
tags: [tiny, /home/someone/runs/3]
---
# Tiny GPT-2
"""


def hub_cache(hf_home: Path, repo: str, weights: Path) -> Path:
    """``weights`` as the cached main revision of ``repo`` in ``hf_home``; returns the snapshot folder."""
    folder = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / COMMIT
    shutil.copytree(weights, snapshot)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    return snapshot


def reportgen(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env
    )


@pytest.fixture()
def cli_env(tmp_path: Path) -> dict:
    return {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "REPORTGEN_CACHE": str(tmp_path / "reportgen-cache"),
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "80",
    }


@pytest.mark.slow
def test_init_validate_build_with_no_edits(tmp_path, cli_env, tiny_llama_dir, tiny_gpt2_dir, tiny_lora_dir, tiny_gguf_path):
    models = tmp_path / "models"
    local = shutil.copytree(tiny_llama_dir, models / "tiny-llama")
    adapter = shutil.copytree(tiny_lora_dir, models / "tiny-lora")
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(local)  # a folder on this machine, as PEFT writes it
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    on_hub = shutil.copytree(tiny_lora_dir, models / "hub-lora")
    config["base_model_name_or_path"] = "someone/tiny-llama-hub"  # its base is a Hub id in the local cache
    (on_hub / "adapter_config.json").write_text(json.dumps(config))
    gguf = shutil.copy(tiny_gguf_path, models / "tiny-llama.gguf")
    snapshot = hub_cache(tmp_path / "hf", "someone/tiny-gpt2", tiny_gpt2_dir)
    (snapshot / "README.md").write_text(SNAPSHOT_CARD)
    hub_cache(tmp_path / "hf", "someone/tiny-llama-hub", tiny_llama_dir)

    study_dir = tmp_path / "study"
    out = study_dir / "study.yaml"
    args = [str(local), str(snapshot), str(adapter), str(on_hub), str(gguf), "someone/tiny-llama-hub"]
    init = reportgen("init", *args, "-o", str(out), "--title", "Tiny", cwd=tmp_path, env=cli_env)
    assert init.returncode == 0, init.stderr
    assert f"then run `reportgen validate {out}`" in init.stderr  # on a pipe the hint is one line, never wrapped
    assert init.stdout.splitlines() == [str(out.parent / "prompts.yaml"), str(out)]  # the paths written: data, on stdout
    data = yaml.safe_load(out.read_text())
    by_id = {m["id"]: m for m in data["models"]}
    assert data["prompts"] == "prompts.yaml" and (study_dir / "prompts.yaml").is_file()
    assert by_id["tiny-llama"]["source"] == {"type": "local", "path": "../models/tiny-llama"}
    assert by_id["tiny-gpt2"]["source"] == {"type": "hub", "repo": "someone/tiny-gpt2"}
    assert by_id["tiny-lora"]["source"] == {"type": "local", "path": "../models/tiny-llama"}
    assert by_id["tiny-lora"]["adapter"] == {"path": "../models/tiny-lora"}
    assert by_id["hub-lora"]["source"] == {"type": "hub", "repo": "someone/tiny-llama-hub"}
    assert by_id["hub-lora"]["adapter"] == {"path": "../models/hub-lora"}
    assert by_id["tiny-llama-2"]["source"] == {"type": "gguf", "path": "../models/tiny-llama.gguf"}
    assert by_id["tiny-llama-hub"]["source"] == {"type": "hub", "repo": "someone/tiny-llama-hub"}
    card = by_id["tiny-gpt2"]["card"]
    assert card["license"] == "mit" and card["language"] == ["en"] and card["tags"] == ["tiny"]
    assert "base_model" not in card  # a folder on the card author's machine
    assert "base_model" not in by_id["tiny-lora"]["card"]  # the base is a local folder, not a Hub id
    assert str(tmp_path) not in out.read_text()  # every path relative to the config file
    assert card["description"] == "TODO" and data["introduction"] == "TODO"

    validate = reportgen("validate", str(out), cwd=tmp_path, env=cli_env)
    assert validate.returncode == 0, validate.stderr
    assert "models[0].card.description: placeholder left by `reportgen init`" in validate.stderr
    assert "OK" in validate.stdout and "placeholders to write" in validate.stdout

    build = reportgen("build", str(out), cwd=tmp_path, env=cli_env)
    assert build.returncode == 0, build.stderr[-3000:]
    readme = study_dir / "reports" / "study" / "README.md"
    assert readme.is_file(), build.stdout
    text = readme.read_text()
    for model_id in by_id:
        assert model_id in text or by_id[model_id]["name"] in text


def test_init_prefers_a_prompt_set_already_there_and_names_missing_hub_ids(tmp_path, cli_env, tiny_llama_dir):
    (tmp_path / "prompts.yaml").write_text("prompts:\n  - {id: a, prompt: Hi}\n")
    result = reportgen("init", str(tiny_llama_dir), "-o", "study.yaml", cwd=tmp_path, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "prompts.yaml").read_text().startswith("prompts:\n  - {id: a")  # not overwritten
    assert yaml.safe_load((tmp_path / "study.yaml").read_text())["prompts"] == "prompts.yaml"

    missing = reportgen("init", "nobody/nothing", cwd=tmp_path, env=cli_env)
    assert missing.returncode == 2
    assert "nobody/nothing" in missing.stderr and "not in the local Hugging Face cache" in missing.stderr
    assert "Traceback" not in missing.stderr
