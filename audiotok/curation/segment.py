"""Energy-based voice activity detection that cuts long recordings into 2-30 s utterances.

Offline and dependency-free: a 10 ms frame is speech when its RMS level is ``threshold_db`` above the
recording's noise floor (its ``floor_quantile`` frame level) — and never less than ``max_below_peak`` dB under
the loudest frames, so recordings with digital silence do not call every hiss speech. Bursts shorter than
``min_speech`` are dropped, pauses shorter than ``merge_pause`` are kept inside an utterance, ``padding`` is
added at both ends; utterances longer than ``max_duration`` are cut at their quietest frame, shorter ones than
``min_duration`` are merged with a close neighbour (gap under ``max_merge_gap``) or rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from audiotok.audio import rms_db


@dataclass
class VADConfig:
    frame: float = 0.01  # s
    threshold_db: float = 10.0  # above the noise floor
    floor_quantile: float = 0.03
    max_below_peak: float = 45.0  # the threshold is at least peak - this
    min_speech: float = 0.1  # s; shorter bursts are noise
    merge_pause: float = 0.5  # s; shorter pauses stay inside one utterance
    padding: float = 0.1  # s at both ends
    min_duration: float = 2.0
    max_duration: float = 30.0
    max_merge_gap: float = 1.5  # s; a too-short utterance joins a neighbour this close


def frame_levels(wav: torch.Tensor, sample_rate: int, frame: float) -> torch.Tensor:
    """RMS level (dB) of consecutive ``frame``-second frames of a mono (T,) signal."""
    hop = max(1, round(frame * sample_rate))
    n = wav.shape[-1] // hop
    return rms_db(wav[: n * hop].reshape(n, hop)) if n else wav.new_zeros(0)


def _runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a 1-D bool tensor."""
    edges = torch.diff(torch.cat([mask.new_zeros(1), mask, mask.new_zeros(1)]).int())
    starts, ends = (edges == 1).nonzero().flatten(), (edges == -1).nonzero().flatten()
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _split_long(a: int, b: int, levels: torch.Tensor, max_len: int, min_len: int) -> list[tuple[int, int]]:
    """Cut [a, b) at its quietest frames until every piece is at most ``max_len`` frames."""
    if b - a <= max_len:
        return [(a, b)]
    lo, hi = a + min(min_len, max_len // 2), min(a + max_len, b - min(min_len, max_len // 2))
    cut = lo + int(levels[lo:hi].argmin()) if hi > lo else a + max_len
    return [(a, cut), *_split_long(cut, b, levels, max_len, min_len)]


def segment(wav: torch.Tensor, sample_rate: int, cfg: VADConfig | None = None) -> tuple[list, list]:
    """A mono (T,) recording -> (utterances, rejected): lists of ``(start_s, end_s)`` and of
    ``(start_s, end_s, reason)``."""
    cfg = cfg or VADConfig()
    levels = frame_levels(wav.float(), sample_rate, cfg.frame)
    if levels.numel() == 0:
        return [], []
    floor = torch.quantile(levels, cfg.floor_quantile)
    peak = torch.quantile(levels, 0.99)
    threshold = torch.maximum(floor + cfg.threshold_db, peak - cfg.max_below_peak)
    if peak - floor < cfg.threshold_db:  # no contrast: stationary noise or silence (speech always has some)
        return [], []
    frames = lambda s: round(s / cfg.frame)  # noqa: E731
    runs = [(a, b) for a, b in _runs(levels > threshold) if b - a >= frames(cfg.min_speech)]
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] < frames(cfg.merge_pause):
            merged[-1][1] = b
        else:
            merged.append([a, b])
    pieces = [
        p
        for a, b in merged
        for p in _split_long(a, b, levels, frames(cfg.max_duration) - 2 * frames(cfg.padding), frames(cfg.min_duration))
    ]
    # too-short pieces join a close neighbour when the result still fits
    out: list[list[int]] = []
    for a, b in pieces:
        if out and (
            (b - a < frames(cfg.min_duration) or out[-1][1] - out[-1][0] < frames(cfg.min_duration))
            and a - out[-1][1] <= frames(cfg.max_merge_gap)
            and b - out[-1][0] <= frames(cfg.max_duration) - 2 * frames(cfg.padding)
        ):
            out[-1][1] = b
        else:
            out.append([a, b])
    total = levels.numel() * cfg.frame
    kept, rejected = [], []
    for a, b in out:
        start = max(0.0, a * cfg.frame - cfg.padding)
        end = min(total, b * cfg.frame + cfg.padding)
        if end - start < cfg.min_duration:
            rejected.append((round(start, 3), round(end, 3), "too_short"))
        else:
            kept.append((round(start, 3), round(end, 3)))
    return kept, rejected


def estimate_snr(wav: torch.Tensor, sample_rate: int, cfg: VADConfig | None = None) -> float:
    """A recording's SNR estimate (dB): median level of its speech frames minus its noise floor."""
    cfg = cfg or VADConfig()
    levels = frame_levels(wav.float(), sample_rate, cfg.frame)
    if levels.numel() == 0:
        return 0.0
    floor = torch.quantile(levels, cfg.floor_quantile)
    speech = levels[levels > floor + cfg.threshold_db]
    return float(speech.median() - floor) if speech.numel() else 0.0
