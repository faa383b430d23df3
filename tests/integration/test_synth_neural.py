"""Corpus v2's neural voices (Kokoro packs + blends, Hibari, Piper) and the phonemes every utterance records."""

from __future__ import annotations

import numpy as np
import pytest

from audiotok.data.manifest import read_manifest
from audiotok.data.synth import CorpusConfig, build_corpus
from audiotok.data.synth.corpus import plan_corpus, synthesize, utterance_speed
from audiotok.data.synth.neural import neural_available, parse_blend
from audiotok.data.synth.voices import NEURAL_SPEED, is_test_voice, neural_voices

HAVE = neural_available()
needs_all = pytest.mark.skipif(not all(HAVE.values()), reason=f"neural engines missing: {HAVE}")


def test_blends_are_convex_and_checked():
    assert parse_blend("jf_alpha*1+jm_kumo*3") == {"jf_alpha": 0.25, "jm_kumo": 0.75}
    assert parse_blend("jm_kumo") == {"jm_kumo": 1.0}
    with pytest.raises(ValueError, match="unknown Kokoro pack"):
        parse_blend("af_heart*0.5+jm_kumo*0.5")
    with pytest.raises(ValueError, match="non-negative"):
        parse_blend("jf_alpha*-1+jm_kumo*1")


@needs_all
def test_neural_voices_and_their_split():
    voices = neural_voices()
    names = {v.name for v in voices}
    assert {"kokoro-jm_kumo", "hibari-heart", "piper-joe"} <= names and len(names) == len(voices)
    blends = [v for v in voices if "+" in v.voice]
    held = [v for v in blends if is_test_voice(v)]
    assert 0 < len(held) < len(blends) // 2  # whole blends held out for test
    assert not any(is_test_voice(v) for v in voices if "+" not in v.voice)  # packs, Hibari and Piper train
    speeds = [utterance_speed(f"kokoro-jm_kumo_{k:05d}", voices[0]) for k in range(200)]
    assert NEURAL_SPEED[0] <= min(speeds) < 0.9 and 1.1 < max(speeds) <= NEURAL_SPEED[1]


@needs_all
@pytest.mark.parametrize("name", ["kokoro-jf_gongitsune50-jm_kumo50", "hibari-heart", "piper-joe"])
def test_each_engine_speaks(name):
    voice = next(v for v in neural_voices() if v.name == name)
    wav, native = synthesize(voice, "The cat sat on the mat.", 24000, speed=1.0)
    assert native == (22050 if voice.engine == "piper" else 24000)
    seconds = wav.shape[-1] / 24000
    assert 0.6 < seconds < 4.0 and float(wav.abs().max()) > 0.5  # speech, peak-normalised
    assert np.isfinite(wav.numpy()).all()


@needs_all
def test_a_neural_utterance_records_phonemes_and_speed(tmp_path):
    from audiotok.data.synth.corpus import PlannedUtterance, _make

    voice = next(v for v in neural_voices() if v.name == "kokoro-jm_kumo")
    u = _make(PlannedUtterance("kokoro-jm_kumo_00007", voice, "Read the story aloud.", "train"), tmp_path, 24000)
    assert u.extra["phonemes"].startswith("ɹˈid") and u.extra["speed"] == utterance_speed(u.id, voice)
    assert u.extra["native_sample_rate"] == 24000 and u.duration > 0.5
    again = _make(PlannedUtterance(u.id, voice, "Read the story aloud.", "train"), tmp_path, 24000)
    assert again == u  # resumed from the side-cars, not re-synthesised


@pytest.mark.slow
@needs_all
def test_a_neural_corpus_records_phonemes_speed_and_hours(tmp_path):
    cfg = CorpusConfig(str(tmp_path), minutes=0.5, n_espeak=0, neural=True, jobs=2, flush_every=8)
    plan = plan_corpus(cfg)
    assert {p.voice.engine for p in plan} >= {"kokoro", "hibari", "piper", "flite"}
    summary = build_corpus(cfg, progress=False)
    assert summary["complete"] and not summary["failures"]
    assert summary["hours"]["neural"] > 0 and summary["hours"]["debian"] > 0
    utts = read_manifest(tmp_path / "all.jsonl")
    assert all(u.extra["phonemes"] for u in utts)  # the TTS front end's G2P, for every voice
    neural = [u for u in utts if u.extra["engine"] in ("kokoro", "hibari", "piper")]
    assert neural and all(NEURAL_SPEED[0] <= u.extra["speed"] <= NEURAL_SPEED[1] for u in neural)
