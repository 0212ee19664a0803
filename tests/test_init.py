"""`reportgen init`: a study config from model folders, card metadata from README front matter."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from reportgen.cli import main
from reportgen.study.config import load_config

CARD = """---
library_name: peft
pipeline_tag: text-generation
tags:
- code
language: en
base_model: NousResearch/Llama-2-7b-chat-hf
license: llama2
---
# My model
"""


def make_folders(root: Path) -> tuple[Path, Path]:
    seed = Path(__file__).parent.parent / "configs" / "assignment"
    base = root / "Llama-Base"
    base.mkdir()
    base_config = json.loads((seed / "llama-2-7b-chat-finetune-app" / "config.json").read_text())
    (base / "config.json").write_text(json.dumps(base_config))
    (base / "README.md").write_text(CARD)
    adapter = root / "my-adapter"
    adapter.mkdir()
    adapter_config = json.loads((seed / "securix-llama-2-qlora" / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = base_config["_name_or_path"]
    (adapter / "adapter_config.json").write_text(json.dumps(adapter_config))
    return base, adapter


def test_init_writes_a_config_whose_todos_validate_warns_about(tmp_path: Path):
    base, adapter = make_folders(tmp_path)
    out = tmp_path / "study.yaml"
    result = CliRunner().invoke(main, ["init", str(base), str(adapter), "-o", str(out), "--title", "Mine"])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(out.read_text())
    first, second = data["models"]
    assert first["id"] == "llama-base" and first["source"] == {"type": "local", "path": "Llama-Base"}
    assert first["card"]["library"] == "peft"
    assert first["card"]["pipeline_tag"] == "text-generation"
    assert first["card"]["language"] == ["en"] and first["card"]["license"] == "llama2"
    assert first["card"]["description"] == "TODO"
    # The adapter's base is one of the given folders, so it runs on that folder.
    assert second["source"] == {"type": "local", "path": "Llama-Base"}
    assert second["adapter"] == {"path": "my-adapter"}

    study = load_config(out)
    assert study.title == "Mine"
    assert data["prompts"] == "prompts.yaml" and (tmp_path / "prompts.yaml").is_file()  # the starter set, copied
    assert study.prompts is not None and study.prompts.is_file()
    result = CliRunner().invoke(main, ["validate", str(out)])
    assert result.exit_code == 0, result.output  # placeholders are prose to write, not errors
    assert "models[0].card.description: placeholder left by `reportgen init`" in result.output
    assert f"{out}:" in result.output


def test_init_rejects_a_folder_without_a_model(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["init", str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "no config.json" in result.output
