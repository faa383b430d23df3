"""A "raw" corpus with known truth, made from the synthetic one, to test the data pipeline against.

Each recording strings several utterances of one speaker together with random pauses, then adds what real
found data has: background noise at a random SNR from ``snrs`` (white or brown), music-like tone clusters between
(and under) utterances, and decoys — stretches of time-reversed speech, which sound like speech but say nothing
and so have no transcript. ``truth.jsonl`` lists every region of every recording: ``(start, end, text or None,
kind)``; :func:`score_kept` matches the pipeline's kept segments against it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from audiotok.audio import load, resample, save
from audiotok.data.manifest import read_manifest
from audiotok.utils import stable_hash

SR = 16000


@dataclass
class RawCorpusConfig:
    utterances_per_recording: int = 8
    pause: tuple[float, float] = (0.4, 2.0)  # s, uniform
    snrs: list[float] = field(default_factory=lambda: [30.0, 20.0, 10.0, 5.0])
    tone_probability: float = 0.3  # a tone cluster after an utterance
    decoy_probability: float = 0.15  # an utterance replaced by its time-reversed audio (no transcript)
    seed: int = 0


def _noise(n: int, kind: str, g: torch.Generator) -> torch.Tensor:
    x = torch.randn(n, generator=g)
    if kind == "brown":
        x = torch.cumsum(x, 0)
        x = x - torch.linspace(float(x[0]), float(x[-1]), n)  # no drift
    return x / x.std().clamp_min(1e-8)


def _tones(seconds: float, g: torch.Generator) -> torch.Tensor:
    """A few sustained harmonic notes with a slow tremolo: music-like, not speech."""
    t = torch.arange(int(seconds * SR)) / SR
    out = torch.zeros_like(t)
    for _ in range(int(torch.randint(2, 4, (1,), generator=g))):
        f0 = 110.0 * 2 ** (float(torch.randint(0, 24, (1,), generator=g)) / 12)
        out += sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 5))
    out *= 0.6 + 0.4 * torch.sin(2 * math.pi * 3.0 * t)
    return 0.05 * out / out.abs().max().clamp_min(1e-8)


def build_raw_corpus(manifest: str | os.PathLike, out: str | os.PathLike, cfg: RawCorpusConfig | None = None) -> Path:
    """Recordings ``out/<speaker>/rec<k>.wav`` (16 kHz) and ``out/truth.jsonl``; returns ``out``."""
    cfg = cfg or RawCorpusConfig()
    out = Path(out)
    by_speaker: dict[str, list] = {}
    for u in read_manifest(manifest):
        if u.text:
            by_speaker.setdefault(u.speaker or "unknown", []).append(u)
    truth = []
    for speaker, utts in sorted(by_speaker.items()):
        g = torch.Generator().manual_seed(stable_hash("raw", speaker, cfg.seed) % 2**63)
        for k in range(0, len(utts) - cfg.utterances_per_recording + 1, cfg.utterances_per_recording):
            name = f"{speaker}/rec{k // cfg.utterances_per_recording:03d}"
            pieces, t = [], 0.0
            regions = []
            for u in utts[k : k + cfg.utterances_per_recording]:
                gap = cfg.pause[0] + (cfg.pause[1] - cfg.pause[0]) * float(torch.rand(1, generator=g))
                pieces.append(torch.zeros(int(gap * SR)))
                t += len(pieces[-1]) / SR
                w, sr = load(u.audio, mono=True)
                w = resample(w, sr, SR)
                decoy = float(torch.rand(1, generator=g)) < cfg.decoy_probability
                pieces.append(w.flip(0) if decoy else w)
                regions.append((t, t + len(w) / SR, None if decoy else u.text, "decoy" if decoy else "speech"))
                t += len(w) / SR
                if float(torch.rand(1, generator=g)) < cfg.tone_probability:
                    tone = _tones(0.8 + 2.0 * float(torch.rand(1, generator=g)), g)
                    pieces.append(tone)
                    regions.append((t, t + len(tone) / SR, None, "tones"))
                    t += len(tone) / SR
            pieces.append(torch.zeros(SR // 2))
            wav = torch.cat(pieces)
            snr = cfg.snrs[int(torch.randint(0, len(cfg.snrs), (1,), generator=g))]
            kind = "white" if float(torch.rand(1, generator=g)) < 0.5 else "brown"
            speech_power = torch.cat([wav[int(a * SR) : int(b * SR)] for a, b, _, _ in regions]).pow(2).mean()
            wav = wav + _noise(len(wav), kind, g) * torch.sqrt(speech_power / 10 ** (snr / 10))
            wav = wav / max(1.0, float(wav.abs().max()) / 0.95)
            path = out / f"{name}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            save(path, wav, SR)
            truth += [
                {"recording": name, "start": round(a, 3), "end": round(b, 3), "text": x, "kind": kd, "snr": snr}
                for a, b, x, kd in regions
            ]
    with (out / "truth.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in truth)
    return out


def score_kept(kept_manifest: str | os.PathLike, truth_path: str | os.PathLike) -> dict:
    """How good the kept data is: WER of the kept transcripts against the truth of the speech they overlap
    (decoys and tones count as empty truth), and what share of the kept audio is decoy or tone."""
    from audiotok.whisper import word_error_rate

    truth: dict[str, list[dict]] = {}
    for line in Path(truth_path).read_text().splitlines():
        r = json.loads(line)
        truth.setdefault(r["recording"], []).append(r)
    refs, hyps, junk, total = [], [], 0.0, 0.0
    for u in read_manifest(kept_manifest):
        rec = u.extra.get("source", "")
        overlap = [
            r for r in truth.get(rec, []) if r["end"] > (u.start or 0) + 0.05 and r["start"] < (u.end or 0) - 0.05
        ]
        refs.append(" ".join(r["text"] for r in overlap if r["text"]))
        hyps.append(u.text or "")
        for r in overlap:
            dur = min(r["end"], u.end or 0) - max(r["start"], u.start or 0)
            total += max(dur, 0)
            junk += max(dur, 0) if r["text"] is None else 0.0
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    wer = word_error_rate([r for r, _ in pairs], [h for _, h in pairs]) if pairs else float("nan")
    return {
        "kept": len(hyps),
        "wer_vs_truth": wer,
        "junk_share": junk / total if total else 0.0,
        "without_speech": len(hyps) - len(pairs),
    }
