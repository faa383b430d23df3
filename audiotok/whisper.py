"""openai-whisper helpers shared by the semantic tokenizer, ASR adaptation and evaluation.

* small Whisper-architecture configs with a short audio context (:func:`small_dims`);
* the teacher-forced ASR loss with the sot sequence (:func:`asr_loss`);
* batched greedy decoding of padded audio (:func:`transcribe`), of lists of waveforms of any length and rate
  (:func:`transcribe_audio`, long audio in context windows) and WER over a manifest (:func:`evaluate_manifest`);
* WER/CER with one text normaliser, Whisper's ``EnglishTextNormalizer`` (:func:`word_error_rate`);
* checkpoints: openai-whisper's own ``{dims, model_state_dict}`` ``.pt`` (loads with ``whisper.load_model``) and a
  self-describing safetensors file.

A short ``n_audio_ctx`` is the point of the small models: mel is padded to ``2 * n_audio_ctx`` frames, not 30 s.
"""

from __future__ import annotations

import json
import math
import os
import string
import unicodedata
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
import whisper
from tqdm import tqdm
from whisper.model import ModelDimensions, Whisper

from audiotok.audio import load, resample
from audiotok.data.dataset import pad_sequences
from audiotok.data.features import MelSpectrogram, whisper_mel

SAMPLE_RATE = 16000
IGNORE = -100


def small_dims(
    n_mels: int = 80,
    seconds: float = 10.0,
    n_state: int = 256,
    n_head: int = 4,
    n_layer: int = 4,
    n_text_layer: int | None = None,
    n_text_ctx: int = 128,
    multilingual: bool = True,
) -> ModelDimensions:
    """A Whisper architecture with ``seconds`` of audio context (50 encoder frames per second)."""
    return ModelDimensions(
        n_mels=n_mels,
        n_audio_ctx=int(seconds * 50),
        n_audio_state=n_state,
        n_audio_head=n_head,
        n_audio_layer=n_layer,
        n_vocab=51865 if multilingual else 51864,
        n_text_ctx=n_text_ctx,
        n_text_state=n_state,
        n_text_head=n_head,
        n_text_layer=n_text_layer or n_layer,
    )


def new_whisper(dims: ModelDimensions, seed: int | None = None) -> Whisper:
    """A Whisper model initialised for training from scratch. openai-whisper leaves the decoder's positional
    embedding as ``torch.empty`` (it expects a checkpoint) — uninitialised memory, sometimes NaN — and gives the
    tied token embedding unit variance; both get N(0, 0.02) here."""
    if seed is not None:
        torch.manual_seed(seed)
    model = Whisper(dims)
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0.0, 0.02)
        model.decoder.token_embedding.weight.normal_(0.0, 0.02)
    return model


@lru_cache(maxsize=4)
def get_tokenizer(multilingual: bool = True, num_languages: int = 99):
    """English transcription tokenizer (ships inside openai-whisper, works offline)."""
    return whisper.tokenizer.get_tokenizer(multilingual, num_languages=num_languages, language="en", task="transcribe")


def tokenizer_for(model: Whisper):
    return get_tokenizer(model.is_multilingual, model.num_languages)


@lru_cache(maxsize=1)
def _normalizer():
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """The suite's one normaliser for scoring: Whisper's EnglishTextNormalizer."""
    return _normalizer()(text)


def word_error_rate(refs: list[str], hyps: list[str], unit: str = "word") -> float:
    """Corpus WER (or CER with ``unit="char"``) after :func:`normalize`; empty references are skipped."""
    import jiwer

    pairs = [(normalize(r), normalize(h)) for r, h in zip(refs, hyps, strict=True) if normalize(r)]
    if not pairs:
        return float("nan")
    r, h = zip(*pairs, strict=True)
    return float(jiwer.cer(list(r), list(h)) if unit == "char" else jiwer.wer(list(r), list(h)))


def error_rates(refs: list[str], hyps: list[str]) -> dict[str, float]:
    """``{"wer", "cer"}`` of :func:`word_error_rate`."""
    return {"wer": word_error_rate(refs, hyps), "cer": word_error_rate(refs, hyps, unit="char")}


