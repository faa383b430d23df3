"""S3-style supervised semantic tokenizer, compatible with the released S3Tokenizer models (CosyVoice).

* **v1** (``speech_tokenizer_v1`` 50 Hz, ``speech_tokenizer_v1_25hz``): Whisper-style encoder — two convs (the
  first with stride 1 or 2, the second stride 2), sinusoidal absolute positions, 6 pre-LN blocks of dim 1280 —
  and a 4096-code VQ on L2-normalised features.
* **v2** (``speech_tokenizer_v2_25hz``): convs with stride 2 and 2, rotary attention with an FSMN memory block
  (depthwise conv over the values), and FSQ with 8 dims x 3 levels = 6561 codes.

Front end: Whisper's 128-bin log-mel at 16 kHz, computed batched on the device (``audiotok.data.features``).
Padding never reaches a valid frame (masked convs, -1e10 attention bias), so batched == one-by-one; audio over
30 s is cut into 30 s windows with 4 s overlap and merged as the reference does. Module names follow the
released state dicts, so an official checkpoint (the state dict of the ``s3tokenizer`` package's model) loads
with ``load_state_dict(strict=True)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiotok.audio import resample
from audiotok.data.dataset import as_padded_batch
from audiotok.data.features import MelSpectrogram, whisper_mel
from audiotok.nn.masks import sequence_mask
from audiotok.nn.quantizers import FSQ, NormalizedVQ
from audiotok.registry import Pretrained

SAMPLE_RATE = 16000
MAX_FRAMES = 3000  # 30 s of mel frames: longer audio goes through overlapping windows
WINDOW_OVERLAP_S = 4


@dataclass
class S3Config:
    """Architecture of an S3 tokenizer (defaults: the released v2)."""

    version: str = "v2"  # "v1": abs. positions + normalised VQ; "v2": RoPE + FSMN + FSQ
    n_mels: int = 128
    n_ctx: int = 1500  # v1 positional table length (30 s at 50 Hz)
    dim: int = 1280
    n_heads: int = 20
    n_layers: int = 6
    conv1_stride: int = 2  # 1: 50 Hz tokens, 2: 25 Hz
    codebook_size: int = 6561  # v1: VQ size; v2: 3 ** fsq_dims
    fsq_dims: int = 8
    fsmn_kernel: int = 31
    rope_max: int = 2048
    attn_ln_eps: float = 1e-5
    quantizer: str | None = None  # None: by version (v1 "vq", v2 "fsq")
    pool: int = 1  # encoder frames averaged per token (our supervised tokenizers: 2 = 25 Hz from 50 Hz)
    whisper_context: bool = False  # our supervised tokenizers: Whisper's fixed context, no masks (as trained)
    subtract_positions: bool = False  # v1 only: quantize the hidden less the input positional embedding

    @property
    def frame_rate(self) -> float:
        return 100.0 / (2 * self.conv1_stride * self.pool)

    @property
    def quantizer_kind(self) -> str:
        return self.quantizer or ("vq" if self.version == "v1" else "fsq")


OFFICIAL = {
    "speech_tokenizer_v1": S3Config(version="v1", conv1_stride=1, codebook_size=4096),
    "speech_tokenizer_v1_25hz": S3Config(version="v1", conv1_stride=2, codebook_size=4096),
    "speech_tokenizer_v2_25hz": S3Config(version="v2", conv1_stride=2, codebook_size=6561),
}


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's sinusoidal position table (length, channels)."""
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2))
    t = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def rope_tables(head_dim: int, length: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (length, head_dim) for rotate-half RoPE (frequencies repeated over both halves)."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim))
    angles = torch.outer(torch.arange(length).float(), freqs)
    cis = torch.polar(torch.ones_like(angles), angles)
    cos, sin = cis.real, cis.imag
    return torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class S3Attention(nn.Module):
    """Multi-head attention with q and k each scaled by head_dim^-1/4 (Whisper); v2 adds RoPE and an FSMN
    memory (depthwise conv over the masked values, plus the values) to the output."""

    def __init__(self, config: S3Config):
        super().__init__()
        d = config.dim
        self.n_heads = config.n_heads
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        self.fsmn = config.version == "v2"
        if self.fsmn:
            self.fsmn_block = nn.Conv1d(d, d, config.fsmn_kernel, groups=d, bias=False)
            self.fsmn_pad = ((config.fsmn_kernel - 1) // 2, config.fsmn_kernel - 1 - (config.fsmn_kernel - 1) // 2)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        """x: (B, L, D); bias: (B, 1, 1, L) additive; mask: (B, L, 1) float; rope: cos/sin (L, head_dim)."""
        B, L, D = x.shape
        q, k, v = (proj(x).view(B, L, self.n_heads, -1) for proj in (self.query, self.key, self.value))
        if rope is not None:
            cos, sin = (t[None, :, None, :].to(x.dtype) for t in rope)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        scale = (D // self.n_heads) ** -0.25
        qk = (q.permute(0, 2, 1, 3) * scale) @ (k.permute(0, 2, 3, 1) * scale) + bias
        w = torch.softmax(qk.float(), dim=-1).to(q.dtype)
        out = self.out((w @ v.permute(0, 2, 1, 3)).permute(0, 2, 1, 3).reshape(B, L, D))
        if self.fsmn:
            vm = v.reshape(B, L, D) * mask
            memory = self.fsmn_block(F.pad(vm.transpose(1, 2), self.fsmn_pad)).transpose(1, 2)
            out = out + (memory + vm) * mask
        return out


class S3Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, config: S3Config):
        super().__init__()
        self.attn = S3Attention(config)
        self.attn_ln = nn.LayerNorm(config.dim, eps=config.attn_ln_eps)
        self.mlp = nn.Sequential(
            nn.Linear(config.dim, 4 * config.dim), nn.GELU(), nn.Linear(4 * config.dim, config.dim)
        )
        self.mlp_ln = nn.LayerNorm(config.dim)

    def forward(self, x, bias, mask, rope):
        x = x + self.attn(self.attn_ln(x), bias, mask, rope)
        return x + self.mlp(self.mlp_ln(x))


class S3Encoder(nn.Module):
    """Log-mel (B, n_mels, T) -> hidden (B, L, dim) at 50 or 25 Hz, with lengths."""

    def __init__(self, config: S3Config):
        super().__init__()
        self.config = c = config
        self.conv1 = nn.Conv1d(c.n_mels, c.dim, 3, stride=c.conv1_stride, padding=1)
        self.conv2 = nn.Conv1d(c.dim, c.dim, 3, stride=2, padding=1)
        if c.version == "v1":
            self.register_buffer("positional_embedding", sinusoids(c.n_ctx, c.dim))
        else:
            cos, sin = rope_tables(c.dim // c.n_heads, c.rope_max)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.blocks = nn.ModuleList([S3Block(c) for _ in range(c.n_layers)])

    def output_lens(self, mel_lens: torch.Tensor) -> torch.Tensor:
        lens = torch.div(mel_lens - 1, self.config.conv1_stride, rounding_mode="floor") + 1
        return torch.div(lens - 1, 2, rounding_mode="floor") + 1

    def forward(self, mel: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        x = F.gelu(self.conv1(mel * sequence_mask(mel_lens, mel.shape[-1]).unsqueeze(1)))
        lens1 = torch.div(mel_lens - 1, c.conv1_stride, rounding_mode="floor") + 1
        x = F.gelu(self.conv2(x * sequence_mask(lens1, x.shape[-1]).unsqueeze(1)))
        lens = self.output_lens(mel_lens)
        valid = sequence_mask(lens, x.shape[-1])
        x = x.transpose(1, 2)
        bias = (1.0 - valid.to(x.dtype))[:, None, None, :] * -1.0e10
        if c.whisper_context:  # trained as Whisper is: every frame of the fixed context attends to every other
            bias = torch.zeros_like(bias)
        mask = valid.to(x.dtype).unsqueeze(-1)
        rope = None
        if c.version == "v1":
            if x.shape[1] > c.n_ctx:
                raise ValueError(f"{x.shape[1]} frames exceed the positional table ({c.n_ctx}); use windows")
            x = x + self.positional_embedding[: x.shape[1]]
        else:
            rope = (self.rope_cos[: x.shape[1]], self.rope_sin[: x.shape[1]])
        for block in self.blocks:
            x = block(x, bias, mask, rope)
        return x, lens


class SemanticTokenizer(Pretrained, nn.Module):
    """Speech (16 kHz, or any rate with ``sample_rate=``) -> semantic tokens."""

    model_type = "audiotok-s3"
    registry_kind = "semantic"
    config_class = S3Config

    def __init__(self, config: S3Config):
        super().__init__()
        self.config = config
        self.encoder = S3Encoder(config)
        self.quantizer = (
            NormalizedVQ(config.dim, config.codebook_size)
            if config.quantizer_kind == "vq"
            else FSQ(config.dim, config.fsq_dims)
        )
        self.mel = MelSpectrogram(whisper_mel(config.n_mels))

    sample_rate = SAMPLE_RATE

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def device(self) -> torch.device:
        return self.encoder.conv1.weight.device

    def _pool(self, hidden: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.config.pool
        if p == 1:
            return hidden, lens
        pooled = F.avg_pool1d(hidden.transpose(1, 2), p, ceil_mode=True).transpose(1, 2)
        return pooled, torch.div(lens + p - 1, p, rounding_mode="floor")

    def _quantize_whisper_context(self, mel: torch.Tensor, mel_lens: torch.Tensor):
        """Our supervised tokenizers: each item in chunks of the fixed context, padded with Whisper's floor
        (peak - 2), no masks — exactly as trained."""
        n = 2 * self.config.n_ctx
        chunks, owner = [], []
        for b in range(mel.shape[0]):
            item = mel[b, :, : mel_lens[b]]
            floor = item.max() - 2.0
            for s in range(0, max(1, item.shape[-1]), n):
                part = item[:, s : s + n]
                chunks.append(F.pad(part, (0, n - part.shape[-1]), value=float(floor)))
                owner.append((b, part.shape[-1]))
        full = torch.full((len(chunks),), n, device=mel.device)
        hidden, lens = self.encoder(torch.stack(chunks), full)
        if self.config.subtract_positions:
            hidden = hidden - self.encoder.positional_embedding[: hidden.shape[1]]
        hidden, lens = self._pool(hidden, lens)
        codes = self.quantizer.encode(hidden)
        per_item: dict[int, list[torch.Tensor]] = {}
        for i, (b, frames) in enumerate(owner):
            keep = int(self._pool(hidden[:1], self.encoder.output_lens(torch.tensor([frames])))[1])
            per_item.setdefault(b, []).append(codes[i, :keep])
        out = [torch.cat(per_item[b]) for b in range(mel.shape[0])]
        out_lens = torch.tensor([len(o) for o in out], device=mel.device)
        padded = torch.zeros(len(out), int(out_lens.max()), dtype=torch.long, device=mel.device)
        for b, o in enumerate(out):
            padded[b, : len(o)] = o
        return padded, out_lens

    def quantize(self, mel: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel (B, n_mels, T) with lengths -> codes (B, L), code_lens (B,); over 30 s: windows."""
        if self.config.whisper_context:
            return self._quantize_whisper_context(mel, mel_lens)
        if bool((mel_lens <= MAX_FRAMES).all()):
            hidden, lens = self._pool(*self.encoder(mel[..., : int(mel_lens.max())], mel_lens))
            return self.quantizer.encode(hidden), lens
        return self._quantize_windows(mel, mel_lens)

    def _quantize_windows(self, mel: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's long-audio path: 30 s windows every 26 s, each padded to 30 s, run as one batch;
        2 s of tokens dropped at every inner window edge."""
        stride = MAX_FRAMES - WINDOW_OVERLAP_S * 100
        segments, lens, owner = [], [], []
        for b in range(mel.shape[0]):
            n = int(mel_lens[b])
            starts = [0] if n <= MAX_FRAMES else list(range(0, n, stride))
            for s in starts:
                seg = mel[b, :, s : min(s + MAX_FRAMES, n)]
                lens.append(seg.shape[-1])
                segments.append(F.pad(seg, (0, MAX_FRAMES - seg.shape[-1])))
                owner.append((b, len(starts)))
        hidden, code_lens = self.encoder(torch.stack(segments), torch.tensor(lens, device=mel.device))
        codes = self.quantizer.encode(hidden)
        drop = (WINDOW_OVERLAP_S // 2) * int(self.frame_rate)
        merged: dict[int, list[torch.Tensor]] = {}
        index: dict[int, int] = {}
        for i, (b, n_windows) in enumerate(owner):
            c = codes[i, : code_lens[i]]
            k = index.get(b, 0)
            index[b] = k + 1
            if n_windows > 1:
                c = c[(drop if k > 0 else 0) : (len(c) - drop if k < n_windows - 1 else len(c))]
            merged.setdefault(b, []).append(c)
        out = [torch.cat(merged[b]) for b in range(mel.shape[0])]
        out_lens = torch.tensor([len(o) for o in out], device=mel.device)
        padded = torch.zeros(len(out), int(out_lens.max()), dtype=torch.long, device=mel.device)
        for b, o in enumerate(out):
            padded[b, : len(o)] = o
        return padded, out_lens

    @torch.inference_mode()
    def encode(
        self,
        wav: torch.Tensor | list[torch.Tensor],
        wav_lens: torch.Tensor | None = None,
        sample_rate: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio -> tokens. ``wav``: a list of 1-D tensors, or (B, T) with ``wav_lens``, at ``sample_rate``
        (default 16 kHz). Returns ``(codes (B, L) int64, code_lens (B,))``."""
        wav, wav_lens = as_padded_batch(wav, wav_lens)
        wav, wav_lens = wav.to(self.device), wav_lens.to(self.device)
        if sample_rate is not None and sample_rate != SAMPLE_RATE:
            wav = resample(wav, sample_rate, SAMPLE_RATE)
            wav_lens = torch.div(wav_lens * SAMPLE_RATE + sample_rate - 1, sample_rate, rounding_mode="floor")
        mel, mel_lens = self.mel(wav, wav_lens)
        codes, code_lens = self.quantize(mel, mel_lens)
        return codes.masked_fill(~sequence_mask(code_lens, codes.shape[-1]), 0), code_lens

    def save(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Our self-describing checkpoint (safetensors with the config in the header)."""
        from audiotok.checkpoint import save_model

        return save_model(self, path, dtype=dtype)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        official: str | None = None,
    ) -> SemanticTokenizer:
        """Anything :mod:`audiotok.registry` resolves to a semantic tokenizer: our checkpoint (default: the bundled
        ``semantic``), an official name (``speech_tokenizer_v2_25hz``, from the s3tokenizer cache), a released
        ``.onnx`` path, or a hub id (``FunAudioLLM/CosyVoice2-0.5B``). With ``official`` (one of :data:`OFFICIAL`)
        a ``.pt`` is the state dict saved from the ``s3tokenizer`` package's model (its ``onnx2torch`` output), and
        ``from_pretrained(official=NAME)`` alone is ``from_pretrained(NAME)``."""
        if official is not None and official not in OFFICIAL:
            raise ValueError(f"unknown official tokenizer {official!r}; known: {sorted(OFFICIAL)}")
        name_or_path = official if name_or_path is None else name_or_path
        if official is None or Path(str(name_or_path)).suffix != ".pt":
            return super().from_pretrained(name_or_path, device, revision, cache_dir, official=official)
        return cls.from_state_dict(name_or_path, official, device)

    @classmethod
    def from_state_dict(
        cls, path: str | os.PathLike, official: str, device: str | torch.device = "cpu"
    ) -> SemanticTokenizer:
        """The official ``official`` architecture with a state dict saved from the ``s3tokenizer`` package's model."""
        from audiotok.checkpoint import load_pickled
        from audiotok.utils import sha256_file

        model = cls(OFFICIAL[official])
        model.load_official_state_dict(load_pickled(path))
        model = model.to(device).eval()
        model.weights_sha256 = sha256_file(path)
        return model

    @classmethod
    def load_resolved(
        cls, resolved, device: str | torch.device = "cpu", official: str | None = None
    ) -> SemanticTokenizer:
        """Read what :func:`audiotok.registry.resolve` found: our checkpoint, or a released ``.onnx`` (``official``:
        its name, else told by its sha256 or its graph)."""
        from audiotok.checkpoint import load_model
        from audiotok.utils import sha256_file

        digest = sha256_file(resolved.path)
        if Path(resolved.path).suffix == ".onnx":
            from audiotok.semantic.official import load_s3_onnx

            model = load_s3_onnx(resolved.path, official, digest).to(device)
        else:
            model = load_model(resolved.path, cls, device=device)
        model.weights_sha256 = digest
        return model

    def load_official_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load the ``s3tokenizer`` package's state dict (same names, strict)."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("mel.")]
        if missing or unexpected:
            raise ValueError(
                f"not a {self.config.version} S3 tokenizer state dict: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
