"""The spec of each model of a study, and the spec table the analysis and ``reportgen specs`` read.

Where the facts come from, first match wins:

1. the model's vendored ``config`` (a config.json kept next to the study config);
2. the source: a local folder's ``config.json``, a Hub repo's ``config.json`` in the local cache
   (never downloaded), a GGUF file's metadata;
3. otherwise the model has no spec (an HTTP endpoint without a vendored config) and ``None`` is returned.

The adapter spec comes from ``model.adapter.config_file`` (a vendored ``adapter_config.json`` or the
adapter folder's), counted against the base config. A ``quantization:`` with double quantization
recomputes the 4-bit estimate with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportgen.study.config import GGUFSource, HubSource, LocalSource, ModelConfig, download_hint
from reportgen.errors import ConfigError
from reportgen.specs.extract import read_json_object

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from reportgen.study.config import Study
    from reportgen.specs.extract import ModelSpec

__all__ = [
    "ModelFiles",
    "model_file_problems",
    "model_files",
    "no_spec_reason",
    "spec_for_model",
    "spec_table",
    "study_specs",
    "SPEC_COLUMNS",
]


@dataclass(frozen=True)
class ModelFiles:
    """The spec files of one model, as found (``None`` when absent)."""

    config_path: Path | None
    config: dict[str, Any] | None
    adapter_config_path: Path | None
    adapter_config: dict[str, Any] | None
    gguf_path: Path | None


def _hub_cached_config(source: HubSource) -> Path | None:
    """config.json of a Hub repo from the local cache only (nothing is downloaded)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - comes with transformers
        return None
    found = try_to_load_from_cache(source.repo, "config.json", revision=source.revision)
    return Path(found) if isinstance(found, str) else None


def hub_cache_problems(study: Study) -> list[str]:
    """Each Hub model whose repo is not in the local cache and that has no vendored config.json: its specs
    (and any claim naming it) and its run would fail later. Nothing is downloaded."""
    problems: list[str] = []
    for index, model in enumerate(study.models):
        if not isinstance(model.source, HubSource) or model.config is not None:
            continue
        if _hub_cached_config(model.source) is None:
            from huggingface_hub import constants

            revision = f" (revision {model.source.revision})" if model.source.revision else ""
            problems.append(
                f"{study.where('models', index, 'source', 'repo')}: models[{index}].source.repo: '{model.source.repo}'{revision} "
                f"is not in the local Hugging Face cache (HF_HOME={constants.HF_HOME}). Fix: "
                f"{download_hint(model.source.repo, model.source.revision)}, vendor its config.json as `config:`, or use a local path"
            )
    return problems


def model_files(model: ModelConfig) -> ModelFiles:
    """Locate (and read) the config.json / adapter_config.json / GGUF file a model's spec comes from."""
    config_path: Path | None = None
    gguf_path: Path | None = None
    if model.config is not None:
        config_path = Path(model.config)
    elif isinstance(model.source, LocalSource):
        candidate = Path(model.source.path)
        if candidate.is_file() and candidate.suffix.lower() == ".gguf":
            gguf_path = candidate
        elif (candidate / "config.json").exists():
            config_path = candidate / "config.json"
    elif isinstance(model.source, HubSource):
        config_path = _hub_cached_config(model.source)
    elif isinstance(model.source, GGUFSource):
        gguf_path = model.source.resolve()
    if config_path is None and gguf_path is None and model.adapter is not None and model.adapter.path is not None:
        # An adapter folder alone: its base config may sit beside it (as save_pretrained of a merged model).
        beside = Path(model.adapter.path) / "config.json"
        config_path = beside if beside.exists() else None

    config = read_json_object(config_path, "config.json") if config_path is not None else None
    adapter_path = Path(model.adapter.config_file) if model.adapter is not None else None
    adapter = read_json_object(adapter_path, "adapter_config.json") if adapter_path is not None else None
    return ModelFiles(config_path, config, adapter_path, adapter, gguf_path)


