"""EnCodec's SEANet convolutional encoder (non-causal), as WavTokenizer uses it.

Convolutions pad asymmetrically (reflect by default) and add right padding so the last frame is complete: an
input of ``T`` samples gives ``ceil(T / hop)`` frames, ``hop = prod(ratios)``. Module names follow the released
layout (``model.<i>``, ``block``, ``shortcut``, ``lstm``) so official weights map by a rename of weight-norm keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from audiotok.nn.masks import reflect_pad_per_item


@dataclass
class SEANetConfig:
    """SEANet encoder hyper-parameters (defaults: WavTokenizer's encoder, 75 frames/s at 24 kHz)."""

    n_filters: int = 32  # channels after the first conv; doubled at every downsampling
    ratios: tuple[int, ...] = (8, 5, 4, 2)  # listed decoder-first, as released; the encoder applies them reversed
    latent_dim: int = 512
    n_residual_layers: int = 1
    lstm_layers: int = 2  # 0 = no LSTM
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2  # residual block bottleneck factor
    true_skip: bool = False  # False: 1x1 conv shortcut in residual blocks
    weight_norm: bool = True
    pad_mode: str = "reflect"

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)


def _pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """F.pad that also reflect-pads inputs shorter than the padding (zero-extends them first)."""
    if mode == "reflect":
        length = x.shape[-1]
        max_pad = max(left, right)
        if length <= max_pad:
            extra = max_pad - length + 1
            x = F.pad(x, (0, extra))
            return F.pad(x, (left, right), mode)[..., : x.shape[-1] + left + right - extra]
    return F.pad(x, (left, right), mode)


class PaddedConv1d(nn.Module):
    """Conv1d with SEANet's non-causal padding: ``(k - 1) * d - (s - 1)`` samples split between the ends (the
    left end gets the odd one), plus right padding so the last window is complete."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        use_weight_norm: bool = True,
        pad_mode: str = "reflect",
    ):
        super().__init__()
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation)
        self.conv = weight_norm(conv) if use_weight_norm else conv
        self.pad_mode = pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, T) -> (B, C_out, ceil(T / stride))."""
        conv = self.conv
        k = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
        stride = conv.stride[0]
        padding_total = k - stride
        length = x.shape[-1]
        n_frames = (length - k + padding_total) / stride + 1
        extra = (math.ceil(n_frames) - 1) * stride + (k - padding_total) - length
        right = padding_total // 2
        return conv(_pad1d(x, padding_total - right, right + extra, self.pad_mode))


class ResidualBlock(nn.Module):
    """ELU -> conv k -> ELU -> conv 1, plus a (1x1 conv) shortcut."""

    def __init__(self, dim: int, config: SEANetConfig, dilation: int):
        super().__init__()
        hidden = dim // config.compress
        c = config
        self.block = nn.Sequential(
            nn.ELU(),
            PaddedConv1d(
                dim,
                hidden,
                c.residual_kernel_size,
                dilation=dilation,
                use_weight_norm=c.weight_norm,
                pad_mode=c.pad_mode,
            ),
            nn.ELU(),
            PaddedConv1d(hidden, dim, 1, use_weight_norm=c.weight_norm, pad_mode=c.pad_mode),
        )
        self.shortcut = (
            nn.Identity()
            if c.true_skip
            else PaddedConv1d(dim, dim, 1, use_weight_norm=c.weight_norm, pad_mode=c.pad_mode)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class SkipLSTM(nn.Module):
    """Unidirectional LSTM over time with a skip connection: (B, C, T) -> (B, C, T)."""

    def __init__(self, dim: int, n_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(2, 0, 1)
        y, _ = self.lstm(x)
        return (y + x).permute(1, 2, 0)


class SEANetEncoder(nn.Module):
    """Waveform (B, 1, T) -> latent (B, latent_dim, ceil(T / hop))."""

    def __init__(self, config: SEANetConfig):
        super().__init__()
        self.config = c = config
        conv = dict(use_weight_norm=c.weight_norm, pad_mode=c.pad_mode)
        mult = 1
        layers: list[nn.Module] = [PaddedConv1d(1, c.n_filters, c.kernel_size, **conv)]
        for ratio in reversed(c.ratios):
            dim = mult * c.n_filters
            layers += [ResidualBlock(dim, c, dilation=c.dilation_base**j) for j in range(c.n_residual_layers)]
            layers += [nn.ELU(), PaddedConv1d(dim, dim * 2, ratio * 2, stride=ratio, **conv)]
            mult *= 2
        if c.lstm_layers:
            layers.append(SkipLSTM(mult * c.n_filters, c.lstm_layers))
        layers += [nn.ELU(), PaddedConv1d(mult * c.n_filters, c.latent_dim, c.last_kernel_size, **conv)]
        self.model = nn.Sequential(*layers)

        # model = [convs..., (LSTM), ELU, final conv]; the split lets padded batches match one-by-one exactly
        self._n_pre = len(layers) - (3 if c.lstm_layers else 2)
        self.tail_frames = self._receptive_frames()

    def _receptive_frames(self) -> int:
        """Latent frames at an item's end that the convolutions before the LSTM can see padding from."""
        field, jump = 1, 1
        for m in self.model[: self._n_pre].modules():
            if isinstance(m, nn.Conv1d):
                field += ((m.kernel_size[0] - 1) * m.dilation[0]) * jump
                jump *= m.stride[0]
        return math.ceil(field / self.config.hop_length) + 2

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """wav: (B, 1, T) or (B, T) -> (B, latent_dim, ceil(T / hop)).

        With ``wav_lens`` (B,), every item's valid frames equal those of encoding it alone: the frames near its
        end, which would see the batch padding through the convolutions, are recomputed from a short window of
        its own audio, and the last convolution reflect-pads at the item's own end.
        """
        if wav.dim() == 2:
            wav = wav.unsqueeze(1)
        T = wav.shape[-1]
        if wav_lens is None or bool((wav_lens == T).all()):
            return self.model(wav)
        hop = self.config.hop_length
        n_frames = torch.div(wav_lens + hop - 1, hop, rounding_mode="floor")
        h = self.model[: self._n_pre](wav)
        for i in (wav_lens < T).nonzero().flatten().tolist():
            n, length = int(n_frames[i]), int(wav_lens[i])
            start = max(0, n - 2 * self.tail_frames)  # far enough back that the window's own start is not seen
            tail = self.model[: self._n_pre](wav[i : i + 1, :, start * hop : length])
            keep = min(n, self.tail_frames) if start else n
            h[i, :, n - keep : n] = tail[0, :, -keep:]
        for layer in self.model[self._n_pre : -1]:  # LSTM (causal: padding after an item never reaches it), ELU
            h = layer(h)
        h = reflect_pad_per_item(h, n_frames, 0, 0)  # h: (B, C, L); beyond n_i: the item's own reflection
        z = self.model[-1](h)
        last_pad = self.model[-1].conv.kernel_size[0] // 2
        for i in (n_frames <= last_pad).nonzero().flatten().tolist():  # a few ms: reflection needs zero-extension
            z[i, :, : n_frames[i]] = self.model(wav[i : i + 1, :, : wav_lens[i]])[0]
        return z