class WhisperFrontend(torch.nn.Module):
    """Padded 16 kHz audio (B, T) -> Whisper log-mel (B, n_mels, 2 * n_audio_ctx), padded/trimmed in frames."""

    def __init__(self, dims: ModelDimensions):
        super().__init__()
        self.n_frames = 2 * dims.n_audio_ctx
        self.mel = MelSpectrogram(whisper_mel(dims.n_mels))

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        if sample_rate != SAMPLE_RATE:
            wav = resample(wav, sample_rate, SAMPLE_RATE)
            wav_lens = torch.div(wav_lens * SAMPLE_RATE + sample_rate - 1, sample_rate, rounding_mode="floor")
        mel, mel_lens = self.mel(wav, wav_lens)
        # frames past an item are what Whisper sees for zero-padded audio: its per-utterance floor, peak - 2
        floor = mel.amax(dim=(1, 2), keepdim=True) - 2.0
        mel = mel[..., : self.n_frames]
        mel = F.pad(mel, (0, self.n_frames - mel.shape[-1]))
        pad = torch.arange(self.n_frames, device=mel.device)[None, None, :] >= mel_lens[:, None, None]
        return torch.where(pad, floor, mel)


TEXT_UNITS = ("bpe", "char")


def text_unit(model: Whisper) -> str:
    """How ``model`` spells its transcripts: ``bpe`` (Whisper's own tokens, the default) or ``char`` (one Whisper
    token per character — every character is a token of Whisper's vocabulary, so the model and its outputs stay
    plain openai-whisper; a small model trained from scratch learns 40 symbols far faster than 50k)."""
    return getattr(model, "text_unit", "bpe")


def encode_text(text: str, tokenizer, unit: str = "bpe") -> list[int]:
    """Token ids of a transcript in ``unit``.

    ``bpe``: Whisper's own tokens, with its leading space; decoding gives the text back. ``char``: one token per
    character of printable ASCII (accents dropped), without the leading space and without the symbols
    openai-whisper's decoding never emits (its ``suppress_blank`` forbids a leading space, ``suppress_tokens="-1"``
    forbids ``"#()*+/:;<=>@[]^_`{|}~``), so that stock ``whisper.decode`` can produce every target; decoding gives
    the text less those symbols."""
    if unit == "char":
        return [i for c in _speakable(text, tokenizer) for i in tokenizer.encode(c)]
    if unit != "bpe":
        raise ValueError(f"text unit must be one of {TEXT_UNITS}, got {unit!r}")
    return tokenizer.encode(" " + text.strip())


def _speakable(text: str, tokenizer) -> str:
    """``text`` in printable ASCII (accents dropped: a character model spells English), with the characters that
    openai-whisper suppresses while decoding replaced by spaces (collapsed)."""
    banned = _suppressed_chars(tokenizer)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join("".join(" " if c in banned else c for c in text).split())


def _suppressed_chars(tokenizer) -> frozenset[str]:
    return _char_tables(tokenizer)[0]


def char_vocab(tokenizer) -> torch.Tensor:
    """Token ids of the printable ASCII characters a ``char`` transcript may hold (for decoder input noise)."""
    return _char_tables(tokenizer)[1]


def _char_tables(tokenizer) -> tuple[frozenset[str], torch.Tensor]:
    """(the printable characters openai-whisper suppresses while decoding, the token ids of the others but
    whitespace other than ' '), once per tokenizer encoding (they are used every training step)."""
    key = tokenizer.encoding.name
    if key not in _CHAR_TABLES:
        suppressed = set(tokenizer.non_speech_tokens)
        banned = frozenset(c for c in string.printable if any(i in suppressed for i in tokenizer.encode(c)))
        skip = banned | set(string.whitespace[1:])
        ids = torch.tensor(sorted({i for c in string.printable if c not in skip for i in tokenizer.encode(c)}))
        _CHAR_TABLES[key] = (banned, ids)
    return _CHAR_TABLES[key]


_CHAR_TABLES: dict[str, tuple[frozenset[str], torch.Tensor]] = {}


