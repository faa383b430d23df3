"""The codec's single vector quantizer: EMA codebook with k-means init and dead-code replacement.

Training goes through ``vector-quantize-pytorch`` (EMA updates, masking of padded frames, dead-code
replacement that resets the counts of replaced codes — the fix for WavTokenizer issue #89). Inference picks codes
with the released arithmetic, ``argmax -(|x|^2 - 2 x.e + |e|^2)`` in fp32, so official checkpoints give
identical codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from vector_quantize_pytorch import VectorQuantize
from vector_quantize_pytorch.vector_quantize_pytorch import kmeans


@dataclass
class QuantizerConfig:
    """One EMA codebook (defaults: WavTokenizer's 4096 x 512)."""

    dim: int = 512
    codebook_size: int = 4096
    decay: float = 0.99  # EMA decay of counts and sums
    kmeans_iters: int = 200  # k-means iterations of the initialisation
    dead_code_threshold: float = 2.0  # EMA count below which a code is re-seeded (set per batch size in training)


class Quantizer(nn.Module):
    """(B, dim, L) latents <-> (B, L) codes."""

    def __init__(self, config: QuantizerConfig):
        super().__init__()
        self.config = c = config
        self.vq = VectorQuantize(
            dim=c.dim,
            codebook_size=c.codebook_size,
            decay=c.decay,
            kmeans_init=True,
            kmeans_iters=c.kmeans_iters,
            threshold_ema_dead_code=c.dead_code_threshold,
            commitment_weight=1.0,
        )

    @property
    def codebook(self) -> torch.Tensor:
        """(codebook_size, dim)."""
        return self.vq._codebook.embed[0]

    @property
    def initialized(self) -> bool:
        return bool(self.vq._codebook.initted)

    def set_dead_code_threshold(self, threshold: float) -> None:
        cb = self.vq._codebook
        cb.threshold_ema_dead_code = threshold
        cb.reset_cluster_size = threshold
        cb.has_dead_code_replacement = threshold > 0

    @torch.no_grad()
    def init_from_latents(self, latents: torch.Tensor, iters: int | None = None) -> None:
        """k-means initialisation from a buffer of latents (N, dim), e.g. many batches' worth, so that 4096 codes
        are not fitted to one small batch."""
        if latents.shape[0] < self.config.codebook_size:
            reps = math.ceil(self.config.codebook_size / latents.shape[0])
            latents = latents.repeat(reps, 1) + 1e-3 * torch.randn(
                reps * latents.shape[0], latents.shape[1], device=latents.device
            )
        means, bins = kmeans(latents[None].float(), self.config.codebook_size, iters or self.config.kmeans_iters)
        cb = self.vq._codebook
        cb.embed.data.copy_(means)
        cb.embed_avg.data.copy_(means)
        cb.cluster_size.data.fill_(1.0)
        cb.initted.data.copy_(torch.tensor(True))

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None):
        """Training pass. z: (B, dim, L); mask: (B, L) bool (True = valid).

        Returns ``(z_q, codes, commit_loss)``: straight-through quantized latents (B, dim, L), codes (B, L) and
        the commitment loss over valid frames (a scalar).
        """
        zq, codes, loss = self.vq(z.transpose(1, 2), mask=mask)
        return zq.transpose(1, 2), codes, loss.sum()

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest codes, released arithmetic: z (B, dim, L) -> (B, L) int64."""
        x = z.transpose(1, 2).reshape(-1, z.shape[1]).float()
        embed = self.codebook.float()
        dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed.t() + embed.pow(2).sum(1, keepdim=True).t())
        return dist.max(dim=-1).indices.view(z.shape[0], z.shape[2])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, L) codes -> (B, dim, L) codebook rows."""
        return nn.functional.embedding(codes, self.codebook).transpose(1, 2)


def codebook_usage(codes: torch.Tensor, codebook_size: int, code_lens: torch.Tensor | None = None) -> dict[str, float]:
    """Usage of a codebook by a set of codes: fraction of codes used, entropy (bits) and perplexity."""
    if code_lens is not None:
        valid = torch.arange(codes.shape[-1], device=codes.device)[None, :] < code_lens[:, None]
        codes = codes[valid]
    counts = torch.bincount(codes.flatten().long(), minlength=codebook_size).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p[p > 0] * p[p > 0].log2()).sum().item()
    return {"used": (counts > 0).double().mean().item(), "entropy_bits": entropy, "perplexity": 2.0**entropy}
