"""Whisper decoding: batched greedy/beam decoding of padded mel (:func:`transcribe`), of lists of waveforms of any
length and rate (:func:`transcribe_audio`, long audio in context windows), and WER over a manifest
(:func:`evaluate_manifest`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch
import whisper
from tqdm import tqdm
from whisper.model import Whisper

from audiotok.audio import load, resample
from audiotok.data.dataset import pad_sequences
from audiotok.whisper.model import SAMPLE_RATE, WhisperFrontend, text_unit
from audiotok.whisper.text import word_error_rate


@torch.no_grad()
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
