"""WavTokenizer-style codec: SEANet encoder -> one 4096-code VQ -> Vocos backbone with attention -> iSTFT head.

One second of 24 kHz audio becomes ``24000 / hop`` tokens (75 with hop 320, 40 with hop 600) from a single
codebook. Encoding and decoding are batched and padding-aware (``audiotok.nn.seanet``, ``audiotok.nn.vocos``): a
padded batch gives the same codes and audio as one-by-one, up to float rounding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from audiotok.audio import resample
from audiotok.codec.quantizer import Quantizer, QuantizerConfig
from audiotok.data.dataset import as_padded_batch
from audiotok.nn.istft import ISTFTHead
from audiotok.nn.masks import sequence_mask
from audiotok.nn.seanet import SEANetConfig, SEANetEncoder
from audiotok.nn.vocos import VocosBackbone, VocosConfig
from audiotok.registry import Pretrained
from audiotok.utils import sha256_file


@dataclass
class CodecConfig:
    """The whole codec. ``n_fft = 4 * hop`` and ``"same"`` padding, as released."""

    sample_rate: int = 24000
    encoder: SEANetConfig = field(default_factory=SEANetConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    decoder: VocosConfig = field(default_factory=VocosConfig)

    @property
    def hop_length(self) -> int:
        return self.encoder.hop_length

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def n_fft(self) -> int:
        return 4 * self.hop_length


def codec_config(name: str) -> CodecConfig:
    """Named configs: the released "small" models (``wavtokenizer-75``, ``wavtokenizer-40``), the bundled
    default's size (``small-75``), and ``tiny`` for tests."""
    if name == "wavtokenizer-75":
        return CodecConfig()
    if name == "wavtokenizer-40":
        return CodecConfig(encoder=SEANetConfig(ratios=(6, 5, 5, 4)))
    if name == "small-75":  # CPU-trainable: narrower encoder and decoder, same token rate and codebook
        return CodecConfig(
            encoder=SEANetConfig(n_filters=16, latent_dim=256, lstm_layers=1),
            quantizer=QuantizerConfig(dim=256, codebook_size=4096),
            decoder=VocosConfig(input_dim=256, dim=256, intermediate_dim=768, n_layers=4),
        )
    if name == "tiny":
        return CodecConfig(
            encoder=SEANetConfig(n_filters=4, latent_dim=16, lstm_layers=1),
            quantizer=QuantizerConfig(dim=16, codebook_size=64, kmeans_iters=5),
            decoder=VocosConfig(input_dim=16, dim=32, intermediate_dim=64, n_layers=1, n_groups=8),
        )
    raise ValueError(f"unknown codec config {name!r}; known: wavtokenizer-75, wavtokenizer-40, small-75, tiny")


