"""Whisper training losses: the teacher-forced ASR cross-entropy with the sot sequence (exact on a character
model's few logits), the character CTC and the guided-attention prior used as training aids, and
:class:`WhisperWithCTC` (a Whisper with a CTC head, for training)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from whisper.model import Whisper

from audiotok.whisper.model import text_unit
from audiotok.whisper.text import IGNORE, char_vocab, corrupt_tokens, normalize, text_targets, tokenizer_for

if TYPE_CHECKING:
    from audiotok.whisper.training import WhisperTrainConfig


def decoder_logits(
    model: Whisper, tokens: torch.Tensor, audio_features: torch.Tensor, vocab: torch.Tensor | None = None
) -> torch.Tensor:
    """openai-whisper's decoder forward (no kv-cache): tokens (B, L), encoder output (B, T, d) -> logits
    (B, L, n_vocab), or only the columns of the token ids ``vocab`` (K,) -> (B, L, K)."""
    dec = model.decoder
    if vocab is None:
        return dec(tokens, audio_features)
    x = dec.token_embedding(tokens) + dec.positional_embedding[: tokens.shape[-1]]
    x = x.to(audio_features.dtype)
    for block in dec.blocks:
        x = block(x, audio_features, mask=dec.mask)
    x = dec.ln(x)
    return x @ dec.token_embedding.weight[vocab.to(x.device)].to(x.dtype).T


def char_training_vocab(tokenizer) -> torch.Tensor:
    """The K token ids a ``char`` model reads and writes: the characters, the task prefix and end-of-text. Every
    other row of its token embedding is kept at zero (:func:`zero_rows_outside`), which makes the cross-entropy
    over these K columns plus one constant column exact (:func:`restricted_cross_entropy`)."""
    specials = list(tokenizer.sot_sequence_including_notimestamps) + [tokenizer.eot]
    return torch.unique(torch.cat([char_vocab(tokenizer), torch.tensor(specials)]))


def restricted_vocab(model: Whisper) -> torch.Tensor | None:
    """The training vocabulary of a ``char`` model whose other token-embedding rows are all zero (so that
    :func:`restricted_cross_entropy` is exact for it), else None."""
    if text_unit(model) != "char":
        return None
    vocab = char_training_vocab(tokenizer_for(model))
    weight = model.decoder.token_embedding.weight
    return vocab if not bool(weight[_outside(weight, vocab)].any()) else None


def zero_rows_outside(model: Whisper, vocab: torch.Tensor) -> None:
    """Zero the token-embedding rows of ``model`` whose ids are not in ``vocab`` (in place, no gradient)."""
    weight = model.decoder.token_embedding.weight
    with torch.no_grad():
        weight[_outside(weight, vocab)] = 0


def _outside(weight: torch.Tensor, vocab: torch.Tensor) -> torch.Tensor:
    """(n_vocab,) mask of the embedding rows whose ids are not in ``vocab``."""
    outside = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
    outside[vocab.to(weight.device)] = False
    return outside


def restricted_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, vocab: torch.Tensor, n_vocab: int, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Exactly ``F.cross_entropy`` over all ``n_vocab`` logits (with label smoothing, ignoring -100 targets) when
    every token outside ``vocab`` has a zero embedding row, hence logit 0: those n_vocab - K logits enter the
    partition function as one column of log(n_vocab - K). ``logits`` (B, L, K) in ``vocab``'s order, ``targets``
    (B, L) token ids. For a character model this skips the (B, L, 51865) projection, most of a training step."""
    logits = logits.float()
    index = torch.full((n_vocab,), -1, dtype=torch.long, device=logits.device)
    index[vocab.to(logits.device)] = torch.arange(len(vocab), device=logits.device)
    valid = targets != IGNORE
    target_idx = index[targets.clamp_min(0)]
    if bool((valid & (target_idx < 0)).any()):
        bad = targets[valid & (target_idx < 0)].unique().tolist()
        raise ValueError(f"target tokens outside the training vocabulary: {bad}")
    rest = torch.full_like(logits[..., :1], math.log(n_vocab - len(vocab)))
    log_z = torch.cat([logits, rest], -1).logsumexp(-1)
    nll = log_z - logits.gather(-1, target_idx.clamp_min(0)[..., None])[..., 0]
    smooth = log_z - logits.sum(-1) / n_vocab  # mean over the vocabulary of -log p (the others' logits are 0)
    loss = (1 - label_smoothing) * nll + label_smoothing * smooth
    return loss[valid].sum() / valid.sum().clamp_min(1)


