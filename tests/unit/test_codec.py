from __future__ import annotations

import math

import pytest
import torch

from audiotok.checkpoint import CheckpointError, read_metadata
from audiotok.codec import Codec, codec_config
from audiotok.codec.quantizer import codebook_usage
from tests.conftest import speechlike


@pytest.fixture(scope="module")
def tiny() -> Codec:
    torch.manual_seed(0)
    model = Codec(codec_config("tiny")).eval()
    with torch.no_grad():  # a random encoder's latents are ~1e-3: scale them up so codes have no float near-ties
        model.encoder.model[-1].conv.parametrizations.weight.original0.mul_(300.0)
    wav = torch.stack([speechlike(24000, 24000, s) for s in range(4)])
    z, lens = model.latents(wav, torch.full((4,), 24000))
    model.quantizer.init_from_latents(z.transpose(1, 2).reshape(-1, z.shape[1]), iters=10)
    return model


@pytest.mark.parametrize(
    "name, params, hop", [("wavtokenizer-75", 71_750_146, 320), ("wavtokenizer-40", 72_111_714, 600)]
)
def test_full_size_configs_match_the_release(name, params, hop):
    model = Codec(codec_config(name))
    assert sum(p.numel() for p in model.parameters()) == params  # the released inference path, counted
    assert model.hop_length == hop and model.config.n_fft == 4 * hop
    assert model.quantizer.codebook.shape == (4096, 512)
    assert model.frame_rate == 24000 / hop


@pytest.mark.parametrize("n", [1, 319, 320, 321, 24000, 24001])
def test_lengths(tiny, n):
    wav = speechlike(n, 24000)
    codes, code_lens = tiny.encode(wav)
    assert codes.shape == (1, math.ceil(n / 320)) and int(code_lens[0]) == math.ceil(n / 320)
    assert codes.dtype == torch.int64
    out, out_lens = tiny.decode(codes, code_lens)
    assert out.shape == (1, math.ceil(n / 320) * 320)
    out, out_lens = tiny.decode(codes, code_lens, lengths=torch.tensor([n]))
    assert out.shape == (1, n) and int(out_lens[0]) == n
    assert tiny.reconstruct(wav).shape == (1, n)
    assert tiny.reconstruct(wav.view(1, 1, -1)).shape == (1, n)


def test_batch_equals_one_by_one(tiny):
    lens = [24000, 17777, 9601, 4000, 331]
    wavs = [speechlike(n, 24000, seed=i) for i, n in enumerate(lens)]
    codes, code_lens = tiny.encode(wavs)
    padded, lens_t = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True), torch.tensor(lens)
    z_batch, _ = tiny.latents(padded, lens_t)
    for i, w in enumerate(wavs):
        single, single_lens = tiny.encode(w)
        n = int(single_lens[0])
        assert int(code_lens[i]) == n
        # exact: the encoder recomputes each item's last frames from its own audio (measured: 0 of 177 differ)
        assert torch.equal(single[0], codes[i, :n])
        assert (codes[i, n:] == 0).all()
        z_single, _ = tiny.latents(w[None], torch.tensor([len(w)]))
        assert (z_single[0] - z_batch[i, :, :n]).abs().max() < 1e-4 * z_single.abs().max()
    audio, audio_lens = tiny.decode(codes, code_lens)
    for i in range(len(lens)):
        single, _ = tiny.decode(codes[i, : code_lens[i]])
        assert torch.allclose(audio[i, : audio_lens[i]], single[0], atol=1e-5)
        assert (audio[i, audio_lens[i] :] == 0).all()


def test_resampling_input(tiny):
    wav16 = speechlike(16000, 16000)
    codes, code_lens = tiny.encode(wav16, sample_rate=16000)
    assert int(code_lens[0]) == 75


def test_save_load_identical(tiny, tmp_path):
    path = tiny.save(tmp_path / "codec.safetensors")
    meta = read_metadata(path)
    assert meta["model_type"] == "audiotok-codec"
    loaded = Codec.from_pretrained(path)
    wav = speechlike(12000, 24000)
    assert torch.equal(loaded.encode(wav)[0], tiny.encode(wav)[0])
    assert torch.equal(loaded.reconstruct(wav), tiny.reconstruct(wav))
    tiny.save(tmp_path / "model.safetensors")  # a folder holding model.safetensors loads too
    assert torch.equal(Codec.from_pretrained(tmp_path).encode(wav)[0], tiny.encode(wav)[0])


def test_bad_inputs(tiny, tmp_path):
    with pytest.raises(ValueError, match="codes must lie"):
        tiny.decode(torch.tensor([[0, 64]]))
    with pytest.raises(CheckpointError):
        Codec.from_pretrained(tmp_path / "nope.safetensors")
    (tmp_path / "x.ckpt").write_bytes(b"")  # not a released file name, no x.yaml beside it
    with pytest.raises(ValueError, match="needs its YAML"):
        Codec.from_pretrained(tmp_path / "x.ckpt")
    with pytest.raises(ValueError, match="mono"):
        tiny.encode(torch.zeros(1, 2, 100))


def test_codebook_usage():
    codes = torch.tensor([[0, 1, 2, 3, 9, 9]])
    u = codebook_usage(codes, 8, code_lens=torch.tensor([4]))
    assert u["used"] == 0.5 and abs(u["perplexity"] - 4.0) < 1e-9


def test_training_pass_and_vq_bypass(tiny):
    model = Codec(codec_config("tiny")).train()
    wav = torch.stack([speechlike(8000, 24000, s) for s in range(2)])
    out = model(wav, torch.tensor([8000, 6000]), quantize=False)
    assert out["audio"].shape == (2, 8000) and float(out["commit"]) == 0.0
    out["audio"].pow(2).mean().backward()
    assert model.encoder.model[0].conv.parametrizations.weight.original1.grad is not None


def test_data_dependent_init_gives_unit_scale_latents():
    from audiotok.nn.init import data_dependent_init

    torch.manual_seed(0)
    model = Codec(codec_config("tiny"))
    wav = torch.stack([speechlike(12000, 24000, s) for s in range(3)])
    before = model.encoder(wav.unsqueeze(1)).std(-1).mean()
    data_dependent_init(model.encoder, lambda: model.encoder(wav.unsqueeze(1)))
    z = model.encoder(wav.unsqueeze(1))
    assert before < 0.1  # PyTorch's default init shrinks the signal layer by layer
    assert abs(float(z.std(dim=(0, 2)).mean()) - 1.0) < 1e-3 and float(z.mean(dim=(0, 2)).abs().max()) < 1e-3
