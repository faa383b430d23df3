from __future__ import annotations

import librosa
import pytest
import torch
import torch.nn.functional as F
import torchaudio
import whisper
from torchaudio.compliance import kaldi

from audiotok.data.dataset import pad_sequences
from audiotok.data.features import KaldiFbank, MelSpectrogram, build_features
from audiotok.nn.masks import reflect_pad_per_item
from tests.conftest import speechlike

LENGTHS = (16000 * 3 + 37, 8000, 12345, 401)


def _batch(sample_rate: int):
    wavs = [speechlike(int(n * sample_rate / 16000), sample_rate, seed=i) for i, n in enumerate(LENGTHS)]
    padded, lens = pad_sequences(wavs)
    return wavs, padded, lens


def test_reflect_pad_per_item_matches_torch_pad():
    wavs, padded, lens = _batch(16000)
    out = reflect_pad_per_item(padded, lens, 200, 200)
    for i, w in enumerate(wavs):
        ref = F.pad(w[None, None], (200, 200), mode="reflect")[0, 0]
        assert torch.equal(out[i, : ref.shape[0]], ref)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_mel_equals_openai_whisper(n_mels):
    wavs, padded, lens = _batch(16000)
    feats, feats_lens = MelSpectrogram(f"whisper-{n_mels}")(padded, lens)
    assert feats.shape[:2] == (4, n_mels)
    for i, w in enumerate(wavs):
        ref = whisper.log_mel_spectrogram(w, n_mels=n_mels)
        assert int(feats_lens[i]) == ref.shape[-1] == len(w) // 160
        assert (feats[i, :, : feats_lens[i]] - ref).abs().max() < 1e-4
        assert (feats[i, :, feats_lens[i] :] == 0).all()


def test_vocos_mel_equals_torchaudio():
    wavs, padded, lens = _batch(24000)
    feats, feats_lens = MelSpectrogram("vocos")(padded, lens)
    ta = torchaudio.transforms.MelSpectrogram(
        sample_rate=24000, n_fft=1024, hop_length=256, n_mels=100, center=True, power=1
    )
    for i, w in enumerate(wavs):
        ref = ta(w).clamp_min(1e-7).log()
        assert int(feats_lens[i]) == ref.shape[-1] == len(w) // 256 + 1
        assert (feats[i, :, : feats_lens[i]] - ref).abs().max() < 1e-4


def _cosyvoice2_reference(w: torch.Tensor) -> torch.Tensor:
    """CosyVoice's matcha-style mel written out plainly: reflect pad (n_fft - hop) / 2, librosa filters."""
    basis = torch.from_numpy(librosa.filters.mel(sr=24000, n_fft=1920, n_mels=80, fmin=0, fmax=8000)).float()
    y = F.pad(w[None, None], (720, 720), mode="reflect")[0]
    spec = torch.stft(y, 1920, 480, 1920, torch.hann_window(1920), center=False, return_complex=True)
    spec = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
    return torch.log(torch.clamp(basis @ spec, min=1e-5))[0]


def test_cosyvoice2_mel_equals_reference_and_rate():
    wavs, padded, lens = _batch(24000)
    feats, feats_lens = MelSpectrogram("cosyvoice2")(padded, lens)
    for i, w in enumerate(wavs):
        if len(w) <= 720:  # the reference cannot reflect-pad an item shorter than its padding
            continue
        ref = _cosyvoice2_reference(w)
        assert int(feats_lens[i]) == ref.shape[-1]
        assert (feats[i, :, : feats_lens[i]] - ref).abs().max() < 1e-4
    # waveforms padded to a multiple of 960 samples give exactly 2 mel frames per 25 Hz token
    n = 960 * 7
    _, lens2 = MelSpectrogram("cosyvoice2")(torch.randn(1, n))
    assert int(lens2) == n // 480


def test_kaldi_fbank_equals_torchaudio():
    wavs, padded, lens = _batch(16000)
    feats, feats_lens = KaldiFbank()(padded, lens)
    for i, w in enumerate(wavs):
        ref = kaldi.fbank(w[None], num_mel_bins=80, dither=0.0, sample_frequency=16000).T
        assert int(feats_lens[i]) == ref.shape[-1]
        assert (feats[i, :, : feats_lens[i]] - ref).abs().max() < 1e-3


@pytest.mark.parametrize("name", ["whisper-80", "vocos", "cosyvoice2", "fbank"])
def test_batched_equals_one_by_one_and_shapes(name):
    transform = build_features(name)
    sample_rate = transform.config.sample_rate
    wavs, padded, lens = _batch(sample_rate)
    feats, feats_lens = transform(padded, lens)
    for i, w in enumerate(wavs):
        single, single_lens = transform(w)
        assert single.shape[-1] == int(single_lens[0]) == int(feats_lens[i])
        assert torch.allclose(feats[i, :, : feats_lens[i]], single[0], atol=1e-4)
    # (B, 1, T) is accepted too
    again, _ = transform(padded.unsqueeze(1), lens)
    assert torch.equal(again, feats)


def test_unknown_feature_is_an_error():
    with pytest.raises(ValueError, match="unknown"):
        build_features("mfcc-13")
