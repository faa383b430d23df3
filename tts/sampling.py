"""Next-token sampling for the TTS LM: repetition-aware sampling (RAS, CosyVoice 2) and plain top-k/top-p.

RAS draws from the nucleus (top-p 0.8 within the top-k 25); when the drawn token already occurs at least
``tau_r * window`` times among the last ``window`` outputs (with 10 and 0.1: once), it re-draws from the full
distribution instead — a cheap guard against the loops that greedy-ish sampling of speech tokens falls into.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SamplingConfig:
    method: str = "ras"  # "ras" or "topk" (plain top-k/top-p, what LLM engines do)
    top_p: float = 0.8
    top_k: int = 25
    window: int = 10  # RAS window
    tau_r: float = 0.1  # RAS repetition ratio
    temperature: float = 1.0
    min_ratio: float = 2.0  # output length bounds in multiples of the text tokens
    max_ratio: float = 20.0
    max_run: int = 50  # stop when one token repeats this many times in a row (0: never)

    def __post_init__(self) -> None:
        if self.method not in ("ras", "topk"):
            raise ValueError(f"sampling method must be 'ras' or 'topk', got {self.method!r}")


def nucleus(logits: torch.Tensor, top_p: float, top_k: int) -> torch.Tensor:
    """Log-probabilities restricted to the top-k tokens whose cumulative probability stays within top_p (the
    first token is always kept); -inf elsewhere. (..., V) -> (..., V)."""
    probs = logits.float().softmax(-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    keep = (sorted_p.cumsum(-1) - sorted_p) < top_p
    keep[..., top_k:] = False
    keep[..., 0] = True
    kept = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
    out = torch.zeros_like(probs).scatter(-1, order, kept)
    return torch.where(out > 0, out.log(), torch.full_like(out, float("-inf")))


def _inverse_cdf(logp: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Rows of (B, V) log-probabilities (any scale) sampled with uniforms u (B,) in [0, 1)."""
    cdf = logp.softmax(-1).cumsum(-1)
    idx = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1)).squeeze(-1)
    return idx.clamp_max(logp.shape[-1] - 1)


def sample_batch(
    logits: torch.Tensor, histories: list[list[int]], cfg: SamplingConfig, generators: list[torch.Generator]
) -> list[int]:
    """One token per row of (B, V) ``logits``, vectorised. Each row draws exactly two uniforms from its own
    generator per call (nucleus, then RAS's re-draw), so an item's tokens do not depend on the batch it is in."""
    logits = logits.float() / max(cfg.temperature, 1e-5)
    u = torch.tensor([[float(torch.rand(1, generator=g)), float(torch.rand(1, generator=g))] for g in generators])
    tokens = _inverse_cdf(nucleus(logits, cfg.top_p, cfg.top_k), u[:, 0])
    if cfg.method == "ras":
        need = max(1, int(cfg.tau_r * cfg.window))
        repeat = torch.tensor([h[-cfg.window :].count(int(t)) >= need for h, t in zip(histories, tokens, strict=True)])
        if repeat.any():
            tokens = torch.where(repeat, _inverse_cdf(logits, u[:, 1]), tokens)
    return tokens.tolist()


def sample_next(logits: torch.Tensor, history: list[int], cfg: SamplingConfig, generator: torch.Generator) -> int:
    """One token from (V,) ``logits`` given the item's previous output tokens (:func:`sample_batch` of one)."""
    return sample_batch(logits[None], [history], cfg, [generator])[0]
