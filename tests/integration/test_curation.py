"""The TouchTTS-style data pipeline: segmentation and the agreement filter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from audiotok.curation.filter import disagreement, judge
from audiotok.curation.segment import VADConfig, segment
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


@pytest.fixture(scope="module")
def raw_recordings(tiny_corpus, tmp_path_factory) -> Path:
    """Long recordings made of the tiny corpus' utterances separated by 1 s pauses, one folder per speaker."""
    from audiotok import audio
    from audiotok.data.manifest import read_manifest

    out = tmp_path_factory.mktemp("raw")
    by_speaker: dict[str, list] = {}
    for u in read_manifest(tiny_corpus / "all.jsonl"):
        by_speaker.setdefault(u.speaker, []).append(u)
    for speaker, utts in list(by_speaker.items())[:2]:
        pieces = []
        for u in utts[:4]:
            w, sr = audio.load(u.audio, mono=True)
            w = audio.resample(w, sr, SR)
            pieces += [torch.zeros(SR), w]
        (out / speaker).mkdir()
        audio.save(out / speaker / "session.wav", torch.cat([*pieces, torch.zeros(SR)]) + 1e-4 * torch.randn(1), SR)
    return out


def test_pipeline_end_to_end_resumes_and_its_report_adds_up(raw_recordings, tmp_path):
    import json

    from audiotok.cli import main
    from audiotok.codec import Codec, codec_config
    from audiotok.whisper import new_whisper, save_openai, small_dims

    asr = save_openai(new_whisper(small_dims(80, 4.0, 32, 2, 1, n_text_ctx=32), seed=0), tmp_path / "asr.pt")
    Codec(codec_config("tiny")).save(tmp_path / "codec.safetensors")
    out = tmp_path / "out"
    # the same recogniser twice agrees with itself: everything segmented is kept and tokenized
    args = ["curate", str(raw_recordings), "-o", str(out), "--set", f"asr_a={asr}", "--set", f"asr_b={asr}"]
    args += ["--set", f"tokenizer={tmp_path / 'codec.safetensors'}", "--set", "vad.min_duration=1.0"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"] == 2 and report["utterances_segmented"] >= 2
    assert report["utterances_kept"] == report["utterances_segmented"]
    assert report["hours_kept"] + sum(report["rejected_hours"].values()) == pytest.approx(report["hours_in"])
    assert list((out / "shards").glob("*.tar")) and (out / "durations.png").stat().st_size > 0
    transcripts = (out / "transcripts-rank0.jsonl").read_text()
    # resumable: a second run transcribes nothing again
    assert main(args) == 0
    assert (out / "transcripts-rank0.jsonl").read_text() == transcripts
    # a random Whisper never agrees with pocketsphinx: nothing is kept, and the report says why
    out2 = tmp_path / "out2"
    args2 = ["pipeline", str(raw_recordings), "-o", str(out2), "--set", f"asr_a={asr}", "--set", "asr_b=pocketsphinx"]
    args2 += ["--set", "tokenizer=null", "--set", "vad.min_duration=1.0"]
    assert main(args2) == 0
    report2 = json.loads((out2 / "report.json").read_text())
    assert report2["utterances_kept"] == 0 and report2["hours_kept"] == 0
    rejected = report2["rejected_hours"]
    assert rejected.get("disagree", 0) + rejected.get("no_speech", 0) == pytest.approx(report2["hours_segmented"])


def test_raw_corpus_truth_and_scoring(tiny_corpus, tmp_path):
    import json

    from audiotok import audio
    from audiotok.curation.rawcorpus import RawCorpusConfig, build_raw_corpus, score_kept
    from audiotok.data.manifest import Utterance, write_manifest

    raw = build_raw_corpus(tiny_corpus / "all.jsonl", tmp_path / "raw", RawCorpusConfig(utterances_per_recording=2))
    truth = [json.loads(line) for line in (raw / "truth.jsonl").read_text().splitlines()]
    assert truth and {r["kind"] for r in truth} <= {"speech", "decoy", "tones"}
    for r in truth:
        n = audio.info(raw / f"{r['recording']}.wav").duration
        assert 0 <= r["start"] < r["end"] <= n and (r["text"] is None) == (r["kind"] != "speech")
    # kept segments that are exactly the truth's speech regions, with the true text: WER 0, no junk
    perfect = [
        Utterance(
            f"u{i}",
            str(raw / f"{r['recording']}.wav"),
            r["end"] - r["start"],
            text=r["text"],
            start=r["start"],
            end=r["end"],
            extra={"source": r["recording"]},
        )
        for i, r in enumerate(truth)
        if r["text"]
    ]
    write_manifest(tmp_path / "kept.jsonl", perfect)
    score = score_kept(tmp_path / "kept.jsonl", raw / "truth.jsonl")
    assert score["wer_vs_truth"] == 0.0 and score["junk_share"] == 0.0 and score["kept"] == len(perfect)


def test_pipeline_experiment_compares_the_filters(tiny_corpus, tmp_path):
    from audiotok.whisper import new_whisper, save_openai, small_dims
    from recipes.curation.experiment import main

    asr = save_openai(new_whisper(small_dims(80, 4.0, 32, 2, 1, n_text_ctx=32), seed=0), tmp_path / "asr.pt")
    results = main(
        [
            "--config",
            str(Path(__file__).resolve().parents[2] / "recipes/curation/configs/synth.yaml"),
            f"source={tiny_corpus / 'all.jsonl'}",
            "raw.utterances_per_recording=3",
            f"pipeline.asr_a={asr}",
            f"pipeline.asr_b={asr}",
            f"out_dir={tmp_path / 'exp'}",
        ]
    )
    filters = results["filters"]
    assert len(filters) == 3 + 4  # the config's sweep of looser agreement thresholds: 0.4, 0.5, 0.6, 0.75
    agreement, clean, both, *sweep = filters.values()
    assert agreement["retention"] >= both["retention"] and clean["retention"] >= both["retention"]
    retention = [agreement["retention"]] + [f["retention"] for f in sweep]
    assert retention == sorted(retention)  # a looser threshold never keeps less
    assert all(0 <= f["retention"] <= 1 and 0 <= f["junk_share"] <= 1 for f in filters.values())
    assert "| agreement (TouchTTS) |" in (tmp_path / "exp" / "results.md").read_text()


def test_pipeline_shards_its_stages_across_two_ranks(raw_recordings, tmp_path):
    import json

    from audiotok.whisper import new_whisper, save_openai, small_dims
    from tests.conftest import run_two_cpu_ranks

    asr = save_openai(new_whisper(small_dims(80, 4.0, 32, 2, 1, n_text_ctx=32), seed=0), tmp_path / "asr.pt")
    out = tmp_path / "ddp"
    args = ["-m", "audiotok", "pipeline", str(raw_recordings), "-o", str(out), "--set", f"asr_a={asr}"]
    args += ["--set", f"asr_b={asr}", "--set", "tokenizer=null", "--set", "vad.min_duration=1.0"]
    res = run_two_cpu_ranks(args, port=29563)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [out / f"transcripts-rank{r}.jsonl" for r in (0, 1)]
    ids = [{json.loads(line)["id"] for line in p.read_text().splitlines()} for p in ranks]
    assert ids[0] and ids[1] and not ids[0] & ids[1]  # disjoint shares
    report = json.loads((out / "report.json").read_text())
    assert report["utterances_kept"] == len(ids[0] | ids[1]) == report["utterances_segmented"]


def test_pipeline_experiment_takes_only_the_chosen_voices(tiny_corpus, tmp_path):
    from collections import Counter

    from audiotok.data.manifest import read_manifest
    from audiotok.whisper import new_whisper, save_openai, small_dims
    from recipes.curation.experiment import main

    voice = Counter(u.speaker for u in read_manifest(tiny_corpus / "all.jsonl")).most_common(1)[0][0]
    asr = save_openai(new_whisper(small_dims(80, 4.0, 32, 2, 1, n_text_ctx=32), seed=0), tmp_path / "asr.pt")
    main(
        [
            "--config",
            str(Path(__file__).resolve().parents[2] / "recipes/curation/configs/synth-judge.yaml"),
            f"source={tiny_corpus / 'all.jsonl'}",
            f"speakers=[{voice}]",
            "raw.utterances_per_recording=2",
            f"pipeline.asr_a={asr}",
            f"pipeline.asr_b={asr}",
            f"out_dir={tmp_path / 'exp'}",
        ]
    )
    assert {u.speaker for u in read_manifest(tmp_path / "exp" / "source.jsonl")} == {voice}
    truth = [json.loads(line) for line in (tmp_path / "exp" / "raw" / "truth.jsonl").read_text().splitlines()]
    assert truth and all(t["recording"].startswith(voice) for t in truth)
    # n_utterances: an even share of every voice
    per_voice = Counter(u.speaker for u in read_manifest(tiny_corpus / "all.jsonl"))
    all_voices = set(per_voice)
    main(
        [
            "--config",
            str(Path(__file__).resolve().parents[2] / "recipes/curation/configs/synth-judge.yaml"),
            f"source={tiny_corpus / 'all.jsonl'}",
            "speakers=[]",
            f"n_utterances={2 * len(all_voices)}",
            "raw.utterances_per_recording=2",
            f"pipeline.asr_a={asr}",
            f"pipeline.asr_b={asr}",
            f"out_dir={tmp_path / 'exp2'}",
        ]
    )
    chosen = Counter(u.speaker for u in read_manifest(tmp_path / "exp2" / "source.jsonl"))
    assert chosen == {v: min(2, n) for v, n in per_voice.items()}


def test_tts_comparison_fine_tunes_one_lm_per_filter_and_judges_each(tiny_corpus, tmp_path):
    from collections import Counter

    import torch

    from audiotok.data.manifest import read_manifest, write_manifest
    from audiotok.speaker import SpeakerConfig, SpeakerEncoder
    from recipes.curation.tts_compare import main
    from tests.tiny_tts import build_tiny_tts
    from tts.lm import TTSLM

    utts = read_manifest(tiny_corpus / "all.jsonl")
    voice = Counter(u.speaker for u in utts).most_common(1)[0][0]
    exp = tmp_path / "exp"
    exp.mkdir()
    write_manifest(exp / "kept-0.jsonl", utts[:3])
    write_manifest(exp / "kept-1.jsonl", utts[3:8])
    filters = {"agreement (TouchTTS)": {"hours": 0.001, "wer_vs_truth": 0.5}, "clean-only": {"hours": 0.002}}
    (exp / "results.json").write_text(json.dumps({"hours_in": 0.01, "filters": filters}))
    tts = build_tiny_tts()
    base = tts.save_pretrained(tmp_path / "base", semantic="semantic.safetensors")
    tts.semantic.save(base / "semantic.safetensors")
    torch.manual_seed(0)
    SpeakerEncoder(SpeakerConfig(channels=16, emb_dim=8)).save(tmp_path / "spk.safetensors")
    args = [f"experiment={exp}", "filters=[agreement (TouchTTS), clean-only]", f"tts={base}", "steps=1"]
    args += [
        f"eval_manifest={tiny_corpus / 'all.jsonl'}",
        f"prompts={tiny_corpus / 'all.jsonl'}",
        f"speakers=[{voice}]",
    ]
    args += [
        "limit=1",
        "flow_steps=2",
        "max_ratio=2",
        "whisper=null",
        f"speaker_model={tmp_path / 'spk.safetensors'}",
        f"out_dir={tmp_path / 'cmp'}",
    ]
    rows = main(args)
    assert list(rows) == ["base TTS (no fine-tuning)", "agreement (TouchTTS)", "clean-only"]
    assert all(0 <= r["tts"]["offline"]["wer_sphinx"] for r in rows.values())
    # every LM scored teacher-forced on the true tokens of all of the voice's held-out sentences
    assert {r["lm"]["utterances"] for r in rows.values()} == {sum(u.speaker == voice for u in utts)}
    losses = [r["lm"]["loss"] for r in rows.values()]
    assert all(x > 0 for x in losses) and losses[1] != losses[0]
    tuned = TTSLM.from_pretrained(tmp_path / "cmp" / "agreement-touchtts" / "lm")
    assert any(not torch.equal(a, b) for a, b in zip(tuned.model.parameters(), tts.lm.model.parameters(), strict=True))
    table = (tmp_path / "cmp" / "results.md").read_text()
    assert "| agreement (TouchTTS) | 0.001 | 50.0% |" in table and "| clean-only | 0.002 |" in table
    mtime = (tmp_path / "cmp" / "clean-only" / "lm" / "model.safetensors").stat().st_mtime
    assert main(args) == json.loads((tmp_path / "cmp" / "results.json").read_text())  # resumed: nothing re-run
    assert (tmp_path / "cmp" / "clean-only" / "lm" / "model.safetensors").stat().st_mtime == mtime
