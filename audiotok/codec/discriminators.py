"""GAN discriminators shared by the codec and the vocoder.

* :class:`MultiPeriodDiscriminator` — HiFi-GAN periods (2, 3, 5, 7, 11), 2-D convs over the folded waveform.
* :class:`MultiResolutionDiscriminator` — Vocos/UniVNet: 2-D convs over magnitude spectrograms at three
  resolutions (rectangular window, as released).
* :class:`MultiBandSTFTDiscriminator` — DAC's complex-STFT discriminator with 5 frequency bands per resolution.

Each returns ``(logits, features)``: a list with one logit map per sub-discriminator and a list of their
intermediate feature maps (for feature matching). The optional ``n_cond_embeddings`` adds a projection term from
an embedding of the condition id (WavTokenizer's bandwidth id) to the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

# WavTokenizer's released generator loss weights: mel L1 x45, VQ commitment x1000, adversarial and feature matching
# x1 for each discriminator family
RELEASED_LOSS_WEIGHTS = {
    "mel": 45.0,
    "commit": 1000.0,
    "adv/mpd": 1.0,
    "adv/mrd": 1.0,
    "adv/dac": 1.0,
    "fm/mpd": 1.0,
    "fm/mrd": 1.0,
    "fm/dac": 1.0,
}


@dataclass
class DiscriminatorConfig:
    """Which discriminators, and how wide (defaults: as released)."""

    periods: tuple[int, ...] = (2, 3, 5, 7, 11)  # MPD; empty = off
    mpd_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)
    resolutions: tuple[tuple[int, int, int], ...] = ((1024, 256, 1024), (2048, 512, 2048), (512, 128, 512))  # MRD
    mrd_channels: int = 64
    dac_fft_sizes: tuple[int, ...] = ()  # DAC complex multi-band STFT discriminator, e.g. (2048, 1024, 512)
    dac_channels: int = 32
    n_cond_embeddings: int = 4  # 0 = unconditional


class _ConvStack2d(nn.Module):
    """``convs`` with leaky ReLUs, then ``conv_post``; conditional: adds ``<emb(cond), h>`` to the logits
    (a projection discriminator)."""

    convs: nn.ModuleList
    conv_post: nn.Module

    def __init__(self, channels: int, n_cond_embeddings: int):
        super().__init__()
        self.emb = nn.Embedding(n_cond_embeddings, channels) if n_cond_embeddings else None

    def run(self, h: torch.Tensor, cond_id: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            features.append(h)
        logits = self.conv_post(h)
        if self.emb is not None and cond_id is not None:
            emb = self.emb(cond_id).view(cond_id.shape[0], -1, *([1] * (h.dim() - 2)))
            logits = logits + (emb * h).sum(dim=1, keepdim=True)
        features.append(logits)
        return logits, features


class PeriodDiscriminator(_ConvStack2d):
    def __init__(self, period: int, channels: tuple[int, ...], n_cond_embeddings: int):
        super().__init__(channels[-1], n_cond_embeddings)
        self.period = period
        dims = (1, *channels)
        self.convs = nn.ModuleList(
            [weight_norm(nn.Conv2d(dims[i], dims[i + 1], (5, 1), (3, 1), padding=(2, 0))) for i in range(len(dims) - 2)]
            + [weight_norm(nn.Conv2d(dims[-2], dims[-1], (5, 1), 1, padding=(2, 0)))]
        )
        self.conv_post = weight_norm(nn.Conv2d(dims[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor | None = None):
        """x: (B, T) -> logits (B, 1, T', period), feature maps."""
        B, T = x.shape
        if T % self.period:
            x = F.pad(x, (0, self.period - T % self.period), mode="reflect")
        return self.run(x.view(B, 1, -1, self.period), cond_id)


class ResolutionDiscriminator(_ConvStack2d):
    def __init__(self, n_fft: int, hop_length: int, win_length: int, channels: int, n_cond_embeddings: int):
        super().__init__(channels, n_cond_embeddings)
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.convs = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(1, channels, (7, 5), (2, 2), padding=(3, 2))),
                weight_norm(nn.Conv2d(channels, channels, (5, 3), (2, 1), padding=(2, 1))),
                weight_norm(nn.Conv2d(channels, channels, (5, 3), (2, 2), padding=(2, 1))),
                weight_norm(nn.Conv2d(channels, channels, 3, (2, 1), padding=1)),
                weight_norm(nn.Conv2d(channels, channels, 3, (2, 2), padding=1)),
            ]
        )
        self.conv_post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor | None = None):
        """x: (B, T) -> logits over a (freq, time) map, feature maps."""
        rect = torch.ones(self.win_length, device=x.device)  # rectangular, as released
        spec = (
            torch.stft(
                x.float(), self.n_fft, self.hop_length, self.win_length, window=rect, center=True, return_complex=True
            )
            .abs()
            .unsqueeze(1)
        )  # (B, 1, F, frames)
        return self.run(spec, cond_id)