def model_file_problems(study: Study, model_ids: Iterable[str] | None = None) -> list[str]:
    """Type and range problems of each model's config.json / adapter_config.json and GGUF header, one line
    each naming the study config's line, the file and the key (``model_ids``: only these models).

    The checks ``validate`` makes and ``run`` / ``build`` make before any model runs (specs.validate);
    a model whose files are missing is left to ``missing_files``, which names them.
    """
    from reportgen.specs.validate import gguf_header_problems

    wanted = None if model_ids is None else set(model_ids)
    problems: list[str] = []
    for index, model in enumerate(study.models):
        if wanted is not None and model.id not in wanted:
            continue
        named = [model.config, model.adapter.config_file if model.adapter is not None else None]
        if any(path is not None and not Path(path).exists() for path in named):
            continue
        try:
            files = model_files(model)
        except ConfigError as exc:
            for problem in exc.problems:
                key = "adapter" if "adapter_config" in problem else "config" if model.config is not None else "source"
                problems.append(f"{study.where('models', index, key)}: models[{index}]: {problem}")
            continue
        if files.gguf_path is not None and files.gguf_path.exists():
            problems.extend(
                f"{study.where('models', index, 'source')}: models[{index}]: {p}" for p in gguf_header_problems(files.gguf_path)
            )
    return problems


def spec_for_model(model: ModelConfig) -> ModelSpec | None:
    """The spec of one model, or ``None`` when nothing describes it (an endpoint without a vendored config).

    Remembered in the user cache by the content of the model's files (``specs.cache``): a spec computed
    once is read back without torch, transformers or a GGUF parse.
    """
    from reportgen.specs import cache

    files = model_files(model)
    if files.config is None and files.gguf_path is None:
        return None
    key = cache.spec_key(model, files)
    spec = cache.load_spec(key)
    if spec is None:
        spec = _compute_spec(model, files)
        cache.store_spec(key, spec)
    return spec


def _compute_spec(model: ModelConfig, files: ModelFiles) -> ModelSpec:
    from reportgen.specs import extract as specs

    spec: ModelSpec
    if files.config is not None:
        spec = specs.spec_from_config_dict(files.config)
    else:
        assert files.gguf_path is not None  # a model's files are a config or a GGUF
        spec = specs.spec_from_gguf(files.gguf_path)

    if files.adapter_config is not None:
        base, notes = _adapter_base_config(files, spec)
        try:
            adapter = specs.adapter_spec(files.adapter_config, base)
        except ConfigError as exc:  # PEFT refuses this adapter on this base: the model keeps its spec, uncounted
            notes += (f"adapter parameters not counted: {exc.format_message()}",)
            adapter = specs.adapter_spec(files.adapter_config, None)
        spec = dataclasses.replace(spec, adapter=adapter, notes=spec.notes + notes)

    quant = model.quantization
    if files.config is not None and quant is not None and quant.load_in_4bit and quant.bnb_4bit_use_double_quant:
        spec = dataclasses.replace(spec, weight_bytes_4bit=specs.estimate_4bit_bytes(files.config, double_quant=True))
    return spec


def _adapter_base_config(files: ModelFiles, spec: ModelSpec) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """The base config an adapter is counted on: the model's config.json, else the config transformers maps
    its GGUF file to (the architecture the transformers backend runs); ``None`` (and why) when neither builds."""
    from reportgen.specs import extract as specs

    if files.config is not None:
        return (files.config if spec.parameters is not None else None), ()
    if files.gguf_path is None:
        return None, ()
    try:
        return specs.config_from_gguf(files.gguf_path), ()
    except ConfigError as exc:
        return None, (f"adapter parameters not counted: {exc.format_message()}",)


def study_specs(study: Study) -> dict[str, ModelSpec]:
    """Specs of every model that has one, by model id, in study order. Errors name the config line."""
    out: dict[str, ModelSpec] = {}
    problems: list[str] = []
    for index, model in enumerate(study.models):
        try:
            spec = spec_for_model(model)
        except ConfigError as exc:
            key = "config" if model.config is not None else "source"
            problems.extend(f"{study.where('models', index, key)}: models[{index}]: {p}" for p in exc.problems)
            continue
        if spec is not None:
            out[model.id] = spec
    if problems:
        raise ConfigError(problems)
    return out


