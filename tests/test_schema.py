"""`reportgen schema`: the JSON Schemas of study configs and prompt sets, and the configuration reference
generated from them. The committed files are current; the schema accepts every shipped config and rejects
broken ones (as the loader does); every config key has a description."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from reportgen.cli import main
from reportgen.cli.schema import EXAMPLE_PROMPTS, EXAMPLE_STUDY, FILES, json_schema, markdown_reference, schema_text
from reportgen.errors import ConfigError
from reportgen.study.config import Study, load_config
from reportgen.study.prompts import PromptSet, load_prompt_set

ROOT = Path(__file__).parent.parent
STUDY_CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
PROMPT_SETS = sorted((ROOT / "configs" / "prompts").glob("*.yaml"))


def validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def read_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("kind", sorted(FILES))
def test_committed_schema_is_current(kind):
    committed = ROOT / "schemas" / FILES[kind]
    assert committed.exists(), f"{committed} is missing: run `reportgen schema -o schemas` and commit it"
    assert committed.read_text(encoding="utf-8") == schema_text(kind), (
        f"schemas/{FILES[kind]} is stale: run `reportgen schema -o schemas` and commit the result"
    )


def test_committed_reference_is_current():
    committed = ROOT / "docs" / "config-reference.md"
    assert committed.exists(), "docs/config-reference.md is missing: run `reportgen schema --markdown -o docs`"
    assert committed.read_text(encoding="utf-8") == markdown_reference(), (
        "docs/config-reference.md is stale: run `reportgen schema --markdown -o docs` and commit the result"
    )


def test_cli_writes_what_the_module_generates(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == json_schema("study")
    result = runner.invoke(main, ["schema", "prompts"])
    assert json.loads(result.output)["title"] == "reportgen prompt set"
    result = runner.invoke(main, ["schema", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(FILES.values())
    result = runner.invoke(main, ["schema", "--markdown", "-o", str(tmp_path / "docs")])
    assert (tmp_path / "docs" / "config-reference.md").read_text(encoding="utf-8") == markdown_reference()
    assert runner.invoke(main, ["schema", "nonsense"]).exit_code == 2


@pytest.mark.parametrize("path", STUDY_CONFIGS, ids=lambda p: p.name)
def test_schema_accepts_every_study_config(path):
    assert STUDY_CONFIGS, "no study configs found"
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator("study").iter_errors(read_yaml(path))]
    assert errors == []


@pytest.mark.parametrize("path", PROMPT_SETS, ids=lambda p: p.name)
def test_schema_accepts_every_prompt_set(path):
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator("prompts").iter_errors(read_yaml(path))]
    assert errors == []


def test_reference_examples_are_valid(tmp_path):
    study, prompts = yaml.safe_load(EXAMPLE_STUDY), yaml.safe_load(EXAMPLE_PROMPTS)
    validator("study").validate(study)
    validator("prompts").validate(prompts)
    Study.model_validate(study)  # the loader agrees
    PromptSet.model_validate(prompts)


def _demo() -> dict:
    return read_yaml(ROOT / "configs" / "demo.yaml")


def _set(data: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_DELETE = object()

BROKEN_STUDIES = {
    "unknown top-level key": (("titel",), "A typo"),
    "unknown model key": (("models", 0, "batchsize"), 4),
    "unknown generation key": (("generation", "max_tokens"), 10),
    "wrong type: max_new_tokens": (("generation", "max_new_tokens"), "many"),
    "out of range: max_new_tokens": (("generation", "max_new_tokens"), 0),
    "out of range: top_p": (("models", 2, "generation", "top_p"), 1.5),
    "wrong type: do_sample": (("generation", "do_sample"), [True]),
    "bad id pattern": (("models", 0, "id"), "SmolLM2 base"),
    "missing models": (("models",), _DELETE),
    "empty models": (("models",), []),
    "missing title": (("title",), _DELETE),
    "missing model name": (("models", 0, "name"), _DELETE),
    "unknown source type": (("models", 0, "source"), {"type": "ftp", "path": "x"}),
    "source key of another type": (("models", 0, "source"), {"type": "hub", "repo": "a/b", "url": "http://x"}),
    "bad backend": (("models", 0, "backend"), "vllm"),
    "bad dtype": (("models", 0, "dtype"), "int3"),
    "bad samples": (("output", "samples"), "some"),
    "http url without scheme": (("models", 0, "source"), {"type": "http", "url": "localhost:8080"}),
    "bad execution engine": (("execution",), {"engine": "slurm"}),
}


@pytest.mark.parametrize("name", sorted(BROKEN_STUDIES))
def test_schema_rejects_broken_study(name, tmp_path):
    path, value = BROKEN_STUDIES[name]
    data = _set(_demo(), path, value)
    assert not validator("study").is_valid(data), f"the schema accepts a config with {name}"
    config = tmp_path / "configs" / "broken.yaml"  # the loader rejects it too: schema and models agree
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(config)


# Forms the loader accepts through a "before" validator: the schema must accept them too, or an editor
# underlines a config that runs (json_schema_input_type on those validators).
SHORTHANDS = {
    "a card's tags as one string": (("models", 0, "card"), {"tags": "chat"}),
    "a card's language as one string": (("models", 0, "card"), {"language": "en"}),
    "actor memory as a size": (("execution",), {"engine": "ray", "resources": {"default": {"memory": "16GiB"}}}),
    "actor memory with a space and decimal unit": (
        ("execution",),
        {"engine": "ray", "resources": {"default": {"memory": "1.5 GB"}}},
    ),
    "actor memory in bytes": (("execution",), {"engine": "ray", "resources": {"default": {"memory": 1024}}}),
}


@pytest.mark.parametrize("name", sorted(SHORTHANDS))
def test_schema_accepts_what_the_loader_accepts(name, tmp_path):
    path, value = SHORTHANDS[name]
    data = _set(_demo(), path, value)
    errors = [e.message for e in validator("study").iter_errors(data)]
    assert errors == [], f"the schema rejects {name}: {errors}"
    config = tmp_path / "configs" / "shorthand.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    load_config(config)


@pytest.mark.parametrize("size", ["lots", "16 GiBs", "-5GB", "12 pb", "1e9"])
def test_a_size_neither_accepts(size, tmp_path):
    data = _set(_demo(), ("execution",), {"engine": "ray", "resources": {"default": {"memory": size}}})
    assert not validator("study").is_valid(data), f"the schema accepts memory: {size!r}"
    config = tmp_path / "configs" / "size.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(config)


BROKEN_PROMPTS = {
    "unknown key": (("prompt_list",), []),
    "missing prompts": (("prompts",), _DELETE),
    "bad prompt id": (("prompts", 0, "id"), "has space"),
    "wrong type: reference": (("prompts", 0, "reference"), {"text": "Paris"}),
    "bad format": (("format",), "markdown"),
    "bad role": (("prompts", 0), {"id": "x", "messages": [{"role": "robot", "content": "hi"}]}),
}


@pytest.mark.parametrize("name", sorted(BROKEN_PROMPTS))
def test_schema_rejects_broken_prompt_set(name, tmp_path):
    path, value = BROKEN_PROMPTS[name]
    data = _set(read_yaml(PROMPT_SETS[0]), path, value)
    if name == "missing prompts":
        data.pop("include", None)  # prompts from a built-in source count as prompts (the demo includes HumanEval)
    assert not validator("prompts").is_valid(data), f"the schema accepts a prompt set with {name}"
    file = tmp_path / "broken.yaml"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_prompt_set(file)


def _undocumented(model, seen: set) -> list[str]:
    """Every pydantic field reachable from ``model`` without a description, as Model.field."""
    from pydantic import BaseModel

    if model in seen:
        return []
    seen.add(model)
    missing = []
    for name, field in model.model_fields.items():
        if not (field.description or "").strip():
            missing.append(f"{model.__name__}.{name}")
        stack = [field.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                missing += _undocumented(annotation, seen)
            stack.extend(getattr(annotation, "__args__", ()) or ())
    return missing


@pytest.mark.parametrize("model", [Study, PromptSet], ids=lambda m: m.__name__)
def test_every_config_key_has_a_description(model):
    missing = _undocumented(model, set())
    assert missing == [], f"config keys without a description (add Field(description=...)): {', '.join(missing)}"
    schema = json_schema("study" if model is Study else "prompts")  # and the schema carries them
    for name, definition in {"(top)": schema, **schema.get("$defs", {})}.items():
        for key, prop in definition.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{key} has no description in the schema"


def test_description_check_can_fail():
    from pydantic import BaseModel, Field

    class Inner(BaseModel):
        bare: int = 1

    class Outer(BaseModel):
        inner: tuple[Inner, ...] | None = Field(None, description="documented")

    assert _undocumented(Outer, set()) == ["Inner.bare"]


@pytest.mark.parametrize("path", STUDY_CONFIGS + PROMPT_SETS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_example_configs_name_their_schema_for_editors(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix), f"{path}: the first line should be `{prefix}...`"
    target = (path.parent / first[len(prefix) :]).resolve()
    expected = "prompts.schema.json" if path in PROMPT_SETS else "study.schema.json"
    assert target == (ROOT / "schemas" / expected).resolve()
