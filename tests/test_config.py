"""Study configs and prompt sets: every user error is one line naming file, key path and line; exit 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from reportgen.cli import main
from reportgen.study.config import GenerationSettings, load_config
from reportgen.errors import ConfigError
from reportgen.study.prompts import load_prompt_set

GOOD = """\
title: A study
prompts: prompts.yaml
models:
  - id: base
    name: Base model
    source: {type: local, path: model}
"""

PROMPTS = """\
prompts:
  - id: one
    prompt: Say one.
    reference: one
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    write(tmp_path, "prompts.yaml", PROMPTS)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    return tmp_path


def test_good_config_validates(study_dir: Path):
    config = write(study_dir, "study.yaml", GOOD)
    result = run_cli("validate", str(config))
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
    study = load_config(config)
    assert study.models[0].source.path == study_dir / "model"  # relative to the config's folder
    assert study.models[0].effective_backend == "transformers"


@pytest.mark.parametrize(
    "text, line, key, words",
    [
        (GOOD.replace("title:", "titel:"), 1, "titel", "Did you mean 'title'"),
        (
            GOOD.replace("    name: Base model\n", "    name: Base model\n    sorce: x\n"),
            6,
            "models[0].sorce",
            "Did you mean 'source'",
        ),
        (GOOD.replace("path: model", "pth: model"), 6, "models[0].source.pth", "Did you mean 'path'"),
        (GOOD + "generation:\n  max_new_tokens: zero\n", 8, "generation.max_new_tokens", "integer"),
        (GOOD.replace("type: local", "type: ftp"), 6, "models[0].source", "ftp"),
        (GOOD.replace("id: base", "id: Base Model!"), 4, "models[0].id", "not a valid id"),
        (GOOD.replace("    name: Base model\n", ""), 4, "models[0].name", "required key is missing"),
        (GOOD + "  - id: base\n    name: Again\n    config: model/config.json\n", 3, "models", "unique"),
        (GOOD + "generation:\n  temperature: -1\n", 8, "generation.temperature", "greater than 0"),
    ],
)
def test_bad_config_names_file_key_and_line(study_dir: Path, text: str, line: int, key: str, words: str):
    config = write(study_dir, "study.yaml", text)
    result = run_cli("validate", str(config))
    assert result.exit_code == 2, result.output
    assert f"{config}:{line}: {key}" in result.output
    assert words in result.output
    assert "Traceback" not in result.output


