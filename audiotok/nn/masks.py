"""Length masks and per-item padding: the one place that turns ``*_lens`` into masks."""

from __future__ import annotations

import torch


def sequence_mask(lens: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool mask, True on valid positions."""
    if max_len is None:
        max_len = int(lens.max().item()) if lens.numel() else 0
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


def full_lens(x: torch.Tensor) -> torch.Tensor:
    """Lengths for an unpadded batch ``(B, ..., T)``: every item has length ``T``."""
    return torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)


def reflect_pad_per_item(x: torch.Tensor, lens: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect-pad each item of ``x`` (B, ..., T) at its own start and at its own end ``lens[b]`` (last axis).

    Returns ``(B, ..., left + T + right)``; for an unpadded batch this equals ``F.pad(x, (left, right), "reflect")``.
    Positions past ``lens[b] + right`` hold arbitrary values of the item (they only reach invalid frames).
    """
    T = x.shape[-1]
    idx = torch.arange(-left, T + right, device=x.device).unsqueeze(0).abs()
    last = (lens.to(x.device).long() - 1).clamp_min(0).unsqueeze(1)
    idx = torch.where(idx > last, 2 * last - idx, idx).clamp(0, max(T - 1, 0))  # (B, T')
    idx = idx.view(x.shape[0], *([1] * (x.dim() - 2)), -1).expand(*x.shape[:-1], -1)
    return x.gather(-1, idx)


ATTENTION_KINDS = ("full", "causal", "chunk", "chunk2")


def attention_mask(lens: torch.Tensor, max_len: int, kind: str = "full", chunk: int = 50) -> torch.Tensor:
    """``(B, 1, T, T)`` bool mask (True = may attend) over valid keys: ``full`` (bidirectional), ``causal``
    (frame by frame), ``chunk`` / ``chunk2`` (bidirectional inside chunks of ``chunk`` / ``2 * chunk`` frames,
    causal across them: a frame sees its own chunk and every earlier one, never a later one — the streaming
    mask). Padded query rows may attend to their own position so no row is empty."""
    keys = sequence_mask(lens, max_len)[:, None, None, :]  # (B, 1, 1, T)
    pos = torch.arange(max_len, device=lens.device)
    if kind == "full":
        allowed = torch.ones(max_len, max_len, dtype=torch.bool, device=lens.device)
    elif kind == "causal":
        allowed = pos[None, :] <= pos[:, None]
    elif kind in ("chunk", "chunk2"):
        size = chunk * (2 if kind == "chunk2" else 1)
        allowed = (pos[None, :] // size) <= (pos[:, None] // size)
    else:
        raise ValueError(f"attention mask kind must be one of {ATTENTION_KINDS}, got {kind!r}")
    mask = allowed[None, None] & keys
    return mask | torch.eye(max_len, dtype=torch.bool, device=lens.device)[None, None]
