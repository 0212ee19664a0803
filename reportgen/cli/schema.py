"""``reportgen schema``: the JSON Schema of the study config and of prompt sets, and the configuration
reference rendered from the same schema (so neither can drift from the pydantic models).

    reportgen schema                     # the study config's schema on stdout
    reportgen schema prompts             # the prompt set's schema on stdout
    reportgen schema -o schemas          # both, as schemas/study.schema.json and schemas/prompts.schema.json
    reportgen schema --markdown -o docs  # docs/config-reference.md
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from reportgen.cli.app import main

DIALECT = "https://json-schema.org/draft/2020-12/schema"
FILES = {"study": "study.schema.json", "prompts": "prompts.schema.json"}
REFERENCE_FILE = "config-reference.md"


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a study config (``study``) or a prompt set (``prompts``)."""
    model: type[BaseModel]
    if kind == "study":
        from reportgen.study.config import Study as model

        title = "reportgen study config"
    else:
        from reportgen.study.prompts import PromptSet as model

        title = "reportgen prompt set"
    schema = model.model_json_schema()
    return {"$schema": DIALECT, **schema, "title": title}


def schema_text(kind: str) -> str:
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# The configuration reference (Markdown)


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _anchor(name: str) -> str:
    return name.lower()


def type_text(prop: dict[str, Any]) -> str:
    """A key's type in words: ``integer``, ``string or null``, ``list of [ModelConfig](#modelconfig)``."""
    if "$ref" in prop:
        name = _ref_name(prop["$ref"])
        return f"[{name}](#{_anchor(name)})"
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    for key in ("anyOf", "oneOf"):
        if key in prop:
            return " or ".join(dict.fromkeys(type_text(option) for option in prop[key]))
    kind = prop.get("type")
    if kind == "array":
        if "prefixItems" in prop:
            return "[" + ", ".join(type_text(item) for item in prop["prefixItems"]) + "]"
        return "list of " + type_text(prop.get("items", {}))
    if kind == "object":
        values = prop.get("additionalProperties")
        return "mapping of name → " + type_text(values) if isinstance(values, dict) else "mapping"
    if kind == "string" and prop.get("format") == "path":
        return "path"
    return str(kind) if kind else "any"


def _constraints(prop: dict[str, Any]) -> list[str]:
    words = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}
    found = [f"{sign} {prop[key]}" for key, sign in words.items() if key in prop]
    if "pattern" in prop:
        found.append(f"matches `{prop['pattern']}`")
    if "minLength" in prop:
        found.append(f"at least {prop['minLength']} character(s)")
    if "minItems" in prop and "prefixItems" not in prop:
        found.append(f"at least {prop['minItems']} item(s)")
    for key in ("anyOf", "oneOf"):
        for option in prop.get(key, []):
            found.extend(_constraints(option))
    return found


def allowed_text(prop: dict[str, Any]) -> str:
    """Allowed values: an enumeration, or the range and pattern constraints."""
    if "enum" in prop:
        return ", ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    for key in ("anyOf", "oneOf"):
        enums = [v for option in prop.get(key, []) for v in option.get("enum", ())]
        if enums:
            return ", ".join(f"`{json.dumps(v)}`" for v in enums) + _nullable(prop)
    return "; ".join(_constraints(prop))


def _nullable(prop: dict[str, Any]) -> str:
    return ", `null`" if any(option.get("type") == "null" for option in prop.get("anyOf", [])) else ""


