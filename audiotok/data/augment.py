"""Waveform augmentation of padded batches on the device: gain, additive noise at an SNR, speed perturbation.

The functional forms take explicit parameters; :class:`Augmenter` draws them reproducibly from
``(seed, step)`` on the CPU (so the draw is the same on any device) and applies them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from audiotok.audio import resample, resampled_length
from audiotok.nn.masks import sequence_mask
from audiotok.utils import stable_hash


def apply_gain(wav: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """``wav`` (B, T) scaled by ``gain_db`` (B,) decibels."""
    return wav * (10.0 ** (gain_db.to(wav) / 20.0)).unsqueeze(1)


def add_noise(
    wav: torch.Tensor,
    wav_lens: torch.Tensor,
    snr_db: torch.Tensor,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add ``noise`` (B, T) — white Gaussian noise when None — scaled so that each item's signal-to-noise ratio
    over its valid samples is ``snr_db`` (B,). Padding stays zero."""
    mask = sequence_mask(wav_lens, wav.shape[1]).to(wav)
    if noise is None:
        noise = torch.randn(wav.shape, generator=generator, dtype=wav.dtype).to(wav.device)
    noise = noise[:, : wav.shape[1]] * mask
    n = wav_lens.clamp_min(1).to(wav)
    p_sig = (wav * mask).pow(2).sum(1) / n
    p_noise = noise.pow(2).sum(1) / n
    scale = torch.sqrt(p_sig / (p_noise.clamp_min(1e-20) * 10.0 ** (snr_db.to(wav) / 10.0)))
    return wav + noise * scale.unsqueeze(1)


def change_speed(
    wav: torch.Tensor, wav_lens: torch.Tensor, speeds: torch.Tensor, sample_rate: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kaldi-style speed perturbation (tempo and pitch together) by resampling: item b becomes
    ``1 / speeds[b]`` times as long. Returns the re-padded batch and new lengths."""
    out_lens = wav_lens.clone()
    pieces: list[torch.Tensor | None] = [None] * wav.shape[0]
    for s in torch.unique(speeds).tolist():
        idx = (speeds == s).nonzero().flatten().tolist()
        # read the audio as if recorded at sample_rate * s and resample to sample_rate: 1/s as many samples
        source = int(round(sample_rate * s))
        group = resample(wav[idx], source, sample_rate) if source != sample_rate else wav[idx]
        for j, b in enumerate(idx):
            n = int(resampled_length(int(wav_lens[b]), source, sample_rate))
            pieces[b] = group[j, :n]
            out_lens[b] = n
    out = wav.new_zeros(wav.shape[0], int(out_lens.max()))
    for b, p in enumerate(pieces):
        out[b, : p.shape[0]] = p
    return out, out_lens


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (all off by default)."""

    p_gain: float = 0.0  # probability of a random gain per item
    gain_db: tuple[float, float] = (-6.0, 6.0)  # uniform range of that gain
    p_noise: float = 0.0  # probability of additive white noise per item
    snr_db: tuple[float, float] = (5.0, 30.0)  # uniform range of its SNR
    p_speed: float = 0.0  # probability of speed perturbation per item
    speeds: tuple[float, ...] = (0.9, 1.1)  # factors drawn uniformly from this set


class Augmenter:
    """Draws augmentation parameters from ``(seed, step)`` and applies them to a padded batch."""

    def __init__(self, config: AugmentConfig, sample_rate: int, seed: int = 0):
        self.config = config
        self.sample_rate = sample_rate
        self.seed = seed

    def draw(self, batch_size: int, step: int) -> dict[str, torch.Tensor]:
        """Parameters for one batch: ``gain_db``, ``snr_db`` (inf = no noise), ``speed`` (1 = unchanged), each
        ``(B,)`` on the CPU, plus the generator state for the noise itself."""
        c = self.config
        g = torch.Generator().manual_seed(stable_hash("augment", self.seed, step) % (2**63))

        def uniform(lo_hi: tuple[float, float]) -> torch.Tensor:
            lo, hi = lo_hi
            return lo + (hi - lo) * torch.rand(batch_size, generator=g)

        on = {
            k: torch.rand(batch_size, generator=g) < p
            for k, p in (("gain", c.p_gain), ("noise", c.p_noise), ("speed", c.p_speed))
        }
        gain_db = torch.where(on["gain"], uniform(c.gain_db), torch.zeros(batch_size))
        snr_db = torch.where(on["noise"], uniform(c.snr_db), torch.full((batch_size,), float("inf")))
        choice = torch.tensor(c.speeds)[torch.randint(len(c.speeds), (batch_size,), generator=g)]
        speed = torch.where(on["speed"], choice, torch.ones(batch_size))
        noise_seed = torch.randint(2**62, (1,), generator=g)
        return {"gain_db": gain_db, "snr_db": snr_db, "speed": speed, "noise_seed": noise_seed}

    def __call__(
        self, wav: torch.Tensor, wav_lens: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Augment ``wav`` (B, T) with lengths ``wav_lens`` (B,); returns ``(wav, wav_lens, params)``."""
        params = self.draw(wav.shape[0], step)
        if (params["speed"] != 1).any():
            wav, wav_lens = change_speed(wav, wav_lens, params["speed"], self.sample_rate)
        wav = apply_gain(wav, params["gain_db"])
        noisy = torch.isfinite(params["snr_db"])
        if noisy.any():
            g = torch.Generator().manual_seed(int(params["noise_seed"]))
            snr = torch.where(noisy, params["snr_db"], torch.zeros_like(params["snr_db"]))
            with_noise = add_noise(wav, wav_lens, snr, generator=g)
            wav = torch.where(noisy.to(wav.device).unsqueeze(1), with_noise, wav)
        return wav, wav_lens, params
