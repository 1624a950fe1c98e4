"""Tiny random causal LMs and a tiny byte-level tokenizer, built offline in milliseconds.

Every architecture sea-dist supports gets a 3-layer model with ``d_model = 32`` (``D_MODEL``),
attention heads of size 8, an MLP width of 64 (distinct from ``d_model`` on purpose, so a hook on
the wrong tensor shows up as a shape error) and the 260-token vocabulary of :func:`tiny_tokenizer`.
Weights are random (seeded, float32); the models are only good for shapes, plumbing and numerics.

Usage from a test::

    from tiny_models import ARCHITECTURES, build_tiny_model, tiny_loaded_model

    model, tokenizer = build_tiny_model("llama", seed=0)
    loaded = tiny_loaded_model("gpt2")        # sea_dist.models.LoadedModel
    folder = save_tiny_model("qwen2", tmp_path / "qwen2")   # load_model(ModelConfig(id=...))
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GemmaConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    OPTConfig,
    Phi3Config,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

from sea_dist.models import LoadedModel

ARCHITECTURES = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3",
    "phi3",
    "gpt2",
    "gpt_neox",
    "opt",
)
"""Architecture names accepted by :func:`build_tiny_model` (gemma3 is the text-only model, whose
``config.model_type`` is ``gemma3_text``)."""

D_MODEL = 32
N_LAYERS = 3
N_HEADS = 4
N_KV_HEADS = 2
HEAD_DIM = D_MODEL // N_HEADS
D_MLP = 64
MAX_POSITIONS = 512

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}"
    "</s>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A minimal chat template, so chat-formatted prompts can be tested with the tiny tokenizer."""


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: 4 special tokens + one token per byte (vocabulary of 260).

    Any text, including non-ASCII, tokenises to one token per UTF-8 byte and decodes back
    exactly. ``pad``/``bos``/``eos``/``unk`` are ``<pad>``/``<s>``/``</s>``/``<unk>`` (ids 0-3),
    no token is added automatically, ``padding_side`` is ``right`` and a small chat template is
    set. Each call returns a new object, so a test may change it freely.
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate([*SPECIAL_TOKENS, *alphabet])}
    # BPE with no merges over the byte alphabet: a character-level tokenizer that never fails.
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=MAX_POSITIONS,
        padding_side="right",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


VOCAB_SIZE = 4 + 256
_IDS: dict[str, Any] = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
_LLAMA_LIKE: dict[str, Any] = {
    "vocab_size": VOCAB_SIZE,
    "hidden_size": D_MODEL,
    "intermediate_size": D_MLP,
    "num_hidden_layers": N_LAYERS,
    "num_attention_heads": N_HEADS,
    "num_key_value_heads": N_KV_HEADS,
    "max_position_embeddings": MAX_POSITIONS,
    "tie_word_embeddings": False,
    **_IDS,
}

_CONFIGS: dict[str, Callable[[], PretrainedConfig]] = {
    "llama": lambda: LlamaConfig(**_LLAMA_LIKE),
    "mistral": lambda: MistralConfig(**_LLAMA_LIKE, head_dim=HEAD_DIM),
    "qwen2": lambda: Qwen2Config(**_LLAMA_LIKE),
    "qwen3": lambda: Qwen3Config(**_LLAMA_LIKE, head_dim=HEAD_DIM),
    "gemma": lambda: GemmaConfig(**_LLAMA_LIKE, head_dim=HEAD_DIM),
    "gemma2": lambda: Gemma2Config(
        **_LLAMA_LIKE, head_dim=HEAD_DIM, query_pre_attn_scalar=HEAD_DIM
    ),
    "gemma3": lambda: Gemma3TextConfig(
        **_LLAMA_LIKE, head_dim=HEAD_DIM, query_pre_attn_scalar=HEAD_DIM
    ),
    "phi3": lambda: Phi3Config(**_LLAMA_LIKE),
    "gpt2": lambda: GPT2Config(
        vocab_size=VOCAB_SIZE,
        n_embd=D_MODEL,
        n_layer=N_LAYERS,
        n_head=N_HEADS,
        n_inner=D_MLP,
        n_positions=MAX_POSITIONS,
        **_IDS,
    ),
    "gpt_neox": lambda: GPTNeoXConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=D_MODEL,
        intermediate_size=D_MLP,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=N_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=False,
        **_IDS,
    ),
    "opt": lambda: OPTConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=D_MODEL,
        ffn_dim=D_MLP,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=N_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        word_embed_proj_dim=D_MODEL,
        **_IDS,
    ),
}


