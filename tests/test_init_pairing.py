"""`reportgen init` with an adapter trained on another machine (issue 27, item 12): paired with the given
base by folder name, saying which; paths in tags dropped; one download hint, never for a mistyped path.
Through the real command line, offline, with an empty temporary Hugging Face cache."""

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
ELSEWHERE = "/home/alice/checkpoints/tiny-base"  # where the adapter was trained: not on this machine
CARD = f"""---
library_name: peft
base_model: {ELSEWHERE}
tags:
- base_model:adapter:{ELSEWHERE}
- lora
- transformers
---
# Tiny adapter
"""


@pytest.fixture()
def env(tmp_path: Path) -> dict:
    return {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }


def reportgen(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def test_an_adapter_from_another_machine_runs_on_the_base_of_that_name(
    tmp_path: Path, env: dict, tiny_llama_dir: Path, tiny_lora_dir: Path
):
    models = tmp_path / "models"
    shutil.copytree(tiny_llama_dir, models / "tiny-base")
    shutil.copytree(tiny_lora_dir, models / "tiny-adapter")
    adapter_file = models / "tiny-adapter" / "adapter_config.json"
    adapter_file.write_text(json.dumps({**json.loads(adapter_file.read_text()), "base_model_name_or_path": ELSEWHERE}))
    (models / "tiny-adapter" / "README.md").write_text(CARD)

    result = reportgen("init", "models/tiny-base", "models/tiny-adapter", "-o", "configs/study.yaml", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert (
        f"models/tiny-adapter: base_model_name_or_path '{ELSEWHERE}' is not on this machine; running it on the given base "
        "../models/tiny-base (same folder name tiny-base and a config.json)"
    ) in result.stderr
    study = yaml.safe_load((tmp_path / "configs" / "study.yaml").read_text())
    adapter = study["models"][1]
    assert adapter["source"] == {"type": "local", "path": "../models/tiny-base"}
    assert adapter["adapter"] == {"path": "../models/tiny-adapter"}
    assert adapter["card"]["tags"] == ["lora", "transformers"]  # the tag that carried the author's path is gone
    assert "base_model" not in adapter["card"] and "/home/alice" not in (tmp_path / "configs" / "study.yaml").read_text()

    alone = reportgen("init", "models/tiny-adapter", cwd=tmp_path, env=env)  # the base not given: say which to pass
    assert alone.returncode == 2
    assert alone.stderr == (
        f"Error: models/tiny-adapter/adapter_config.json: base_model_name_or_path '{ELSEWHERE}' is a folder on "
        "another machine. Fix: pass the base model's folder (named tiny-base) to `reportgen init` too\n"
    )


def test_a_mistyped_local_path_gets_no_download_hint(tmp_path: Path, env: dict, tiny_llama_dir: Path):
    shutil.copytree(tiny_llama_dir, tmp_path / "models" / "tiny-llama")
    result = reportgen("init", "models/tiny-lama", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr == (
        "Error: models/tiny-lama: no such folder or file. Fix: check the path (relative to the current directory); "
        "did you mean models/tiny-llama?\n"
    )


def test_every_download_hint_is_the_same_command(tmp_path: Path, env: dict):
    init = reportgen("init", "nobody/nothing", cwd=tmp_path, env=env)
    assert init.returncode == 2 and "Fix: download it once with `hf download nobody/nothing`" in init.stderr
    (tmp_path / "study.yaml").write_text(
        "title: Hub\nmodels:\n  - {id: m, name: M, source: {type: hub, repo: nobody/nothing, revision: v2}}\n"
    )
    validate = reportgen("validate", "study.yaml", cwd=tmp_path, env=env)
    assert validate.returncode == 2
    assert "Fix: download it once with `hf download nobody/nothing --revision v2`" in validate.stderr
    specs = reportgen("specs", "study.yaml", cwd=tmp_path, env=env)
    assert specs.returncode == 1 and "`hf download nobody/nothing --revision v2`" in specs.stderr
    assert "huggingface-cli" not in init.stderr + validate.stderr + specs.stderr
