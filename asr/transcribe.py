"""Batched transcription with a (possibly adapted) Whisper model, and WER over a manifest.

Audio of any rate and length: resampled to 16 kHz on the device; audio longer than the model's context is cut
into consecutive windows whose texts are joined. Items are sorted by length so batches carry little padding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from tqdm import tqdm
from whisper.model import Whisper

from audiotok.audio import load, resample
from audiotok.data.dataset import pad_sequences
from audiotok.whisper import SAMPLE_RATE, WhisperFrontend, transcribe, word_error_rate


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
) -> list[str]:
    """Texts for a list of 1-D waveforms at ``sample_rate``, in input order."""
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
        for j, text in zip(idx, transcribe(model, mel, beam_size=beam_size), strict=True):
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