def text_targets(
    texts: list[str], tokenizer, n_text_ctx: int, device=None, unit: str = "bpe"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing inputs and targets: ``y_in = sot_sequence + text``, ``y_out = y_in[1:] + eot``; padding
    is eot in ``y_in`` and -100 (ignored) in ``y_out``; ``unit``: see :func:`text_unit`."""
    prefix = list(tokenizer.sot_sequence_including_notimestamps)
    seqs = [prefix + encode_text(t, tokenizer, unit)[: n_text_ctx - len(prefix) - 1] for t in texts]
    L = max(len(s) for s in seqs)
    y_in = torch.full((len(seqs), L), tokenizer.eot, dtype=torch.long)
    y_out = torch.full((len(seqs), L), IGNORE, dtype=torch.long)
    for i, s in enumerate(seqs):
        y_in[i, : len(s)] = torch.tensor(s)
        y_out[i, : len(s) - 1] = torch.tensor(s[1:])
        y_out[i, len(s) - 1] = tokenizer.eot
        y_out[i, : len(prefix) - 1] = IGNORE  # the task tokens are given, not learned
    return y_in.to(device), y_out.to(device)


def corrupt_tokens(
    y_in: torch.Tensor, p: float, n_prefix: int, n_text: int, vocab: torch.Tensor | None = None
) -> torch.Tensor:
    """Teacher-forcing inputs (B, L) with a share ``p`` of the text tokens (after the ``n_prefix`` task tokens,
    below ``n_text`` = the first special token) replaced by random text tokens — drawn from ``vocab`` (1-D ids,
    e.g. :func:`char_vocab`) when given — so that the decoder has to listen rather than recite (draws from the
    global RNG). Padding and special tokens are kept."""
    if p <= 0:
        return y_in
    text = torch.zeros_like(y_in, dtype=torch.bool)
    text[:, n_prefix:] = y_in[:, n_prefix:] < n_text
    hit = text & (torch.rand(y_in.shape, device=y_in.device) < p)
    if vocab is not None:
        vocab = vocab.to(y_in.device)
        return torch.where(hit, vocab[torch.randint(0, len(vocab), y_in.shape, device=y_in.device)], y_in)
    return torch.where(hit, torch.randint(0, n_text, y_in.shape, device=y_in.device), y_in)


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


@torch.no_grad()
def transcribe(
    model: Whisper,
    mel: torch.Tensor,
    beam_size: int | None = None,
    audio_features: torch.Tensor | None = None,
    fallback_beam: int | None = 5,
    compression_ratio_threshold: float = 2.4,
) -> list[str]:
    """Batched decoding of mel (B, n_mels, 2 * n_audio_ctx) (greedy, or beam search with ``beam_size``).

    Like openai-whisper's ``transcribe``, a result that looks like a repetition loop — it ran to the length limit
    without an end token, or its text gzip-compresses better than ``compression_ratio_threshold`` — is decoded
    again, here with beam search of ``fallback_beam`` (deterministic) instead of a higher sampling temperature;
    ``None`` turns this off."""
    n_ctx = model.dims.n_text_ctx
    sample_len = n_ctx // 2 if text_unit(model) == "bpe" else n_ctx - 4  # characters: the whole context
    options = whisper.DecodingOptions(
        language="en", without_timestamps=True, fp16=False, beam_size=beam_size, sample_len=sample_len
    )
    inputs = mel if audio_features is None else audio_features
    if beam_size and beam_size > 1 and len(inputs) > 1:
        # openai-whisper 20250625 repeats the tokens but not the audio features per beam: batched beam search
        # fails on a size mismatch, so beams run one utterance at a time
        results = [whisper.decode(model, x[None], options)[0] for x in inputs]
    else:
        results = whisper.decode(model, inputs, options)
    texts = [r.text for r in results]
    if fallback_beam and fallback_beam != beam_size:
        retry = replace(options, beam_size=fallback_beam)
        for i, r in enumerate(results):
            if r.compression_ratio > compression_ratio_threshold or len(r.tokens) >= options.sample_len:
                texts[i] = whisper.decode(model, inputs[i : i + 1], retry)[0].text
    return texts


def save_openai(model: Whisper, path: str | os.PathLike, half: bool = False) -> Path:
    """openai-whisper's checkpoint layout; ``whisper.load_model(path)`` loads it."""
    from audiotok.utils import atomic_path

    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        # openai-whisper reads dims and weights and ignores the rest
        torch.save({"dims": asdict(model.dims), "model_state_dict": state, "text_unit": text_unit(model)}, tmp)
    return path


def save_safetensors(model: Whisper, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
    from safetensors.torch import save_file

    from audiotok.utils import atomic_path

    state = {
        k: v.detach().to(dtype if dtype and v.is_floating_point() else v.dtype).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(
            state,
            str(tmp),
            metadata={
                "format_version": "1",
                "model_type": "openai-whisper",
                "config": json.dumps(asdict(model.dims)),
                "text_unit": text_unit(model),
            },
        )
    return path


def load_whisper(path: str | os.PathLike, device: str | torch.device = "cpu") -> Whisper:
    """A Whisper model from our safetensors file, an openai-whisper ``.pt``, or a bundled name (``whisper-synth``)."""
    from audiotok.hub import resolve_bundled

    path = resolve_bundled(path)
    if path.suffix == ".safetensors":
        from audiotok.hub import load_state, read_metadata

        meta = read_metadata(path)
        if meta.get("model_type") != "openai-whisper":
            raise ValueError(f"{path}: not a Whisper checkpoint (model_type {meta.get('model_type')!r})")
        model = Whisper(ModelDimensions(**json.loads(meta["config"])))
        model.load_state_dict({k: v.float() for k, v in load_state(path, meta).items()})
        model.text_unit = meta.get("text_unit", "bpe")
        return model.to(device).eval()
    if not path.is_file():  # an official name (from a user's download cache)
        return whisper.load_model(str(path), device=device)
    # openai-whisper's {dims, model_state_dict} layout, read once; our exports also say how they spell
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    model = Whisper(ModelDimensions(**ckpt["dims"]))
    model.load_state_dict(ckpt["model_state_dict"])
    model.text_unit = ckpt.get("text_unit", "bpe")
    return model.to(device).eval()


# ------------------------------------------------------------------------------------ transcription of audio


def _windows(wav: torch.Tensor, n: int) -> list[torch.Tensor]:
    return [wav[i : i + n] for i in range(0, max(len(wav), 1), n)]


@torch.no_grad()
def transcribe_audio(
    model: Whisper,
    wavs: list[torch.Tensor],
    sample_rate: int = SAMPLE_RATE,
    batch_size: int = 16,
    beam_size: int | None = None,
    progress: bool = False,
    decode=None,
) -> list[str]:
    """Texts for a list of 1-D waveforms at ``sample_rate``, in input order. ``decode(mel) -> texts`` replaces
    plain decoding (e.g. a semantic tokenizer's ASR reading its own tokens)."""
    device = next(model.parameters()).device
    front = WhisperFrontend(model.dims).to(device)
    window = model.dims.n_audio_ctx * 2 * 160  # samples of 16 kHz audio the encoder sees
    pieces: list[tuple[int, torch.Tensor]] = []  # (item, window)
    for i, w in enumerate(wavs):
        w = resample(w.float().reshape(-1), sample_rate, SAMPLE_RATE) if sample_rate != SAMPLE_RATE else w.float()
        pieces += [(i, x) for x in _windows(w.reshape(-1), window)]
    order = sorted(range(len(pieces)), key=lambda j: -len(pieces[j][1]))
    texts: dict[int, str] = {}
    bar = tqdm(total=len(wavs), unit="utt", desc="transcribe", disable=not progress)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        wav, lens = pad_sequences([pieces[j][1] for j in idx])
        mel = front(wav.to(device), lens.to(device))
        texts_ = decode(mel) if decode is not None else transcribe(model, mel, beam_size=beam_size)
        for j, text in zip(idx, texts_, strict=True):
            texts[j] = text
        bar.update(sum(1 for j in idx if j == len(pieces) - 1 or pieces[j + 1][0] != pieces[j][0]))
    bar.close()
    out = [""] * len(wavs)
    for j, (i, _) in enumerate(pieces):  # windows are in time order within an item
        out[i] = (out[i] + " " + texts[j]).strip()
    return out


def transcribe_files(model: Whisper, paths: list[str | os.PathLike], **kwargs) -> list[str]:
    """Texts of audio files (any format the suite reads, any rate)."""
    wavs = []
    for p in paths:
        w, sr = load(p, mono=True)
        wavs.append(resample(w, sr, SAMPLE_RATE))
    return transcribe_audio(model, wavs, **kwargs)


@dataclass
class WERResult:
    wer: float
    n: int
    refs: list[str]
    hyps: list[str]


def evaluate_manifest(
    model: Whisper, manifest: str | os.PathLike, limit: int | None = None, perturb=None, **kwargs
) -> WERResult:
    """WER (Whisper's English normaliser) over a manifest's utterances with text. ``perturb(wav, index)``
    optionally alters each 16 kHz waveform first (noise, speed)."""
    from audiotok.data.manifest import read_manifest

    utts = [u for u in read_manifest(manifest) if u.text][:limit]
    wavs = []
    for k, u in enumerate(utts):
        w, sr = load(u.audio, mono=True)
        w = resample(w, sr, SAMPLE_RATE)
        wavs.append(perturb(w, k) if perturb else w)
    hyps = transcribe_audio(model, wavs, **kwargs)
    refs = [u.text for u in utts]
    return WERResult(word_error_rate(refs, hyps), len(utts), refs, hyps)
