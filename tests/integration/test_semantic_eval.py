"""``audiotok eval-semantic``: the measures themselves, and an end-to-end run on tiny random models."""

from __future__ import annotations

import json

import pytest
import torch

from audiotok.checkpoint import save_model
from audiotok.codec import Codec, codec_config
from audiotok.data.manifest import even_share, read_manifest
from audiotok.semantic.evaluate import (
    _speed,
    add_noise,
    agreement,
    bag_of_tokens,
    evaluate_semantic,
    format_report,
    speaker_probe,
)
from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR


def test_agreement_is_one_minus_normalised_edit_distance():
    assert agreement([1, 2, 3], [1, 2, 3]) == 1.0
    assert agreement([1, 2, 3], [4, 5, 6]) == 0.0
    assert agreement([1, 2, 3], [1, 3]) == pytest.approx(1 - 1 / 3)
    assert agreement([], []) == 1.0


def test_noise_is_added_at_the_requested_snr_and_speed_changes_length():
    wav = torch.sin(torch.arange(32000) * 0.05)
    for snr in (20.0, 5.0):
        noise = add_noise(wav, snr, seed=1) - wav
        measured = 10 * torch.log10(wav.pow(2).mean() / noise.pow(2).mean())
        assert abs(float(measured) - snr) < 0.2
    assert torch.equal(add_noise(wav, 10.0, seed=3), add_noise(wav, 10.0, seed=3))
    assert len(_speed(wav, 1.1)) == pytest.approx(32000 / 1.1, abs=2)  # augment.change_speed on one waveform
    assert len(_speed(wav, 0.9)) == pytest.approx(32000 / 0.9, abs=2)


def test_speaker_probe_finds_planted_speaker_information_and_not_absent_one():
    g = torch.Generator().manual_seed(0)
    speakers = [f"s{i % 4}" for i in range(160)]
    planted = torch.randn(160, 32, generator=g) * 0.5
    for i, s in enumerate(speakers):
        planted[i, int(s[1])] += 2.0
    hit = speaker_probe(planted, speakers)
    assert hit["accuracy"] > 0.9 and hit["chance"] == 0.25 and hit["test_utterances"] == 80
    noise = speaker_probe(torch.randn(160, 32, generator=g), speakers)
    assert noise["accuracy"] < 0.5
    hist = bag_of_tokens([[0, 0, 1], [2]], 4)
    assert torch.allclose(hist, torch.tensor([[2 / 3, 1 / 3, 0, 0], [0, 0, 1, 0]]))


def test_eval_semantic_end_to_end_on_tiny_models(tiny_corpus, tmp_path):
    torch.manual_seed(0)
    cfg = SupervisedConfig(n_mels=80, seconds=4.0, n_state=64, n_head=2, n_layer=2, n_text_ctx=64, quantize_after=1)
    asr = SupervisedTokenizerASR(cfg).eval()
    tokenizer = asr.export_tokenizer()
    codec = Codec(codec_config("tiny")).eval()
    result = evaluate_semantic(
        tokenizer, tiny_corpus / "all.jsonl", codec, asr, asr.whisper, limit=14, batch_size=4, progress=False
    )
    # an even share of every voice (at least one each)
    assert result["utterances"] == len(even_share(read_manifest(tiny_corpus / "all.jsonl"), 14))
    for key in ("wer_from_tokens", "cer_from_tokens", "wer_unquantized", "cer_unquantized"):
        assert 0.0 <= result[key]
    for name in ("semantic", "codec"):
        entry = result[name]
        assert set(entry["robustness"]) == {"noise_20db", "noise_10db", "noise_5db", "speed_0.9", "speed_1.1"}
        assert all(0.0 <= v <= 1.0 for v in entry["robustness"].values())
        assert 0.0 < entry["codebook"]["used"] <= 1.0
        assert 0.0 <= entry["probe"]["accuracy"] <= 1.0
    assert result["semantic"]["tokens_per_second"] == pytest.approx(25, rel=0.1)
    assert result["codec"]["tokens_per_second"] == pytest.approx(codec.frame_rate, rel=0.1)
    assert "speaker probe accuracy" in format_report(result)
    json.dumps(result)  # the CLI writes it as JSON


def test_eval_semantic_cli(tiny_corpus, tmp_path):
    from audiotok.cli import main

    torch.manual_seed(0)
    cfg = SupervisedConfig(n_mels=80, seconds=4.0, n_state=64, n_head=2, n_layer=2, n_text_ctx=64, quantize_after=1)
    asr = SupervisedTokenizerASR(cfg).eval()
    asr.export_tokenizer().save(tmp_path / "tok.safetensors")
    save_model(asr, tmp_path / "asr.safetensors")
    out = tmp_path / "eval.json"
    utts = read_manifest(tiny_corpus / "all.jsonl")
    voice = utts[0].speaker
    rc = main(
        ["eval-semantic", str(tiny_corpus / "all.jsonl"), "--model", str(tmp_path / "tok.safetensors")]
        + ["--asr", str(tmp_path / "asr.safetensors"), "--codec", "none", "--limit", "3", "-o", str(out)]
        + ["--speakers", voice, "--quiet"]
    )
    assert rc == 0
    result = json.loads(out.read_text())
    mine = [u for u in utts if u.speaker == voice]
    assert len(mine) < len(utts)
    assert "wer_from_tokens" in result and "codec" not in result
    assert result["utterances"] == len(even_share(mine, 3))
