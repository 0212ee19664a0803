"""`reportgen specs`: the spec table in the terminal, one column per model."""

from __future__ import annotations

from rich.table import Table

ROWS: list[tuple[str, str]] = [
    ("Architecture", "architecture"),
    ("Family", "family"),
    ("Task", "task"),
    ("Parameters", "parameters"),
    ("Hidden size", "hidden_size"),
    ("Intermediate size", "intermediate_size"),
    ("Layers", "num_hidden_layers"),
    ("Attention heads", "num_attention_heads"),
    ("Key/value heads", "num_key_value_heads"),
    ("Context length", "context_length"),
    ("Vocabulary", "vocab_size"),
    ("Activation", "activation"),
    ("Stored dtype", "dtype"),
    ("Tied embeddings", "tie_word_embeddings"),
    ("Weights (stored dtype)", "weight_bytes"),
    ("Weights (4-bit)", "weight_bytes_4bit"),
    ("GGUF file type", "gguf_file_type"),
    ("Transformers", "transformers_version"),
]
ADAPTER_ROWS: list[tuple[str, str]] = [
    ("Adapter", "peft_type"),
    ("LoRA r", "r"),
    ("LoRA alpha", "alpha"),
    ("LoRA dropout", "dropout"),
    ("Target modules", "target_modules"),
    ("Adapter parameters", "trainable_parameters"),
    ("Share of base", "share_of_base"),
]


def format_value(key: str, value) -> str:
    if value is None:
        return "—"
    if key in ("weight_bytes", "weight_bytes_4bit"):
        return f"{value / 2**30:,.2f} GiB" if value >= 2**30 else f"{value / 2**20:,.1f} MiB"
    if key == "share_of_base":
        return f"{value:.3%}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value))
    return str(value)


def print_specs(study, specs: dict, console) -> None:
    table = Table(title=f"{study.title} — model specifications", show_lines=False)
    table.add_column("", style="bold")
    for model in study.models:
        table.add_column(model.name, overflow="fold")
    for label, key in ROWS:
        values = [getattr(specs.get(m.id), key, None) if specs.get(m.id) else None for m in study.models]
        if all(v is None for v in values):
            continue
        table.add_row(label, *(format_value(key, v) for v in values))
    adapters = [specs[m.id].adapter if specs.get(m.id) else None for m in study.models]
    if any(adapters):
        for label, key in ADAPTER_ROWS:
            table.add_row(label, *(format_value(key, getattr(a, key, None)) if a else "—" for a in adapters))
    quant = [m.quantization for m in study.models]
    if any(quant):
        table.add_row(
            "Quantization",
            *(f"{q.method} {q.bits}-bit {q.bnb_4bit_quant_type if q.load_in_4bit else ''}".strip() if q and q.bits else "—" for q in quant),
        )
    console.print(table)
