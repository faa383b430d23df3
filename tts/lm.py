"""The text-to-semantic-token LM (CosyVoice 2 / TouchTTS design): a stock decoder-only LLM from ``transformers``
whose vocabulary holds text BPE, a few specials and one token per speech code — no text encoder, no speaker
embedding. It saves as a standard model directory (``config.json``, ``model.safetensors``, ``tokenizer.json``) that
``AutoModelForCausalLM.from_pretrained`` loads, so LLM inference engines can serve it.

Sequence (unified layout)::

    [prompt text + target text] <|audio_bos|> [prompt speech] -> target speech <|audio_eos|>

with the loss on the target speech tokens and ``<|audio_eos|>`` only. Zero-shot voice continuation: give a prompt
utterance's text and tokens. This module holds the configuration, its presets and :class:`TTSLM` (model + text
tokenizer, save/load); the parts live beside it: the layouts and batching in :mod:`tts.lm_layout`, the loss in
:mod:`tts.lm_loss`, generation (KV-cached, batched, RAS or top-k/top-p sampling, length bounds, loop stop) in
:mod:`tts.lm_generate`, the HF model builder in :mod:`tts.hf`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from audiotok.registry import Pretrained
from tts.hf import build_decoder
from tts.lm_generate import GenerationMixin
from tts.lm_layout import IGNORE, Example, bistream_sequence, collate, pack, unified_sequence
from tts.lm_loss import SpeechLoss, lm_loss
from tts.tokenizer import TTSTokenizer

__all__ = [
    "CONFIG_FILE",
    "IGNORE",
    "TTSLM",
    "Example",
    "SpeechLoss",
    "TTSLMConfig",
    "build_hf_model",
    "config_from_saved",
    "lm_config",
    "lm_loss",
    "pack",
]

CONFIG_FILE = "audiotok_tts_lm.json"
LEGACY_KEYS = {"tokenizer": "semantic_tokenizer"}  # saved configs' old field names -> today's


@dataclass
class TTSLMConfig:
    arch: str = "qwen2"  # "qwen2" or "llama" (transformers architectures built from a config)
    hidden_size: int = 256
    intermediate_size: int = 1024
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    max_position: int = 2048
    rope_theta: float = 10000.0
    tie_embeddings: bool = True  # output head = input embedding (as Qwen2.5-0.5B; halves the small model's size)
    n_speech: int = 6561  # the semantic tokenizer's codebook
    semantic_tokenizer: str = "semantic"  # the audio tokenizer whose codes this LM speaks (name or path, informative)
    layout: str = "unified"  # "unified" (text, then speech) or "bistream" (CosyVoice 2: interleaved N:M)
    bistream_ratio: tuple[int, int] = (5, 15)  # text tokens : speech tokens per group
    extra: dict = field(default_factory=dict)


def lm_config(name: str) -> TTSLMConfig:
    """``small`` (256-d x 4, the benchmarks' small shape; the bundled default is narrower, 192-d:
    ``recipes/tts/configs/lm-small.yaml``), ``qwen2.5-0.5b`` (the paper-scale shape), ``tiny`` (tests)."""
    if name == "small":
        return TTSLMConfig()
    if name == "qwen2.5-0.5b":
        return TTSLMConfig(
            hidden_size=896,
            intermediate_size=4864,
            num_layers=24,
            num_heads=14,
            num_kv_heads=2,
            max_position=4096,
            rope_theta=1e6,
        )
    if name == "tiny":
        return TTSLMConfig(
            hidden_size=64,
            intermediate_size=128,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            max_position=512,
            n_speech=64,
        )
    raise ValueError(f"unknown TTS LM config {name!r}; known: small, qwen2.5-0.5b, tiny")


def config_from_saved(data: dict, where: str = "") -> TTSLMConfig:
    """A :class:`TTSLMConfig` from saved data (``audiotok_tts_lm.json``'s ``config``), older field names mapped to
    today's (``tokenizer`` -> ``semantic_tokenizer``)."""
    from audiotok.config import from_dict

    data = {LEGACY_KEYS.get(k, k): v for k, v in data.items()}
    return from_dict(TTSLMConfig, data, where)


def build_hf_model(cfg: TTSLMConfig, vocab_size: int):
    """The HF causal LM of ``cfg``'s shape, random weights (:func:`tts.hf.build_decoder`)."""
    return build_decoder(cfg, vocab_size, lm_head=True)


class TTSLM(Pretrained, GenerationMixin, nn.Module):
    """The HF causal LM plus its text tokenizer (``tokenizer``; the audio tokenizer is the config's
    ``semantic_tokenizer``): layout, loss, generation (:class:`~tts.lm_generate.GenerationMixin`), save/load.
    ``from_pretrained``: a TTS LM folder (standard HF layout + ``audiotok_tts_lm.json``) or a name or hub id."""

    registry_kind = "tts-lm"

    def __init__(self, config: TTSLMConfig, tokenizer: TTSTokenizer, model=None):
        super().__init__()
        self.config, self.tokenizer, self.vocab = config, tokenizer, tokenizer.vocab
        if self.vocab.n_speech != config.n_speech:
            raise ValueError(f"tokenizer has {self.vocab.n_speech} speech tokens, config {config.n_speech}")
        self.model = model if model is not None else build_hf_model(config, self.vocab.size)

    @classmethod
    def from_llm(cls, folder: str | os.PathLike, config: TTSLMConfig | None = None) -> TTSLM:
        """Start from a local pretrained LLM directory (e.g. a downloaded Qwen2.5-0.5B): its weights and its own
        tokenizer, extended with our specials and speech tokens (embeddings resized; new rows initialised by
        transformers). ``config`` supplies ``n_speech`` and the layout; the architecture is the LLM's."""
        from transformers import AutoModelForCausalLM

        cfg = config or TTSLMConfig()
        tok = TTSTokenizer.from_llm(folder, cfg.n_speech)
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
        model.resize_token_embeddings(tok.vocab.size)
        mc = model.config
        cfg = replace(
            cfg,
            arch=mc.model_type,
            hidden_size=mc.hidden_size,
            intermediate_size=mc.intermediate_size,
            num_layers=mc.num_hidden_layers,
            num_heads=mc.num_attention_heads,
            num_kv_heads=getattr(mc, "num_key_value_heads", mc.num_attention_heads),
            max_position=mc.max_position_embeddings,
            extra={**cfg.extra, "init_from": str(folder)},
        )
        return cls(cfg, tok, model)

    # ------------------------------------------------------------------------------------------------ layout
    def sequence(self, ex: Example) -> tuple[list[int], list[int]]:
        """(input ids, labels) of ``ex`` in the configured layout: labels are the next token where a loss is taken
        (:mod:`tts.lm_layout`) and -100 elsewhere."""
        if self.config.layout == "bistream":
            return self.bistream_sequence(ex)
        return unified_sequence(self.vocab, ex)

    def bistream_sequence(self, ex: Example) -> tuple[list[int], list[int]]:
        """(input ids, labels) of ``ex`` in CosyVoice 2's bistream layout (:func:`tts.lm_layout.bistream_sequence`)."""
        return bistream_sequence(self.vocab, self.config.bistream_ratio, ex)

    def collate(self, examples: list[Example], pack_tokens: int = 0) -> dict[str, torch.Tensor]:
        """Right-padded batch: ``input_ids``, ``attention_mask``, ``labels`` (B, L) — one sequence per row; or, with
        ``pack_tokens``, sequences packed first-fit into rows of at most that many tokens (see :func:`pack`)."""
        return collate([self.sequence(e) for e in examples], self.vocab.pad, pack_tokens)

    # ------------------------------------------------------------------------------------------------- loss
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean cross-entropy over speech positions, and their next-token accuracy (padded or packed batches)."""
        return lm_loss(self.objective(), batch)

    def objective(self) -> SpeechLoss:
        """The training loss module over this LM's weights (see :class:`SpeechLoss`)."""
        return SpeechLoss(self.model, self.vocab.text_size)

    # -------------------------------------------------------------------------------------------------- I/O
    def save_pretrained(self, folder: str | os.PathLike, state_dict: dict | None = None) -> Path:
        """A standard HF model directory (+ our layout file); ``state_dict``: the HF model's weights to write
        instead of its own (e.g. gathered from FSDP shards)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder), state_dict=state_dict)
        self.tokenizer.save(folder)
        (folder / CONFIG_FILE).write_text(json.dumps({"format_version": "1", "config": asdict(self.config)}, indent=1))
        return folder

    @classmethod
    def load_resolved(cls, resolved, device: str | torch.device = "cpu") -> TTSLM:
        from transformers import AutoModelForCausalLM

        folder = Path(resolved.path)
        meta = json.loads((folder / CONFIG_FILE).read_text())
        cfg = config_from_saved(meta["config"], str(folder / CONFIG_FILE))
        tok = TTSTokenizer.from_pretrained(folder, cfg.n_speech)
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        return cls(cfg, tok, model).to(device).eval()
