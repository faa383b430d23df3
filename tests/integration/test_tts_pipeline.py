"""The TTS pipeline end to end on tiny random models: offline, streaming, prompts, the model folder."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.tiny_tts import OPTS, build_tiny_tts
from tts.flow import FlowDecoder
from tts.pipeline import TTS, SynthesisOptions, split_sentences
from tts.sampling import SamplingConfig


@pytest.fixture(scope="module")
def tts() -> TTS:
    return build_tiny_tts()


def test_sentence_splitting():
    assert split_sentences("One. Two! Three?  Four") == ["One.", "Two!", "Three?", "Four"]
    long = "word, " * 80
    assert all(len(s) <= 201 for s in split_sentences(long)) and "".join(split_sentences(long)).count("word") == 80


def test_offline_synthesis(tts):
    wav = tts.synthesize("The quick brown fox.", options=OPTS)
    assert wav.dim() == 1 and len(wav) > 0 and len(wav) % 960 == 0 and torch.isfinite(wav).all()
    assert torch.equal(wav, tts.synthesize("The quick brown fox.", options=OPTS))  # deterministic under a seed


def _snr(ref, x) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (ref - x).pow(2).sum().clamp_min(1e-20)))


def test_streaming_matches_offline_synthesis_with_the_chunk_mask(tts):
    offline = tts.synthesize("The quick brown fox jumps.", options=OPTS)
    chunks = list(tts.stream("The quick brown fox jumps.", options=OPTS))
    streamed = torch.cat(chunks)
    assert len(chunks) > 2  # audio came out before the LM finished
    assert streamed.shape == offline.shape and _snr(offline, streamed) > 20


def test_prompted_synthesis_and_model_folder_round_trip(tts, tmp_path):
    from tests.conftest import speechlike

    prompt = speechlike(24000, 24000)
    wav = tts.synthesize("Jumps over the dog.", prompt, 24000, "The quick brown fox.", OPTS)
    assert len(wav) > 0 and torch.isfinite(wav).all()
    sem_path = tmp_path / "semantic.safetensors"
    tts.semantic.save(sem_path)
    folder = tts.save_pretrained(tmp_path / "tts", semantic="semantic.safetensors")
    sem_path.rename(folder / "semantic.safetensors")
    again = TTS.from_pretrained(folder)
    assert torch.allclose(
        again.synthesize("Jumps over the dog.", prompt, 24000, "The quick brown fox.", OPTS), wav, atol=1e-5
    )
    with pytest.raises(FileNotFoundError, match="pipeline.json"):
        TTS.from_pretrained(tmp_path)


def test_synthesize_cli(tts, tmp_path):
    from audiotok import audio
    from audiotok.cli import main

    sem_path = tmp_path / "semantic.safetensors"
    tts.semantic.save(sem_path)
    folder = tts.save_pretrained(tmp_path / "tts", semantic=str(sem_path))
    small = ["--model", str(folder), "--steps", "2", "--max-ratio", "3"]  # a short output from few flow steps
    for extra in ([], ["--stream"]):
        out = tmp_path / f"out{len(extra)}.wav"
        rc = main(["synthesize", "The quick brown fox.", "-o", str(out), *small, *extra])
        assert rc == 0 and audio.info(out).duration > 0
    assert main(["synthesize", "x", "-o", str(tmp_path / "x.wav"), "--model", str(tmp_path)]) != 0
    (tmp_path / "lines.txt").write_text("The quick brown fox.\n\nJumps over the dog.\n")
    rc = main(["synthesize", "--lines", str(tmp_path / "lines.txt"), "-o", str(tmp_path / "many"), *small])
    assert rc == 0 and sorted(p.name for p in (tmp_path / "many").iterdir()) == ["00000.wav", "00001.wav"]


def test_eval_tts_on_tiny_models(tts, tiny_corpus, tmp_path):
    import json
    from collections import Counter

    from audiotok.cli import main
    from audiotok.data.manifest import read_manifest
    from audiotok.speaker import SpeakerConfig, SpeakerEncoder
    from tts.evaluate import evaluate_tts, format_report

    torch.manual_seed(0)
    speaker = SpeakerEncoder(SpeakerConfig(channels=16, emb_dim=8)).eval()
    opts = SynthesisOptions(sampling=SamplingConfig(min_ratio=1.0, max_ratio=2.0), n_steps=2)
    voice = Counter(u.speaker for u in read_manifest(tiny_corpus / "all.jsonl")).most_common(1)[0][0]
    result = evaluate_tts(
        tts,
        tiny_corpus / "all.jsonl",
        tiny_corpus / "all.jsonl",
        speaker,
        limit=2,
        options=opts,
        progress=False,
        speakers=[voice],
        modes=("vocoder", "resynthesis", "offline", "stream"),
    )
    assert result["utterances"] == 2
    for mode in ("vocoder", "resynthesis", "offline", "stream"):
        e = result[mode]
        assert e["wer_sphinx"] >= 0 and e["cer_sphinx"] >= 0 and -1 <= e["similarity"] <= 1 and e["rtf"] > 0
    assert result["stream"]["first_chunk_s"] > 0
    assert 0 <= result["recordings"]["wer_sphinx"] <= 1.5
    # chance (each recording scored against the other sentence) is worse than the recordings' own sentences
    assert result["chance"]["cer_sphinx"] > result["recordings"]["cer_sphinx"]
    assert "chance: a recording scored against another sentence" in format_report(result)
    assert "TTS, stream" in format_report(result) and "resynthesis (real tokens, no LM)" in format_report(result)
    speaker.save(tmp_path / "spk.safetensors")
    tts.semantic.save(tmp_path / "semantic.safetensors")
    folder = tts.save_pretrained(tmp_path / "tts", semantic=str(tmp_path / "semantic.safetensors"))
    out = tmp_path / "eval.json"
    rc = main(
        [
            "eval-tts",
            str(tiny_corpus / "all.jsonl"),
            "--prompts",
            str(tiny_corpus / "all.jsonl"),
            "--model",
            str(folder),
            "--speaker-model",
            str(tmp_path / "spk.safetensors"),
            "--limit",
            "1",
            "--speakers",
            voice,
            "--mode",
            "offline",
            "--steps",
            "2",
            "--max-ratio",
            "2",
            "-o",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0 and "offline" in json.loads(out.read_text())


def test_assemble_recipe_writes_a_loadable_fp16_folder(tts, tmp_path):
    from recipes.tts.assemble import main as assemble

    tts.lm.save_pretrained(tmp_path / "lm")
    tts.flow.save(tmp_path / "flow.safetensors")
    tts.vocoder.save(tmp_path / "vocoder.safetensors")
    tts.semantic.save(tmp_path / "semantic.safetensors")
    parts = ["--lm", str(tmp_path / "lm"), "--flow", str(tmp_path / "flow.safetensors")]
    parts += ["--vocoder", str(tmp_path / "vocoder.safetensors"), "--semantic", str(tmp_path / "semantic.safetensors")]
    assert assemble([*parts, "-o", str(tmp_path / "tts"), "--dtype", "fp16"]) == 0
    again = TTS.from_pretrained(tmp_path / "tts")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "tts" / "lm" / "model.safetensors"), "pt") as f:
        assert tts.lm.config.tie_embeddings and "lm_head.weight" not in f.keys()  # tied: stored once in fp16 too
    for a, b in ((again.flow, tts.flow), (again.vocoder, tts.vocoder), (again.lm.model, tts.lm.model)):
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert x.dtype == y.dtype and torch.equal(x, y.half().to(y.dtype) if y.is_floating_point() else y), k
    assert again.mel_config == tts.mel_config and torch.isfinite(again.synthesize("The fox.", options=OPTS)).all()
    wrong = replace(tts.flow.config, n_speech=100)
    FlowDecoder(wrong).save(tmp_path / "flow-100.safetensors")
    parts[3] = str(tmp_path / "flow-100.safetensors")
    with pytest.raises(SystemExit, match="speech tokens"):
        assemble([*parts, "-o", str(tmp_path / "bad")])


def test_resynthesis_reads_the_recordings_own_tokens(tts):
    from tests.conftest import speechlike

    audio, prompt = speechlike(24000 * 2, 24000, seed=1), speechlike(24000, 24000, seed=2)
    wav = tts.resynthesize(audio, 24000, prompt, 24000, OPTS)
    codes, _ = tts._prompt(audio, 24000)
    assert len(wav) == len(codes) * tts.flow.config.ratio * tts.mel_config.hop_length  # the recording's length
    assert torch.equal(wav, tts.resynthesize(audio, 24000, prompt, 24000, OPTS))
    assert tts.copy_synthesis(audio, 24000).shape == wav.shape