def default_text(prop: dict[str, Any], required: bool) -> str:
    if required:
        return "**required**"
    if "default" not in prop:
        return ""
    value = prop["default"]
    if isinstance(value, dict) and "$ref" in prop:
        return "see below"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _cell(text: str) -> str:
    """Text for a table cell: pipes escaped, and ``<`` so that ``<name>`` stays text (not an HTML tag)."""
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _object_section(name: str, schema: dict[str, Any], level: str) -> list[str]:
    lines = [f"{level} {name}", ""]
    if schema.get("description"):
        lines += [" ".join(schema["description"].split()).replace("<", "&lt;"), ""]
    props = schema.get("properties", {})
    required = set(schema.get("required", ()))
    lines += ["| Key | Type | Default | Allowed values | Description |", "| --- | --- | --- | --- | --- |"]
    for key, prop in props.items():
        cells = [
            f"`{key}`",
            type_text(prop),
            default_text(prop, key in required),
            allowed_text(prop),
            " ".join(prop.get("description", "").split()),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if schema.get("additionalProperties") is False:
        lines += ["", "No other keys are allowed."]
    return lines + [""]


def _order(schema: dict[str, Any]) -> list[str]:
    """Definitions in the order a reader meets them: depth first from the top-level keys."""
    defs = schema.get("$defs", {})
    seen: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref and _ref_name(ref) not in seen:
                seen.append(_ref_name(ref))
                walk(defs[_ref_name(ref)])
            for key, value in node.items():
                if key != "default":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema.get("properties", {}))
    return seen + [name for name in defs if name not in seen]


EXAMPLE_STUDY = """\
# yaml-language-server: $schema=../schemas/study.schema.json
title: GPT-2 against its fine-tune
prompts: prompts/demo.yaml
generation: {max_new_tokens: 48}
models:
  - id: gpt2
    name: GPT-2 (124M)
    source: {type: hub, repo: openai-community/gpt2}
  - id: gpt2-ft
    name: GPT-2 fine-tune
    source: {type: local, path: ../models/gpt2-ft}
output:
  formats: [markdown, html]
"""

EXAMPLE_PROMPTS = """\
# yaml-language-server: $schema=../../schemas/prompts.schema.json
name: demo
format: chat
system: You are a concise assistant.
prompts:
  - id: capital
    category: factual
    prompt: What is the capital of France?
    reference: Paris
"""


def markdown_reference() -> str:
    """The configuration reference: every key of a study config and a prompt set, with its type, default,
    allowed values and description, generated from the JSON Schema."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `reportgen schema --markdown -o docs` from the config models; do not edit by hand. -->",
        "",
        "Every key of a study config and of a prompt set, generated from the same JSON Schema that",
        "`reportgen schema` writes (`schemas/study.schema.json`, `schemas/prompts.schema.json`).",
        "Relative paths are resolved from the config file's folder.",
        "",
    ]
    for kind, title, example in (("study", "Study config", EXAMPLE_STUDY), ("prompts", "Prompt set", EXAMPLE_PROMPTS)):
        schema = json_schema(kind)
        lines += [f"## {title}", "", "Example:", "", "```yaml", example.rstrip("\n"), "```", ""]
        top = "Study" if kind == "study" else "PromptSet"
        lines += _object_section(top, {**schema, "description": schema.get("description")}, "###")
        for name in _order(schema):
            lines += _object_section(name, schema["$defs"][name], "###")
    return "\n".join(lines).rstrip("\n") + "\n"


@main.command()
@click.argument("kind", type=click.Choice(sorted(FILES)), default="study")
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the files into this folder (both schemas, or config-reference.md) instead of stdout.",
)
@click.option("--markdown", is_flag=True, help="The configuration reference in Markdown instead of the JSON Schema.")
def schema(kind: str, out_dir: Path | None, markdown: bool) -> None:
    """The JSON Schema of a study config (KIND study, the default) or a prompt set (KIND prompts);
    with --markdown, the configuration reference generated from the same schema."""
    if out_dir is None:
        click.echo(markdown_reference() if markdown else schema_text(kind), nl=False)
        return
    from reportgen.util.atomic import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {REFERENCE_FILE: markdown_reference()} if markdown else {name: schema_text(k) for k, name in FILES.items()}
    for name, text in files.items():
        click.echo(atomic_write(out_dir / name, text))
