"""`reportgen specs` when a model cannot be described: one model's problem stays that model's (issue 27,
items 6 and 7), through the real command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GPT2_CONFIG = ROOT / "configs" / "assignment" / "securix-gpt2" / "config.json"

#: a tiny Mixtral: its experts are 3-D parameters that LoRA reaches only through target_parameters
MOE = {
    "model_type": "mixtral",
    "architectures": ["MixtralForCausalLM"],
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "vocab_size": 100,
    "max_position_embeddings": 128,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
}


def reportgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def test_a_model_whose_adapter_base_is_missing_is_named_with_its_reason(tmp_path: Path, tiny_lora_dir: Path):
    shutil.copy(GPT2_CONFIG, tmp_path / "gpt2.json")
    (tmp_path / "study.yaml").write_text(
        f"""title: Missing base
models:
  - id: adapted
    name: Adapted
    source: {{type: local, path: base-not-here}}
    adapter: {{path: {tiny_lora_dir}}}
  - {{id: gpt2, name: GPT-2, config: gpt2.json}}
"""
    )
    result = reportgen("specs", "study.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert list(data["models"]) == ["adapted", "gpt2"]
    assert data["models"]["adapted"] is None
    assert data["models"]["gpt2"]["parameters"] == 124_439_808
    reason = (
        "study.yaml:5: models[0] (adapted): no spec: the adapter's base model folder 'base-not-here' "
        "does not exist. Fix: point source.path at a save_pretrained folder"
    )
    assert data["no_spec"] == {"adapted": reason}
    assert result.stderr == f"Error: {reason}\n"

    table = reportgen("specs", "study.yaml", cwd=tmp_path)
    assert table.returncode == 1 and table.stderr == f"Error: {reason}\n"
    assert "GPT2LMHeadModel" in table.stdout


def test_an_endpoint_without_a_config_is_null_and_not_a_failure(tmp_path: Path):
    shutil.copy(GPT2_CONFIG, tmp_path / "gpt2.json")
    (tmp_path / "study.yaml").write_text(
        """title: Endpoint
models:
  - {id: served, name: Served, source: {type: http, url: "http://127.0.0.1:9/v1", protocol: openai-chat}}
  - {id: gpt2, name: GPT-2, config: gpt2.json}
"""
    )
    result = reportgen("specs", "study.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["models"]["served"] is None and data["models"]["gpt2"]["architecture"] == "GPT2LMHeadModel"
    assert "HTTP endpoint says nothing about its model" in data["no_spec"]["served"]
    assert "models[0] (served)" in result.stderr


def test_an_adapter_peft_refuses_gets_a_note_and_the_others_are_described(tmp_path: Path):
    (tmp_path / "moe.json").write_text(json.dumps(MOE))
    refused = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.1, "target_modules": [],
               "target_parameters": ["experts.gate_up_proj", "experts.down_proj"]}  # fmt: skip
    (tmp_path / "moe-adapter.json").write_text(json.dumps(refused))
    (tmp_path / "ok-adapter.json").write_text(json.dumps({**refused, "lora_dropout": 0.0}))
    shutil.copy(GPT2_CONFIG, tmp_path / "gpt2.json")
    (tmp_path / "study.yaml").write_text(
        """title: Thirty adapters, one refused
models:
  - {id: refused, name: Refused, config: moe.json, adapter: {config: moe-adapter.json}}
  - {id: counted, name: Counted, config: moe.json, adapter: {config: ok-adapter.json}}
  - {id: gpt2, name: GPT-2, config: gpt2.json}
"""
    )
    result = reportgen("specs", "study.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    models = json.loads(result.stdout)["models"]
    assert models["refused"]["adapter"]["trainable_parameters"] is None
    assert models["refused"]["adapter"]["r"] == 4
    (note,) = [n for n in models["refused"]["notes"] if n.startswith("adapter parameters not counted")]
    assert "PEFT" in note and "lora_dropout != 0" in note
    assert models["counted"]["adapter"]["trainable_parameters"] > 0
    assert models["gpt2"]["parameters"] == 124_439_808
