"""Mel -> 24 kHz waveform: the codec's Vocos backbone and inverse-STFT head (shared modules, not a copy), fed
CosyVoice 2 mel (80 bins, hop 480, 50 frames/s) instead of codec latents; trained with the codec's discriminators
and losses.

Streaming (:meth:`Vocoder.stream`): mel arrives in chunks; audio is released up to ``lookahead`` frames before
the newest frame, each run re-reads ``context`` frames of the past, and consecutive releases are cross-faded over
``crossfade`` frames, so chunk joins are inaudible and the stream tracks the offline output closely (exactly,
once ``lookahead`` and ``context`` cover the network's receptive field).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from audiotok.data.features import MelConfig, cosyvoice2_mel
from audiotok.nn.istft import ISTFTHead
from audiotok.nn.masks import sequence_mask
from audiotok.nn.vocos import VocosBackbone, VocosConfig
from audiotok.registry import Pretrained


@dataclass
class VocoderConfig:
    sample_rate: int = 24000
    hop_length: int = 480
    backbone: VocosConfig = field(
        default_factory=lambda: VocosConfig(
            input_dim=80, dim=256, intermediate_dim=768, n_layers=6, n_cond_embeddings=0, attention=False
        )
    )

    @property
    def n_fft(self) -> int:
        return 4 * self.hop_length


def vocoder_config(name: str) -> VocoderConfig:
    if name == "small":
        return VocoderConfig()
    if name == "tiny":
        return VocoderConfig(
            hop_length=480,
            backbone=VocosConfig(
                input_dim=16, dim=32, intermediate_dim=64, n_layers=2, n_cond_embeddings=0, attention=False, dropout=0.0
            ),
        )
    raise ValueError(f"unknown vocoder config {name!r}; known: small, tiny")


def vocoder_mel(config: VocoderConfig) -> MelConfig:
    """The mel a vocoder reads: CosyVoice 2's (n_fft 4 x hop, 'same' padding, magnitude, ln) at its hop and bins."""
    return replace(
        cosyvoice2_mel(),
        sample_rate=config.sample_rate,
        n_mels=config.backbone.input_dim,
        hop_length=config.hop_length,
        n_fft=config.n_fft,
    )


class Vocoder(Pretrained, nn.Module):
    """Mel (B, n_mels, T) -> waveform (B, T * hop)."""

    model_type = "audiotok-tts-vocoder"
    registry_kind = "vocoder"  # from_pretrained(): a checkpoint path, or any name the registry takes
    config_class = VocoderConfig

    def __init__(self, config: VocoderConfig):
        super().__init__()
        self.config = config
        self.backbone = VocosBackbone(config.backbone)
        self.head = ISTFTHead(config.backbone.dim, config.n_fft, config.hop_length, padding="same")

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def forward(self, mel: torch.Tensor, mel_lens: torch.Tensor | None = None) -> torch.Tensor:
        mask = None if mel_lens is None else sequence_mask(mel_lens, mel.shape[-1]).unsqueeze(1).to(mel)
        return self.head(self.backbone(mel, None, mask), mel_lens)

    @torch.no_grad()
    def stream(
        self, chunks: Iterable[torch.Tensor], lookahead: int = 4, context: int = 24, crossfade: int = 1
    ) -> Iterator[torch.Tensor]:
        """Mel chunks (n_mels, t_i) of one utterance -> audio chunks (samples,), concatenating to the whole."""
        hop = self.config.hop_length
        mel = None
        released = 0  # frames whose audio has been yielded
        tail = None  # audio of the last run past its release point, for the cross-fade
        fade = torch.linspace(0, 1, crossfade * hop) if crossfade else None
        finished = False
        chunks = iter(chunks)
        while not finished:
            nxt = next(chunks, None)
            if nxt is None:
                finished = True
            else:
                mel = nxt if mel is None else torch.cat([mel, nxt], dim=-1)
            if mel is None:
                return
            n = mel.shape[-1]
            upto = n if finished else n - lookahead
            if upto <= released:
                continue
            start = max(0, released - context)
            wav = self(mel[None, :, start:n])[0]
            out = wav[(released - start) * hop : (upto - start) * hop]
            if tail is not None and fade is not None:
                k = min(len(tail), len(out), len(fade))
                out = out.clone()
                f = fade[:k].to(out.device)  # the audio may be on a GPU
                out[:k] = tail[:k] * (1 - f) + out[:k] * f
            tail = wav[(upto - start) * hop : (upto - start + crossfade) * hop]
            released = upto
            yield out

    def save(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        from audiotok.checkpoint import save_model

        return save_model(self, path, dtype=dtype)
