"""One validation layer for model files: config.json, adapter_config.json and GGUF headers.

Every reader of these files (``reportgen validate``, ``specs``, ``render``, ``run``) goes through
``read_model_config`` / ``read_adapter_config`` / ``check_gguf_header``, so a field of the wrong type
or range is one ConfigError naming the file and the key (exit 2), never a traceback from deep inside
transformers, PEFT or the GGUF reader.

Only the keys a file has are checked: a model type that names its sizes differently (``n_embd``,
``d_model``) is checked under those names; unknown keys are left alone.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from reportgen.errors import ConfigError
from reportgen.util.safeio import read_json_object

__all__ = [
    "adapter_config_problems",
    "check_gguf_header",
    "gguf_header_problems",
    "model_config_problems",
    "read_adapter_config",
    "read_model_config",
]

INT_MAX = 2**31 - 1  # no real config has a size, count or length past this

#: key -> may it be null? (every one, when a number, is a whole number from 1 to INT_MAX)
POSITIVE_INTS: dict[str, bool] = {
    # width
    "hidden_size": False,
    "n_embd": False,
    "d_model": False,
    "dim": False,
    # feed-forward width (GPT-2's n_inner null means 4 * hidden)
    "intermediate_size": True,
    "n_inner": True,
    "ffn_hidden_size": True,
    "ffn_dim": True,
    "d_ff": True,
    "encoder_ffn_dim": True,
    "decoder_ffn_dim": True,
    # attention heads
    "num_attention_heads": False,
    "n_head": False,
    "num_heads": False,
    "encoder_attention_heads": False,
    "decoder_attention_heads": False,
    "num_key_value_heads": True,
    "num_kv_heads": True,
    "n_head_kv": True,
    "head_dim": True,
    # depth
    "num_hidden_layers": False,
    "n_layer": False,
    "num_layers": False,
    "encoder_layers": False,
    "decoder_layers": False,
    "num_decoder_layers": True,
    # context and vocabulary
    "max_position_embeddings": True,
    "n_positions": True,
    "n_ctx": True,
    "vocab_size": False,
    "n_vocab": False,
}
POSITIVE_NUMBERS = ("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "initializer_range", "rope_theta")
STRINGS = ("model_type", "torch_dtype", "dtype", "hidden_act", "activation_function", "_name_or_path", "transformers_version")
BOOLS = ("tie_word_embeddings", "is_encoder_decoder", "multi_query", "use_cache")
OBJECTS = ("quantization_config", "rope_scaling", "text_config")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "true/false", int: "a whole number", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def model_config_problems(cfg: Any, path: Path | str) -> list[str]:
    """Every type and range problem of a config.json dict, one line each (``file: key: problem. Fix: ...``)."""
    if not isinstance(cfg, dict):
        return [f"{path}: config.json must be a JSON object, got {_kind(cfg)}"]
    problems: list[str] = []

    def bad(key: str, what: str) -> None:
        problems.append(f"{path}: {key}: {what}. Fix: correct config.json (or vendor a corrected copy with models[].config)")

    for key, nullable in POSITIVE_INTS.items():
        if key not in cfg:
            continue
        value = cfg[key]
        if value is None:
            if not nullable:
                bad(key, "is null; it must be a whole number of at least 1")
        elif isinstance(value, bool) or not isinstance(value, int):
            bad(key, f"must be a whole number of at least 1, got {_kind(value)} {_show(value)}")
        elif not 1 <= value <= INT_MAX:
            bad(key, f"must be a whole number from 1 to {INT_MAX}, got {value}")
    for key in POSITIVE_NUMBERS:
        value = cfg.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            bad(key, f"must be a number, got {_kind(value)} {_show(value)}")
        elif not value > 0 or value != value or value == float("inf"):
            bad(key, f"must be a positive finite number, got {value}")
    for key in STRINGS:
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            bad(key, f"must be a string, got {_kind(cfg[key])} {_show(cfg[key])}")
    for key in BOOLS:
        if cfg.get(key) is not None and not isinstance(cfg[key], bool):
            bad(key, f"must be true or false, got {_kind(cfg[key])} {_show(cfg[key])}")
    for key in OBJECTS:
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            bad(key, f"must be an object, got {_kind(cfg[key])} {_show(cfg[key])}")
    archs = cfg.get("architectures")
    if archs is not None and not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
        bad("architectures", f"must be a list of class names (strings), got {_show(archs)}")

    def good(key: str) -> int | None:
        value = cfg.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= INT_MAX else None

    hidden, heads, kv = good("hidden_size"), good("num_attention_heads"), good("num_key_value_heads")
    if hidden and heads and cfg.get("head_dim") is None and hidden % heads:
        bad("num_attention_heads", f"{heads} does not divide hidden_size {hidden}")
    if heads and kv and heads % kv:
        bad("num_key_value_heads", f"{kv} does not divide num_attention_heads {heads}")
    text_config = cfg.get("text_config")
    if isinstance(text_config, dict):
        problems.extend(model_config_problems(text_config, f"{path}: text_config"))
    return problems


def adapter_config_problems(cfg: Any, path: Path | str) -> list[str]:
    """Type and range problems of an adapter_config.json dict, one line each."""
    if not isinstance(cfg, dict):
        return [f"{path}: adapter_config.json must be a JSON object, got {_kind(cfg)}"]
    problems: list[str] = []

    def bad(key: str, what: str) -> None:
        problems.append(f"{path}: {key}: {what}. Fix: correct adapter_config.json")

    r = cfg.get("r")
    if r is not None and (isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= INT_MAX):
        bad("r", f"the LoRA rank must be a whole number of at least 1, got {_show(r)}")
    alpha = cfg.get("lora_alpha")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))):
        bad("lora_alpha", f"must be a number, got {_kind(alpha)} {_show(alpha)}")
    dropout = cfg.get("lora_dropout")
    if dropout is not None and (isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1):
        bad("lora_dropout", f"must be a number from 0 to 1, got {_show(dropout)}")
    targets = cfg.get("target_modules")
    if (
        targets is not None
        and not isinstance(targets, str)
        and not (isinstance(targets, list) and all(isinstance(t, str) for t in targets))
    ):
        bad("target_modules", f"must be a module name, a regex or a list of names, got {_show(targets)}")
    for key in ("peft_type", "task_type", "base_model_name_or_path"):
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            bad(key, f"must be a string, got {_kind(cfg[key])} {_show(cfg[key])}")
    return problems


def read_model_config(path: Path | str, what: str = "config.json") -> dict[str, Any]:
    """config.json read safely and checked: a ConfigError listing every problem, naming file and key."""
    cfg = read_json_object(path, what)
    problems = model_config_problems(cfg, path)
    if problems:
        raise ConfigError(problems)
    return cfg


def read_adapter_config(path: Path | str, what: str = "adapter_config.json") -> dict[str, Any]:
    cfg = read_json_object(path, what)
    problems = adapter_config_problems(cfg, path)
    if problems:
        raise ConfigError(problems)
    return cfg


# GGUF: magic "GGUF", uint32 version, uint64 tensor count, uint64 metadata count (little-endian).
_GGUF_HEADER = struct.Struct("<4sIQQ")
_MIN_KV_BYTES = 8 + 1 + 4 + 1  # key length, one-byte key, value type, smallest value
_MIN_TENSOR_BYTES = 8 + 1 + 4 + 8 + 4 + 8  # name length, name, n_dims, one dim, type, offset


def gguf_header_problems(path: Path | str) -> list[str]:
    """Problems of a GGUF file's fixed header, read without the gguf package (24 bytes)."""
    path = Path(path)
    fix = "Fix: the file is incomplete or not GGUF; download or convert it again"
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(_GGUF_HEADER.size)
    except OSError as exc:
        return [f"{path}: cannot read the GGUF file: {exc.strerror or exc}"]
    if len(head) < 4 or head[:4] != b"GGUF":
        return [f"{path}: not a GGUF file (it does not start with 'GGUF'). {fix}"]
    if len(head) < _GGUF_HEADER.size:
        return [f"{path}: GGUF header cut short ({size} bytes, the header alone is {_GGUF_HEADER.size}). {fix}"]
    _, version, tensors, kvs = _GGUF_HEADER.unpack(head)
    if version not in (1, 2, 3):
        return [f"{path}: GGUF version {version} is not one this reader knows (1 to 3). {fix}"]
    least = _GGUF_HEADER.size + kvs * _MIN_KV_BYTES + tensors * _MIN_TENSOR_BYTES
    if least > size:
        return [
            f"{path}: GGUF file cut short: its header announces {tensors} tensors and {kvs} metadata entries, "
            f"which need at least {least} bytes, but the file has {size}. {fix}"
        ]
    if version == 1:
        return []  # 32-bit lengths: the reader refuses it with its own message
    try:
        need = _gguf_extent(path, kvs, tensors)
    except _Cut as exc:
        return [f"{path}: GGUF file cut short in its {exc} ({size} bytes). {fix}"]
    if need is not None and need > size:
        return [f"{path}: GGUF file cut short: its tensors end at byte {need}, but the file has {size} bytes. {fix}"]
    return []