class Codec(Pretrained, nn.Module):
    """The acoustic codec. Build from a :class:`CodecConfig`; load with :meth:`from_pretrained`: the bundled default
    (no argument), a bundled name (``codec``, ``codec-40``), one of our ``.safetensors`` or a folder holding
    ``model.safetensors``, an official WavTokenizer ``.ckpt`` (``config=`` its YAML, found beside it or built in for
    the released files), or a hub id (``novateur/WavTokenizer-large-speech-75token``; :mod:`audiotok.registry`)."""

    model_type = "audiotok-codec"
    registry_kind = "codec"
    config_class = CodecConfig

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = config
        self.encoder = SEANetEncoder(config.encoder)
        self.quantizer = Quantizer(config.quantizer)
        self.backbone = VocosBackbone(config.decoder)
        self.head = ISTFTHead(config.decoder.dim, config.n_fft, config.hop_length, padding="same")

    # ----------------------------------------------------------------------------------------------- properties
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def codebook_size(self) -> int:
        return self.config.quantizer.codebook_size

    @property
    def device(self) -> torch.device:
        return self.head.out.weight.device

    def code_lens(self, wav_lens: torch.Tensor) -> torch.Tensor:
        """``ceil(T / hop)`` frames for ``T`` samples."""
        return torch.div(wav_lens + self.hop_length - 1, self.hop_length, rounding_mode="floor")

    # ------------------------------------------------------------------------------------------------- building
    def latents(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) audio -> encoder latents (B, dim, L) and their lengths (B,)."""
        wav = wav * sequence_mask(wav_lens, wav.shape[-1]).to(wav)
        z = self.encoder(wav.unsqueeze(1), wav_lens)
        return z, self.code_lens(wav_lens)

    def decode_latents(
        self, zq: torch.Tensor, code_lens: torch.Tensor | None = None, cond_id: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, dim, L) quantized latents -> (B, L * hop) audio (frames past ``code_lens`` contribute nothing)."""
        mask = None if code_lens is None else sequence_mask(code_lens, zq.shape[-1]).unsqueeze(1).to(zq)
        hidden = self.backbone(zq, cond_id, mask)
        return self.head(hidden, code_lens)

    def forward(
        self,
        wav: torch.Tensor,
        wav_lens: torch.Tensor | None = None,
        cond_id: torch.Tensor | None = None,
        quantize: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Training pass on (B, T) audio: ``{"audio", "codes", "code_lens", "commit"}``, ``audio`` (B, T).

        ``quantize=False`` feeds the decoder the continuous latents (VQ warm-up; the "unquantized" upper bound).
        """
        wav, wav_lens = as_padded_batch(wav, wav_lens)
        z, code_lens = self.latents(wav, wav_lens)
        if quantize:
            zq, codes, commit = self.quantizer(z, sequence_mask(code_lens, z.shape[-1]))
        else:
            zq, codes, commit = z, self.quantizer.encode(z.detach()), z.new_zeros(())
        audio = self.decode_latents(zq, code_lens, cond_id)[..., : wav.shape[-1]]
        return {"audio": audio, "codes": codes, "code_lens": code_lens, "commit": commit}

    # ------------------------------------------------------------------------------------------- the protocol
    @torch.inference_mode()
    def encode(
        self,
        wav: torch.Tensor | list[torch.Tensor],
        wav_lens: torch.Tensor | None = None,
        sample_rate: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio -> codes.

        Args:
            wav: (B, T), (B, 1, T), (T,) or a list of 1-D tensors, at ``sample_rate`` (default: the model's).
            wav_lens: (B,) valid samples per item when ``wav`` is a padded batch.
            sample_rate: rate of ``wav``; resampled to the model's rate when different.

        Returns:
            ``(codes, code_lens)``: (B, L) int64 and (B,) with ``L_b = ceil(T_b / hop)``.
        """
        wav, wav_lens = as_padded_batch(wav, wav_lens)
        wav, wav_lens = wav.to(self.device), wav_lens.to(self.device)
        if sample_rate is not None and sample_rate != self.sample_rate:
            wav = resample(wav, sample_rate, self.sample_rate)
            wav_lens = torch.div(wav_lens * self.sample_rate + sample_rate - 1, sample_rate, rounding_mode="floor")
        z, code_lens = self.latents(wav, wav_lens)
        codes = self.quantizer.encode(z)
        return codes.masked_fill(~sequence_mask(code_lens, codes.shape[-1]), 0), code_lens

    @torch.inference_mode()
    def decode(
        self, codes: torch.Tensor, code_lens: torch.Tensor | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes (B, L) -> audio.

        Args:
            codes: (B, L) or (L,) int.
            code_lens: (B,) valid codes per item.
            lengths: (B,) original sample counts; trims the output (else ``L_b * hop`` samples).

        Returns:
            ``(wav, wav_lens)``: (B, T) float32 at ``sample_rate`` and (B,).
        """
        if codes.dim() == 1:
            codes = codes.unsqueeze(0)
        codes = codes.to(self.device).long()
        if code_lens is None:
            code_lens = torch.full((codes.shape[0],), codes.shape[-1], dtype=torch.long, device=self.device)
        code_lens = code_lens.to(self.device)
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{codes.min()}, {codes.max()}]")
        zq = self.quantizer.decode(codes)
        wav = self.decode_latents(zq, code_lens)
        wav_lens = code_lens * self.hop_length
        if lengths is not None:
            wav_lens = torch.minimum(wav_lens, lengths.to(self.device).long())
            wav = wav[..., : int(wav_lens.max())]
        return wav * sequence_mask(wav_lens, wav.shape[-1]).to(wav), wav_lens

    @torch.inference_mode()
    def reconstruct(self, wav: torch.Tensor | list[torch.Tensor], wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """encode -> decode, trimmed to the input length: (B, T) -> (B, T)."""
        wav, wav_lens = as_padded_batch(wav, wav_lens)
        codes, code_lens = self.encode(wav, wav_lens)
        return self.decode(codes, code_lens, lengths=wav_lens)[0]

    # --------------------------------------------------------------------------------------------- checkpoints
    def save(self, path: str | os.PathLike, dtype: torch.dtype | None = None, extra: dict | None = None) -> Path:
        from audiotok.checkpoint import save_model

        return save_model(self, path, dtype=dtype, extra=extra)

    @classmethod
    def load_resolved(cls, resolved, device: str | torch.device = "cpu", config=None) -> Codec:
        """Read what :func:`audiotok.registry.resolve` found (``config``: an official checkpoint's YAML path, or
        its content as a dict)."""
        from audiotok.checkpoint import load_model

        path = resolved.path
        if path.suffix == ".ckpt" or config is not None:
            from audiotok.codec.official import load_wavtokenizer

            if config is None:
                raise ValueError("an official WavTokenizer .ckpt needs its YAML: from_pretrained(ckpt, config=yaml)")
            model = load_wavtokenizer(path, config).to(device)
        else:
            model = load_model(path, cls, device=device)
        model.weights_sha256 = sha256_file(path)  # identifies the model in token files
        return model
