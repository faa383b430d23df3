"""What the TTS accepts, checked before any model runs (:class:`tts.pipeline.TTS` calls these first, so a bad input
fails at once with a ``ValueError`` naming the problem — also from :meth:`~tts.pipeline.TTS.stream`, before the
first chunk is asked for).

Text (:func:`prepare_text`):

* not a ``str`` -> ``TypeError``; empty or only white space -> ``ValueError``;
* characters the English front end cannot speak — other scripts than Latin, emoji and other non-ASCII symbols,
  control characters — are dropped with a :class:`TTSInputWarning` (``warnings.warn``) that lists them; accents,
  white space and invisible format characters (zero-width joiners, byte-order marks) go without one;
* digits, abbreviations and symbols are spelled out by the suite's one front end,
  :func:`audiotok.text.normalize_text` (numbers, ordinals, currency, percentages, times, decimals, ...);
* nothing speakable left (only punctuation, symbols, emoji, another script) -> ``ValueError``;
* the normalised text is cut into chunks for the LM (:func:`split_sentences`): sentences (after ``. ! ?``); a
  sentence longer than ``max_chars`` (default 200) at clause punctuation (``, ; :``), a clause still longer at word
  boundaries, a word still longer every ``max_chars`` characters. The LM sees one chunk (plus the prompt) at a
  time, so any length of text runs in bounded memory (streamed chunk by chunk by ``TTS.stream``).

Prompt audio (:func:`check_prompt`; lengths are measured at the sample rate given with it, default the model's):

* ``(T,)`` or ``(C, T)``/``(T, C)`` with at most 8 channels (averaged); float samples in [-1, 1] (int16 and int32
  PCM are scaled); empty, NaN or Inf -> ``ValueError``;
* shorter than :data:`MIN_PROMPT_SECONDS` (1 s) -> ``ValueError``; longer than :data:`MAX_PROMPT_SECONDS` (30 s)
  -> its first 30 s, with a :class:`TTSInputWarning`;
* silent (RMS level below :data:`SILENCE_DBFS`, -60 dBFS, over the part used) -> ``ValueError``;
* another sample rate than the model's -> resampled (band-limited) by the pipeline.

Prompt text (:func:`prepare_prompt_text`): what the prompt audio says. Empty counts as none; given without prompt
audio -> ``ValueError``; it is checked like the text (dropped characters warn, nothing speakable -> ``ValueError``)
but never split.
"""

from __future__ import annotations

import re
import warnings

import torch

from audiotok.text import normalize_text, unspeakable_characters

MAX_CHARS = 200  # longest text chunk given to the LM at once (characters of normalised text)
MIN_PROMPT_SECONDS = 1.0
MAX_PROMPT_SECONDS = 30.0
SILENCE_DBFS = -60.0  # a prompt whose RMS level is below this is silent
MAX_PROMPT_CHANNELS = 8

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


class TTSInputWarning(UserWarning):
    """Something in the TTS's input was changed to make it usable: characters dropped, a long prompt trimmed."""


