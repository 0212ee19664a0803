"""`reportgen init`: write a study config from model folders and GGUF files.

Facts come from the files themselves (config.json, adapter_config.json, GGUF metadata) and the card
metadata from each folder's README.md front matter, as the Hugging Face Hub writes it. What cannot be
known from files is written as the placeholder TODO, which `reportgen validate` reports.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from reportgen.study.config import PLACEHOLDER
from reportgen.errors import ConfigError
from reportgen.util.safeio import MAX_YAML_BYTES, compose_yaml, read_json_object, read_text

CARD_KEYS = {  # Hub front-matter key -> our card key
    "library_name": "library",
    "pipeline_tag": "pipeline_tag",
    "tags": "tags",
    "language": "language",
    "base_model": "base_model",
    "license": "license",
}


def read_front_matter(readme: Path) -> dict[str, Any]:
    """The YAML block between the leading '---' lines of a model card, or {}."""
    if not readme.is_file():
        return {}
    text = read_text(readme, "model card", MAX_YAML_BYTES)
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    if not match:
        return {}
    try:
        _, data = compose_yaml(match.group(1), readme)  # aliases bounded, as in study configs
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{readme}: the model card's front matter is not valid YAML ({exc.__class__.__name__}). Fix: correct it or remove it"
        ) from None
    return data if isinstance(data, dict) else {}


def card_from_front_matter(meta: dict[str, Any]) -> dict[str, Any]:
    card: dict[str, Any] = {}
    for hub_key, key in CARD_KEYS.items():
        value = meta.get(hub_key)
        if value in (None, "", []):
            continue
        if key in ("tags", "language") and isinstance(value, str):
            value = [value]
        if key == "base_model" and isinstance(value, list):
            value = value[0] if len(value) == 1 else ", ".join(map(str, value))
        card[key] = value
    return card


def slug(name: str) -> str:
    value = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.")
    return value or "model"


def _rel(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:
        return str(path.resolve())


def model_entry(path: Path, base: Path, known: dict[str, Path]) -> dict[str, Any]:
    """One `models:` entry for a folder or a .gguf file."""
    placeholder_card = {key: PLACEHOLDER for key in ("description", "application", "use", "limitation")}
    if path.is_file():
        if path.suffix != ".gguf":
            raise ConfigError(
                f"{path}: not a model folder or a .gguf file. Fix: pass a folder with config.json, an adapter folder, or a .gguf file"
            )
        return {
            "id": slug(path.stem),
            "name": path.stem,
            "source": {"type": "gguf", "path": _rel(path, base)},
            "card": placeholder_card | card_from_front_matter(read_front_matter(path.parent / "README.md")),
        }
    card = placeholder_card | card_from_front_matter(read_front_matter(path / "README.md"))
    entry: dict[str, Any] = {"id": slug(path.name), "name": path.name}
    adapter_file = path / "adapter_config.json"
    if adapter_file.is_file():
        adapter = read_json_object(adapter_file, "adapter_config.json")
        base_name = adapter.get("base_model_name_or_path") or PLACEHOLDER
        if not isinstance(base_name, str):
            raise ConfigError(
                f"{adapter_file}: base_model_name_or_path must be a string (a Hub repo id or a folder), "
                f"got {type(base_name).__name__}. Fix: correct adapter_config.json"
            )
        local_base = known.get(base_name) or (Path(base_name) if Path(base_name).is_dir() else None)
        if local_base is not None:
            entry["source"] = {"type": "local", "path": _rel(local_base, base)}
        else:
            entry["source"] = {"type": "hub", "repo": base_name}
        entry["adapter"] = {"path": _rel(path, base)}
        card.setdefault("base_model", base_name)
        card.setdefault("library", "peft")
    elif (path / "config.json").is_file():
        entry["source"] = {"type": "local", "path": _rel(path, base)}
    else:
        ggufs = sorted(path.glob("*.gguf"))
        if not ggufs:
            raise ConfigError(
                f"{path}: no config.json, adapter_config.json or .gguf file in this folder. Fix: pass a save_pretrained folder"
            )
        entry["source"] = {"type": "gguf", "path": _rel(ggufs[0], base)}
    entry["card"] = card
    return entry


def study_yaml_for(paths: list[Path], *, title: str | None = None, relative_to: Path | None = None) -> str:
    base = relative_to or Path.cwd()
    known = {}
    for path in paths:  # adapters whose base is one of the given folders point at it
        if path.is_dir() and (path / "config.json").is_file():
            try:
                name = read_json_object(path / "config.json", "config.json").get("_name_or_path")
            except ConfigError:
                name = None  # model_entry does not read it; validate and specs report it
            if not isinstance(name, str):
                name = None
            for key in filter(None, (name, path.name, str(path))):
                known[key] = path
    models = [model_entry(path, base, known) for path in paths]
    seen: dict[str, int] = {}
    for model in models:  # ids must be unique
        count = seen.get(model["id"], 0)
        seen[model["id"]] = count + 1
        if count:
            model["id"] = f"{model['id']}-{count + 1}"
    study = {
        "title": title or PLACEHOLDER,
        "introduction": PLACEHOLDER,
        "generation": {"max_new_tokens": 64},
        "models": models,
    }
    header = (
        "# Written by `reportgen init`. Facts come from the model files; every TODO is for you to fill in.\n"
        "# Add `prompts: <prompt set file>` to run the models. Check it with `reportgen validate <this file>`.\n"
    )
    return header + yaml.dump(study, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=100)


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a value that appears twice (e.g. through an alias in a card's front matter) out twice:
    the config we write has no anchors or aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True
