"""pocketsphinx (CMU Sphinx, its US-English model ships inside the PyPI wheel) as an independent recogniser.

Trained on real speech and unrelated to anything this suite trains, it is the judge of intelligibility (TTS) and
a second opinion for the data pipeline's transcript agreement.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from audiotok.audio import resample

SAMPLE_RATE = 16000


@lru_cache(maxsize=1)
def _decoder():
    from pocketsphinx import Decoder

    return Decoder(loglevel="FATAL")


def recognize(wavs: list[torch.Tensor], sample_rate: int = SAMPLE_RATE) -> list[str]:
    """Lower-case transcripts of mono 1-D waveforms (any rate; resampled to 16 kHz). One utterance at a time:
    pocketsphinx decodes on the CPU and has no batching."""
    decoder = _decoder()
    out = []
    for w in wavs:
        w = resample(w.float().reshape(-1), sample_rate, SAMPLE_RATE) if sample_rate != SAMPLE_RATE else w.float()
        decoder.start_utt()
        decoder.process_raw((w.clamp(-1, 1) * 32767).to(torch.int16).numpy().tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        out.append(hyp.hypstr if hyp is not None else "")
    return out