# ------------------------------------------------------------------------------------------------------------ text
def split_sentences(text: str, max_chars: int = MAX_CHARS) -> list[str]:
    """Chunks of ``text``, each at most ``max_chars`` long: its sentences (split after ``. ! ?``); a longer
    sentence is cut at clause punctuation (``, ; :``), a clause still longer at spaces, a word still longer every
    ``max_chars`` characters. Cuts are only made at white space (and inside over-long words), so
    ``" ".join(chunks)`` gives back single-spaced text without such words."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = sentence.strip()
        if len(sentence) <= max_chars:
            out += [sentence] if sentence else []
        else:
            out += _split_long(sentence, max_chars)
    return out


def _split_long(sentence: str, max_chars: int) -> list[str]:
    chunks: list[str] = []
    current = ""

    def add(unit: str) -> None:
        nonlocal current
        if current and len(current) + 1 + len(unit) > max_chars:
            chunks.append(current)
            current = unit
        else:
            current = f"{current} {unit}" if current else unit

    for clause in _CLAUSE_END.split(sentence):
        clause = clause.strip()
        if len(clause) <= max_chars:
            add(clause)
            continue
        if current:  # an over-long clause starts a chunk of its own: cut at the clause boundary first
            chunks.append(current)
            current = ""
        for word in clause.split():
            for i in range(0, len(word), max_chars):
                add(word[i : i + max_chars])
    if current:
        chunks.append(current)
    return [c for c in chunks if c]


def _speakable(text: str, what: str) -> str:
    """``text`` normalised; warns about dropped characters, raises when nothing speakable is left."""
    if not isinstance(text, str):
        raise TypeError(f"the {what} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"nothing to say: the {what} is empty")
    dropped = unspeakable_characters(text)
    if dropped:
        shown = ", ".join(repr(c) for c in dropped[:12]) + (
            f" and {len(dropped) - 12} more" if len(dropped) > 12 else ""
        )
        warnings.warn(
            f"the {what}: dropped characters the English front end cannot speak "
            f"(other scripts, emoji, symbols or control characters): {shown}",
            TTSInputWarning,
            stacklevel=5,  # the caller of TTS.synthesize / TTS.stream
        )
    normalized = normalize_text(text)
    if not re.search(r"[A-Za-z]", normalized):
        raise ValueError(
            f"nothing to say: the {what} has no speakable words (only punctuation, symbols, emoji, control "
            f"characters or another script than Latin): {_preview(text)}"
        )
    return normalized


def _preview(text: str, n: int = 60) -> str:
    return repr(text[:n] + ("..." if len(text) > n else ""))


def prepare_text(text: str, max_chars: int = MAX_CHARS) -> list[str]:
    """The text to speak -> its normalised chunks for the LM (see the module docstring for what is checked)."""
    chunks = [c for c in split_sentences(_speakable(text, "text"), max_chars) if re.search(r"[A-Za-z]", c)]
    return chunks


def prepare_prompt_text(prompt_text: str | None, has_prompt_audio: bool) -> str | None:
    """What the prompt audio says -> normalised, or ``None`` when there is none (``None`` or empty)."""
    if prompt_text is None or (isinstance(prompt_text, str) and not prompt_text.strip()):
        return None
    if not has_prompt_audio:
        raise ValueError("a prompt text was given without prompt audio (the prompt text is what the prompt audio says)")
    return _speakable(prompt_text, "prompt text")


# ---------------------------------------------------------------------------------------------------------- prompt
def check_prompt(audio, sample_rate: int | None, model_rate: int) -> tuple[torch.Tensor, int]:
    """Prompt audio and its sample rate -> ``(mono float32 (T,), sample rate)``, checked and trimmed (see the
    module docstring). ``sample_rate`` ``None``: the model's rate ``model_rate``."""
    sr = model_rate if sample_rate is None else sample_rate
    if isinstance(sr, bool) or not isinstance(sr, int | float) or sr <= 0 or int(sr) != sr:
        raise ValueError(f"the prompt's sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    sr = int(sr)
    wav = torch.as_tensor(audio)
    if wav.dtype == torch.int16:
        wav = wav.float() / 32768.0
    elif wav.dtype == torch.int32:
        wav = wav.float() / 2147483648.0
    elif not wav.is_floating_point():
        raise ValueError(f"the prompt audio must hold float samples in [-1, 1] (or int16/int32 PCM), got {wav.dtype}")
    wav = wav.float()
    if wav.dim() == 2:
        if wav.shape[0] <= MAX_PROMPT_CHANNELS:
            wav = wav.mean(0)
        elif wav.shape[1] <= MAX_PROMPT_CHANNELS:
            wav = wav.mean(1)
    if wav.dim() != 1:
        raise ValueError(f"the prompt audio must be (T,) or (channels, T), got shape {tuple(wav.shape)}")
    if wav.numel() == 0:
        raise ValueError("the prompt audio is empty")
    if not torch.isfinite(wav).all():
        raise ValueError("the prompt audio holds NaN or Inf samples")
    seconds = wav.numel() / sr
    if seconds < MIN_PROMPT_SECONDS:
        raise ValueError(
            f"the prompt audio is too short: {seconds:.2f} s at {sr} Hz; a prompt must be at least "
            f"{MIN_PROMPT_SECONDS:g} s (a few seconds of clear speech)"
        )
    if seconds > MAX_PROMPT_SECONDS:
        warnings.warn(
            f"the prompt audio is {seconds:.1f} s long; only its first {MAX_PROMPT_SECONDS:g} s are used",
            TTSInputWarning,
            stacklevel=4,  # the caller of TTS.synthesize / TTS.stream
        )
        wav = wav[: int(MAX_PROMPT_SECONDS * sr)]
    if not wav.any():
        raise ValueError(
            "the prompt audio is silent (all its samples are zero); a prompt must be a recording of speech"
        )
    level = 10.0 * torch.log10(wav.double().pow(2).mean()).item()
    if level < SILENCE_DBFS:
        raise ValueError(
            f"the prompt audio is silent (RMS level {level:.0f} dBFS, below {SILENCE_DBFS:g} dBFS); "
            "a prompt must be a recording of speech"
        )
    return wav, sr
