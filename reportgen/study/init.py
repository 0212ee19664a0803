"""`reportgen init`: write a study config from model folders, GGUF files and cached Hub models.

What it accepts, each written as a `models:` entry that runs as written:

* a ``save_pretrained`` folder (``config.json``) → ``{type: local, path: …}``;
* a Hugging Face cache snapshot (``…/models--org--name/snapshots/<sha>``) → ``{type: hub, repo: org/name}``
  (with ``revision: <sha>`` when the snapshot is not the cached ``main``), and a Hub id that is in the cache;
* a PEFT adapter folder (``adapter_config.json``) → its base as the source (one of the given folders, a
  local folder, or the Hub id in ``base_model_name_or_path``) and ``adapter: {path: …}``;
* a ``.gguf`` file, or a folder holding one → ``{type: gguf, path: …}``.

Facts come from the files; the card metadata from each model's README.md front matter, as the Hugging
Face Hub writes it, without values that are paths on this machine. Every path is relative to the config
file. Only prose (title, introduction, a card's description, application, use and limitation) is left
as the placeholder ``TODO``, which ``reportgen validate`` reports as a warning. The study gets a prompt
set: the starter set shipped with reportgen, copied beside the config so that it can be edited.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reportgen.errors import ConfigError
from reportgen.study.config import PLACEHOLDER, download_hint
from reportgen.util.safeio import MAX_YAML_BYTES, compose_yaml, read_json_object, read_text

log = logging.getLogger(__name__)

CARD_KEYS = {  # Hub front-matter key -> our card key
    "library_name": "library",
    "pipeline_tag": "pipeline_tag",
    "tags": "tags",
    "language": "language",
    "base_model": "base_model",
    "license": "license",
}
PROSE_KEYS = ("description", "application", "use", "limitation")
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
STARTER_PROMPTS = Path(__file__).parent / "data" / "prompts.yaml"
PROMPTS_NAME = "prompts.yaml"


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


def is_local_path(value: str, *near: Path) -> bool:
    """A value that names a place on this machine: absolute, home- or dot-relative, a drive, or an existing path."""
    if re.match(r"^(/|~|\.{1,2}[/\\]|[A-Za-z]:[/\\]|\\\\)", value) or "\\" in value:
        return True
    return any((folder / value).exists() for folder in (Path.cwd(), *near))


def _local(value: str, key: str, near: tuple[Path, ...]) -> bool:
    if key == "base_model":
        return is_local_path(value, *near)
    # a tag such as base_model:adapter:/home/alice/base carries the path after its prefixes
    return any(re.match(r"^(/|~|\.{1,2}[/\\]|[A-Za-z]:[/\\])", part) for part in _tag_parts(value))


def _tag_parts(value: str) -> list[str]:
    """A tag and what follows each of its ``prefix:`` parts (``base_model:adapter:/x`` → the tag, ``adapter:/x``, ``/x``)."""
    parts = [value]
    while re.match(r"^[\w.-]{2,}:", parts[-1]):  # a prefix, not a Windows drive letter (C:)
        parts.append(parts[-1].split(":", 1)[1])
    return parts


def card_from_front_matter(meta: dict[str, Any], *near: Path) -> dict[str, Any]:
    """Our card keys from a model card's front matter; machine-local paths (a base_model that was a folder
    on the author's machine) are dropped: they mean nothing to a reader, or on another machine."""
    card: dict[str, Any] = {}
    for hub_key, key in CARD_KEYS.items():
        value = meta.get(hub_key)
        where = near if key == "base_model" else ()  # a tag or a language that names a file here is still a tag
        if isinstance(value, (list, tuple)):
            value = [v for v in value if isinstance(v, (str, int, float)) and not _local(str(v), key, where)]
        elif isinstance(value, str) and _local(value, key, where):
            value = None
        elif not isinstance(value, (str, int, float)):
            value = None
        if value in (None, "", []):
            continue
        if key in ("tags", "language"):
            value = [str(v) for v in (value if isinstance(value, list) else [value])]
        elif isinstance(value, list):
            value = str(value[0]) if len(value) == 1 else ", ".join(map(str, value))
        else:
            value = str(value)
        card[key] = value
    return card


def slug(name: str) -> str:
    value = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.")
    return value or "model"


