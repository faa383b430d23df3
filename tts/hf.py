"""The stock ``transformers`` decoder stacks that the TTS LM and the flow's backbone are built from (Qwen2 or Llama,
from a config, with random weights): one builder, so that both parts read the same shape fields the same way."""

from __future__ import annotations

from typing import Protocol


class DecoderShape(Protocol):
    """The fields a config needs for :func:`build_decoder` (``TTSLMConfig`` and ``FlowConfig`` have them);
    ``rope_theta`` and ``tie_embeddings`` are read when the config has them, transformers' defaults otherwise."""

    arch: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    max_position: int


def build_decoder(cfg: DecoderShape, vocab_size: int = 1, lm_head: bool = False):
    """A ``transformers`` Qwen2/Llama model of ``cfg``'s shape: the causal LM (``...ForCausalLM``, with its output
    head) when ``lm_head``, else the bare decoder stack (``...Model``; the flow feeds it embeddings, so its one-row
    token embedding is never used)."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel, Qwen2Config, Qwen2ForCausalLM, Qwen2Model

    classes = {
        "qwen2": (Qwen2Config, Qwen2Model, Qwen2ForCausalLM),
        "llama": (LlamaConfig, LlamaModel, LlamaForCausalLM),
    }
    if cfg.arch not in classes:
        raise ValueError(f"arch must be 'qwen2' or 'llama', got {cfg.arch!r}")
    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position,
    )
    if hasattr(cfg, "rope_theta"):
        kwargs["rope_theta"] = cfg.rope_theta
    if hasattr(cfg, "tie_embeddings"):
        kwargs["tie_word_embeddings"] = cfg.tie_embeddings
    config_cls, model_cls, lm_cls = classes[cfg.arch]
    return (lm_cls if lm_head else model_cls)(config_cls(**kwargs))
