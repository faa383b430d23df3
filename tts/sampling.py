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
    first token is always kept); -inf elsewhere. (V,) -> (V,)."""
    probs = logits.float().softmax(-1)
    sorted_p, order = probs.sort(descending=True)
    keep = (sorted_p.cumsum(-1) - sorted_p) < top_p
    keep[top_k:] = False
    keep[0] = True
    out = torch.full_like(logits, float("-inf"), dtype=torch.float)
    out[order[keep]] = sorted_p[keep].log()
    return out


def _draw(logp: torch.Tensor, generator: torch.Generator) -> int:
    return int(torch.multinomial(logp.softmax(-1), 1, generator=generator))


def sample_next(logits: torch.Tensor, history: list[int], cfg: SamplingConfig, generator: torch.Generator) -> int:
    """One token from (V,) ``logits`` given the item's previous output tokens."""
    logits = logits.float() / max(cfg.temperature, 1e-5)
    token = _draw(nucleus(logits, cfg.top_p, cfg.top_k), generator)
    if cfg.method == "ras":
        recent = history[-cfg.window :]
        if recent.count(token) >= max(1, int(cfg.tau_r * cfg.window)):
            token = _draw(logits, generator)
    return token
