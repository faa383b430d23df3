"""Whisper log-mel throughput: audiotok's batched, length-aware extraction vs. per-file librosa.

Prints hours of audio turned into features per second of wall time (audio preloaded at 16 kHz, so only feature
computation is timed). Data: the synthetic corpus (built if missing).

    python bench/features.py [--data-dir data/synth-bench] [--minutes 20] [--device cpu|cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
from common import timed

from audiotok.audio import load, resample
from audiotok.data.dataset import pad_sequences
from audiotok.data.features import MelSpectrogram
from audiotok.data.manifest import read_manifest
from audiotok.data.sampler import DurationBatchSampler
from audiotok.data.synth import CorpusConfig, build_corpus


def librosa_whisper_filters() -> np.ndarray:
    """The 80-bin Whisper filterbank (16 kHz, n_fft 400) as librosa makes it."""
    import librosa

    return librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)


def librosa_whisper_mel(wav: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Whisper's log-mel, one file at a time with librosa (what a typical data script does)."""
    import librosa

    spec = np.abs(librosa.stft(wav, n_fft=400, hop_length=160, window="hann", center=True, pad_mode="reflect"))
    mel = filters @ (spec[:, :-1] ** 2)
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def librosa_cosyvoice_filters() -> np.ndarray:
    """CosyVoice 2's flow mel filterbank (24 kHz, n_fft 1920, 80 bins up to 8 kHz), as librosa makes it."""
    import librosa

    return librosa.filters.mel(sr=24000, n_fft=1920, n_mels=80, fmax=8000.0)


def librosa_cosyvoice_mel(wav: np.ndarray, filters: np.ndarray, n_fft: int = 1920, hop: int = 480) -> np.ndarray:
    """CosyVoice 2's flow mel (matcha's ``mel_spectrogram``: reflect pad ``(n_fft - hop) / 2`` each side, no
    centring, ``sqrt(|X|^2 + 1e-9)``, ``ln(max(x, 1e-5))``), one file at a time with librosa."""
    import librosa

    pad = (n_fft - hop) // 2
    spec = librosa.stft(np.pad(wav, (pad, pad), mode="reflect"), n_fft=n_fft, hop_length=hop, center=False)
    mag = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    return np.log(np.maximum(filters @ mag, 1e-5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/synth-bench")
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-seconds", type=float, default=300.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    data = Path(args.data_dir)
    if not (data / "all.jsonl").exists():
        build_corpus(CorpusConfig(out_dir=str(data), minutes=args.minutes, seed=0))
    utts = read_manifest(data / "all.jsonl")
    wavs = []
    for u in utts:
        wav, sample_rate = load(u.audio, mono=True)
        wavs.append(resample(wav, sample_rate, 16000))
    hours = sum(w.shape[0] for w in wavs) / 16000 / 3600

    filters = librosa_whisper_filters()
    np_wavs = [w.numpy() for w in wavs]
    t_librosa = timed(lambda: [librosa_whisper_mel(w, filters) for w in np_wavs], args.repeats)

    mel = MelSpectrogram("whisper-80").to(args.device)
    sampler = DurationBatchSampler([w.shape[0] / 16000 for w in wavs], args.batch_seconds, shuffle=False)
    batches = [pad_sequences([wavs[i] for i in b]) for b in sampler.epoch_batches(0)]
    batches = [(a.to(args.device), n.to(args.device)) for a, n in batches]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def run_batched():
        with torch.inference_mode():
            for a, n in batches:
                mel(a, n)

    t_batched = timed(run_batched, args.repeats, sync)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(
        f"Whisper log-mel (80 bins) on {hours:.3f} h of synthetic speech ({len(wavs)} files), "
        f"{torch.get_num_threads()} threads, device {args.device} ({device_name}); best of {args.repeats}"
    )
    print("| method | seconds | audio hours / s | speed-up |")
    print("|---|---|---|---|")
    print(f"| librosa, per file (CPU) | {t_librosa:.3f} | {hours / t_librosa:.2f} | 1.0x |")
    print(
        f"| audiotok batched ({args.device}, {args.batch_seconds:g} s batches) | {t_batched:.3f} | "
        f"{hours / t_batched:.2f} | {t_librosa / t_batched:.1f}x |"
    )


if __name__ == "__main__":
    main()
