"""One validation layer for model files: bad config.json values, broken adapter configs and cut GGUF
headers are one line naming the file and the key in validate, specs, render and run (no traceback)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from reportgen.cli import main
from reportgen.errors import ConfigError
from reportgen.specs.validate import adapter_config_problems, gguf_header_problems, model_config_problems

BASE = json.loads(
    (Path(__file__).parent.parent / "configs" / "assignment" / "llama-2-7b-chat-finetune-app" / "config.json").read_text()
)

BAD_VALUES = [
    ("hidden_size", "big", "hidden_size: must be a whole number of at least 1, got a string 'big'"),
    ("vocab_size", None, "vocab_size: is null"),
    ("num_attention_heads", 0, "num_attention_heads: must be a whole number from 1"),
    ("num_hidden_layers", -3, "num_hidden_layers: must be a whole number from 1 to 2147483647, got -3"),
    ("num_hidden_layers", 2.5, "num_hidden_layers: must be a whole number of at least 1, got a number 2.5"),
    ("max_position_embeddings", True, "max_position_embeddings: must be a whole number of at least 1, got true/false"),
    ("intermediate_size", 10**12, "intermediate_size: must be a whole number from 1 to 2147483647"),
    ("rms_norm_eps", -1e-5, "rms_norm_eps: must be a positive finite number"),
    ("architectures", "LlamaForCausalLM", "architectures: must be a list of class names"),
    ("model_type", 7, "model_type: must be a string"),
    ("tie_word_embeddings", "no", "tie_word_embeddings: must be true or false"),
    ("quantization_config", [], "quantization_config: must be an object"),
    ("num_key_value_heads", 3, "num_key_value_heads: 3 does not divide num_attention_heads 32"),
]


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def study(folder: Path, source: str = "{type: local, path: model}", extra: str = "") -> Path:
    (folder / "prompts.yaml").write_text("prompts:\n  - id: one\n    prompt: hi\n")
    path = folder / "study.yaml"
    path.write_text(
        f"title: t\nprompts: prompts.yaml\noutput: {{dir: out}}\nmodels:\n  - id: m\n    name: M\n    source: {source}\n{extra}"
    )
    return path


@pytest.mark.parametrize("key, value, message", BAD_VALUES, ids=[f"{k}={v!r}" for k, v, _ in BAD_VALUES])
def test_bad_config_value_is_one_line_in_every_command(tmp_path: Path, key: str, value, message: str):
    (tmp_path / "model").mkdir()
    config = tmp_path / "model" / "config.json"
    config.write_text(json.dumps(BASE | {key: value}))
    path = study(tmp_path)
    for command in ("validate", "specs", "render"):
        line = one_line(cli(command, str(path)))
        assert str(config) in line and message in line, f"{command}: {line}"
        assert f"{path}:" in line  # and the config line of the model


def test_good_configs_pass():
    assert model_config_problems(BASE, "config.json") == []
    gpt2 = {"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "n_inner": None, "vocab_size": 100}
    assert model_config_problems(gpt2, "config.json") == []
    assert model_config_problems([], "config.json") == ["config.json: config.json must be a JSON object, got a list"]


@pytest.mark.parametrize(
    "content, message",
    [
        ({"num_attention_heads": 0}, "num_attention_heads: must be a whole number from 1"),
        ({"hidden_size": "big"}, "hidden_size: must be a whole number of at least 1, got a string 'big'"),
        ("{not json", "config.json:1: invalid JSON"),
    ],
    ids=["range", "type", "json"],
)
def test_run_refuses_a_broken_config_before_any_model_runs(
    tmp_path: Path, tiny_llama_dir: Path, tiny_gpt2_dir: Path, content, message
):
    """The real CLI in a subprocess: exit 2 (an input error), one line naming the config line, the file, the key
    and the fix; the good model does not run either (nothing is stored)."""
    import os
    import subprocess
    import sys

    shutil.copytree(tiny_llama_dir, tmp_path / "model")
    shutil.copytree(tiny_gpt2_dir, tmp_path / "good")
    config = tmp_path / "model" / "config.json"
    good = json.loads(config.read_text())
    config.write_text(json.dumps(good | content) if isinstance(content, dict) else content)
    path = study(tmp_path, extra="  - id: g\n    name: G\n    source: {type: local, path: good}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "reportgen", "run", str(path)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    line = lines[0]
    assert f"{path}:" in line and str(config) in line and message in line, line
    if isinstance(content, dict):
        assert "Fix: correct config.json" in line, line
    assert "ZeroDivisionError" not in line and done.stdout == ""
    assert not (tmp_path / "out" / "results.sqlite").exists()


@pytest.mark.parametrize(
    "adapter, message",
    [
        ({"r": 0, "peft_type": "LORA"}, "r: the LoRA rank must be a whole number of at least 1, got 0"),
        ({"r": 8, "lora_alpha": "x"}, "lora_alpha: must be a number"),
        ({"r": 8, "lora_dropout": 3}, "lora_dropout: must be a number from 0 to 1"),
        ({"r": 8, "target_modules": [1, 2]}, "target_modules: must be a module name"),
    ],
)
def test_broken_adapter_config(tmp_path: Path, adapter: dict, message: str):
    assert any(message in p for p in adapter_config_problems(adapter, "adapter_config.json"))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(BASE))
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(adapter))
    path = study(tmp_path, extra="    adapter: {path: adapter}\n")
    for command in ("validate", "specs"):
        line = one_line(cli(command, str(path)))
        assert "adapter_config.json" in line and message in line, f"{command}: {line}"
    (tmp_path / "adapter" / "adapter_config.json").write_text("{broken")
    line = one_line(cli("validate", str(path)))
    assert "adapter_config.json:1: invalid JSON" in line


@pytest.mark.parametrize("keep", [0, 3, 10, 23, 40, "half", "minus1"])
def test_cut_gguf_header(tmp_path: Path, tiny_gguf_path: Path, keep):
    pytest.importorskip("gguf")
    data = tiny_gguf_path.read_bytes()
    n = {"half": len(data) // 2, "minus1": len(data) - 1}.get(keep, keep)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:n])
    path = study(tmp_path, source="{type: gguf, path: cut.gguf}")
    for command in ("validate", "specs"):
        line = one_line(cli(command, str(path)))
        assert str(cut) in line and ("GGUF" in line), f"{command}: {line}"
        assert "Traceback" not in line


def test_whole_gguf_passes(tiny_gguf_path: Path):
    assert gguf_header_problems(tiny_gguf_path) == []


def test_header_problems_name_the_cause(tmp_path: Path):
    path = tmp_path / "x.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + (10**6).to_bytes(8, "little") + (5).to_bytes(8, "little"))
    (problem,) = gguf_header_problems(path)
    assert "cut short" in problem and "1000000 tensors" in problem
    path.write_bytes(b"PK\x03\x04 not gguf at all")
    assert "not a GGUF file" in gguf_header_problems(path)[0]
    with pytest.raises(ConfigError):
        from reportgen.specs.validate import check_gguf_header

        check_gguf_header(path)


# -- endpoints: URL shape, and --probe asks the server once ------------------------------------------


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://", "has no host"),
        ("https:///v1", "has no host"),
        ("http://host:99999/x", "has a port that is not a number"),
        ("http://host:abc/x", "has a port that is not a number"),
        ("http://ho st/x", "contains white space"),
        ("http://host/x#frag", "fragment"),
    ],
)
def test_endpoint_url_shape(tmp_path: Path, url: str, why: str):
    line = one_line(cli("validate", str(study(tmp_path, source=f'{{type: http, url: "{url}"}}'))))
    assert "models[0].source.url" in line and why in line, line


def test_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from fault_server import FaultServer

    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    path = study(tmp_path, source=f'{{type: http, url: "http://127.0.0.1:{dead}/models/x"}}')
    assert cli("validate", str(path)).exit_code == 0  # the shape is fine
    line = one_line(cli("validate", "--probe", str(path)))
    assert "cannot be reached" in line and f"127.0.0.1:{dead}" in line, line
    with FaultServer() as server:
        path = study(tmp_path, source=f'{{type: http, url: "{server.hf_url}", token_env: PROBE_TOKEN}}')
        line = one_line(cli("validate", "--probe", str(path)))
        assert "PROBE_TOKEN" in line and "not set" in line
        monkeypatch.setenv("PROBE_TOKEN", "secret-probe-token-123")
        result = cli("validate", "--probe", str(path))
        assert result.exit_code == 0 and "endpoints answer" in result.output, result.output
