"""Waveform augmentation of padded batches on the device: gain, additive noise at an SNR, speed perturbation, and
the channel effects of real recordings (band-limiting, synthetic reverberation).

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


def band_limit(wav: torch.Tensor, band_hz: torch.Tensor, sample_rate: int, taper_hz: float = 200.0) -> torch.Tensor:
    """``wav`` (B, T) band-passed to ``band_hz`` (B, 2) = (low, high) Hz per item, by an FFT mask with raised-
    cosine edges ``taper_hz`` wide (low 0 = low-pass only). Telephone: (300, 3400); 16 kHz audio: (0, 8000)."""
    n = wav.shape[-1]
    spec = torch.fft.rfft(wav.float(), dim=-1)
    freqs = torch.fft.rfftfreq(n, 1.0 / sample_rate).to(wav.device)[None]  # (1, F)
    lo, hi = band_hz[:, :1].to(freqs), band_hz[:, 1:].to(freqs)

    def edge(x: torch.Tensor) -> torch.Tensor:  # 0 below -taper/2, 1 above +taper/2, raised cosine between
        return 0.5 - 0.5 * torch.cos(torch.pi * ((x / taper_hz) + 0.5).clamp(0, 1))

    mask = edge(freqs - lo) * edge(hi - freqs)
    mask = torch.where(lo > 0, mask, edge(hi - freqs))
    return torch.fft.irfft(spec * mask, n=n, dim=-1).to(wav.dtype)


def synthetic_rir(rt60: float, sample_rate: int, generator: torch.Generator, max_seconds: float = 1.0) -> torch.Tensor:
    """A room impulse response (L,): a unit direct path followed by Gaussian noise decaying by 60 dB in ``rt60``
    seconds (the statistical model of late reverberation; no measured rooms are used)."""
    n = max(2, int(min(max_seconds, 1.5 * rt60) * sample_rate))
    t = torch.arange(n) / sample_rate
    tail = torch.randn(n, generator=generator) * torch.exp(-6.9078 * t / rt60)  # ln(1000): 60 dB in rt60
    tail[0] = 0.0
    rir = tail / tail.norm().clamp_min(1e-8)
    rir[0] = 1.0
    return rir


def add_reverb(wav: torch.Tensor, rirs: list[torch.Tensor | None], wet: torch.Tensor) -> torch.Tensor:
    """Convolve item b of ``wav`` (B, T) with ``rirs[b]`` (None: unchanged), mixed ``wet[b]`` of reverberant to
    dry, keeping each item's RMS. Same length out (the tail past T is cut)."""
    out = wav.clone()
    n = wav.shape[-1]
    for b, rir in enumerate(rirs):
        if rir is None:
            continue
        size = n + rir.shape[0] - 1
        wet_sig = torch.fft.irfft(
            torch.fft.rfft(wav[b].float(), size) * torch.fft.rfft(rir.to(wav.device), size), size
        )[:n]
        mixed = (1 - wet[b]) * wav[b].float() + wet[b] * wet_sig
        rms_in, rms_out = wav[b].float().pow(2).mean().sqrt(), mixed.pow(2).mean().sqrt().clamp_min(1e-8)
        out[b] = (mixed * rms_in / rms_out).to(wav.dtype)
    return out


@dataclass
class ChannelAugmentConfig:
    """What real recordings bring and clean synthetic speech lacks, applied to training segments (input and target
    alike: a codec reconstructs what it is given). All off by default; probabilities are per item."""

    p_band: float = 0.0  # band-limiting to one of ``bands`` (Hz)
    bands: tuple[tuple[float, float], ...] = ((300.0, 3400.0), (0.0, 4000.0), (0.0, 8000.0))  # telephone, 8/16 kHz
    p_noise: float = 0.0  # white noise at an SNR in ``snr_db``
    snr_db: tuple[float, float] = (15.0, 40.0)
    p_reverb: float = 0.0  # a synthetic room (:func:`synthetic_rir`)
    rt60: tuple[float, float] = (0.15, 0.6)
    wet: tuple[float, float] = (0.2, 0.6)


def channel_augment(
    wav: torch.Tensor, lens: torch.Tensor, cfg: ChannelAugmentConfig, sample_rate: int, generator: torch.Generator
) -> torch.Tensor:
    """Apply :class:`ChannelAugmentConfig` to a padded batch ``wav`` (B, T) with ``lens`` (B,); draws come from
    ``generator`` (CPU). Returns (B, T), padding zeroed."""
    b = wav.shape[0]

    def uniform(lo_hi: tuple[float, float]) -> torch.Tensor:
        return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * torch.rand(b, generator=generator)

    on_band, on_noise, on_reverb = (
        torch.rand(b, generator=generator) < p for p in (cfg.p_band, cfg.p_noise, cfg.p_reverb)
    )
    rt60, wet, snr = uniform(cfg.rt60), uniform(cfg.wet), uniform(cfg.snr_db)
    band_ids = torch.randint(len(cfg.bands), (b,), generator=generator)
    if on_reverb.any():
        rirs = [synthetic_rir(float(rt60[i]), sample_rate, generator) if on_reverb[i] else None for i in range(b)]
        wav = add_reverb(wav, rirs, wet)
    if on_band.any():
        band = torch.tensor(cfg.bands, dtype=torch.float32)[band_ids]
        limited = band_limit(wav, band, sample_rate)
        wav = torch.where(on_band.to(wav.device)[:, None], limited, wav)
    if on_noise.any():
        noisy = add_noise(wav, lens, snr, generator=generator)
        wav = torch.where(on_noise.to(wav.device)[:, None], noisy, wav)
    return wav * sequence_mask(lens, wav.shape[1]).to(wav)


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
