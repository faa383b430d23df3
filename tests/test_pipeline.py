"""The TouchTTS-style data pipeline: segmentation and the agreement filter."""

from __future__ import annotations

import pytest
import torch

from audiotok.pipeline.filter import disagreement, judge
from audiotok.pipeline.segment import VADConfig, segment
from tests.conftest import speechlike

SR = 16000


def recording(seconds: float, regions: list[tuple[float, float]], noise: float = 1e-3) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(int(seconds * SR), generator=g) * noise
    for i, (a, b) in enumerate(regions):
        wav[int(a * SR) : int(b * SR)] += speechlike(int(b * SR) - int(a * SR), SR, seed=i)
    return wav


def test_segments_follow_known_speech_regions():
    regions = [(1.0, 4.0), (4.3, 6.5), (9.0, 12.0), (14.0, 14.5)]
    kept, rejected = segment(recording(20.0, regions), SR)
    # the 0.3 s pause stays inside one utterance; 0.1 s padding at both ends
    expected = [(0.9, 6.6), (8.9, 12.1)]
    assert len(kept) == len(expected)
    for (a, b), (x, y) in zip(kept, expected, strict=True):
        assert abs(a - x) <= 0.05 and abs(b - y) <= 0.05
    assert [r[2] for r in rejected] == ["too_short"] and abs(rejected[0][0] - 13.9) <= 0.05


def test_long_speech_is_cut_at_pauses_into_utterances_of_at_most_max_duration():
    regions = [(t, t + 4.7) for t in torch.arange(0.5, 70.0, 5.0).tolist()]  # 0.3 s pauses every 5 s
    cfg = VADConfig(max_duration=12.0)
    kept, rejected = segment(recording(71.0, regions), SR, cfg)
    assert all(cfg.min_duration <= b - a <= cfg.max_duration for a, b in kept)
    assert sum(b - a for a, b in kept) > 0.95 * (regions[-1][1] - regions[0][0])
    for a, b in zip(kept, kept[1:], strict=False):
        assert a[1] <= b[0] + 0.2  # consecutive, no overlap beyond the padding


def test_noise_only_and_silence_give_no_utterances_and_digital_silence_works():
    assert segment(torch.randn(SR * 10) * 0.01, SR)[0] == []
    assert segment(torch.zeros(SR * 5), SR) == ([], [])
    wav = torch.zeros(SR * 8)
    wav[SR : 5 * SR] = speechlike(4 * SR, SR)
    kept, _ = segment(wav, SR)
    assert len(kept) == 1 and abs(kept[0][0] - 0.9) <= 0.05 and abs(kept[0][1] - 5.1) <= 0.05


def test_agreement_filter_on_crafted_transcript_pairs():
    assert disagreement("Hello, World!", "hello world") == 0.0
    assert disagreement("the cat sat", "the cat sat on the mat", unit="word") == pytest.approx(0.5)
    assert disagreement("abcd", "abce") == pytest.approx(0.25)
    assert judge("The ship sailed at dawn.", "the ship sailed at dawn") == (True, "kept", 0.0)
    keep, reason, score = judge("The ship sailed at dawn.", "a sheep failed at down")
    assert not keep and reason == "disagree" and score > 0.15
    assert judge("something", "")[:2] == (False, "no_speech")
    with pytest.raises(ValueError):
        disagreement("a", "b", unit="phone")
