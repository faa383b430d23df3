"""Batched, length-aware feature extraction on the tensor's device.

One implementation per transform, used by every model in the suite:

* :class:`MelSpectrogram` with the presets :func:`whisper_mel` (80/128 bins, equal to
  ``whisper.log_mel_spectrogram``), :func:`vocos_mel` (WavTokenizer/Vocos, 24 kHz, 100 bins) and
  :func:`cosyvoice2_mel` (24 kHz, 80 bins, hop 480, fmax 8 kHz);
* :class:`KaldiFbank` (equal to ``torchaudio.compliance.kaldi.fbank`` per utterance).

Padding is never seen by a valid frame: each item is reflect-padded at *its own* end (not at the batch's), so a
padded batch gives the same frames as one-by-one extraction. Frames past an item's length are set to
``pad_value`` and ``feats_lens`` says how many are valid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from audiotok.audio import mel_filterbank
from audiotok.nn.masks import reflect_pad_per_item, sequence_mask


@dataclass(frozen=True)
class MelConfig:
    """Parameters of a log-mel spectrogram."""

    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    win_length: int | None = None  # None = n_fft
    f_min: float = 0.0
    f_max: float | None = None  # None = Nyquist
    mel_scale: str = "slaney"  # "slaney" (librosa) or "htk" (torchaudio)
    mel_norm: str | None = "slaney"  # triangle area normalisation, or None
    power: float = 2.0  # 1 = magnitude, 2 = power
    mag_eps: float = 0.0  # added to re^2 + im^2 before the root (CosyVoice uses 1e-9)
    padding: str = "center"  # "center": n_fft // 2 each side; "same": (n_fft - hop) // 2 each side; "none"
    log: str = "ln"  # "ln": natural log; "whisper": log10, 8-decade range per utterance, (x + 4) / 4
    clamp: float = 1e-5  # floor before the log
    drop_last_frame: bool = False  # Whisper drops the last STFT frame
    pad_value: float = 0.0  # written to frames past an item's length


def whisper_mel(n_mels: int = 80) -> MelConfig:
    """Whisper's log-mel: 16 kHz, n_fft 400, hop 160 (100 frames/s), ``n_mels`` of 80 or 128."""
    return MelConfig(
        sample_rate=16000,
        n_fft=400,
        hop_length=160,
        n_mels=n_mels,
        power=2.0,
        log="whisper",
        clamp=1e-10,
        drop_last_frame=True,
    )


def vocos_mel(sample_rate: int = 24000, n_fft: int = 1024, hop_length: int = 256, n_mels: int = 100) -> MelConfig:
    """Vocos/WavTokenizer mel: magnitude, HTK scale without normalisation, ``ln(clamp(x, 1e-7))``."""
    return MelConfig(
        sample_rate=sample_rate,
        n_fft=n_fft,
        hop_length=hop_length,
        n_mels=n_mels,
        mel_scale="htk",
        mel_norm=None,
        power=1.0,
        clamp=1e-7,
    )


def cosyvoice2_mel() -> MelConfig:
    """CosyVoice 2 flow mel: 24 kHz, n_fft 1920, hop 480 (50 frames/s), 80 bins up to 8 kHz, ``same`` padding."""
    return MelConfig(
        sample_rate=24000,
        n_fft=1920,
        hop_length=480,
        n_mels=80,
        f_max=8000.0,
        power=1.0,
        mag_eps=1e-9,
        padding="same",
        clamp=1e-5,
    )


MEL_PRESETS = {
    "whisper-80": lambda: whisper_mel(80),
    "whisper-128": lambda: whisper_mel(128),
    "vocos": vocos_mel,
    "cosyvoice2": cosyvoice2_mel,
}


def _as_batch(wav: torch.Tensor, wav_lens: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    elif wav.dim() == 3 and wav.shape[1] == 1:
        wav = wav.squeeze(1)
    if wav.dim() != 2:
        raise ValueError(f"expected audio of shape (T,), (B, T) or (B, 1, T), got {tuple(wav.shape)}")
    if wav_lens is None:
        wav_lens = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.long, device=wav.device)
    return wav.float(), wav_lens.to(wav.device).long()


