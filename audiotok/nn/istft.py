"""Inverse-STFT head (Vocos): per-frame log-magnitude and phase -> waveform by overlap-add, length-aware."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ISTFT(nn.Module):
    """Inverse STFT with Vocos' ``"same"`` padding: ``L`` frames give ``L * hop`` samples.

    ``torch.istft`` only supports ``center`` padding, so overlap-add is done with ``F.fold``, and the window
    envelope is computed per item from its own frame count, so that padded frames change nothing.
    """

    def __init__(self, n_fft: int, hop_length: int, win_length: int | None = None, padding: str = "same"):
        super().__init__()
        if padding not in ("same", "center"):
            raise ValueError("padding must be 'same' or 'center'")
        self.n_fft, self.hop_length = n_fft, hop_length
        self.win_length = win_length or n_fft
        self.padding = padding
        self.register_buffer("window", torch.hann_window(self.win_length))

    def forward(self, spec: torch.Tensor, frame_lens: torch.Tensor | None = None) -> torch.Tensor:
        """spec: (B, n_fft // 2 + 1, L) complex -> (B, L * hop) for "same" padding."""
        if self.padding == "center":
            return torch.istft(spec, self.n_fft, self.hop_length, self.win_length, self.window, center=True)
        B, _, L = spec.shape
        pad = (self.win_length - self.hop_length) // 2
        frames = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        out_size = (L - 1) * self.hop_length + self.win_length
        fold = dict(output_size=(1, out_size), kernel_size=(1, self.win_length), stride=(1, self.hop_length))
        y = F.fold(frames, **fold)[:, 0, 0, pad:-pad]
        weights = self.window.square()[None, :, None].expand(B if frame_lens is not None else 1, -1, L)
        if frame_lens is not None:
            valid = torch.arange(L, device=spec.device)[None, :] < frame_lens[:, None]
            weights = weights * valid[:, None, :]
        envelope = F.fold(weights, **fold)[:, 0, 0, pad:-pad]
        return y / envelope.clamp_min(1e-11)


class ISTFTHead(nn.Module):
    """Hidden frames (B, L, dim) -> waveform (B, L * hop): Linear to log-magnitude and phase, then ISTFT."""

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = ISTFT(n_fft, hop_length, n_fft, padding)

    def forward(self, x: torch.Tensor, frame_lens: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, dim); frame_lens: (B,) valid frames (later frames contribute nothing)."""
        x = self.out(x).float().transpose(1, 2)  # complex math in fp32, also under autocast
        log_mag, phase = x.chunk(2, dim=1)
        mag = torch.exp(log_mag).clamp(max=1e2)  # exp of a large log-magnitude would overflow
        spec = mag * (torch.cos(phase) + 1j * torch.sin(phase))
        if frame_lens is not None:
            valid = torch.arange(spec.shape[-1], device=spec.device)[None, :] < frame_lens[:, None]
            spec = spec * valid[:, None, :]
        return self.istft(spec, frame_lens)
