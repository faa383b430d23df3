"""Parity with the reference ``s3tokenizer`` package (0.3.0) on random weights: same tokens on batched, padded
inputs of different lengths, including audio over 30 s (overlapping windows)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from audiotok.semantic import OFFICIAL, SemanticTokenizer
from tests.conftest import speechlike

s3tokenizer = pytest.importorskip("s3tokenizer")
from s3tokenizer.model import ModelConfig  # noqa: E402


def _pair(name: str, tiny: bool):
    """The reference model with random weights (v1 codebook randomised: it starts at zero) and ours with the
    same weights."""
    torch.manual_seed(0)
    version = "v2" if "v2" in name else "v1"
    kwargs = dict(n_audio_state=128, n_audio_head=2, n_audio_layer=2) if tiny else {}
    if version == "v2":
        ref = s3tokenizer.model_v2.S3TokenizerV2(name, config=s3tokenizer.model_v2.ModelConfig(**kwargs))
    else:
        ref = s3tokenizer.model.S3Tokenizer(name, config=ModelConfig(**kwargs))
        ref.quantizer._codebook.embed.normal_()
    ref.eval()
    config = OFFICIAL[name]
    if tiny:
        config = dataclasses.replace(config, dim=128, n_heads=2, n_layers=2)
    ours = SemanticTokenizer(config).eval()
    ours.load_official_state_dict(ref.state_dict())
    return ref, ours


def _reference_tokens(ref, wavs):
    mels = [s3tokenizer.log_mel_spectrogram(w) for w in wavs]
    mel, mel_lens = s3tokenizer.padding(mels)
    codes, lens = ref.quantize(mel, mel_lens)
    return codes, lens


def _compare(ref, ours, wavs):
    ref_codes, ref_lens = _reference_tokens(ref, wavs)
    codes, lens = ours.encode(wavs)
    assert lens.tolist() == ref_lens.tolist()
    total = int(lens.sum())
    missed = sum(int((codes[i, :n] != ref_codes[i, :n]).sum()) for i, n in enumerate(lens.tolist()))
    return missed, total


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_tiny_parity_batched_padded(name):
    ref, ours = _pair(name, tiny=True)
    wavs = [speechlike(n, 16000, seed=i) for i, n in enumerate((16000 * 2 + 77, 16000 * 10, 5000))]
    missed, total = _compare(ref, ours, wavs)
    assert missed / total <= 0.005, (missed, total)  # measured: 0 misses
    # batched == one-by-one
    codes, lens = ours.encode(wavs)
    for i, w in enumerate(wavs):
        single, n = ours.encode([w])
        assert torch.equal(single[0, : n[0]], codes[i, : lens[i]])


@pytest.mark.parametrize("name", ["speech_tokenizer_v1_25hz", "speech_tokenizer_v2_25hz"])
def test_tiny_parity_long_audio_windows(name):
    ref, ours = _pair(name, tiny=True)
    wavs = [speechlike(16000 * 35, 16000, seed=5), speechlike(16000 * 3, 16000, seed=6)]
    missed, total = _compare(ref, ours, wavs)
    assert total == 35 * 25 + 3 * 25 and missed / total <= 0.005, (missed, total)


def test_state_dict_round_trip_and_errors(tmp_path):
    ref, ours = _pair("speech_tokenizer_v2_25hz", tiny=True)
    path = tmp_path / "s3.pt"
    torch.save(ref.state_dict(), path)
    config = dataclasses.replace(OFFICIAL["speech_tokenizer_v2_25hz"], dim=128, n_heads=2, n_layers=2)
    loaded = SemanticTokenizer(config)
    loaded.load_official_state_dict(torch.load(path, weights_only=True))
    wav = speechlike(16000 * 3, 16000)
    assert torch.equal(loaded.encode([wav])[0], ours.encode([wav])[0])
    with pytest.raises(ValueError, match="not a v1"):
        SemanticTokenizer(
            dataclasses.replace(OFFICIAL["speech_tokenizer_v1"], dim=128, n_heads=2, n_layers=2)
        ).load_official_state_dict(ref.state_dict())
    assert ours.encode([speechlike(48000, 48000)], sample_rate=48000)[1].tolist() == [25]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_full_size_parity(name):
    ref, ours = _pair(name, tiny=False)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    wavs = [speechlike(n, 16000, seed=i) for i, n in enumerate((16000 * 3, 16000 * 10 + 123))]
    missed, total = _compare(ref, ours, wavs)
    assert missed / total <= 0.005, (missed, total)


def test_cli_encodes_with_an_official_state_dict(wav_tree, tmp_path, capsys):
    from audiotok.cli import main
    from audiotok.tokens import TOKEN_SUFFIX, load_tokens

    path = tmp_path / "speech_tokenizer_v2_25hz.pt"
    # an official name means the full-size architecture: save a full-size random reference model's state dict
    full_ref, _ = _pair("speech_tokenizer_v2_25hz", tiny=False)
    torch.save(full_ref.state_dict(), path)
    out = tmp_path / "tok"
    assert (
        main(
            [
                "encode",
                str(wav_tree / "spk1"),
                "-o",
                str(out),
                "--model",
                str(path),
                "--official",
                "speech_tokenizer_v2_25hz",
                "--quiet",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    rec = load_tokens(out / ("spk1_0" + TOKEN_SUFFIX))
    assert rec.model.codebook_size == 6561 and rec.model.frame_rate == 25.0 and rec.model.sample_rate == 16000
    assert len(rec.codes) == 25  # 1 s
    ref_codes, _ = _reference_tokens(full_ref, [speechlike(16000, 16000, seed=0)])
    assert (rec.codes == ref_codes[0, :25].numpy()).mean() >= 0.96  # the wav on disk is 16-bit; measured: 1.0
    assert (
        main(
            [
                "decode",
                str(out),
                "-o",
                str(tmp_path / "w"),
                "--model",
                str(path),
                "--official",
                "speech_tokenizer_v2_25hz",
            ]
        )
        == 2
    )
    assert "semantic tokenizer" in capsys.readouterr().err
