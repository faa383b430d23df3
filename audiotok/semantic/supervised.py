"""The trainable supervised semantic tokenizer (CosyVoice's recipe): a quantizer inserted into a Whisper encoder
after block ``k``, trained with the ASR loss of the Whisper decoder.

    mel -> conv1, conv2, positions -> blocks[:k] -> (average-pool to 25 Hz) -> quantizer
        -> (repeat back to 50 Hz) + extra positional encoding -> blocks[k:] -> ln_post -> ASR decoder

Quantizers: FSQ as released in S3Tokenizer v2 (8 projections, tanh x 0.999, round, base-3 index, straight-through
gradients, plus a trainable up-projection), or a VQ with an EMA codebook on L2-normalised features (v1 style,
``vector-quantize-pytorch``: cosine k-means start, dead-code replacement; codewords scaled back to the features'
norm). :meth:`export_tokenizer` writes the tokenizer
half (everything up to the quantizer) as a :class:`~audiotok.semantic.s3.SemanticTokenizer` checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from whisper.model import ModelDimensions, Whisper

from audiotok.registry import Pretrained
from audiotok.semantic.s3 import S3Config, SemanticTokenizer, sinusoids
from audiotok.whisper import (
    CTC_CHARS,
    asr_loss,
    character_ctc_loss,
    new_whisper,
    restricted_vocab,
    small_dims,
    text_unit,
)


@dataclass
class SupervisedConfig:
    """Whisper dims (``audiotok.whisper.small_dims`` arguments) and where/how to quantize."""

    n_mels: int = 128
    seconds: float = 10.0
    n_state: int = 256
    n_head: int = 4
    n_layer: int = 4
    n_text_ctx: int = 128
    n_text_layer: int | None = None  # decoder blocks (default: n_layer)
    quantize_after: int = 2  # encoder blocks before the quantizer
    pool: int = 2  # 50 Hz encoder frames merged per token (2 = 25 Hz)
    quantizer: str = "fsq"  # "fsq" (6561 codes) or "vq"
    codebook_size: int = 4096  # vq only
    fsq_dims: int = 8
    vq_decay: float = 0.99
    # scale of the extra sinusoidal positional encoding added after the quantizer (CosyVoice). 0 for a pretrained
    # Whisper: its blocks above already read positions from the features, and the extra encoding at full scale
    # (as large as the features themselves) raised base's ASR loss after block 3 from 0.51 to 4.90 nats per token
    # before any training (docs/results/2026-12-07-semantic-base.md)
    extra_position_scale: float = 1.0
    # quantize the blocks' output less Whisper's own input positional embedding and add that embedding back after
    # the quantizer at each frame's position: the codes spend nothing on position and the blocks above get exact
    # positions (Whisper's embedding in the role of CosyVoice's extra one; docs/results/2026-12-07-semantic-base.md)
    whisper_positions: bool = False
    text_unit: str = "bpe"  # how the ASR decoder spells (audiotok.whisper.text_unit)
    ctc: bool = False  # a character CTC head (training aid; not part of the tokenizer) ...
    ctc_input: str = "tokens"  # ... on the quantized tokens (25 Hz) or on the "encoder" output read from them (50 Hz)
    extra: dict = field(default_factory=dict)  # free notes (e.g. where the Whisper weights came from)

    def with_whisper_dims(self, whisper: Whisper) -> SupervisedConfig:
        """This config with the Whisper dims (and spelling) of ``whisper``, which a model built on it must have."""
        d = whisper.dims
        return replace(
            self,
            n_mels=d.n_mels,
            seconds=d.n_audio_ctx / 50,
            n_state=d.n_audio_state,
            n_head=d.n_audio_head,
            n_layer=d.n_audio_layer,
            n_text_ctx=d.n_text_ctx,
            n_text_layer=d.n_text_layer,
            text_unit=text_unit(whisper),
        )

    def dims(self) -> ModelDimensions:
        return small_dims(
            self.n_mels, self.seconds, self.n_state, self.n_head, self.n_layer, self.n_text_layer, self.n_text_ctx
        )


class TrainableFSQ(nn.Module):
    """S3Tokenizer-v2 FSQ with straight-through rounding and an up-projection for the rest of the network.

    Data-dependent start (like a VQ's k-means init): the first training batch sets the projections to the top
    principal directions of the features, scaled to unit variance, so that each of the 3 levels of every dimension is
    used about equally (|u| < 0.55 rounds to 0: 42% / 29% / 29% for u ~ N(0, 1)) and the up-projection reconstructs
    the features' principal part. From a random start, fine-tuning a trained Whisper collapsed to one code within 60
    steps (the decoder preferred a constant input to a noisy one)."""

    def __init__(self, dim: int, n_dims: int = 8):
        super().__init__()
        self.project_down = nn.Linear(dim, n_dims)
        self.project_up = nn.Linear(n_dims, dim)
        self.n_dims = n_dims
        self.codebook_size = 3**n_dims
        self.register_buffer("initted", torch.tensor(False))

    @torch.no_grad()
    def init_from(self, h: torch.Tensor) -> None:
        """PCA start from features h (..., dim) (averaged over DDP ranks)."""
        import torch.distributed as dist

        x = h.detach().reshape(-1, h.shape[-1]).float()
        stats = torch.cat([x.sum(0), (x.T @ x).flatten(), x.new_tensor([len(x)])])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        d = x.shape[-1]
        n = stats[-1]
        mean = stats[:d] / n
        cov = stats[d:-1].view(d, d) / n - torch.outer(mean, mean)
        eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
        scale = eigvals[-self.n_dims :].clamp_min(1e-8).sqrt()
        basis = eigvecs[:, -self.n_dims :]  # (dim, n_dims)
        down = (basis / scale).T
        self.project_down.weight.copy_(down)
        self.project_down.bias.copy_(-down @ mean)
        self.project_up.weight.copy_(basis * scale)
        self.project_up.bias.copy_(mean)
        self.initted.fill_(True)

    def forward(self, h: torch.Tensor):
        if self.training and not bool(self.initted):
            self.init_from(h)
        z = self.project_down(h).float().tanh() * 0.9990000128746033
        q = z + (z.round() - z).detach()
        powers = torch.pow(3, torch.arange(self.n_dims, device=h.device, dtype=z.dtype))
        codes = ((z.round() + 1) * powers).sum(-1).long()
        return self.project_up(q.to(h.dtype)), codes, h.new_zeros(())


class TrainableVQ(nn.Module):
    """EMA VQ on L2-normalised features (cosine similarity), v1 style, started by cosine k-means.

    The codewords are unit vectors; the blocks after the quantizer get them times a learned scale started at the
    features' mean norm (Whisper's pre-LN residual stream is not unit-norm: unscaled codewords put the ASR loss
    read through the tokens at 4.3 nats/character at the start instead of 1.2). :meth:`init_from` takes many
    batches' worth of features (the recipe gathers ``vq_init_frames``); a training step that finds it not done
    starts from its own batch."""

    def __init__(self, dim: int, codebook_size: int, decay: float, kmeans_iters: int = 20):
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.codebook_size = codebook_size
        self.kmeans_iters = kmeans_iters
        self.vq = VectorQuantize(
            dim=dim,
            codebook_size=codebook_size,
            decay=decay,
            use_cosine_sim=True,
            kmeans_init=True,
            kmeans_iters=kmeans_iters,
            threshold_ema_dead_code=0.5,
        )
        self.scale = nn.Parameter(torch.ones(()))

    @property
    def initialized(self) -> bool:
        return bool(self.vq._codebook.initted)

    @torch.no_grad()
    def init_from(self, h: torch.Tensor) -> None:
        """Cosine k-means over features h (N, dim); under DDP every rank takes rank 0's codebook and scale."""
        import torch.distributed as dist
        from vector_quantize_pytorch.vector_quantize_pytorch import kmeans

        x = F.normalize(h.detach().reshape(-1, h.shape[-1]).float(), dim=-1)
        if len(x) < self.codebook_size:  # k-means needs at least one sample per code
            reps = -(-self.codebook_size // len(x))
            x = F.normalize(x.repeat(reps, 1) + 1e-3 * torch.randn(reps * len(x), x.shape[1], device=x.device), dim=-1)
        means, _ = kmeans(x[None], self.codebook_size, self.kmeans_iters, use_cosine_sim=True)
        scale = h.detach().float().norm(dim=-1).mean().reshape(())
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(means, 0)
            dist.broadcast(scale, 0)
        cb = self.vq._codebook
        cb.embed.data.copy_(means)
        cb.embed_avg.data.copy_(means)
        cb.cluster_size.data.fill_(1.0)
        cb.initted.data.fill_(True)
        self.scale.data.copy_(scale)

    def forward(self, h: torch.Tensor):
        if self.training and not self.initialized:
            self.init_from(h)
        q, codes, loss = self.vq(h)
        return q * self.scale.to(q.dtype), codes, loss.sum()


class SupervisedTokenizerASR(Pretrained, nn.Module):
    """Whisper ASR with a quantizer inside its encoder."""

    model_type = "audiotok-s3-asr"
    registry_kind = "semantic-asr"
    config_class = SupervisedConfig

    def __init__(self, config: SupervisedConfig, whisper_model: Whisper | None = None):
        super().__init__()
        self.config = c = config
        self.whisper = whisper_model or new_whisper(c.dims(), text_unit=c.text_unit)
        if text_unit(self.whisper) != c.text_unit:
            raise ValueError(f"the Whisper spells {text_unit(self.whisper)!r}, the config says {c.text_unit!r}")
        d = c.n_state
        self.quantizer = (
            TrainableFSQ(d, c.fsq_dims) if c.quantizer == "fsq" else TrainableVQ(d, c.codebook_size, c.vq_decay)
        )
        self.register_buffer("extra_positions", sinusoids(c.dims().n_audio_ctx, d), persistent=False)
        if c.ctc_input not in ("tokens", "encoder"):
            raise ValueError(f"ctc_input must be 'tokens' or 'encoder', not {c.ctc_input!r}")
        self.ctc = nn.Linear(d, len(CTC_CHARS) + 1) if c.ctc else None
        # a character Whisper from our recipe: the ASR loss runs on its 77 logits (exact, see restricted_vocab)
        self.vocab = restricted_vocab(self.whisper)

    def encode_below(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, n_mels, 2 * n_audio_ctx) -> output of the blocks below the quantizer (B, L, d), 50 Hz."""
        enc = self.whisper.encoder
        x = F.gelu(enc.conv2(F.gelu(enc.conv1(mel)))).permute(0, 2, 1)
        x = x + enc.positional_embedding
        for block in enc.blocks[: self.config.quantize_after]:
            x = block(x)
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, d) -> (B, L / pool, d): average pooling to the token rate."""
        if self.config.pool > 1:
            x = F.avg_pool1d(x.transpose(1, 2), self.config.pool, ceil_mode=True).transpose(1, 2)
        return x

    def to_quantizer_input(self, below: torch.Tensor) -> torch.Tensor:
        """Output of the blocks below (B, L, d) -> the quantizer's input (B, L / pool, d)."""
        if self.config.whisper_positions:
            below = below - self.whisper.encoder.positional_embedding[: below.shape[1]]
        return self.pool(below)

    def tokenize_hidden(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, n_mels, 2 * n_audio_ctx) -> hidden before the quantizer (B, L / pool, d)."""
        return self.to_quantizer_input(self.encode_below(mel))

    def forward(
        self, mel: torch.Tensor, texts: list[str], label_smoothing: float = 0.0, token_noise: float = 0.0
    ) -> dict[str, torch.Tensor]:
        """ASR loss through the quantized bottleneck: ``{"asr", "commit", "codes", "features", "below"}``
        (``features``: the encoder output computed from the tokens, (B, n_audio_ctx, d); ``below``: the output of the
        blocks below the quantizer, (B, n_audio_ctx, d)), plus ``"ctc"`` with the CTC head (character CTC of
        the quantized tokens or of that encoder output, ``config.ctc_input``). ``label_smoothing`` and
        ``token_noise`` as in :func:`audiotok.whisper.asr_loss` (training aids)."""
        below = self.encode_below(mel)
        q, codes, commit = self.quantizer(self.to_quantizer_input(below))
        features = self.decode_tokens_to_features(q)
        asr = asr_loss(self.whisper, mel, texts, features, self.vocab, label_smoothing, token_noise)
        out = {"asr": asr, "commit": commit, "codes": codes, "features": features, "below": below}
        if self.ctc is not None:
            x = features if self.config.ctc_input == "encoder" else q
            log_probs = self.ctc(x).float().log_softmax(-1).transpose(0, 1)  # (T, B, C)
            out["ctc"] = character_ctc_loss(log_probs, texts)
        return out

    def decode_tokens_to_features(self, q: torch.Tensor) -> torch.Tensor:
        """Quantized hidden (B, L / pool, d) -> encoder output (B, L, d) for the ASR decoder."""
        enc = self.whisper.encoder
        L = enc.positional_embedding.shape[0]
        x = q.repeat_interleave(self.config.pool, dim=1)[:, :L]
        if self.config.extra_position_scale:
            x = x + self.config.extra_position_scale * self.extra_positions[:L]
        if self.config.whisper_positions:
            x = x + enc.positional_embedding[: x.shape[1]]
        for block in enc.blocks[self.config.quantize_after :]:
            x = block(x)
        return enc.ln_post(x)

    @torch.no_grad()
    def transcribe_from_tokens(self, mel: torch.Tensor) -> list[str]:
        """Greedy transcripts of mel (B, n_mels, 2 * n_audio_ctx) read through the quantized tokens."""
        from audiotok.whisper import transcribe

        q, _, _ = self.quantizer(self.tokenize_hidden(mel))
        return transcribe(self.whisper, mel, audio_features=self.decode_tokens_to_features(q))

    def export_tokenizer(self) -> SemanticTokenizer:
        """The tokenizer half as a SemanticTokenizer (Whisper blocks up to the quantizer, pooling, quantizer)."""
        c = self.config
        d = self.config.dims()
        s3 = S3Config(
            version="v1",
            n_mels=c.n_mels,
            n_ctx=d.n_audio_ctx,
            dim=c.n_state,
            n_heads=c.n_head,
            n_layers=c.quantize_after,
            conv1_stride=1,
            pool=c.pool,
            quantizer=c.quantizer,
            codebook_size=self.quantizer.codebook_size,
            fsq_dims=c.fsq_dims,
            whisper_context=True,
            subtract_positions=c.whisper_positions,
        )
        tok = SemanticTokenizer(s3)
        enc = self.whisper.encoder
        state = {
            f"encoder.{k}": v
            for k, v in enc.state_dict().items()
            if not k.startswith("ln_post") and _block_index(k) < c.quantize_after
        }
        if c.quantizer == "fsq":
            state["quantizer._codebook.project_down.weight"] = self.quantizer.project_down.weight
            state["quantizer._codebook.project_down.bias"] = self.quantizer.project_down.bias
        else:
            state["quantizer._codebook.embed"] = self.quantizer.vq._codebook.embed[0]
        tok.load_official_state_dict({k: v.detach().clone() for k, v in state.items()})
        return tok.eval()

    @torch.no_grad()
    def load_tokenizer(self, tok: SemanticTokenizer) -> None:
        """The inverse of :meth:`export_tokenizer`: a tokenizer half it wrote (e.g. the bundled ``semantic``) loaded
        into the conv stem, the blocks below the quantizer and the quantizer. The blocks above and the decoder keep
        what they hold (the starting Whisper's); a VQ codebook counts as started (no k-means), its output scale is
        not in the tokenizer and stays as it is (the recipe sets it from the features' norm)."""
        c, s3 = self.config, tok.config
        mine = (c.n_state, c.quantize_after, c.pool, c.quantizer, self.quantizer.codebook_size, c.whisper_positions)
        theirs = (s3.dim, s3.n_layers, s3.pool, s3.quantizer, s3.codebook_size, s3.subtract_positions)
        if mine != theirs or s3.version != "v1":
            raise ValueError(
                "the tokenizer does not fit this model: (dim, layers below, pool, quantizer, codes, whisper positions) "
                f"{theirs} vs {mine}"
            )
        state = tok.state_dict()
        enc = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
        enc.pop("positional_embedding", None)  # (the same sinusoids; the model's own table is the sliced one)
        missing, unexpected = self.whisper.encoder.load_state_dict(enc, strict=False)
        missing = [
            k
            for k in missing
            if not (k.startswith("ln_post") or k == "positional_embedding" or _block_index(k) >= c.quantize_after)
        ]
        if missing or unexpected:
            raise ValueError(
                f"the tokenizer's state does not map onto the encoder: missing {missing[:3]}, extra {unexpected[:3]}"
            )
        if c.quantizer == "fsq":
            self.quantizer.project_down.weight.copy_(state["quantizer._codebook.project_down.weight"])
            self.quantizer.project_down.bias.copy_(state["quantizer._codebook.project_down.bias"])
            self.quantizer.initted.fill_(True)
        else:
            cb = self.quantizer.vq._codebook
            cb.embed.data[0].copy_(state["quantizer._codebook.embed"])
            cb.embed_avg.data.copy_(cb.embed.data)
            cb.cluster_size.data.fill_(1.0)
            cb.initted.data.fill_(True)


def _block_index(key: str) -> int:
    return int(key.split(".")[1]) if key.startswith("blocks.") else -1
