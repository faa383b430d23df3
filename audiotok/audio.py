"""Audio I/O and basic signal operations.

Everything that touches audio files goes through :func:`load`/:func:`save`/:func:`info`, so that bad input
always surfaces as an :class:`AudioError` naming the file and the reason, never as a traceback from deep inside
libsndfile. Signal operations work on torch tensors on any device.

Shapes: a waveform is ``(T,)`` (mono) or ``(C, T)`` (channels first); batched operations take ``(B, T)``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiotok.utils import atomic_path

# the suffixes taken as audio where a folder is searched (batch encode, corpus preparation, the corpus pipeline);
# libsndfile reads all of them but .m4a (AAC), which is listed so that such files are reported as unreadable
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aiff", ".aif", ".au")


class AudioError(Exception):
    """An audio file that cannot be used. ``path`` and ``reason`` say which and why.

    Subclasses tell the cases apart so that batch callers can count them; all of them are ``AudioError``.
    """

    def __init__(self, path: str | os.PathLike | None, reason: str):
        self.path = str(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class AudioFileNotFound(AudioError):
    """The path does not exist or is not a regular file."""


class EmptyAudioFile(AudioError):
    """The file has zero bytes, or decodes to zero samples."""


class UnsupportedAudioFormat(AudioError):
    """The file is not audio, or is in a format this build cannot read."""


class CorruptAudioFile(AudioError):
    """The header is readable but the data is truncated or damaged."""


class InvalidSamples(AudioError):
    """The decoded samples contain NaN or Inf."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file header says, without decoding the samples."""

    path: str
    sample_rate: int
    n_frames: int
    n_channels: int
    format: str

    @property
    def duration(self) -> float:
        return self.n_frames / self.sample_rate


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioFileNotFound(p, "file not found")
    if not p.is_file():
        raise AudioFileNotFound(p, "not a regular file")
    if p.stat().st_size == 0:
        raise EmptyAudioFile(p, "file is empty (0 bytes)")
    return p


def _classify_sf_error(path: Path, err: Exception) -> AudioError:
    msg = str(err)
    lowered = msg.lower()
    if "format not recognised" in lowered or "unknown format" in lowered or "not supported" in lowered:
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            return UnsupportedAudioFormat(path, f"unsupported format '{path.suffix}' ({msg})")
        return UnsupportedAudioFormat(path, f"not a readable audio file ({msg})")
    return CorruptAudioFile(path, f"truncated or corrupt audio ({msg})")


def info(path: str | os.PathLike) -> AudioInfo:
    """Read sample rate, length and channels from the file header (fast: no decoding).

    Raises:
        AudioError: the file is missing, empty, not audio, or its header is damaged.
    """
    p = _check_file(path)
    try:
        i = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise _classify_sf_error(p, err) from None
    n_frames = int(i.frames)
    # libsndfile quietly shortens a WAV whose data chunk is cut off; its log says "data : 32000 (should be 15978)"
    cut = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", i.extra_info or "", flags=re.MULTILINE)
    if cut and int(cut.group(2)) < int(cut.group(1)):
        raise CorruptAudioFile(p, f"truncated: header declares {cut.group(1)} data bytes, file holds {cut.group(2)}")
    # Some containers (mp3, ogg) do not store the length; libsndfile then reports a huge or zero count.
    if n_frames <= 0 or n_frames > 2**62:
        n_frames = int(_read(p, None, 0, -1)[0].shape[-1])
    return AudioInfo(str(p), int(i.samplerate), n_frames, int(i.channels), str(i.format))


def _read(p: Path, dtype: str | None, start: int, stop: int) -> tuple[np.ndarray, int]:
    try:
        data, sample_rate = sf.read(
            str(p), start=start, stop=None if stop < 0 else stop, dtype=dtype or "float32", always_2d=True
        )
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise _classify_sf_error(p, err) from None
    return data, int(sample_rate)


def load(
    path: str | os.PathLike,
    start: float | None = None,
    end: float | None = None,
    mono: bool = False,
) -> tuple[torch.Tensor, int]:
    """Load an audio file as float32.

    Args:
        path: wav/flac/ogg/mp3/... file.
        start: optional start time in seconds (for segments).
        end: optional end time in seconds.
        mono: average the channels.

    Returns:
        ``(wav, sample_rate)`` where ``wav`` is ``(C, T)``, or ``(T,)`` when ``mono``.

    Raises:
        AudioError: (a subclass of it) naming the file and the reason.
    """
    p = _check_file(path)
    header = info(p)
    first = int(round((start or 0.0) * header.sample_rate))
    last = -1 if end is None else int(round(end * header.sample_rate))
    if first < 0 or (last >= 0 and last < first):
        raise AudioError(p, f"bad segment [{start}, {end}] s")
    if first >= header.n_frames and header.n_frames > 0:
        raise AudioError(p, f"segment start {start} s is past the end of the audio ({header.duration:.3f} s)")
    data, sample_rate = _read(p, "float32", first, last)
    if data.shape[0] == 0:
        raise EmptyAudioFile(p, "audio has zero samples")
    expected = (header.n_frames if last < 0 else min(last, header.n_frames)) - first
    if data.shape[0] < 0.99 * expected:
        raise CorruptAudioFile(p, f"truncated: decoded {data.shape[0]} of {expected} samples")
    if not np.isfinite(data).all():
        raise InvalidSamples(p, "audio contains NaN or Inf samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if mono:
        wav = to_mono(wav)
    return wav, sample_rate


def save(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write ``wav`` (``(T,)`` or ``(C, T)``) to ``path``; the extension picks the format (default 16-bit PCM wav).

    The file is written to a temporary name in the same folder and renamed, so a killed process never leaves a
    half-written file under the final name.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().float().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = wav.T
    if not np.isfinite(wav).all():
        raise InvalidSamples(p, "refusing to save NaN or Inf samples")
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}.get(p.suffix.lower())
    if fmt is None:
        raise UnsupportedAudioFormat(p, f"cannot write format '{p.suffix}'")
    if subtype is None:
        subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}[fmt]
    with atomic_path(p) as tmp:
        sf.write(
            str(tmp),
            np.clip(wav, -1.0, 1.0) if subtype.startswith("PCM") else wav,
            sample_rate,
            subtype=subtype,
            format=fmt,
        )


