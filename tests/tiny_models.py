"""Tiny random-weight models saved as real checkpoints, for fast offline tests.

Every builder writes a ``save_pretrained`` folder (config.json, model.safetensors, tokenizer files) that
``AutoModel*.from_pretrained`` / ``AutoTokenizer.from_pretrained`` load without any network access. The
tokenizers are trained from scratch here (byte-level BPE on a few sentences), so no tokenizer is
downloaded either. Weights are seeded: the same call always writes the same bytes' worth of numbers.

Heavy imports (torch, transformers, tokenizers, peft, gguf) happen inside the functions.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? The capital of France is Paris.",
    "Write a short poem about the sea and the sky.",
    "Two plus two is four. Six times seven is forty-two.",
    "Summarise the text in one sentence, please.",
    "def add(a, b): return a + b",
    "SELECT name FROM users WHERE age > 30;",
    "Hello, how are you today? I am fine, thank you.",
    "Language models predict the next token from the previous tokens.",
    "A small model runs quickly on a laptop without a GPU.",
]

LLAMA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _byte_bpe(special: list[str], vocab_size: int = 320):
    """A byte-level BPE tokenizer (tokenizers.Tokenizer) trained on CORPUS; specials get ids 0..n-1."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return tokenizer


def _fast(tokenizer, **kwargs):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **kwargs)


def llama_tokenizer():
    from tokenizers import processors

    raw = _byte_bpe(["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"])
    bos = raw.token_to_id("<s>")
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    # no pad token on purpose: the backend must fall back to eos
    tok = _fast(raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.chat_template = LLAMA_CHAT_TEMPLATE
    return tok


def gpt2_tokenizer():
    raw = _byte_bpe(["<|endoftext|>"])
    return _fast(raw, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")


def t5_tokenizer():
    from tokenizers import processors

    raw = _byte_bpe(["<pad>", "</s>", "<unk>"])
    raw.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    return _fast(raw, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def _save(model, tokenizer, out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def make_tiny_llama(out_dir: Path, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = llama_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    _sharpen(model)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return _save(model, tok, out_dir)


def make_tiny_gpt2(out_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    tok = gpt2_tokenizer()
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=512,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    _sharpen(model)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return _save(model, tok, out_dir)


def make_tiny_t5(out_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    tok = t5_tokenizer()
    config = T5Config(
        vocab_size=len(tok),
        d_model=64,
        d_ff=128,
        d_kv=16,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id
    )
    return _save(model, tok, out_dir)


def _sharpen(model, scale: float = 4.0) -> None:
    """Scale the output layer so that greedy choices are not near-ties of a near-uniform distribution.

    A freshly initialised model's logits all lie within a hair of each other, where float32 rounding
    (a different matmul blocking for a different batch size) can flip an argmax. Real models are not
    like that; scaling the output projection makes the tiny ones behave more like real ones.
    """
    import torch

    with torch.no_grad():
        head = model.get_output_embeddings()
        if head is not None and not _tied(model):
            head.weight.mul_(scale)


def _tied(model) -> bool:
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    return head is not None and embed is not None and head.weight.data_ptr() == embed.weight.data_ptr()


def make_lora_adapter(base_dir: Path, out_dir: Path, r: int = 4, seed: int = 0) -> Path:
    """A PEFT LoRA adapter on q_proj/v_proj (Llama) or c_attn (GPT-2) with random, non-zero B matrices."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    targets = ["c_attn"] if base.config.model_type == "gpt2" else ["q_proj", "v_proj"]
    config = LoraConfig(
        r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=targets, init_lora_weights=False, task_type="CAUSAL_LM"
    )
    torch.manual_seed(seed)
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.5)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    return out_dir


def make_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """A tiny llama GGUF file (float32 tensors, gpt2-style BPE tokenizer) that transformers can load."""
    import gguf
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = llama_tokenizer()
    raw = tok.backend_tokenizer
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    _sharpen(model)
    head_dim = config.hidden_size // config.num_attention_heads

    def permute(weight: np.ndarray, heads: int) -> np.ndarray:  # HF → llama.cpp rotary layout
        return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"] if getattr(config, "rope_parameters", None) else 10000.0)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab = raw.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = {"<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"}
    import json

    merges = json.loads(raw.to_str())["model"]["merges"]
    merges = [" ".join(m) if isinstance(m, list) else m for m in merges]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tok.bos_token_id)
    writer.add_eos_token_id(tok.eos_token_id)
    writer.add_add_bos_token(True)
    writer.add_chat_template(LLAMA_CHAT_TEMPLATE)

    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        writer.add_tensor(f"blk.{i}.attn_norm.weight", state[p + "input_layernorm.weight"])
        writer.add_tensor(f"blk.{i}.attn_q.weight", permute(state[p + "self_attn.q_proj.weight"], config.num_attention_heads))
        writer.add_tensor(f"blk.{i}.attn_k.weight", permute(state[p + "self_attn.k_proj.weight"], config.num_key_value_heads))
        writer.add_tensor(f"blk.{i}.attn_v.weight", state[p + "self_attn.v_proj.weight"])
        writer.add_tensor(f"blk.{i}.attn_output.weight", state[p + "self_attn.o_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", state[p + "post_attention_layernorm.weight"])
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", state[p + "mlp.gate_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_up.weight", state[p + "mlp.up_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_down.weight", state[p + "mlp.down_proj.weight"])
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    writer.add_tensor("output.weight", state["lm_head.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
