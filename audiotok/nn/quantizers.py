"""Inference quantizers whose arithmetic must match released models exactly (S3Tokenizer v1 VQ, v2 FSQ).

Buffer and parameter names follow the released state dicts (``_codebook.embed``, ``_codebook.project_down``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Codebook(nn.Module):
    def __init__(self, dim: int, codebook_size: int):
        super().__init__()
        self.register_buffer("embed", torch.zeros(codebook_size, dim))


class NormalizedVQ(nn.Module):
    """Nearest code of the L2-normalised feature: ``argmax -(|x|^2 - 2 x.E + |E|^2)`` in fp32 (S3Tokenizer v1)."""

    def __init__(self, dim: int, codebook_size: int):
        super().__init__()
        self.codebook_size = codebook_size
        self._codebook = _Codebook(dim, codebook_size)

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """(B, L, dim) -> (B, L) int64."""
        x = F.normalize(h.float(), p=2, dim=-1).reshape(-1, h.shape[-1])
        embed = self._codebook.embed.t().float()
        dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed + embed.pow(2).sum(0, keepdim=True))
        return dist.max(dim=-1).indices.view(h.shape[:-1])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, L, dim) codebook rows."""
        return F.embedding(codes, self._codebook.embed)


class _FSQCodebook(nn.Module):
    def __init__(self, dim: int, n_dims: int):
        super().__init__()
        self.project_down = nn.Linear(dim, n_dims)


class FSQ(nn.Module):
    """Finite scalar quantization as released in S3Tokenizer v2: ``n_dims`` projections, each
    ``round(tanh(x) * 0.999) + 1`` in {0, 1, 2}, index = sum_j h_j * 3^j (6561 codes for 8 dims)."""

    def __init__(self, dim: int, n_dims: int = 8, levels: int = 3):
        super().__init__()
        if levels != 3:
            raise ValueError("the released FSQ uses 3 levels (tanh, round, +1)")
        self.levels, self.n_dims = levels, n_dims
        self.codebook_size = levels**n_dims
        self._codebook = _FSQCodebook(dim, n_dims)

    def levels_of(self, h: torch.Tensor) -> torch.Tensor:
        """(B, L, dim) -> (B, L, n_dims) values in {0, 1, 2} (float)."""
        z = self._codebook.project_down(h).float()
        return (z.tanh() * 0.9990000128746033).round() + 1

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """(B, L, dim) -> (B, L) int64 in [0, levels ** n_dims)."""
        q = self.levels_of(h)
        powers = torch.pow(self.levels, torch.arange(self.n_dims, device=h.device, dtype=q.dtype))
        return (q * powers).sum(-1).long()

    def digits(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, L) codes -> (B, L, n_dims) levels in {0, 1, 2}: the inverse of the index (there is no released
        up-projection; a trainable one lives with the training recipe)."""
        powers = torch.pow(self.levels, torch.arange(self.n_dims, device=codes.device))
        return torch.div(codes.unsqueeze(-1), powers, rounding_mode="floor") % self.levels