class MelSpectrogram(nn.Module):
    """Log-mel spectrogram of a padded batch.

    Args:
        config: a :class:`MelConfig` (see the presets) or a preset name (``"whisper-80"``, ``"vocos"``, ...).
    """

    def __init__(self, config: MelConfig | str):
        super().__init__()
        if isinstance(config, str):
            if config not in MEL_PRESETS:
                raise ValueError(f"unknown mel preset {config!r}; known: {sorted(MEL_PRESETS)}")
            config = MEL_PRESETS[config]()
        if config.padding not in ("center", "same", "none"):
            raise ValueError(f"padding must be 'center', 'same' or 'none', got {config.padding!r}")
        if config.log not in ("ln", "whisper"):
            raise ValueError(f"log must be 'ln' or 'whisper', got {config.log!r}")
        self.config = config
        win_length = config.win_length or config.n_fft
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        fb = mel_filterbank(
            config.sample_rate,
            config.n_fft,
            config.n_mels,
            config.f_min,
            config.f_max,
            config.mel_scale,
            config.mel_norm,
        )
        self.register_buffer("filters", fb, persistent=False)

    @property
    def frame_rate(self) -> float:
        return self.config.sample_rate / self.config.hop_length

    def _pad_sizes(self) -> tuple[int, int]:
        c = self.config
        if c.padding == "center":
            return c.n_fft // 2, c.n_fft // 2
        if c.padding == "same":
            return (c.n_fft - c.hop_length) // 2, (c.n_fft - c.hop_length) // 2
        return 0, 0

    def num_frames(self, wav_lens: torch.Tensor) -> torch.Tensor:
        """Valid frame count for each of ``wav_lens`` (B,) samples."""
        c = self.config
        left, right = self._pad_sizes()
        n = torch.div(wav_lens + left + right - c.n_fft, c.hop_length, rounding_mode="floor") + 1
        if c.drop_last_frame:
            n = n - 1
        return n.clamp_min(0)

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute features.

        Args:
            wav: ``(B, T)``, ``(B, 1, T)`` or ``(T,)`` audio at ``config.sample_rate``.
            wav_lens: ``(B,)`` valid samples per item; None = all ``T``.

        Returns:
            ``(feats, feats_lens)``: ``(B, n_mels, N)`` float32 and ``(B,)`` long.
        """
        c = self.config
        wav, wav_lens = _as_batch(wav, wav_lens)
        left, right = self._pad_sizes()
        if left or right:
            wav = reflect_pad_per_item(wav, wav_lens, left, right)
        if wav.shape[1] < c.n_fft:  # every item is shorter than one window
            wav = nn.functional.pad(wav, (0, c.n_fft - wav.shape[1]))
        stft = torch.stft(
            wav,
            c.n_fft,
            c.hop_length,
            win_length=c.win_length or c.n_fft,
            window=self.window,
            center=False,
            return_complex=True,
        )
        if c.drop_last_frame:
            stft = stft[..., :-1]
        if c.mag_eps:
            mag = (stft.real.pow(2) + stft.imag.pow(2) + c.mag_eps).pow(c.power / 2)
        else:
            mag = stft.abs().pow(c.power)
        mel = torch.matmul(self.filters, mag)
        feats_lens = self.num_frames(wav_lens)
        mask = sequence_mask(feats_lens, mel.shape[-1]).unsqueeze(1)
        if c.log == "whisper":
            log_spec = mel.clamp_min(c.clamp).log10()
            peak = log_spec.masked_fill(~mask, float("-inf")).amax(dim=(1, 2), keepdim=True)
            feats = (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0
        else:
            feats = mel.clamp_min(c.clamp).log()
        return feats.masked_fill(~mask, c.pad_value), feats_lens


@dataclass(frozen=True)
class FbankConfig:
    """Kaldi-compatible log mel filterbank (``compute-fbank-feats`` defaults, snip_edges=True)."""

    sample_rate: int = 16000
    n_mels: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    preemphasis: float = 0.97
    low_freq: float = 20.0
    high_freq: float = 0.0  # <= 0 means offset from Nyquist
    remove_dc_offset: bool = True
    window_power: float = 0.85  # Povey window = hann(periodic=False) ** 0.85
    pad_value: float = 0.0


class KaldiFbank(nn.Module):
    """Batched Kaldi fbank, identical per utterance to ``torchaudio.compliance.kaldi.fbank`` with dither 0.

    Scale the input as the consumer expects (Kaldi recipes often multiply by 32768 first).
    """

    def __init__(self, config: FbankConfig | None = None):
        super().__init__()
        from torchaudio.compliance.kaldi import get_mel_banks

        self.config = c = config or FbankConfig()
        self.win_length = int(c.sample_rate * c.frame_length_ms / 1000)
        self.hop_length = int(c.sample_rate * c.frame_shift_ms / 1000)
        self.n_fft = 1 << (self.win_length - 1).bit_length()
        window = torch.hann_window(self.win_length, periodic=False).pow(c.window_power)
        self.register_buffer("window", window, persistent=False)
        banks, _ = get_mel_banks(
            c.n_mels, self.n_fft, float(c.sample_rate), c.low_freq, c.high_freq, 100.0, -500.0, 1.0
        )
        banks = nn.functional.pad(banks, (0, 1))  # the Nyquist bin gets no weight
        self.register_buffer("filters", banks.float(), persistent=False)

    @property
    def frame_rate(self) -> float:
        return self.config.sample_rate / self.hop_length

    def num_frames(self, wav_lens: torch.Tensor) -> torch.Tensor:
        n = torch.div(wav_lens - self.win_length, self.hop_length, rounding_mode="floor") + 1
        return torch.where(wav_lens >= self.win_length, n, torch.zeros_like(n))

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T)`` audio -> ``(B, n_mels, N)`` log fbank and ``(B,)`` frame counts (frames on the last axis,
        like the mel transforms; Kaldi's own layout is the transpose)."""
        c = self.config
        wav, wav_lens = _as_batch(wav, wav_lens)
        if wav.shape[1] < self.win_length:
            wav = nn.functional.pad(wav, (0, self.win_length - wav.shape[1]))
        frames = wav.unfold(1, self.win_length, self.hop_length)  # (B, N, win)
        if c.remove_dc_offset:
            frames = frames - frames.mean(dim=-1, keepdim=True)
        if c.preemphasis:
            prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
            frames = frames - c.preemphasis * prev
        frames = frames * self.window
        spec = torch.fft.rfft(frames, n=self.n_fft).abs().pow(2)  # (B, N, n_fft/2+1)
        mel = torch.matmul(spec, self.filters.T).clamp_min(torch.finfo(torch.float32).eps).log()
        feats_lens = self.num_frames(wav_lens)
        mask = sequence_mask(feats_lens, mel.shape[1]).unsqueeze(-1)
        return mel.masked_fill(~mask, c.pad_value).transpose(1, 2), feats_lens


FEATURES = {**{name: name for name in MEL_PRESETS}, "fbank": "fbank"}


def build_features(name: str, **overrides) -> MelSpectrogram | KaldiFbank:
    """Build a feature transform by name: a mel preset (``whisper-80``, ``whisper-128``, ``vocos``,
    ``cosyvoice2``) or ``fbank``; keyword overrides replace config fields."""
    if name == "fbank":
        return KaldiFbank(FbankConfig(**overrides))
    if name not in MEL_PRESETS:
        raise ValueError(f"unknown feature {name!r}; known: {sorted(FEATURES)}")
    return MelSpectrogram(replace(MEL_PRESETS[name](), **overrides))