class _Cut(Exception):
    """The file ends inside the part named by the message."""


# GGUF value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array, 10 u64, 11 i64, 12 f64
_SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def _gguf_extent(path: Path, kvs: int, tensors: int) -> int | None:
    """The byte where the last tensor's data ends, from the metadata and tensor table (read, not trusted).

    Raises _Cut when the file ends inside the metadata or the tensor table; None when a tensor type is
    unknown to the installed gguf package (then the reader has the last word)."""
    import mmap

    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        end = len(data)
        pos = _GGUF_HEADER.size

        def take(n: int, part: str) -> int:
            nonlocal pos
            if n < 0 or pos + n > end:
                raise _Cut(part)
            start, pos = pos, pos + n
            return start

        def u32(part: str) -> int:
            return int(struct.unpack_from("<I", data, take(4, part))[0])

        def u64(part: str) -> int:
            return int(struct.unpack_from("<Q", data, take(8, part))[0])

        def string(part: str) -> bytes:
            n = u64(part)
            start = take(n, part)
            return bytes(data[start : start + n])

        def value(kind: int, part: str, depth: int = 0) -> object:
            if kind in _SCALAR_BYTES:
                start = take(_SCALAR_BYTES[kind], part)
                return struct.unpack_from({1: "<B", 2: "<H", 4: "<I", 8: "<Q"}[_SCALAR_BYTES[kind]], data, start)[0]
            if kind == 8:
                return string(part)
            if kind == 9 and depth < 4:
                inner, count = u32(part), u64(part)
                if inner in _SCALAR_BYTES:
                    take(count * _SCALAR_BYTES[inner], part)
                else:
                    for _ in range(count):
                        value(inner, part, depth + 1)
                return None
            raise _Cut(f"{part} (unknown value type {kind})")

        alignment = 32
        for _ in range(kvs):
            key = string("metadata")
            item = value(u32("metadata"), "metadata")
            if key == b"general.alignment" and isinstance(item, int) and item > 0:
                alignment = item
        table = []
        for _ in range(tensors):
            string("tensor table")
            dims = u32("tensor table")
            if dims > 8:
                raise _Cut(f"tensor table (a tensor with {dims} dimensions)")
            shape = [u64("tensor table") for _ in range(dims)]
            table.append((shape, u32("tensor table"), u64("tensor table")))
        data_start = -(-pos // alignment) * alignment
    try:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    except ImportError:
        return None
    last = data_start
    for shape, kind, offset in table:
        try:
            block, type_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
        except (ValueError, KeyError):
            return None
        elements = 1
        for dim in shape:
            elements *= dim
        last = max(last, data_start + offset + elements // block * type_bytes)
    return last


def check_gguf_header(path: Path | str) -> None:
    problems = gguf_header_problems(path)
    if problems:
        raise ConfigError(problems)
