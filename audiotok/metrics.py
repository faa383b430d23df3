"""Objective audio metrics for reconstructions: PESQ (wide-band), STOI, SI-SNR, mel distance, MR-STFT distance.

All take a reference and an estimate as 1-D tensors at ``sample_rate`` (the estimate is cut or padded to the
reference length). PESQ runs at 16 kHz (wide-band), as WavTokenizer's evaluation does; STOI at the input rate.
"""

from __future__ import annotations

import numpy as np
import torch

from audiotok.audio import resample

PESQ_RATE = 16000


def _align(ref: torch.Tensor, est: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ref, est = ref.detach().float().cpu().reshape(-1), est.detach().float().cpu().reshape(-1)
    if est.shape[0] < ref.shape[0]:
        est = torch.nn.functional.pad(est, (0, ref.shape[0] - est.shape[0]))
    return ref, est[: ref.shape[0]]


def pesq_wb(ref: torch.Tensor, est: torch.Tensor, sample_rate: int) -> float:
    """Wide-band PESQ at 16 kHz (NaN when PESQ finds no utterance, e.g. silence)."""
    from pesq import NoUtterancesError, pesq

    ref, est = _align(ref, est)
    r = resample(ref, sample_rate, PESQ_RATE).numpy().astype(np.float64)
    e = resample(est, sample_rate, PESQ_RATE).numpy().astype(np.float64)
    try:
        return float(pesq(PESQ_RATE, r, e, "wb"))
    except NoUtterancesError:
        return float("nan")


def stoi(ref: torch.Tensor, est: torch.Tensor, sample_rate: int) -> float:
    """Short-time objective intelligibility (classic, not extended)."""
    from pystoi import stoi as _stoi

    ref, est = _align(ref, est)
    return float(_stoi(ref.numpy(), est.numpy(), sample_rate, extended=False))


def si_snr(ref: torch.Tensor, est: torch.Tensor) -> float:
    """Scale-invariant SNR in dB."""
    ref, est = _align(ref, est)
    ref, est = ref - ref.mean(), est - est.mean()
    target = (est @ ref) / (ref @ ref).clamp_min(1e-12) * ref
    noise = est - target
    return float(10 * torch.log10((target @ target).clamp_min(1e-12) / (noise @ noise).clamp_min(1e-12)))


def mel_distance(ref: torch.Tensor, est: torch.Tensor, sample_rate: int) -> float:
    """Mean |log-mel difference| with the codec's training mel (Vocos: 100 bins, hop 256 at 24 kHz)."""
    from audiotok.nn.losses import MelLoss

    ref, est = _align(ref, est)
    return float(MelLoss(sample_rate)(est[None], ref[None]))


def stft_distance(ref: torch.Tensor, est: torch.Tensor) -> float:
    """Multi-resolution STFT distance (spectral convergence + log-magnitude L1)."""
    from audiotok.nn.losses import multi_resolution_stft_distance

    ref, est = _align(ref, est)
    return float(multi_resolution_stft_distance(est[None], ref[None])[0])


def reconstruction_metrics(ref: torch.Tensor, est: torch.Tensor, sample_rate: int) -> dict[str, float]:
    """All of the above for one utterance."""
    return {
        "pesq": pesq_wb(ref, est, sample_rate),
        "stoi": stoi(ref, est, sample_rate),
        "mel_distance": mel_distance(ref, est, sample_rate),
        "stft_distance": stft_distance(ref, est),
        "si_snr": si_snr(ref, est),
    }


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-key mean over rows, ignoring NaN."""
    keys = rows[0].keys() if rows else []
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