def test_every_error_is_reported_at_once(study_dir: Path):
    config = write(
        study_dir, "study.yaml", GOOD.replace("title:", "titel:").replace("pth", "x").replace("path: model", "pth: model")
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    # unknown titel, missing title, unknown pth, missing path: all four at once, sorted by line
    assert len(info.value.problems) == 4
    assert [p.split(":")[1] for p in info.value.problems] == ["1", "1", "6", "6"]


def test_invalid_yaml_has_a_line(study_dir: Path):
    config = write(study_dir, "study.yaml", "title: x\nmodels:\n  - id: a\n   name: b\n")
    result = run_cli("validate", str(config))
    assert result.exit_code == 2
    assert f"{config}:4: invalid YAML" in result.output


def test_duplicate_key_is_an_error(study_dir: Path):
    config = write(study_dir, "study.yaml", GOOD + "title: twice\n")
    result = run_cli("validate", str(config))
    assert result.exit_code == 2
    assert f"{config}:7: title: duplicate key" in result.output


def test_missing_config_file(tmp_path: Path):
    result = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "nope.yaml: study config not found" in result.output


def test_validate_reports_missing_files(study_dir: Path):
    config = write(
        study_dir, "study.yaml", GOOD.replace("path: model", "path: no-such-model").replace("prompts.yaml", "gone.yaml")
    )
    result = run_cli("validate", str(config))
    assert result.exit_code == 2
    assert f"{config}:2: prompts: prompt set" in result.output
    assert f"{config}:6: models[0].source.path: model folder" in result.output and "no-such-model" in result.output


def test_token_in_url_is_refused(study_dir: Path):
    text = GOOD.replace("{type: local, path: model}", "{type: http, url: 'https://user:secret@example.com/x'}")
    config = write(study_dir, "study.yaml", text)
    result = run_cli("validate", str(config))
    assert result.exit_code == 2
    assert "token_env" in result.output


def test_greedy_cache_key_ignores_sampling_knobs():
    greedy = GenerationSettings(max_new_tokens=8)
    assert greedy.settings_hash() == GenerationSettings(max_new_tokens=8, temperature=0.3, seed=9).settings_hash()
    sampled = GenerationSettings(max_new_tokens=8, do_sample=True)
    assert sampled.settings_hash() != GenerationSettings(max_new_tokens=8, do_sample=True, seed=9).settings_hash()
    assert greedy.settings_hash() != GenerationSettings(max_new_tokens=9).settings_hash()


# -- prompt sets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, key, words",
    [
        ("prompts:\n  - id: a\n    promt: hi\n", 3, "prompts[0].promt", "Did you mean 'prompt'"),
        ("prompts:\n  - id: a\n", 2, "prompts[0]", "exactly one of 'prompt'"),
        ("prompts:\n  - id: a\n    prompt: x\n  - id: a\n    prompt: y\n", 4, "prompts[1].id", "appears twice (first at line 2)"),
        ("prompts:\n  - id: a\n    messages:\n      - {role: robot, content: x}\n", 4, "prompts[0].messages[0].role", "robot"),
        ("prompts: []\n", 1, "prompts", "at least 1"),
    ],
)
def test_bad_prompt_set(tmp_path: Path, text: str, line: int, key: str, words: str):
    path = write(tmp_path, "p.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_prompt_set(path)
    message = info.value.format_message()
    assert f"{path}:{line}: {key}" in message
    assert words in message


def test_bad_jsonl_prompt_set(tmp_path: Path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": \n')
    with pytest.raises(ConfigError) as info:
        load_prompt_set(path)
    assert f"{path}:2: invalid JSON" in info.value.format_message()
    path.write_text('{"id": "a", "prompt": "x"}\n{"id": "b", "text": "y"}\n')
    with pytest.raises(ConfigError) as info:
        load_prompt_set(path)
    assert f"{path}:2: prompts[1].text: unknown key" in info.value.format_message()


def test_prompt_set_chat_and_plain_forms(tmp_path: Path):
    path = write(
        tmp_path, "p.yaml", "system: Be brief.\nprompts:\n  - {id: a, prompt: Hi}\n  - {id: b, prompt: Go, format: plain}\n"
    )
    prompts = load_prompt_set(path)
    a, b = prompts.prompts
    assert prompts.messages_for(a) == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert prompts.format_of(a) == "chat" and prompts.format_of(b) == "plain"


def test_demo_config_is_valid():
    study = load_config(Path(__file__).parent.parent / "configs" / "demo.yaml")
    assert len(study.models) >= 3
    prompts = load_prompt_set(study.prompts)
    assert len(prompts.prompts) >= 24
    assert len({p.category for p in prompts.prompts}) >= 4


def test_plain_prompts_are_sent_as_written(tmp_path: Path):
    path = write(
        tmp_path,
        "p.yaml",
        "system: Be brief.\nprompts:\n  - {id: a, prompt: 'The capital of Italy is', format: plain}\n  - {id: b, prompt: Hi}\n",
    )
    prompts = load_prompt_set(path)
    a, b = prompts.prompts
    assert prompts.plain_text_for(a) == "The capital of Italy is"
    assert prompts.plain_text_for(b) == "Be brief.\n\nHi"  # chat prompt on a model without a chat template


def test_validate_checks_claim_syntax_and_models(study_dir: Path):
    claims = "claims:\n  - {text: ok, check: 'base.context_length > 1'}\n  - {text: bad, check: 'base.context_length >> 2'}\n  - {text: who, check: 'bsae.vocab_size == 1'}\n"
    config = write(study_dir, "study.yaml", GOOD + claims)
    result = run_cli("validate", str(config))
    assert result.exit_code == 2, result.output
    assert f"{config}:9: claims[1].check" in result.output
    assert f"{config}:10: claims[2].check: unknown model 'bsae'. Did you mean 'base'?" in result.output


def test_validate_the_shipped_configs():
    root = Path(__file__).parent.parent
    result = run_cli("validate", str(root / "configs" / "assignment.yaml"))
    assert result.exit_code == 0, result.output
    result = run_cli("validate", str(root / "configs" / "demo.yaml"))
    if (root / "models" / "demo-lora" / "adapter_config.json").exists():
        assert result.exit_code == 0, result.output
    else:  # `make test` does not train the demo adapter; `make report` does
        assert result.exit_code == 2
        assert "models[1].adapter.path: adapter folder" in result.output and "train the adapter" in result.output


def test_the_readme_example_config_is_valid(tmp_path: Path):
    """The config a new user copies from the README loads, and its claims parse."""
    from reportgen.study.claims import parse_claims

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("### A study config", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    config = write(tmp_path, "mine.yaml", block)
    study = load_config(config)
    assert [m.effective_backend for m in study.models] == ["transformers", "transformers", "llamacpp", "http"]
    assert len(parse_claims(study)) == 2
