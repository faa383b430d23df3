"""Whisper text: the tokenizer, the one scoring normaliser (Whisper's ``EnglishTextNormalizer``), WER/CER, the two
ways a model spells its transcripts (``bpe`` or ``char``) and the teacher-forcing targets."""

from __future__ import annotations

import string
import unicodedata
from functools import lru_cache

import torch
import whisper
from whisper.model import Whisper

from audiotok.whisper.model import TEXT_UNITS

IGNORE = -100


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
