"""The official WavTokenizer test vectors (../shared/testvectors/wavtokenizer): a random-weight checkpoint in the
released Lightning layout and the reference implementation's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiotok import audio
from audiotok.codec import Codec
from audiotok.codec.official import config_from_yaml
from tests.conftest import WAVTOKENIZER_VECTORS as VECTORS

pytestmark = pytest.mark.skipif(not (VECTORS / "model.ckpt").exists(), reason=f"no test vectors at {VECTORS}")


@pytest.fixture(scope="module")
def official() -> Codec:
    return Codec.from_pretrained(VECTORS / "model.ckpt", config=VECTORS / "config.yaml")


def _npy(name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(VECTORS / name))


def test_config(official):
    c = config_from_yaml(VECTORS / "config.yaml")
    assert c.hop_length == 320 and c.n_fft == 1280 and c.decoder.dim == 64 and c.decoder.n_layers == 2
    assert c.quantizer.codebook_size == 4096


def test_reproduces_reference(official):
    wav = _npy("input.npy")
    file_wav, sample_rate = audio.load(VECTORS / "input.wav", mono=True)
    assert sample_rate == 24000 and torch.equal(file_wav, wav[0])
    z, _ = official.latents(wav, torch.tensor([wav.shape[1]]))
    assert (z - _npy("encoder_out.npy")).abs().max() < 1e-4
    codes, code_lens = official.encode(wav)
    assert torch.equal(codes, _npy("codes.npy")[0])  # official layout (n_q, B, L) -> ours (B, L)
    assert int(code_lens[0]) == 284
    features = official.quantizer.decode(codes)
    assert (features - _npy("features.npy")).abs().max() < 1e-6
    out, out_lens = official.decode(codes, code_lens)
    assert out.shape == (1, 90880) and int(out_lens[0]) == 90880  # the reference does not trim
    assert (out - _npy("audio_out.npy")).abs().max() < 1e-4
    assert (out - _npy("audio_from_codes.npy")).abs().max() < 1e-4
    trimmed, _ = official.decode(codes, code_lens, lengths=torch.tensor([wav.shape[1]]))
    assert torch.equal(trimmed, out[:, : wav.shape[1]])


def test_export_to_our_format(official, tmp_path):
    path = official.save(tmp_path / "wt.safetensors")
    ours = Codec.from_pretrained(path)
    wav = _npy("input.npy")
    assert torch.equal(ours.encode(wav)[0], _npy("codes.npy")[0])
    assert (ours.decode(*ours.encode(wav))[0] - _npy("audio_out.npy")).abs().max() < 1e-4
