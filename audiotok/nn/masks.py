"""Length masks: the one place that turns ``*_lens`` into boolean masks."""

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