def tiny_config(arch: str) -> PretrainedConfig:
    """The configuration of the tiny ``arch`` model (a new object each call)."""
    if arch not in _CONFIGS:
        raise ValueError(f"arch: expected one of {', '.join(ARCHITECTURES)}, found {arch!r}")
    return _CONFIGS[arch]()


def build_tiny_model(arch: str, seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Build a tiny random ``arch`` causal LM (float32, eval mode, CPU) and its tokenizer.

    The same ``(arch, seed)`` gives the same weights; the global torch RNG is left untouched.

    Args:
        arch: one of :data:`ARCHITECTURES`.
        seed: weight initialisation seed.

    Returns:
        ``(model, tokenizer)``; ``model.config.model_type`` is ``arch`` (``gemma3_text`` for
        gemma3), hidden size :data:`D_MODEL`, :data:`N_LAYERS` decoder blocks.
    """
    config = tiny_config(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "gemma3":
            # AutoModelForCausalLM maps gemma3 to the multimodal model; the text model is its own.
            model: PreTrainedModel = Gemma3ForCausalLM(cast(Gemma3TextConfig, config))
        else:
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    return model, tiny_tokenizer()


def tiny_loaded_model(arch: str = "llama", seed: int = 0) -> LoadedModel:
    """:func:`build_tiny_model` wrapped as the :class:`LoadedModel` that ``load_model`` returns.

    ``model_id`` is ``tiny-<arch>`` and ``revision`` is ``seed-<seed>``.
    """
    model, tokenizer = build_tiny_model(arch, seed)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=f"tiny-{arch}",
        revision=f"seed-{seed}",
        architecture=str(model.config.model_type),
        d_model=D_MODEL,
        n_layers=N_LAYERS,
    )


def save_tiny_model(arch: str, folder: Path, seed: int = 0) -> Path:
    """Write the tiny ``arch`` model and tokenizer as a local HF folder (safetensors).

    ``sea_dist.models.load_model(ModelConfig(id=str(folder)))`` loads it back offline.

    Returns:
        ``folder``.
    """
    model, tokenizer = build_tiny_model(arch, seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def save_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """Write the tiny ``qwen2`` model and tokenizer as a float32 GGUF file.

    transformers reads it back (``from_pretrained(folder, gguf_file=name)``) to exactly the
    weights and token ids of ``build_tiny_model("qwen2", seed)``; qwen2 is used because GGUF stores
    its attention weights unpermuted. Only ``gguf`` (a sea-dist dependency) is needed.

    Returns:
        ``path``.
    """
    import gguf
    import numpy as np

    model, tokenizer = build_tiny_model("qwen2", seed)
    config = model.config
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch="qwen2")
    writer.add_name("tiny-qwen2")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_vocab_size(config.vocab_size)
    tokens = [token for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    writer.add_tokenizer_model("gpt2")  # byte-level BPE, like our tokenizer
    writer.add_token_list(tokens)
    # 3 = CONTROL (special tokens), 1 = NORMAL. All scores 0: no merges are implied.
    writer.add_token_types(
        [3 if index < len(SPECIAL_TOKENS) else 1 for index in range(len(tokens))]
    )
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_pad_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(3)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ValueError(f"tensor {name!r} has no GGUF name")
        writer.add_tensor(gguf_name, tensor.detach().numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
