"""The one table of spec fields: name (the ModelSpec / AdapterSpec attribute), label, short label, formatter.

``label`` is how a model's own tables name a fact (the Models section, its config.json table),
``short`` how the side-by-side tables name it (the report's spec comparison, the terminal); ``detail``
is the qualifier a field's source table adds (``Parameters (exact)``, ``alpha (`lora_alpha`)``, Markdown).
``format`` writes a value as plain text with the one formatter (``reportgen.format``); the report's
Markdown cells build on it where they add code spans, units or line breaks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reportgen.format import MISSING, human_bytes, is_missing, num, percent

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from reportgen.specs.extract import ModelSpec
    from reportgen.study.config import Study

__all__ = ["ADAPTER_FIELDS", "SPEC_FIELDS", "SpecField", "field", "format_value", "print_specs", "spec_rows"]


def _plain(value: Any) -> str:
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return num(value)
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value)) or MISSING
    return str(value)


@dataclass(frozen=True)
class SpecField:
    """One fact about a model: where it lives, what it is called, how it is written."""

    name: str
    label: str
    short: str = ""
    format: Callable[[Any], str] = _plain
    detail: str = ""

    def __post_init__(self) -> None:
        if not self.short:
            object.__setattr__(self, "short", self.label)

    @property
    def detailed(self) -> str:
        """The label with its qualifier, as the field's source table writes it (Markdown)."""
        return f"{self.label} ({self.detail})" if self.detail else self.label


SPEC_FIELDS: tuple[SpecField, ...] = (
    SpecField("architecture", "Architecture"),
    SpecField("model_type", "Model type"),
    SpecField("family", "Family"),
    SpecField("task", "Task"),
    SpecField("parameters", "Parameters", detail="exact"),
    SpecField("hidden_size", "Hidden size"),
    SpecField("intermediate_size", "Intermediate size"),
    SpecField("num_hidden_layers", "Hidden layers", "Layers"),
    SpecField("num_attention_heads", "Attention heads"),
    SpecField("num_key_value_heads", "Key/value heads"),
    SpecField("context_length", "Context length", "Context length (tokens)", detail="max. position embeddings"),
    SpecField("vocab_size", "Vocabulary size", "Vocabulary (tokens)"),
    SpecField("activation", "Activation"),
    SpecField("dtype", "Stored dtype"),
    SpecField("tie_word_embeddings", "Tied input/output embeddings", "Tied embeddings"),
    SpecField("weight_bytes", "Weights at stored dtype", format=human_bytes),
    SpecField("weight_bytes_4bit", "Weights in 4-bit (NF4, estimate)", "Weights in 4-bit (NF4, est.)", format=human_bytes),
    SpecField("gguf_file_type", "GGUF file type"),
    SpecField("gguf_tensor_types", "GGUF tensor types"),
    SpecField("transformers_version", "Transformers version"),
)
ADAPTER_FIELDS: tuple[SpecField, ...] = (
    SpecField("peft_type", "PEFT type", "Adapter"),
    SpecField("r", "Rank r", "LoRA r"),
    SpecField("alpha", "alpha", "LoRA alpha", detail="`lora_alpha`"),
    SpecField("dropout", "Dropout", "LoRA dropout", detail="`lora_dropout`"),
    SpecField("target_modules", "Target modules"),
    SpecField("task_type", "Task type"),
    SpecField("base_model", "Base model", detail="`base_model_name_or_path`"),
    SpecField("trainable_parameters", "Trainable parameters", "Adapter parameters"),
    SpecField("share_of_base", "Share of the base model", "Share of base", format=percent),
)
_BY_NAME = {f.name: f for f in SPEC_FIELDS} | {f"adapter_{f.name}": f for f in ADAPTER_FIELDS}

#: The fields the terminal's spec table shows, in its order (the report's comparison has its own order).
TERMINAL_FIELDS = (
    "architecture",
    "family",
    "task",
    "parameters",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "context_length",
    "vocab_size",
    "activation",
    "dtype",
    "tie_word_embeddings",
    "weight_bytes",
    "weight_bytes_4bit",
    "gguf_file_type",
    "transformers_version",
)
TERMINAL_ADAPTER_FIELDS = ("peft_type", "r", "alpha", "dropout", "target_modules", "trainable_parameters", "share_of_base")


def field(name: str) -> SpecField:
    """The field ``name`` (a ModelSpec attribute, or ``adapter_<name>`` for the adapter's)."""
    return _BY_NAME[name]


def format_value(name: str, value: Any) -> str:
    """``value`` of the field ``name`` as plain text."""
    return _BY_NAME[name].format(value) if name in _BY_NAME else _plain(value)


def spec_rows(study: Study, specs: dict[str, ModelSpec | None]) -> list[tuple[str, list[str]]]:
    """(short label, one plain cell per model) for the terminal; rows no model has are left out."""
    models = list(study.models)
    rows = []
    for name in TERMINAL_FIELDS:
        values = [getattr(specs.get(m.id), name, None) if specs.get(m.id) else None for m in models]
        if any(v is not None for v in values):
            rows.append((field(name).short, [format_value(name, v) for v in values]))
    adapters = [spec.adapter if (spec := specs.get(m.id)) else None for m in models]
    if any(adapters):
        for name in TERMINAL_ADAPTER_FIELDS:
            key = f"adapter_{name}"
            rows.append((field(key).short, [format_value(key, getattr(a, name, None)) if a else MISSING for a in adapters]))
    quant = [m.quantization for m in models]
    if any(quant):
        rows.append(
            (
                "Quantization",
                [
                    f"{q.method} {q.bits}-bit {q.bnb_4bit_quant_type if q.load_in_4bit else ''}".strip()
                    if q and q.bits
                    else MISSING
                    for q in quant
                ],
            )
        )
    return rows


def print_specs(study: Study, specs: dict[str, Any], console: "Console") -> None:
    """The spec table in the terminal, one column per model."""
    from rich.table import Table

    table = Table(title=f"{study.title} — model specifications", show_lines=False)
    table.add_column("", style="bold")
    for model in study.models:
        table.add_column(model.name, overflow="fold")
    for label, cells in spec_rows(study, specs):
        table.add_row(label, *cells)
    console.print(table)
