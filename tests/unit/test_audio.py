from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audiotok import audio
from tests.conftest import speechlike


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".mp3"])
def test_save_load_round_trip(tmp_path, ext):
    x = speechlike(16000, 16000)
    path = tmp_path / f"x{ext}"
    audio.save(path, x, 16000)
    y, sr = audio.load(path, mono=True)
    assert sr == 16000 and y.dtype == torch.float32
    if ext in (".wav", ".flac"):  # lossless: 16-bit quantisation only
        assert y.shape == x.shape
        assert (y - x).abs().max() < 1e-4
    else:  # lossy codecs keep the length roughly (mp3 adds encoder delay) and the level
        assert abs(y.shape[0] - x.shape[0]) < 2000
        assert abs(audio.rms_db(y) - audio.rms_db(x)) < 3.0
    assert audio.info(path).sample_rate == 16000


def test_multichannel_and_segments(tmp_path):
    stereo = torch.stack([speechlike(8000, 8000, 1), speechlike(8000, 8000, 2)])
    audio.save(tmp_path / "s.wav", stereo, 8000)
    wav, sr = audio.load(tmp_path / "s.wav")
    assert wav.shape == (2, 8000)
    mono, _ = audio.load(tmp_path / "s.wav", mono=True)
    assert torch.allclose(mono, wav.mean(0))
    seg, _ = audio.load(tmp_path / "s.wav", start=0.25, end=0.5, mono=True)
    assert seg.shape == (2000,)
    assert torch.allclose(seg, mono[2000:4000])


def test_save_is_atomic_and_refuses_nan(tmp_path):
    path = tmp_path / "x.wav"
    with pytest.raises(audio.InvalidSamples):
        audio.save(path, torch.tensor([0.0, float("nan")]), 16000)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_resample_batched_and_lengths():
    x = torch.stack([speechlike(16000, 16000, s) for s in range(3)])
    y = audio.resample(x, 16000, 24000)
    assert y.shape == (3, 24000)
    assert audio.resampled_length(16000, 16000, 24000) == 24000
    assert audio.resampled_length(16001, 16000, 24000) == y.new_zeros(24002).shape[0]
    assert int(audio.resampled_length(torch.tensor([16001]), 16000, 24000)) == 24002
    # a 1 kHz tone keeps its frequency
    t = torch.arange(16000) / 16000
    tone = audio.resample(torch.sin(2 * torch.pi * 1000 * t), 16000, 24000)
    peak_bin = torch.fft.rfft(tone).abs().argmax().item()
    assert abs(peak_bin - 1000) <= 1
    # one-by-one equals batched
    assert torch.allclose(audio.resample(x[1], 16000, 24000), y[1], atol=1e-6)


def test_normalization():
    x = speechlike(16000, 16000) * 0.01
    assert abs(audio.peak_normalize(x, -1.0).abs().max().item() - 10 ** (-1 / 20)) < 1e-6
    y = audio.loudness_normalize(x, -20.0)
    assert abs(audio.rms_db(y).item() + 20.0) < 0.1
    silent = torch.zeros(100)
    assert torch.equal(audio.loudness_normalize(silent), silent)


def test_trim_silence():
    x = torch.cat([torch.zeros(8000), speechlike(8000, 16000), torch.zeros(8000)])
    y = audio.trim_silence(x, 16000, margin=0.05)
    assert 8000 <= y.shape[0] <= 8000 + 2 * 800 + 320


# every bad-input case gets a typed error naming the file
def _bad_files(tmp_path):
    good = tmp_path / "good.wav"
    audio.save(good, speechlike(16000, 16000), 16000)
    data = good.read_bytes()
    cases = {}
    cases["missing"] = (tmp_path / "nope.wav", audio.AudioFileNotFound)
    (tmp_path / "empty.wav").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.wav", audio.EmptyAudioFile)
    (tmp_path / "text.wav").write_text("this is not audio at all\n" * 20)
    cases["not audio"] = (tmp_path / "text.wav", audio.UnsupportedAudioFormat)
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    cases["truncated wav"] = (tmp_path / "cut.wav", audio.CorruptAudioFile)
    audio.save(tmp_path / "good.flac", speechlike(16000, 16000), 16000)
    flac = (tmp_path / "good.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(flac[: len(flac) // 2])
    cases["truncated flac"] = (tmp_path / "cut.flac", audio.CorruptAudioFile)
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1), dtype="float32"), 16000)
    cases["zero samples"] = (tmp_path / "zero.wav", audio.EmptyAudioFile)
    sf.write(tmp_path / "nan.wav", np.array([0.0, np.nan, np.inf, 0.1], dtype="float32"), 16000, subtype="FLOAT")
    cases["nan"] = (tmp_path / "nan.wav", audio.InvalidSamples)
    (tmp_path / "x.xyz").write_bytes(bytes(range(256)) * 8)
    cases["unsupported"] = (tmp_path / "x.xyz", audio.UnsupportedAudioFormat)
    cases["folder"] = (tmp_path, audio.AudioFileNotFound)
    return cases


def test_bad_inputs_raise_typed_errors(tmp_path):
    for name, (path, err_type) in _bad_files(tmp_path).items():
        with pytest.raises(err_type) as info:
            audio.load(path)
        assert isinstance(info.value, audio.AudioError), name
        assert info.value.path == str(path), name
        assert str(path) in str(info.value) and info.value.reason, name


def test_batch_callers_can_skip_bad_items(tmp_path):
    results, errors = [], []
    for path, _ in _bad_files(tmp_path).values():
        try:
            results.append(audio.load(path))
        except audio.AudioError as err:
            errors.append(err)
    assert len(errors) == 9 and not results
    assert audio.load(tmp_path / "good.wav")[0].shape == (1, 16000)


def test_prepare_for_model_downmixes_and_resamples():
    stereo = torch.stack([speechlike(16000, 16000, 1), speechlike(16000, 16000, 2)])
    out = audio.prepare_for_model(stereo, 16000, 24000)
    assert out.shape == (24000,)
    assert torch.allclose(out, audio.resample(stereo.mean(0), 16000, 24000))
