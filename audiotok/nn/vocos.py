"""Vocos backbone with WavTokenizer's attention stage, made padding-aware.

Layout (names as released, so official weights load by name): ``embed`` conv -> ``pos_net`` (2 ResnetBlocks,
AttnBlock, 2 ResnetBlocks, GroupNorm) -> ``norm`` (AdaLayerNorm) -> ``convnext`` x n -> ``final_layer_norm``.

With a frame mask, padded frames are zeroed before every convolution (so they act like the zero padding a
single item sees), GroupNorm statistics are taken over valid frames only, and attention ignores padded keys: a
padded batch gives the same output as one-by-one decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class VocosConfig:
    """Backbone hyper-parameters (defaults: WavTokenizer's released decoder)."""

    input_dim: int = 512
    dim: int = 768
    intermediate_dim: int = 2304
    n_layers: int = 12
    n_cond_embeddings: int = 4  # AdaLayerNorm rows (WavTokenizer's bandwidth ids); 0 = plain LayerNorm
    n_groups: int = 32  # GroupNorm groups in pos_net
    dropout: float = 0.1  # in the ResnetBlocks
    attention: bool = True  # WavTokenizer's pos_net (ResnetBlocks + attention) before the ConvNeXt stack


def masked_group_norm(x: torch.Tensor, norm: nn.GroupNorm, mask: torch.Tensor | None) -> torch.Tensor:
    """GroupNorm of (B, C, T) with statistics over valid frames only; ``mask`` (B, 1, T) float or None."""
    if mask is None:
        return norm(x)
    B, C, T = x.shape
    g = norm.num_groups
    xg = x.reshape(B, g, C // g, T)
    m = mask.unsqueeze(1)  # (B, 1, 1, T)
    count = m.sum(dim=(2, 3), keepdim=True).clamp_min(1.0) * (C // g)
    mean = (xg * m).sum(dim=(2, 3), keepdim=True) / count
    var = ((xg - mean).pow(2) * m).sum(dim=(2, 3), keepdim=True) / count
    y = ((xg - mean) / torch.sqrt(var + norm.eps)).reshape(B, C, T)
    return y * norm.weight[None, :, None] + norm.bias[None, :, None]


def _masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return x if mask is None else x * mask


class ResnetBlock(nn.Module):
    """GN -> swish -> conv3 -> GN -> swish -> dropout -> conv3, plus the input."""

    def __init__(self, dim: int, n_groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(n_groups, dim, eps=1e-6)
        self.conv1 = nn.Conv1d(dim, dim, 3, padding=1)
        self.norm2 = nn.GroupNorm(n_groups, dim, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = F.silu(masked_group_norm(x, self.norm1, mask))
        h = self.conv1(_masked(h, mask))
        h = self.dropout(F.silu(masked_group_norm(h, self.norm2, mask)))
        h = self.conv2(_masked(h, mask))
        return x + h


class AttnBlock(nn.Module):
    """Single-head global self-attention over frames with 1x1-conv projections, plus the input."""

    def __init__(self, dim: int, n_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(n_groups, dim, eps=1e-6)
        self.q = nn.Conv1d(dim, dim, 1)
        self.k = nn.Conv1d(dim, dim, 1)
        self.v = nn.Conv1d(dim, dim, 1)
        self.proj_out = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = masked_group_norm(x, self.norm, mask)
        q, k, v = (proj(h).transpose(1, 2).unsqueeze(1) for proj in (self.q, self.k, self.v))  # (B, 1, T, C)
        attn_mask = None if mask is None else mask.bool().unsqueeze(1)  # (B, 1, 1, T): valid keys
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return x + self.proj_out(h.squeeze(1).transpose(1, 2))


class AdaLayerNorm(nn.Module):
    """LayerNorm whose scale and shift are rows of embedding tables picked by a condition id."""

    def __init__(self, n_embeddings: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.scale = nn.Embedding(n_embeddings, dim)
        self.shift = nn.Embedding(n_embeddings, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C); cond_id: (1,) or (B,) long."""
        scale, shift = self.scale(cond_id), self.shift(cond_id)
        if scale.shape[0] == x.shape[0] and x.shape[0] > 1:
            scale, shift = scale.unsqueeze(1), shift.unsqueeze(1)
        return F.layer_norm(x, (self.dim,), eps=self.eps) * scale + shift


class ConvNeXtBlock(nn.Module):
    """Depthwise conv7 -> (Ada)LayerNorm -> Linear -> GELU -> Linear -> layer scale, plus the input."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale: float, n_cond_embeddings: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = AdaLayerNorm(n_cond_embeddings, dim) if n_cond_embeddings else nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(layer_scale * torch.ones(dim))

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        h = self.dwconv(_masked(x, mask)).transpose(1, 2)
        h = self.norm(h, cond_id) if isinstance(self.norm, AdaLayerNorm) else self.norm(h)
        h = self.pwconv2(F.gelu(self.pwconv1(h)))
        return x + (self.gamma * h).transpose(1, 2)


class VocosBackbone(nn.Module):
    """Features (B, input_dim, L) -> hidden frames (B, L, dim)."""

    def __init__(self, config: VocosConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Conv1d(c.input_dim, c.dim, kernel_size=7, padding=3)
        self.norm = AdaLayerNorm(c.n_cond_embeddings, c.dim) if c.n_cond_embeddings else nn.LayerNorm(c.dim, eps=1e-6)
        self.convnext = nn.ModuleList(
            [ConvNeXtBlock(c.dim, c.intermediate_dim, 1.0 / c.n_layers, c.n_cond_embeddings) for _ in range(c.n_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.apply(self._init_weights)  # as released: before pos_net exists, which keeps PyTorch's defaults
        if c.attention:
            self.pos_net = nn.ModuleList(
                [
                    ResnetBlock(c.dim, c.n_groups, c.dropout),
                    ResnetBlock(c.dim, c.n_groups, c.dropout),
                    AttnBlock(c.dim, c.n_groups),
                    ResnetBlock(c.dim, c.n_groups, c.dropout),
                    ResnetBlock(c.dim, c.n_groups, c.dropout),
                    nn.GroupNorm(c.n_groups, c.dim, eps=1e-6),
                ]
            )

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.constant_(m.bias, 0)

    def forward(
        self, x: torch.Tensor, cond_id: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (B, input_dim, L); cond_id: (1,) or (B,) long (default 0); mask: (B, 1, L) float or None."""
        if cond_id is None:
            cond_id = torch.zeros(1, dtype=torch.long, device=x.device)
        x = self.embed(_masked(x, mask))
        if self.config.attention:
            for block in self.pos_net[:-1]:
                x = block(x, mask)
            x = masked_group_norm(x, self.pos_net[-1], mask)
        x = x.transpose(1, 2)
        x = self.norm(x, cond_id) if isinstance(self.norm, AdaLayerNorm) else self.norm(x)
        x = x.transpose(1, 2)
        for block in self.convnext:
            x = block(x, cond_id, mask)
        return self.final_layer_norm(x.transpose(1, 2))
