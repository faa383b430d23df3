from __future__ import annotations

import pytest
import torch

from audiotok.data.augment import AugmentConfig, Augmenter, add_noise, apply_gain, change_speed
from audiotok.data.dataset import pad_sequences
from tests.conftest import speechlike


def _batch():
    return pad_sequences([speechlike(n, 16000, i) for i, n in enumerate((16000, 12000, 9000))])


@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_noise_hits_the_snr_over_valid_samples(snr):
    wav, lens = _batch()
    noisy = add_noise(wav, lens, torch.full((3,), snr), generator=torch.Generator().manual_seed(0))
    for i, n in enumerate(lens.tolist()):
        sig, noise = wav[i, :n], noisy[i, :n] - wav[i, :n]
        measured = 10 * torch.log10(sig.pow(2).mean() / noise.pow(2).mean())
        assert abs(measured.item() - snr) < 0.01
        assert (noisy[i, n:] == 0).all()


def test_gain_and_speed():
    wav, lens = _batch()
    assert torch.allclose(
        apply_gain(wav, torch.tensor([6.0206, 0.0, -6.0206])).abs().amax(1),
        wav.abs().amax(1) * torch.tensor([2.0, 1.0, 0.5]),
        rtol=1e-3,
    )
    fast, fast_lens = change_speed(wav, lens, torch.tensor([1.1, 1.0, 0.9]), 16000)
    assert abs(fast_lens[0].item() - 16000 / 1.1) < 20 and fast_lens[1] == 12000
    assert abs(fast_lens[2].item() - 9000 / 0.9) < 20
    assert torch.equal(fast[1, :12000], wav[1, :12000])


def test_augmenter_is_reproducible_from_seed_and_step():
    cfg = AugmentConfig(p_gain=0.5, p_noise=0.5, p_speed=0.5)
    wav, lens = _batch()
    a = Augmenter(cfg, 16000, seed=3)(wav, lens, step=10)
    b = Augmenter(cfg, 16000, seed=3)(wav, lens, step=10)
    c = Augmenter(cfg, 16000, seed=3)(wav, lens, step=11)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not (a[0].shape == c[0].shape and torch.equal(a[0], c[0]))
    draws = Augmenter(cfg, 16000, seed=0).draw(4000, step=0)
    assert 0.45 < (draws["gain_db"] != 0).float().mean() < 0.55
    assert 0.45 < torch.isfinite(draws["snr_db"]).float().mean() < 0.55
    off = Augmenter(AugmentConfig(), 16000)(wav, lens, step=0)
    assert torch.equal(off[0], wav)