def _rel(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (the config's folder), without resolving symlinks (a cache snapshot
    holds symlinks into blobs/), as POSIX text."""
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(base))).as_posix()
    except ValueError:  # another drive on Windows
        return Path(os.path.abspath(path)).as_posix()


# ------------------------------------------------------------------------------------------ the HF cache


def snapshot_repo(path: Path) -> tuple[str, str] | None:
    """``(org/name, sha)`` for a Hugging Face cache snapshot folder ``…/models--org--name/snapshots/<sha>``."""
    path = Path(os.path.abspath(path))
    if path.parent.name != "snapshots" or not path.parent.parent.name.startswith("models--"):
        return None
    repo = path.parent.parent.name[len("models--") :].replace("--", "/", 1)
    return repo, path.name


def cached_snapshot(repo: str, revision: str | None = None) -> Path | None:
    """The snapshot folder of a Hub repo in the local cache (HF_HOME / HF_HUB_CACHE), or None; never downloads."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - comes with transformers
        return None
    try:
        return Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - LocalEntryNotFoundError and friends: not in the cache
        return None


def _cached_main(repo_folder: Path) -> str | None:
    ref = repo_folder / "refs" / "main"
    return ref.read_text().strip() if ref.is_file() else None


def hub_source_for_snapshot(path: Path) -> dict[str, Any] | None:
    """``{type: hub, repo, [revision]}`` when ``path`` is a snapshot of the cache this machine uses."""
    found = snapshot_repo(path)
    if found is None:
        return None
    repo, sha = found
    resolved = cached_snapshot(repo, sha)
    if resolved is None or os.path.abspath(resolved) != os.path.abspath(path):
        return None  # a snapshot of another cache: use it as a local folder
    source: dict[str, Any] = {"type": "hub", "repo": repo}
    if _cached_main(Path(os.path.abspath(path)).parent.parent) != sha:
        source["revision"] = sha
    return source


# ------------------------------------------------------------------------------------------ one model


@dataclass
class Found:
    """One argument of `reportgen init`: the folder or file its facts are read from, and its source."""

    arg: str
    folder: Path | None  # the model's folder (a snapshot for a Hub id), None for a .gguf file
    file: Path | None = None  # the .gguf file
    hub: dict[str, Any] | None = None  # {type: hub, repo, [revision]} when it is in the HF cache
    names: list[str] = field(default_factory=list)  # what an adapter's base_model_name_or_path may call it


def find(arg: str) -> Found:
    """What a command-line argument names: a path on disk, else a Hub id in the local cache."""
    path = Path(arg).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(
                f"{arg}: not a model folder or a .gguf file. Fix: pass a folder with config.json, an adapter folder, "
                "a .gguf file or a Hub id in the local cache"
            )
        return Found(arg, None, file=path, names=[arg, str(path.resolve())])
    if path.is_dir():
        hub = hub_source_for_snapshot(path)
        names = [arg, str(path.resolve()), path.name] + ([hub["repo"]] if hub else [])
        return Found(arg, path, hub=hub, names=names)
    if HUB_ID.match(arg) and not _looks_like_a_path(arg):
        folder = cached_snapshot(arg)
        if folder is not None:
            return Found(arg, folder, hub={"type": "hub", "repo": arg}, names=[arg])
        from huggingface_hub import constants

        raise ConfigError(
            f"{arg}: no such folder or file, and the Hub id is not in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}). Fix: {download_hint(arg)}, or set HF_HOME to the cache that has it"
        )
    raise ConfigError(f"{arg}: no such folder or file. Fix: check the path (relative to the current directory){_near_miss(path)}")


def _looks_like_a_path(arg: str) -> bool:
    """``models/llama`` is a Hub id in form, but a path when its first part is a folder here (a mistyped path)."""
    return is_local_path(arg) or Path(arg).expanduser().parent.is_dir() and Path(arg).parent != Path(".")


def _near_miss(path: Path) -> str:
    import difflib

    folder = path.parent if str(path.parent) else Path(".")
    try:
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1)
    return f"; did you mean {folder / close[0]}?" if close else ""


def _config_name(folder: Path) -> str | None:
    try:
        name = read_json_object(folder / "config.json", "config.json").get("_name_or_path")
    except ConfigError:
        return None  # model_entry does not read it; validate and specs report it
    return name if isinstance(name, str) and name else None


