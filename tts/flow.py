"""Flow-matching decoder, semantic tokens -> mel, whose backbone is a stock LLM architecture (TouchTTS).

Per mel frame the inputs are concatenated and projected into a ``transformers`` Qwen2/Llama decoder stack that
runs with a 4-D attention mask (bidirectional, causal, or chunked for streaming), then projected back to mel:

    [x_t | mu (token embeddings, 3-token look-ahead conv, upsampled to the mel rate) | prompt mel (zeros outside
     the prompt) | speaker vector | time embedding] -> Linear -> LLM blocks (mask) -> Linear -> velocity

Training (OT-CFM, sigma_min 1e-6, CosyVoice's recipe): uniform t (or TouchFlow's cosine-warped t), a random prefix
of up to 30% of the frames as the in-context prompt (p = 0.5), classifier-free-guidance dropout of all conditions
together (p = 0.2), MSE over valid non-prompt frames, and one of four attention masks per step (full, frame-causal,
chunk-M, chunk-2M with M = 25 tokens = 50 frames) so that the same weights serve offline and streaming synthesis.

Inference: Euler steps on a cosine time schedule (default 10) with CFG strength 0.7 (one batched conditional +
unconditional pass); the starting noise comes from a fixed seed per frame position, so re-computing a streamed
prefix gives the same frames.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiotok.nn.masks import ATTENTION_KINDS, attention_mask, sequence_mask
from audiotok.registry import Pretrained
from tts.hf import build_decoder


@dataclass
class FlowConfig:
    arch: str = "qwen2"
    hidden_size: int = 256
    intermediate_size: int = 1024
    num_layers: int = 6
    num_heads: int = 4
    num_kv_heads: int = 4
    n_mels: int = 80
    n_speech: int = 6561
    token_dim: int = 256
    ratio: int = 2  # mel frames per token (50 Hz mel, 25 Hz tokens)
    lookahead: int = 3  # tokens of right context in the token encoder
    spk_dim: int = 0  # speaker vector size (0: none)
    time_dim: int = 128
    chunk_tokens: int = 25  # M
    sigma_min: float = 1e-6
    cfg_dropout: float = 0.2
    prompt_prob: float = 0.5
    prompt_max: float = 0.3
    train_t: str = "uniform"  # "uniform" (CosyVoice) or "cosine" (TouchFlow's warped t)
    mask_kinds: list[str] = field(default_factory=lambda: list(ATTENTION_KINDS))
    max_position: int = 4096


def flow_config(name: str) -> FlowConfig:
    """``small`` (256-d x 6; the bundled default is 4 layers: ``recipes/tts/configs/flow-small.yaml``), ``tiny``
    (tests)."""
    if name == "small":
        return FlowConfig()
    if name == "tiny":
        return FlowConfig(
            hidden_size=32,
            intermediate_size=64,
            num_layers=2,
            num_heads=2,
            num_kv_heads=2,
            n_mels=16,
            n_speech=64,
            token_dim=16,
            time_dim=16,
            chunk_tokens=4,
            max_position=512,
        )
    raise ValueError(f"unknown flow config {name!r}; known: small, tiny")


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (B,) times in [0, 1] -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / max(half - 1, 1))
    x = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([x.sin(), x.cos()], dim=-1)


def cosine_schedule(n_steps: int, device=None) -> torch.Tensor:
    """(n_steps + 1,) times from 0 to exactly 1, denser near t = 0: ``1 - cos(pi / 2 * s)``."""
    s = torch.linspace(0, 1, n_steps + 1, device=device)
    t = 1 - torch.cos(0.5 * math.pi * s)
    t[-1] = 1.0
    return t


def position_noise(n_frames: int, n_mels: int, seed: int, block: int = 256) -> torch.Tensor:
    """(1, n_frames, n_mels) standard normal noise that depends only on (seed, frame position): drawn in blocks of
    ``block`` frames, each from its own seeded generator, so any prefix is the same whatever the length."""
    blocks = [
        torch.randn(1, block, n_mels, generator=torch.Generator().manual_seed(seed * 100_003 + k))
        for k in range((n_frames + block - 1) // block)
    ]
    return torch.cat(blocks, dim=1)[:, :n_frames] if blocks else torch.zeros(1, 0, n_mels)


class FlowDecoder(Pretrained, nn.Module):
    """Semantic tokens (B, L) -> mel (B, T = ratio * L, n_mels) by conditional flow matching."""

    model_type = "audiotok-tts-flow"
    registry_kind = "flow"  # from_pretrained(): a checkpoint path, or any name the registry takes
    config_class = FlowConfig

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.n_speech, c.token_dim)
        self.lookahead = nn.Conv1d(c.token_dim, c.token_dim, c.lookahead + 1)
        self.mu = nn.Linear(c.token_dim, c.n_mels)
        self.time = nn.Sequential(nn.Linear(c.time_dim, c.time_dim), nn.SiLU(), nn.Linear(c.time_dim, c.time_dim))
        self.inp = nn.Linear(3 * c.n_mels + c.spk_dim + c.time_dim, c.hidden_size)
        self.backbone = build_decoder(c)  # the transformers decoder stack; inputs come as embeddings
        self.out = nn.Linear(c.hidden_size, c.n_mels)

    # ------------------------------------------------------------------------------------------- conditions
    def token_condition(self, tokens: torch.Tensor, token_lens: torch.Tensor) -> torch.Tensor:
        """(B, L) tokens -> mu (B, ratio * L, n_mels): embeddings, a causal-in-time conv that sees ``lookahead``
        future tokens (zeros past each item's end), upsampled by repetition."""
        e = self.embed(tokens) * sequence_mask(token_lens, tokens.shape[1])[..., None]
        e = self.lookahead(F.pad(e.transpose(1, 2), (0, self.config.lookahead))).transpose(1, 2)
        return self.mu(e).repeat_interleave(self.config.ratio, dim=1)

    def velocity(self, x, t, mu, prompt, spk, mel_lens, kind: str) -> torch.Tensor:
        """The network: x_t (B, T, n_mels), t (B,), mu/prompt (B, T, n_mels), spk (B, spk_dim) or None."""
        B, T, _ = x.shape
        parts = [x, mu, prompt]
        if self.config.spk_dim:
            parts.append(spk[:, None, :].expand(B, T, -1))
        parts.append(self.time(time_embedding(t, self.config.time_dim))[:, None, :].expand(B, T, -1))
        h = self.inp(torch.cat(parts, dim=-1))
        mask = attention_mask(mel_lens, T, kind, self.config.chunk_tokens * self.config.ratio)
        h = self.backbone(inputs_embeds=h, attention_mask=mask).last_hidden_state
        return self.out(h)

    # --------------------------------------------------------------------------------------------- training
    def loss(
        self,
        mel: torch.Tensor,
        mel_lens: torch.Tensor,
        tokens: torch.Tensor,
        token_lens: torch.Tensor,
        spk: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict]:
        """OT-CFM loss for target mel (B, T, n_mels) with T = ratio * L; random prompt, CFG dropout and mask."""
        c = self.config
        B, T, _ = mel.shape
        dev = mel.device

        def rand(*shape):
            return torch.rand(*shape, generator=generator).to(dev)

        t = rand(B)
        if c.train_t == "cosine":
            t = 1 - torch.cos(0.5 * math.pi * t)
        x0 = torch.randn(mel.shape, generator=generator).to(dev)
        tt = t[:, None, None]
        xt = (1 - (1 - c.sigma_min) * tt) * x0 + tt * mel
        target = mel - (1 - c.sigma_min) * x0
        valid = sequence_mask(mel_lens, T)
        # in-context prompt: a random prefix of up to prompt_max of each item's frames, with probability prompt_prob
        n_prompt = (rand(B) * c.prompt_max * mel_lens.float()).long() * (rand(B) < c.prompt_prob).long()
        is_prompt = torch.arange(T, device=dev)[None] < n_prompt[:, None]
        prompt = mel * is_prompt[..., None]
        mu = self.token_condition(tokens, token_lens)[:, :T]
        keep = (rand(B) >= c.cfg_dropout).float()[:, None, None]  # drop every condition together
        spk_in = spk * keep[:, 0] if spk is not None else None
        kind = c.mask_kinds[int(torch.randint(len(c.mask_kinds), (1,), generator=generator))]
        v = self.velocity(xt, t, mu * keep, prompt * keep, spk_in, mel_lens, kind)
        weight = (valid & ~is_prompt).float()[..., None]
        loss = ((v - target) ** 2 * weight).sum() / (weight.sum() * mel.shape[-1]).clamp_min(1)
        return loss, {"mask": ATTENTION_KINDS.index(kind)}

    # -------------------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def synthesize(
        self,
        tokens: torch.Tensor,
        token_lens: torch.Tensor,
        prompt_mel: torch.Tensor | None = None,
        prompt_lens: torch.Tensor | None = None,
        spk: torch.Tensor | None = None,
        n_steps: int = 10,
        cfg_strength: float = 0.7,
        mask: str = "full",
        seed: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mel (B, T, n_mels) and lengths for ``tokens`` (B, L) (the prompt's tokens first when ``prompt_mel``
        (B, Tp, n_mels) is given: its frames are the in-context prompt and are returned as given)."""
        c = self.config
        B, L = tokens.shape
        T, dev = L * c.ratio, tokens.device
        mel_lens = token_lens * c.ratio
        mu = self.token_condition(tokens, token_lens)
        prompt = torch.zeros(B, T, c.n_mels, device=dev)
        if prompt_mel is not None:
            n = prompt_mel.shape[1]
            keep = torch.arange(n, device=dev)[None] < prompt_lens[:, None]
            prompt[:, :n] = prompt_mel * keep[..., None]
        # the same noise at the same frame position whatever the length: streamed prefixes recompute identically
        x = position_noise(T, c.n_mels, seed).expand(B, -1, -1).clone().to(dev)
        ts = cosine_schedule(n_steps, dev)
        zeros = torch.zeros_like(mu)
        for i in range(n_steps):
            t = ts[i].expand(B)
            if cfg_strength > 0:
                both = self.velocity(
                    torch.cat([x, x]),
                    torch.cat([t, t]),
                    torch.cat([mu, zeros]),
                    torch.cat([prompt, zeros]),
                    None if spk is None else torch.cat([spk, torch.zeros_like(spk)]),
                    torch.cat([mel_lens, mel_lens]),
                    mask,
                )
                v_cond, v_uncond = both.chunk(2)
                v = (1 + cfg_strength) * v_cond - cfg_strength * v_uncond
            else:
                v = self.velocity(x, t, mu, prompt, spk, mel_lens, mask)
            x = x + (ts[i + 1] - ts[i]) * v
        if prompt_mel is not None:
            is_prompt = torch.arange(T, device=dev)[None] < prompt_lens[:, None]
            x = torch.where(is_prompt[..., None], prompt, x)
        return x * sequence_mask(mel_lens, T)[..., None], mel_lens

    # -------------------------------------------------------------------------------------------------- I/O
    def save(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        from audiotok.checkpoint import save_model

        return save_model(self, path, dtype=dtype)