def no_spec_reason(study: Study, index: int) -> tuple[str, bool]:
    """Why nothing describes ``study.models[index]`` (it has no spec), naming the config line and the fix, and
    whether that is a problem (a file that should be there is missing) or expected (an endpoint)."""
    model = study.models[index]
    source = model.source
    where = f"{study.where('models', index, 'source')}: models[{index}] ({model.id})"
    if isinstance(source, LocalSource):
        path = Path(source.path)
        if not path.exists():
            what = "the adapter's base model folder" if model.adapter is not None else "the model folder"
            return f"{where}: no spec: {what} '{path}' does not exist. Fix: point source.path at a save_pretrained folder", True
        return f"{where}: no spec: '{path}' has no config.json. Fix: point source.path at a save_pretrained folder", True
    if isinstance(source, HubSource):
        return (
            f"{where}: no spec: '{source.repo}' is not in the local Hugging Face cache. "
            f"Fix: {download_hint(source.repo, source.revision)}, or vendor its config.json as `config:`",
            True,
        )
    if source is None:
        return f"{where}: no spec: neither a source nor a config.json. Fix: vendor its config.json as `config:`", True
    if isinstance(source, GGUFSource):
        return f"{where}: no spec: the GGUF file does not exist. Fix: point source.path at a .gguf file", True
    return f"{where}: no spec: an HTTP endpoint says nothing about its model. Fix: vendor its config.json as `config:`", False


#: ModelSpec fields that become table columns as they are; ``adapter`` is flattened to ``adapter_<field>``.
SPEC_COLUMNS = (
    "source",
    "architecture",
    "model_type",
    "family",
    "task",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "num_hidden_layers",
    "context_length",
    "vocab_size",
    "activation",
    "dtype",
    "tie_word_embeddings",
    "transformers_version",
    "parameters",
    "weight_bytes",
    "weight_bytes_4bit",
    "gguf_file_type",
    "gguf_tensor_types",
)
ADAPTER_COLUMNS = (
    "peft_type",
    "r",
    "alpha",
    "dropout",
    "target_modules",
    "base_model",
    "task_type",
    "trainable_parameters",
    "share_of_base",
)
INT_COLUMNS = (
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "num_hidden_layers",
    "context_length",
    "vocab_size",
    "parameters",
    "weight_bytes",
    "weight_bytes_4bit",
    "adapter_r",
    "adapter_trainable_parameters",
)
FLOAT_COLUMNS = ("adapter_alpha", "adapter_dropout", "adapter_share_of_base")


def spec_row(spec: ModelSpec) -> dict[str, Any]:
    row = {name: getattr(spec, name) for name in SPEC_COLUMNS}
    adapter = spec.adapter
    for name in ADAPTER_COLUMNS:
        row[f"adapter_{name}"] = getattr(adapter, name) if adapter is not None else None
    row["notes"] = tuple(spec.notes)
    return row


def spec_table(specs: Mapping[str, ModelSpec]) -> pd.DataFrame:
    """One row per model (index: model id), one column per ModelSpec field; ``adapter_*`` for the adapter.

    Integer columns use pandas' nullable ``Int64`` (exact counts, missing = ``<NA>``), so a
    7-billion-parameter count is never rounded through a float.
    """
    import pandas as pd

    columns = [*SPEC_COLUMNS, *(f"adapter_{n}" for n in ADAPTER_COLUMNS), "notes"]
    frame = pd.DataFrame([spec_row(s) for s in specs.values()], index=pd.Index(list(specs), name="model"), columns=columns)
    for name in INT_COLUMNS:
        frame[name] = frame[name].astype("Int64")
    for name in FLOAT_COLUMNS:
        frame[name] = frame[name].astype("Float64")
    return frame


def table_value(table: pd.DataFrame, model_id: str, field: str) -> Any:
    """A cell as a plain Python value (``int``/``float``/``str``/``None``), for claims and statements."""
    value = table.at[model_id, field]
    try:
        import pandas as pd

        if value is pd.NA or (isinstance(value, float) and value != value):
            return None
    except ImportError:  # pragma: no cover
        pass
    if hasattr(value, "item"):
        return value.item()
    return value
