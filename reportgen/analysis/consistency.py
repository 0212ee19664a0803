"""Consistency findings: what the config or the model card says against what the spec shows.

A "GPT Neo" that is a ``GPT2LMHeadModel``, a text2text tag on a causal LM, the PEFT library on a model
without an adapter, an adapter for another task, a size in the name the architecture does not have,
bitsandbytes on a GGUF file. Pure functions over the study and its specs; ``phrasing`` words them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reportgen.analysis.findings import Finding

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.specs.extract import ModelSpec
    from reportgen.study.config import ModelConfig, Study

__all__ = ["CAUSAL_TAGS", "FAMILY_KEYWORDS", "SEQ2SEQ_TAGS", "consistency_findings", "model_consistency"]

#: A name keyword and the model types it implies. Checked in order; the first match of each name
#: span wins, so "GPT-NeoX" is not also read as "GPT-Neo".
FAMILY_KEYWORDS: tuple[tuple[str, str, frozenset[str]], ...] = (
    (r"gpt[-_ ]?neo[-_ ]?x", "GPT-NeoX", frozenset({"gpt_neox"})),
    (r"gpt[-_ ]?neo", "GPT-Neo", frozenset({"gpt_neo"})),
    (r"gpt[-_ ]?j(?![a-z])", "GPT-J", frozenset({"gptj"})),
    (r"gpt[-_ ]?2(?![0-9])", "GPT-2", frozenset({"gpt2"})),
    (r"code[-_ ]?llama|llama", "Llama", frozenset({"llama", "llama4", "mllama"})),
    (r"mixtral", "Mixtral", frozenset({"mixtral"})),
    (r"mistral", "Mistral", frozenset({"mistral", "mixtral"})),
    (r"(?<![a-z0-9])(?:flan[-_ ]?|m|umt|long)?t5(?![0-9])", "T5", frozenset({"t5", "mt5", "umt5", "longt5"})),
    (
        r"(?:ro|distil|de)?bert",
        "BERT",
        frozenset({"bert", "roberta", "distilbert", "deberta", "deberta-v2", "camembert", "xlm-roberta"}),
    ),
    (r"falcon", "Falcon", frozenset({"falcon"})),
    (r"(?<![a-z])phi(?![a-z])", "Phi", frozenset({"phi", "phi3", "phimoe"})),
    (r"qwen", "Qwen", frozenset({"qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen2_vl", "qwen2_5_vl"})),
    (r"gemma", "Gemma", frozenset({"gemma", "gemma2", "gemma3", "gemma3_text"})),
    (r"bloom", "BLOOM", frozenset({"bloom"})),
    (r"(?<![a-z])opt(?![a-z])", "OPT", frozenset({"opt"})),
    (r"starcoder", "StarCoder", frozenset({"gpt_bigcode", "starcoder2"})),
    (r"(?<![a-z])olmo", "OLMo", frozenset({"olmo", "olmo2"})),
    (r"(?<![a-z])bart(?![a-z])", "BART", frozenset({"bart", "mbart"})),
)

CAUSAL_TAGS = {"text-generation"}
SEQ2SEQ_TAGS = {"text2text-generation", "translation", "summarization"}
_SIZE_IN_NAME = re.compile(r"(?<![0-9a-z.])(\d+(?:\.\d+)?)\s*([mb])(?![a-z])", re.IGNORECASE)
_TASKS = {"CAUSAL_LM": "causal-lm", "SEQ_2_SEQ_LM": "seq2seq-lm"}


def _name_families(name: str) -> list[tuple[str, frozenset[str]]]:
    lowered = name.lower()
    taken: list[tuple[int, int]] = []
    found = []
    for pattern, label, types in FAMILY_KEYWORDS:
        for match in re.finditer(pattern, lowered):
            span = match.span()
            if any(span[0] < end and start < span[1] for start, end in taken):
                continue
            taken.append(span)
            found.append((label, types))
    return found


def _described(spec: ModelSpec) -> dict[str, Any]:
    """What the spec is, and where it was read: the values a warning quotes."""
    return {
        "source": spec.source,
        "family": spec.family,
        "model_type": spec.model_type,
        "architecture": spec.architecture,
        "task": spec.task,
    }


def model_consistency(model: ModelConfig, spec: ModelSpec | None) -> list[Finding]:
    """The contradictions of one model (topic ``consistency``), in a fixed order."""
    out: list[Finding] = []
    subject = (model.id,)

    def add(kind: str, **numbers: Any) -> None:
        described = _described(spec) if spec is not None else {"source": None}
        out.append(Finding(kind, subject, {**described, **numbers}, "consistency"))

    card = model.card
    if spec is not None and spec.model_type:
        families = _name_families(model.name)
        if families and not any(spec.model_type in types for _, types in families):
            add("warning.name_family", name_says=[label for label, _ in families])
    tag = (card.pipeline_tag or "").strip().lower()
    if spec is not None and spec.task == "causal-lm" and tag in SEQ2SEQ_TAGS:
        add("warning.seq2seq_tag", pipeline_tag=card.pipeline_tag, expected_tag="text-generation")
    elif spec is not None and spec.task == "seq2seq-lm" and tag in CAUSAL_TAGS:
        add("warning.causal_tag", pipeline_tag=card.pipeline_tag, expected_tag="text2text-generation")
    if (card.library or "").strip().lower() == "peft" and model.adapter is None:
        add("warning.peft_without_adapter", library=card.library)
    if spec is not None and spec.adapter is not None and spec.adapter.task_type and spec.task:
        wants = _TASKS.get(spec.adapter.task_type.upper())
        if wants and wants != spec.task:
            add("warning.adapter_task", task_type=spec.adapter.task_type)
    if spec is not None and spec.parameters:
        for value, unit in _SIZE_IN_NAME.findall(model.name):
            stated = float(value) * (1e9 if unit.lower() == "b" else 1e6)
            if stated and not 0.5 <= spec.parameters / stated <= 2:
                add("warning.size_in_name", name_size=value + unit.upper(), stated_parameters=stated, parameters=spec.parameters)
    if model.quantization is not None and spec is not None and spec.source == "gguf":
        add("warning.bitsandbytes_on_gguf", dtype=spec.dtype)
    return out


def consistency_findings(study: Study, specs: Mapping[str, ModelSpec]) -> dict[str, list[Finding]]:
    """model id → its contradictions, every model of the study in order (an empty list when none)."""
    return {m.id: model_consistency(m, specs.get(m.id)) for m in study.models}
