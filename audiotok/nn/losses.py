"""Codec/vocoder losses: log-mel L1, multi-resolution STFT distance, hinge and LSGAN adversarial terms, feature
matching. Each family of discriminators uses its own adversarial form (hinge for MPD/MRD, LSGAN for DAC's), as
released."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audiotok.data.features import MelSpectrogram, vocos_mel
from audiotok.nn.masks import sequence_mask

ADVERSARIAL = {"mpd": "hinge", "mrd": "hinge", "dac": "lsgan"}


class MelLoss(nn.Module):
    """L1 between Vocos log-mels (n_fft 1024, hop 256, 100 bins, clamp 1e-7) over valid frames."""

    def __init__(self, sample_rate: int = 24000):
        super().__init__()
        self.mel = MelSpectrogram(vocos_mel(sample_rate=sample_rate))

    def forward(self, fake: torch.Tensor, real: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        fm, lens = self.mel(fake.float(), wav_lens)
        rm, _ = self.mel(real.float(), wav_lens)
        mask = sequence_mask(lens, fm.shape[-1]).unsqueeze(1).to(fm)
        return ((fm - rm).abs() * mask).sum() / (mask.sum() * fm.shape[1]).clamp_min(1)


def multi_resolution_stft_distance(
    fake: torch.Tensor, real: torch.Tensor, resolutions=((512, 128), (1024, 256), (2048, 512))
) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over resolutions (Parallel WaveGAN's MR-STFT), per item
    (B,) for equal-length (B, T) signals."""
    total = torch.zeros(fake.shape[0], device=fake.device)
    for n_fft, hop in resolutions:
        win = torch.hann_window(n_fft, device=fake.device)
        f = torch.stft(fake.float(), n_fft, hop, window=win, return_complex=True).abs().clamp_min(1e-7)
        r = torch.stft(real.float(), n_fft, hop, window=win, return_complex=True).abs().clamp_min(1e-7)
        sc = torch.linalg.norm((r - f).flatten(1), dim=1) / torch.linalg.norm(r.flatten(1), dim=1).clamp_min(1e-7)
        mag = (r.log() - f.log()).abs().flatten(1).mean(1)
        total = total + sc + mag
    return total / len(resolutions)


def discriminator_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor], kind: str) -> torch.Tensor:
    """Mean over sub-discriminators of the hinge or LSGAN discriminator loss."""
    loss = 0.0
    for r, f in zip(real_logits, fake_logits, strict=True):
        if kind == "hinge":
            loss = loss + F.relu(1 - r).mean() + F.relu(1 + f).mean()
        else:
            loss = loss + (r - 1).pow(2).mean() + f.pow(2).mean()
    return loss / len(real_logits)


def generator_loss(fake_logits: list[torch.Tensor], kind: str) -> torch.Tensor:
    """Mean over sub-discriminators of the hinge or LSGAN generator loss."""
    loss = 0.0
    for f in fake_logits:
        loss = loss + (F.relu(1 - f).mean() if kind == "hinge" else (f - 1).pow(2).mean())
    return loss / len(fake_logits)


def feature_matching_loss(
    real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]
) -> torch.Tensor:
    """Mean |real - fake| over every layer, averaged over sub-discriminators."""
    loss = 0.0
    for rs, fs in zip(real_features, fake_features, strict=True):
        loss = loss + sum((r.detach() - f).abs().mean() for r, f in zip(rs, fs, strict=True))
    return loss / len(real_features)


def split_real_fake(outputs: dict[str, list], n: int) -> tuple[dict[str, list], dict[str, list]]:
    """Split discriminator outputs of a (real; fake) batch into the real and the fake halves."""
    halves: tuple[dict, dict] = ({}, {})
    for family, subs in outputs.items():
        for h, sl in zip(halves, (slice(0, n), slice(n, None)), strict=True):
            h[family] = [(logits[sl], [f[sl] for f in feats]) for logits, feats in subs]
    return halves


def discriminator_objective(discs, real: torch.Tensor, fake: torch.Tensor, cond=None, amp=None) -> torch.Tensor:
    """The discriminators' loss on real and (detached) fake audio (B, T), in one forward over both (one DDP
    pass); each family with its own adversarial form."""
    import contextlib

    with amp or contextlib.nullcontext():
        real_d, fake_d = split_real_fake(discs(torch.cat([real, fake.detach()]), cond), real.shape[0])
    return sum(discriminator_loss([o[0] for o in real_d[f]], [o[0] for o in fake_d[f]], ADVERSARIAL[f]) for f in real_d)


def generator_adversarial_terms(discs, real: torch.Tensor, fake: torch.Tensor, cond=None, amp=None) -> dict:
    """``adv/<family>`` and ``fm/<family>`` (feature matching against real audio) terms for the generator."""
    import contextlib

    with amp or contextlib.nullcontext():
        fake_d = discs(fake, cond)
        with torch.no_grad():
            real_d = discs(real, cond)
    terms = {}
    for f in fake_d:
        terms[f"adv/{f}"] = generator_loss([o[0] for o in fake_d[f]], ADVERSARIAL[f])
        terms[f"fm/{f}"] = feature_matching_loss([o[1] for o in real_d[f]], [o[1] for o in fake_d[f]])
    return terms