class BandSTFTDiscriminator(nn.Module):
    """DAC: complex STFT (real, imag as channels) split into 5 frequency bands, shared-shape conv stacks."""

    BANDS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))

    def __init__(self, n_fft: int, channels: int):
        super().__init__()
        self.n_fft = n_fft
        n_bins = n_fft // 2 + 1
        self.bands = [(int(lo * n_bins), int(hi * n_bins)) for lo, hi in self.BANDS]

        def stack() -> nn.ModuleList:
            return nn.ModuleList(
                [
                    weight_norm(nn.Conv2d(2, channels, (3, 9), (1, 1), padding=(1, 4))),
                    weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))),
                    weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))),
                    weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))),
                    weight_norm(nn.Conv2d(channels, channels, (3, 3), (1, 1), padding=(1, 1))),
                ]
            )

        self.band_convs = nn.ModuleList([stack() for _ in self.bands])
        self.conv_post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor | None = None):
        rect = torch.ones(self.n_fft, device=x.device)  # rectangular, as in WavTokenizer's copy of DAC
        spec = torch.stft(x.float(), self.n_fft, self.n_fft // 4, window=rect, return_complex=True)
        spec = torch.view_as_real(spec).permute(0, 3, 2, 1)  # (B, 2, frames, bins)
        outs, features = [], []
        for (lo, hi), convs in zip(self.bands, self.band_convs, strict=True):
            h = spec[..., lo:hi]
            for conv in convs:
                h = F.leaky_relu(conv(h), 0.1)
                features.append(h)
            outs.append(h)
        logits = self.conv_post(torch.cat(outs, dim=-1))
        features.append(logits)
        return logits, features


class Discriminators(nn.Module):
    """All configured discriminators, grouped by family: ``{"mpd": [...], "mrd": [...], "dac": [...]}``."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = c = config
        self.mpd = nn.ModuleList([PeriodDiscriminator(p, c.mpd_channels, c.n_cond_embeddings) for p in c.periods])
        self.mrd = nn.ModuleList(
            [ResolutionDiscriminator(*r, c.mrd_channels, c.n_cond_embeddings) for r in c.resolutions]
        )
        self.dac = nn.ModuleList([BandSTFTDiscriminator(n, c.dac_channels) for n in c.dac_fft_sizes])

    def families(self) -> dict[str, nn.ModuleList]:
        return {name: getattr(self, name) for name in ("mpd", "mrd", "dac") if len(getattr(self, name))}

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor | None = None) -> dict[str, list]:
        """x: (B, T) -> ``{family: [(logits, features) per sub-discriminator]}``."""
        out = {}
        for name, discs in self.families().items():
            if name == "dac":  # DAC: DC removed, peak-normalised to 0.8, unconditional
                y = x - x.mean(dim=-1, keepdim=True)
                y = 0.8 * y / y.abs().amax(dim=-1, keepdim=True).clamp_min(1e-9)
                out[name] = [d(y) for d in discs]
            else:
                out[name] = [d(x, cond_id) for d in discs]
        return out