CTC_CHARS = " 'abcdefghijklmnopqrstuvwxyz0123456789"  # CTC heads' classes: blank = 0, then these


def character_ctc_loss(log_probs: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """Mean CTC loss of CTC log-probabilities (T, B, len(CTC_CHARS) + 1) over every frame against the normalised
    characters of ``texts`` (impossible alignments count zero: ``zero_infinity``)."""
    seqs = [[CTC_CHARS.index(c) + 1 for c in normalize(t) if c in CTC_CHARS] or [1] for t in texts]
    device = log_probs.device
    targets = torch.tensor([i for s in seqs for i in s], device=device)
    target_lens = torch.tensor([len(s) for s in seqs], device=device)
    frames = torch.full((len(texts),), log_probs.shape[0], dtype=torch.long, device=device)
    return F.ctc_loss(log_probs, targets, frames, target_lens, zero_infinity=True)


def teacher_forcing_targets(
    model: Whisper, texts: list[str], device=None, token_noise: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs and targets (B, L) for ``texts`` in the model's own text unit, with a share ``token_noise`` of
    the input text tokens replaced by random ones (:func:`corrupt_tokens`; training only)."""
    tokenizer = tokenizer_for(model)
    unit = text_unit(model)
    y_in, y_out = text_targets(texts, tokenizer, model.dims.n_text_ctx, device, unit)
    if token_noise > 0:
        n_prefix = len(tokenizer.sot_sequence_including_notimestamps)
        noise = char_vocab(tokenizer) if unit == "char" else None
        y_in = corrupt_tokens(y_in, token_noise, n_prefix, tokenizer.eot, noise)
    return y_in, y_out


def text_cross_entropy(
    model: Whisper,
    logits: torch.Tensor,
    y_out: torch.Tensor,
    vocab: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean cross-entropy of logits (B, L, n_vocab) — or (B, L, K) on the ids ``vocab`` (K,) of a character
    model (:func:`restricted_cross_entropy`) — against targets (B, L) (``IGNORE`` where not learned)."""
    if vocab is not None:
        return restricted_cross_entropy(logits, y_out, vocab, model.dims.n_vocab, label_smoothing)
    return F.cross_entropy(logits.transpose(1, 2).float(), y_out, ignore_index=IGNORE, label_smoothing=label_smoothing)


def asr_loss(
    model: Whisper,
    mel: torch.Tensor,
    texts: list[str],
    audio_features: torch.Tensor | None = None,
    vocab: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    token_noise: float = 0.0,
) -> torch.Tensor:
    """Mean cross-entropy of the transcripts given mel (B, n_mels, 2 * n_audio_ctx) — or given precomputed
    encoder output ``audio_features`` (B, n_audio_ctx, d), e.g. quantized ones. ``vocab``: a character model's
    :func:`restricted_vocab`, for the same loss on its few logits; ``label_smoothing`` and ``token_noise``
    (:func:`teacher_forcing_targets`) are training aids."""
    y_in, y_out = teacher_forcing_targets(model, texts, mel.device, token_noise)
    features = model.encoder(mel) if audio_features is None else audio_features
    logits = decoder_logits(model, y_in, features, vocab)
    return text_cross_entropy(model, logits, y_out, vocab, label_smoothing)


class WhisperWithCTC(torch.nn.Module):
    """Whisper plus a character CTC head on its encoder output (``ctc=True``), for training only (the export is
    the Whisper). ``forward(mel, tokens, vocab=None) -> (decoder logits, CTC log-probs (T, B, n_chars + 1) or
    None)``; with ``vocab`` (K,) token ids the logits are only those K columns (B, L, K) — see
    :func:`audiotok.whisper.restricted_cross_entropy`."""

    def __init__(self, whisper: Whisper, ctc: bool = True):
        super().__init__()
        self.whisper = whisper
        self.ctc = torch.nn.Linear(whisper.dims.n_audio_state, len(CTC_CHARS) + 1) if ctc else None

    def forward(self, mel: torch.Tensor, tokens: torch.Tensor, vocab: torch.Tensor | None = None):
        audio = self.whisper.encoder(mel)
        logits = decoder_logits(self.whisper, tokens, audio, vocab)
        log_probs = None if self.ctc is None else self.ctc(audio).float().log_softmax(-1).transpose(0, 1)
        return logits, log_probs


class CrossAttentionProbe:
    """While ``active``, recomputes (with gradients) the attention weights of every decoder cross-attention on each
    forward — openai-whisper returns them detached, or not at all under SDPA — into ``maps``: (B, H, L, T) each."""

    def __init__(self, model: Whisper):
        self.active, self.maps = False, []
        for block in model.decoder.blocks:
            block.cross_attn.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        if not self.active:
            return
        x, xa = inputs[0], inputs[1]
        q, k = module.query(x), module.key(xa)
        q = q.view(*q.shape[:2], module.n_head, -1).transpose(1, 2)
        k = k.view(*k.shape[:2], module.n_head, -1).transpose(1, 2)
        self.maps.append(torch.softmax((q @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5, dim=-1))


def guided_attention_loss(
    maps: list[torch.Tensor], y_out: torch.Tensor, n_frames: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Tachibana et al.'s diagonal prior on cross-attention: the mean attention mass outside a band around the
    straight line from the first text token / audio frame to the last. ``maps``: (B, H, L, T) attention weights,
    ``y_out`` (B, L) the targets (ignored positions carry no penalty), ``n_frames`` (B,) valid encoder frames;
    frames past an item's end are always penalised."""
    rows = y_out != IGNORE  # the query positions that predict a text token or eot
    n_rows = rows.sum(1, keepdim=True).clamp_min(1)
    pos_text = ((rows.cumsum(1) - 0.5) / n_rows)[:, :, None]  # (B, L, 1)
    T = maps[0].shape[-1]
    t = torch.arange(T, device=y_out.device)[None, None, :]
    pos_audio = (t + 0.5) / n_frames[:, None, None].clamp_min(1)
    weight = 1 - torch.exp(-((pos_text - pos_audio) ** 2) / (2 * sigma**2))
    weight = torch.where(t < n_frames[:, None, None], weight, torch.ones_like(weight)) * rows[:, :, None]
    total = sum((m * weight[:, None]).sum() for m in maps)
    return total / (rows.sum() * maps[0].shape[1] * len(maps)).clamp_min(1)


def teacher_forced_loss(
    net,
    model: Whisper,
    mel: torch.Tensor,
    texts: list[str],
    cfg: WhisperTrainConfig,
    audio_lens: torch.Tensor | None = None,
    probe: CrossAttentionProbe | None = None,
    vocab: torch.Tensor | None = None,
):
    """The ASR cross-entropy through ``net`` (the model, a :class:`WhisperWithCTC` or their DDP wrapper, so that DDP
    synchronises the gradients), plus the character CTC term when ``net`` has the CTC head and the guided-attention
    term with a ``probe`` (needs ``audio_lens``, 16 kHz samples). ``vocab``: the logits are computed on these token
    ids only (a :class:`WhisperWithCTC` ``net``; see :func:`restricted_cross_entropy`). -> (loss, logs)."""
    y_in, y_out = teacher_forcing_targets(model, texts, mel.device, cfg.token_noise)
    if probe is not None:
        probe.active, probe.maps = True, []
    try:
        out = net(mel, y_in) if vocab is None else net(mel, y_in, vocab=vocab)
    finally:
        if probe is not None:
            probe.active = False
    logits, log_probs = out if isinstance(out, tuple) else (out, None)
    ce = text_cross_entropy(model, logits, y_out, vocab, cfg.label_smoothing)
    total, logs = ce, {}
    if log_probs is not None:
        ctc = character_ctc_loss(log_probs, texts)
        total, logs = total + cfg.ctc_weight * ctc, {"ce": ce.detach(), "ctc": ctc.detach()}
    if probe is not None and probe.maps:
        # 160 samples per mel frame, 2 mel frames per encoder frame
        n_frames = ((audio_lens.to(mel.device) + 319) // 320).clamp_max(model.dims.n_audio_ctx)
        guided = guided_attention_loss(probe.maps, y_out, n_frames, cfg.guided_sigma)
        probe.maps = []
        total = total + cfg.guided_attention * guided
        logs = {"ce": ce.detach(), **logs, "guided": guided.detach()}
    return total, logs
