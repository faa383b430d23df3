"""A small x-vector speaker-embedding model on Kaldi fbank, trained in the suite on the corpus voices.

It measures speaker similarity (cosine of embeddings) for the TTS evaluation: the prompt vs. the synthesized
speech, next to same-speaker and different-speaker reference values on real corpus recordings.

    (B, T) 16 kHz audio -> fbank (B, 80, N), mean-normalised per utterance -> TDNN frame layers (dilated 1-D
    convs) -> masked statistics pooling (mean, std) -> embedding (B, emb_dim) -> [speaker classifier, training]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiotok.audio import resample
from audiotok.data.dataset import as_padded_batch
from audiotok.data.features import KaldiFbank
from audiotok.nn.masks import sequence_mask
from audiotok.registry import Pretrained


@dataclass
class SpeakerConfig:
    n_mels: int = 80
    channels: int = 256
    emb_dim: int = 128
    n_speakers: int = 0  # classifier size when trained (0: embedding only)


class SpeakerEncoder(Pretrained, nn.Module):
    """x-vector style: five TDNN layers (context 5, 3/dil 2, 3/dil 3, 1, 1), statistics pooling, embedding."""

    model_type = "audiotok-speaker"
    registry_kind = "speaker"  # from_pretrained(): the bundled ``speaker``, or any name or path the registry takes
    config_class = SpeakerConfig
    sample_rate = 16000

    def __init__(self, config: SpeakerConfig):
        super().__init__()
        self.config = c = config
        self.fbank = KaldiFbank()
        spec = [(c.n_mels, 5, 1), (c.channels, 3, 2), (c.channels, 3, 3), (c.channels, 1, 1), (c.channels, 1, 1)]
        self.frames = nn.ModuleList(
            nn.Conv1d(i, c.channels, k, dilation=d, padding=d * (k - 1) // 2) for i, k, d in spec
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(c.channels) for _ in spec)
        self.embed = nn.Linear(2 * c.channels, c.emb_dim)
        self.classifier = nn.Linear(c.emb_dim, c.n_speakers) if c.n_speakers else None

    def features(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) 16 kHz -> mean-normalised fbank (B, n_mels, N) and frame counts."""
        feats, lens = self.fbank(wav * 32768.0, wav_lens)
        mask = sequence_mask(lens, feats.shape[-1])[:, None].to(feats)
        mean = (feats * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp_min(1)
        return (feats - mean) * mask, lens

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
        """(B, T) 16 kHz audio -> embeddings (B, emb_dim)."""
        x, lens = self.features(wav, wav_lens)
        mask = sequence_mask(lens, x.shape[-1])[:, None].to(x)
        for conv, norm in zip(self.frames, self.norms, strict=True):
            x = norm(F.relu(conv(x * mask)))
        n = mask.sum(-1).clamp_min(1)
        mean = (x * mask).sum(-1) / n
        std = (((x - mean[..., None]) ** 2 * mask).sum(-1) / n).clamp_min(1e-6).sqrt()
        return self.embed(torch.cat([mean, std], dim=-1))

    @torch.no_grad()
    def embed_audio(self, wavs: list[torch.Tensor] | torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
        """Unit-norm embeddings (B, emb_dim) of 1-D waveforms at ``sample_rate``."""
        if isinstance(wavs, list):
            wavs = [resample(w.float().reshape(-1), sample_rate, self.sample_rate) for w in wavs]
        wav, lens = as_padded_batch(wavs, None)
        device = self.embed.weight.device
        return F.normalize(self(wav.to(device), lens.to(device)), dim=-1)

    def similarity(self, a: list[torch.Tensor], b: list[torch.Tensor], sample_rate: int = 16000) -> torch.Tensor:
        """Cosine similarity of pairs (a[i], b[i]): (B,)."""
        return (self.embed_audio(a, sample_rate) * self.embed_audio(b, sample_rate)).sum(-1)

    def save(self, path: str | os.PathLike) -> Path:
        from audiotok.checkpoint import save_model

        return save_model(self, path)