def _base_source(base_name: str, adapter_folder: Path, config_dir: Path, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The source an adapter runs on, from its adapter_config.json's base_model_name_or_path."""
    if base_name in known:
        return known[base_name]
    for candidate in (Path(base_name).expanduser(), adapter_folder / base_name):
        if candidate.is_dir():
            return hub_source_for_snapshot(candidate) or {"type": "local", "path": _rel(candidate, config_dir)}
    if is_local_path(base_name, adapter_folder):  # a folder on the machine the adapter was trained on
        tail = re.split(r"[/\\]", base_name.rstrip("/\\"))[-1]
        if tail in known:
            chosen = known[tail]
            log.warning(
                "%s: base_model_name_or_path '%s' is not on this machine; running it on the given base %s "
                "(same folder name %s and a config.json)",
                adapter_folder,
                base_name,
                chosen.get("path") or chosen.get("repo"),
                tail,
            )
            return chosen
        raise ConfigError(
            f"{adapter_folder / 'adapter_config.json'}: base_model_name_or_path '{base_name}' is a folder on another machine. "
            f"Fix: pass the base model's folder (named {tail}) to `reportgen init` too"
        )
    if HUB_ID.match(base_name):
        if cached_snapshot(base_name) is None:
            log.warning(
                "%s: the adapter's base model %s is not in the local Hugging Face cache; `reportgen validate` will say so. "
                "Fix: %s, or pass its folder to `reportgen init` too",
                adapter_folder,
                base_name,
                download_hint(base_name),
            )
        return {"type": "hub", "repo": base_name}
    raise ConfigError(
        f"{adapter_folder / 'adapter_config.json'}: base_model_name_or_path '{base_name}' is neither a folder nor a Hub id. "
        "Fix: pass the base model's folder to `reportgen init` too, or correct adapter_config.json"
    )


def model_entry(found: Found, config_dir: Path, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One `models:` entry."""
    placeholder_card = {key: PLACEHOLDER for key in PROSE_KEYS}
    if found.file is not None:
        path = found.file
        return {
            "id": slug(path.stem),
            "name": path.stem,
            "source": {"type": "gguf", "path": _rel(path, config_dir)},
            "card": placeholder_card | card_from_front_matter(read_front_matter(path.parent / "README.md"), path.parent),
        }
    folder = found.folder
    assert folder is not None
    display = found.hub["repo"].split("/")[-1] if found.hub else folder.name
    card = placeholder_card | card_from_front_matter(read_front_matter(folder / "README.md"), folder)
    entry: dict[str, Any] = {"id": slug(display), "name": display}
    adapter_file = folder / "adapter_config.json"
    if adapter_file.is_file():
        adapter = read_json_object(adapter_file, "adapter_config.json")
        base_name = adapter.get("base_model_name_or_path")
        if not isinstance(base_name, str):
            raise ConfigError(
                f"{adapter_file}: base_model_name_or_path must be a string (a Hub repo id or a folder), "
                f"got {type(base_name).__name__}. Fix: correct adapter_config.json"
            )
        if not base_name:
            raise ConfigError(
                f"{adapter_file}: base_model_name_or_path is empty: the adapter names no base model to run on. "
                "Fix: set it to the base model's Hub id or folder"
            )
        entry["source"] = _base_source(base_name, folder, config_dir, known)
        entry["adapter"] = {"path": _rel(folder, config_dir)}
        if HUB_ID.match(base_name) and not is_local_path(base_name, folder):
            card.setdefault("base_model", base_name)
        elif entry["source"]["type"] == "hub":
            card.setdefault("base_model", entry["source"]["repo"])
        card.setdefault("library", "peft")
    elif (folder / "config.json").is_file():
        entry["source"] = dict(found.hub) if found.hub else {"type": "local", "path": _rel(folder, config_dir)}
    else:
        ggufs = sorted(folder.glob("*.gguf"))
        if not ggufs:
            raise ConfigError(
                f"{found.arg}: no config.json, adapter_config.json or .gguf file in this folder. Fix: pass a save_pretrained folder"
            )
        entry["source"] = {"type": "gguf", "path": _rel(ggufs[0], config_dir)}
    entry["card"] = card
    return entry


# ------------------------------------------------------------------------------------------ the study


def study_for(args: list[str], *, config_dir: Path, prompts: str | None, title: str | None = None) -> dict[str, Any]:
    """The study as a mapping, ready to be written as YAML into ``config_dir``."""
    found = [find(str(arg)) for arg in args]
    known: dict[str, dict[str, Any]] = {}  # what adapters may call one of the given models → its source
    for item in found:
        if item.folder is None or not (item.folder / "config.json").is_file():
            continue
        source = dict(item.hub) if item.hub else {"type": "local", "path": _rel(item.folder, config_dir)}
        for name in filter(None, (*item.names, _config_name(item.folder))):
            known.setdefault(name, source)
    models = [model_entry(item, config_dir, known) for item in found]
    seen: dict[str, int] = {}
    for model in models:  # ids must be unique
        count = seen.get(model["id"], 0)
        seen[model["id"]] = count + 1
        if count:
            model["id"] = f"{model['id']}-{count + 1}"
    study: dict[str, Any] = {"title": title or PLACEHOLDER, "introduction": PLACEHOLDER}
    if prompts is not None:
        study["prompts"] = prompts
    study["generation"] = {"max_new_tokens": 64}
    study["models"] = models
    return study


HEADER = (
    "# Written by `reportgen init`. Facts come from the model files; every TODO is prose for you to write\n"
    "# (`reportgen validate` lists them). The prompt set is yours to edit. Check with `reportgen validate <this file>`.\n"
)


def study_yaml(study: dict[str, Any]) -> str:
    return HEADER + yaml.dump(study, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=100)


def starter_prompts(config_dir: Path) -> tuple[str, Path | None]:
    """The starter prompt set copied beside the config (``prompts.yaml``), unless a file of that name is
    there already, which is then used as it is. Returns the config's ``prompts`` value and the file written."""
    target = config_dir / PROMPTS_NAME
    if target.exists():
        return PROMPTS_NAME, None
    config_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STARTER_PROMPTS, target)
    return PROMPTS_NAME, target


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a value that appears twice (e.g. through an alias in a card's front matter) out twice:
    the config we write has no anchors or aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True