def to_mono(wav: torch.Tensor) -> torch.Tensor:
    """``(C, T)`` -> ``(T,)`` by averaging channels; ``(T,)`` is returned as is."""
    if wav.dim() == 1:
        return wav
    if wav.dim() != 2:
        raise ValueError(f"expected (T,) or (C, T), got shape {tuple(wav.shape)}")
    return wav.mean(dim=0)


def resample(wav: torch.Tensor, orig_sample_rate: int, new_sample_rate: int) -> torch.Tensor:
    """Band-limited (windowed sinc) resampling along the last axis, on the tensor's device.

    Works on any leading shape, e.g. ``(T,)``, ``(C, T)`` or a batch ``(B, T)``.
    Output length is ``ceil(T * new / orig)``.
    """
    if orig_sample_rate == new_sample_rate:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, int(orig_sample_rate), int(new_sample_rate))


def prepare_for_model(wav: torch.Tensor, sample_rate: int, model_rate: int) -> torch.Tensor:
    """Any (T,) or (C, T) signal -> mono (T,) at ``model_rate`` (downmix, then resample)."""
    return resample(to_mono(wav), sample_rate, model_rate)


def resampled_length(n_samples: int | torch.Tensor, orig_sample_rate: int, new_sample_rate: int):
    """Length of a signal of ``n_samples`` after :func:`resample` (works on ints and tensors)."""
    if isinstance(n_samples, torch.Tensor):
        return torch.div(n_samples * new_sample_rate + orig_sample_rate - 1, orig_sample_rate, rounding_mode="floor")
    return -(-int(n_samples) * new_sample_rate // orig_sample_rate)


def peak_normalize(wav: torch.Tensor, peak_db: float = -1.0, eps: float = 1e-9) -> torch.Tensor:
    """Scale so the absolute peak of each signal (last axis) is ``peak_db`` dBFS."""
    peak = wav.abs().amax(dim=-1, keepdim=True).clamp_min(eps)
    return wav * (10.0 ** (peak_db / 20.0) / peak)


def rms_db(wav: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """RMS level in dBFS over the last axis."""
    return 10.0 * torch.log10(wav.pow(2).mean(dim=-1).clamp_min(eps))


def loudness_normalize(wav: torch.Tensor, target_db: float = -23.0, max_gain_db: float = 40.0) -> torch.Tensor:
    """Scale each signal to an RMS level of ``target_db`` dBFS (a simple, dependency-free loudness proxy).

    The gain is capped at ``max_gain_db`` so near-silent input is not blown up into noise, and the result is
    peak-limited to avoid clipping.
    """
    gain_db = (target_db - rms_db(wav)).clamp(max=max_gain_db).unsqueeze(-1)
    out = wav * 10.0 ** (gain_db / 20.0)
    peak = out.abs().amax(dim=-1, keepdim=True)
    return torch.where(peak > 1.0, out / peak.clamp_min(1e-9), out)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    mel_scale: str = "slaney",
    norm: str | None = "slaney",
) -> torch.Tensor:
    """Triangular mel filterbank of shape ``(n_mels, n_fft // 2 + 1)`` (float32).

    ``mel_scale="slaney", norm="slaney"`` is librosa's default (Whisper, CosyVoice); ``mel_scale="htk",
    norm=None`` is torchaudio's default (Vocos/WavTokenizer). The triangles are computed in float64 and cast.
    """
    import librosa

    if mel_scale not in ("slaney", "htk"):
        raise ValueError(f"mel_scale must be 'slaney' or 'htk', got {mel_scale!r}")
    fb = librosa.filters.mel(
        sr=sample_rate,
        n_fft=n_fft,
        n_mels=n_mels,
        fmin=f_min,
        fmax=f_max,
        htk=mel_scale == "htk",
        norm=norm,
        dtype=np.float64,
    )
    return torch.from_numpy(fb.astype(np.float32))


def trim_silence(
    wav: torch.Tensor, sample_rate: int, threshold_db: float = -45.0, margin: float = 0.1, frame: float = 0.01
) -> torch.Tensor:
    """Cut leading and trailing silence of a mono ``(T,)`` signal, keeping ``margin`` seconds around the speech.

    A 10 ms frame counts as sound when its RMS is within ``-threshold_db`` dB of the loudest frame.
    """
    hop = max(1, int(frame * sample_rate))
    n = wav.shape[-1] // hop
    if n == 0:
        return wav
    level = rms_db(wav[: n * hop].reshape(n, hop))
    loud = (level > level.max() + threshold_db).nonzero().flatten()
    if loud.numel() == 0:
        return wav
    pad = int(margin * sample_rate)
    first = max(0, int(loud[0]) * hop - pad)
    last = min(wav.shape[-1], (int(loud[-1]) + 1) * hop + pad)
    return wav[first:last]
