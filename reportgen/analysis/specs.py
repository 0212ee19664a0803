"""Findings from the specs: context, vocabulary, parameters, memory, shared shapes, adapters,
quantization, missing specs, and what they mean for a choice between the models (``spec_conclusion``).

Pure functions over the study and its specs (``specs.study.study_specs``); every value a sentence about
a finding prints is in its ``numbers``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from reportgen.analysis.findings import Finding, by_value, spec_values
from reportgen.format import is_missing

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.specs.extract import ModelSpec
    from reportgen.study.config import Study

__all__ = ["COMPARED", "DIFF_FIELDS", "SHAPE_FIELDS", "spec_conclusion", "spec_findings"]

#: The spec fields compared model against model: finding kind → (field, topic).
COMPARED = {
    "spec.context": ("context_length", "context"),
    "spec.vocabulary": ("vocab_size", "vocabulary"),
    "spec.parameters": ("parameters", "parameters"),
}
#: Two models with equal values here have the same architecture and size ...
SHAPE_FIELDS = (
    "architecture",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "parameters",
)
#: ... and may still differ in these.
DIFF_FIELDS = ("context_length", "dtype", "transformers_version", "activation", "tie_word_embeddings")


def _study_order(study: Study, specs: Mapping[str, ModelSpec]) -> dict[str, ModelSpec]:
    return {m.id: specs[m.id] for m in study.models if m.id in specs}


def _compare(specs: Mapping[str, ModelSpec], kind: str) -> Finding | None:
    attr, topic = COMPARED[kind]
    values, missing = spec_values(specs, attr)
    numbers: dict[str, Any] = {attr: dict(values)}
    if not values:
        return Finding(kind, tuple(missing), {**numbers, "missing": missing}, topic) if missing else None
    groups = by_value(values)
    if len(groups) > 1:
        top = groups[0][0]
        numbers["factor_over"] = {m: (top / value if value else math.inf) for value, ids in groups[1:] for m in ids}
        numbers["more_than"] = {m: top - value for value, ids in groups[1:] for m in ids}
    numbers.update(missing=missing, groups=[(value, ids) for value, ids in groups])
    return Finding(kind, tuple(values), numbers, topic)


def _memory(specs: Mapping[str, ModelSpec]) -> Finding | None:
    stored, _ = spec_values(specs, "weight_bytes")
    four, _ = spec_values(specs, "weight_bytes_4bit")
    # a GGUF file is already quantized: a bitsandbytes 4-bit estimate of it compares nothing
    four = {m: v for m, v in four.items() if specs[m].source != "gguf"}
    if not stored and not four:
        return None
    numbers = {
        "weight_bytes": stored,
        "weight_bytes_4bit": four,
        "dtype": {m: specs[m].dtype for m in stored},
        "saving_4bit": {m: stored[m] / v for m, v in four.items() if m in stored and v},
        "size_unknown": [m for m in specs if m not in stored],
    }
    return Finding("spec.memory", tuple(specs), numbers, "memory")


def _shapes(specs: Mapping[str, ModelSpec]) -> list[Finding]:
    groups: dict[tuple[Any, ...], list[str]] = {}
    for model_id, spec in specs.items():
        key = tuple(getattr(spec, f) for f in SHAPE_FIELDS)
        if any(is_missing(v) for v in key):
            continue
        groups.setdefault(key, []).append(model_id)
    out = []
    for ids in groups.values():
        if len(ids) < 2:
            continue
        spec = specs[ids[0]]
        numbers: dict[str, Any] = {f: getattr(spec, f) for f in SHAPE_FIELDS}
        differ = []
        for attr in DIFF_FIELDS:
            values = [getattr(specs[m], attr) for m in ids]
            if len(set(values)) > 1:
                differ.append(attr)
                numbers[attr] = {m: getattr(specs[m], attr) for m in ids}
        numbers["differ"] = differ
        out.append(Finding("spec.same_shape", tuple(ids), numbers, "architecture"))
    return out


def _adapters(specs: Mapping[str, ModelSpec]) -> list[Finding]:
    out = []
    for model_id, spec in specs.items():
        a = spec.adapter
        if a is None:
            continue
        numbers: dict[str, Any] = {
            "r": a.r,
            "alpha": a.alpha,
            "dropout": a.dropout,
            "trainable_parameters": a.trainable_parameters,
            "share_of_base": a.share_of_base,
            "peft_type": a.peft_type,
            "target_modules": list(a.target_modules),
        }
        if a.trainable_parameters is not None and a.share_of_base is not None and spec.parameters is not None:
            numbers["base_parameters"] = spec.parameters
        if a.peft_type == "LORA" and a.r and a.alpha is not None:
            numbers["scaling"] = a.alpha / a.r
        out.append(Finding("spec.adapter", (model_id,), numbers, "adapter"))
    return out


def _quantization(study: Study, specs: Mapping[str, ModelSpec]) -> list[Finding]:
    out = []
    for model in study.models:
        q = model.quantization
        if q is None:
            continue
        spec = specs.get(model.id)
        numbers: dict[str, Any] = {"bits": q.bits, **q.model_dump(mode="json")}
        if q.load_in_4bit and spec is not None and spec.weight_bytes_4bit is not None:
            numbers["weight_bytes_4bit"] = spec.weight_bytes_4bit
            if spec.weight_bytes:
                numbers.update(
                    weight_bytes=spec.weight_bytes, dtype=spec.dtype, saving=spec.weight_bytes / spec.weight_bytes_4bit
                )
        numbers["qlora"] = bool(
            q.load_in_4bit
            and spec is not None
            and spec.adapter is not None
            and spec.adapter.peft_type == "LORA"
            and q.bnb_4bit_quant_type == "nf4"
        )
        out.append(Finding("spec.quantization", (model.id,), numbers, "quantization"))
    return out


def _missing(study: Study, specs: Mapping[str, ModelSpec]) -> list[Finding]:
    out = []
    without = [m.id for m in study.models if m.id not in specs]
    if without:
        out.append(Finding("spec.none", tuple(without), {"models": without}, "missing"))
    for model_id, spec in specs.items():
        for note in spec.notes:
            out.append(Finding("spec.note", (model_id,), {"note": note}, "missing"))
    return out


def spec_findings(study: Study, specs: Mapping[str, ModelSpec]) -> list[Finding]:
    """What the specs say, compared: context, vocabulary, size, memory, shape, adapter, quantization, gaps."""
    specs = _study_order(study, specs)
    out: list[Finding] = []
    if specs:
        for kind in COMPARED:
            found = _compare(specs, kind)
            if found is not None:
                out.append(found)
        memory = _memory(specs)
        if memory is not None:
            out.append(memory)
    out += _shapes(specs)
    out += _adapters(specs)
    out += _quantization(study, specs)
    out += _missing(study, specs)
    return out


def _extreme(specs: Mapping[str, ModelSpec], attr: str, best: Callable[..., Any] = max) -> tuple[Any, list[str]] | None:
    values, _ = spec_values(specs, attr)
    if len(values) < 2 or len(set(values.values())) == 1:
        return None
    target = best(values.values())
    return target, [m for m, v in values.items() if v == target]


def spec_conclusion(study: Study, specs: Mapping[str, ModelSpec]) -> list[Finding]:
    """What the specs mean for a choice between the models, one finding per criterion (topic ``conclusion``)."""
    specs = _study_order(study, specs)
    out: list[Finding] = []
    if len(specs) < 2:
        return out
    small = _extreme(specs, "weight_bytes", min)
    big = _extreme(specs, "parameters", max)
    if small:
        value, ids = small
        first = specs[ids[0]]
        numbers: dict[str, Any] = {"weight_bytes": value, "dtype": first.dtype}
        four = [specs[m].weight_bytes_4bit for m in ids if specs[m].weight_bytes_4bit]
        if four:
            numbers["weight_bytes_4bit"] = four[0]
        if big and first.parameters:
            numbers.update(
                largest_parameters=big[0], parameters=first.parameters, fewer_parameters=big[0] / first.parameters, largest=big[1]
            )
        out.append(Finding("conclusion.smallest", tuple(ids), numbers, "conclusion"))
    if big:
        out.append(Finding("conclusion.largest", tuple(big[1]), {"parameters": big[0]}, "conclusion"))
    for attr, kind in (("context_length", "conclusion.longest_context"), ("vocab_size", "conclusion.largest_vocabulary")):
        found = _extreme(specs, attr)
        if found:
            out.append(Finding(kind, tuple(found[1]), {attr: found[0]}, "conclusion"))
    for model_id, spec in specs.items():
        adapter = spec.adapter
        if adapter is not None and adapter.trainable_parameters:
            out.append(
                Finding(
                    "conclusion.cheapest_to_finetune",
                    (model_id,),
                    {"trainable_parameters": adapter.trainable_parameters, "share_of_base": adapter.share_of_base},
                    "conclusion",
                )
            )
    return out
