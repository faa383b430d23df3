from __future__ import annotations

import json
import os

from audiotok import audio
from audiotok.data.manifest import read_manifest
from audiotok.data.synth import CorpusConfig, build_corpus, list_voices
from audiotok.data.synth.corpus import plan_corpus
from audiotok.data.synth.text_sources import load_sentences, text_split
from audiotok.data.synth.voices import is_test_voice


def test_corpus_layout_splits_and_voices(tiny_corpus):
    summary = json.loads((tiny_corpus / "corpus.json").read_text())
    assert summary["synthetic"] is True and not summary["failures"]
    splits = {s: read_manifest(tiny_corpus / f"{s}.jsonl") for s in ("train", "valid", "test")}
    train_speakers = {u.speaker for u in splits["train"]}
    test_speakers = {u.speaker for u in splits["test"]}
    assert len(train_speakers | test_speakers) >= 8
    assert test_speakers and not train_speakers & test_speakers  # whole speakers held out
    assert {u.speaker for u in splits["valid"]} <= train_speakers
    train_text = {u.text for u in splits["train"]}
    assert not train_text & {u.text for u in splits["test"] + splits["valid"]}  # held-out sentences
    assert all(text_split(u.text) == s for s, us in splits.items() for u in us)
    u = splits["train"][0]
    wav, sr = audio.load(u.audio, mono=True)
    assert sr == 24000 and abs(wav.shape[0] / sr - u.duration) < 1e-6
    assert u.extra["synthetic"] and u.extra["native_sample_rate"] in (16000, 22050, 32000, 48000)
    assert open(u.audio[:-4] + ".txt").read().strip() == u.text


def test_plan_is_deterministic_and_seeded(tmp_path):
    voices = list_voices("adult", n_espeak=4, seed=0)
    a = plan_corpus(CorpusConfig(str(tmp_path), minutes=2, seed=0), voices)
    b = plan_corpus(CorpusConfig(str(tmp_path), minutes=2, seed=0), voices)
    c = plan_corpus(CorpusConfig(str(tmp_path), minutes=2, seed=1), voices)
    assert a == b and [p.text for p in a] != [p.text for p in c]
    assert all((p.split == "test") == is_test_voice(p.voice) for p in a)


def test_resume_keeps_existing_audio(tiny_corpus, tmp_path):
    first = read_manifest(tiny_corpus / "all.jsonl")[0]
    mtime = os.path.getmtime(first.audio)
    build_corpus(CorpusConfig(out_dir=str(tiny_corpus), minutes=1.5, n_espeak=3, seed=0), progress=False)
    assert os.path.getmtime(first.audio) == mtime
    assert read_manifest(tiny_corpus / "all.jsonl")[0] == first


def test_child_domain_voices_are_higher():
    adult = {v.name: v for v in list_voices("adult", n_espeak=6, seed=0)}
    child = list_voices("child", n_espeak=6, seed=0)
    assert all(v.domain == "child" and v.name.startswith("child-") for v in child)
    assert all(v.semitones > 0 for v in child)
    assert all(v.pitch >= 70 and v.rate >= 180 for v in child if v.engine == "espeak")
    assert all(adult[v.name.removeprefix("child-")].semitones == 0 for v in child if v.engine != "espeak")


def test_sentences_are_clean():
    sentences = load_sentences()
    assert len(sentences) > 20000
    assert all(s[0].isupper() and s[-1] in ".?!" and s.isascii() for s in sentences)
    assert not any(ch.isdigit() for s in sentences[:5000] for ch in s)


def test_resume_trusts_the_side_car_transcript(tiny_corpus, tmp_path, monkeypatch):
    """A build resumed after the text front end changed keeps what the audio says (the side-car), not the new plan's
    sentence for that id."""
    import shutil

    from audiotok.data.synth import corpus

    copy = tmp_path / "copy"
    shutil.copytree(tiny_corpus, copy)
    first = read_manifest(copy / "all.jsonl")[0]
    real_plan = corpus.plan_corpus

    def changed_plan(config, voices=None):
        return [corpus.PlannedUtterance(p.id, p.voice, p.text.upper(), p.split) for p in real_plan(config, voices)]

    monkeypatch.setattr(corpus, "plan_corpus", changed_plan)
    build_corpus(CorpusConfig(out_dir=str(copy), minutes=1.5, n_espeak=3, seed=0), progress=False)
    again = read_manifest(copy / "all.jsonl")[0]
    assert again.text == first.text == open(first.audio[:-4] + ".txt").read().strip()
