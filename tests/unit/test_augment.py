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


def test_band_limit_removes_what_is_outside_the_band_and_keeps_what_is_inside():
    from audiotok.data.augment import band_limit

    sr, t = 16000, torch.arange(16000) / 16000
    low, mid, high = (torch.sin(2 * torch.pi * f * t) for f in (100.0, 1000.0, 6000.0))
    out = band_limit((low + mid + high)[None], torch.tensor([[300.0, 3400.0]]), sr)[0]

    def amp(x, f):  # magnitude at frequency f (1 Hz bins)
        return torch.fft.rfft(x).abs()[int(f)] / (len(x) / 2)

    assert amp(out, 1000) > 0.99 and amp(out, 100) < 0.01 and amp(out, 6000) < 0.01
    lowpassed = band_limit(high[None], torch.tensor([[0.0, 4000.0]]), sr)[0]  # low 0: low-pass only
    assert lowpassed.abs().max() < 0.01


def test_synthetic_rir_decays_by_its_rt60_and_reverb_keeps_length_and_level():
    from audiotok.data.augment import add_reverb, synthetic_rir

    g = torch.Generator().manual_seed(0)
    rir = synthetic_rir(0.4, 16000, g)
    assert rir[0] == 1.0 and rir.shape[0] == int(0.6 * 16000)
    early, late = rir[1:800].pow(2).mean(), rir[6000:6800].pow(2).mean()  # 0-50 ms vs 375-425 ms
    assert 10 * torch.log10(early / late) > 40  # ~56 dB expected over 0.375 s at 60 dB / 0.4 s
    wav = torch.randn(2, 8000)
    out = add_reverb(wav, [rir, None], torch.tensor([0.5, 0.5]))
    assert out.shape == wav.shape and torch.equal(out[1], wav[1])
    assert torch.allclose(out[0].pow(2).mean(), wav[0].pow(2).mean(), rtol=1e-3)
    assert not torch.allclose(out[0], wav[0])


def test_channel_augment_is_reproducible_off_by_default_and_keeps_padding_zero():
    from audiotok.data.augment import ChannelAugmentConfig, channel_augment

    wav, lens = torch.randn(4, 4000), torch.tensor([4000, 3000, 2000, 1000])
    wav = wav * (torch.arange(4000)[None] < lens[:, None])
    off = channel_augment(wav, lens, ChannelAugmentConfig(), 16000, torch.Generator().manual_seed(0))
    assert torch.equal(off, wav)
    cfg = ChannelAugmentConfig(p_band=1.0, p_noise=1.0, p_reverb=1.0)
    a = channel_augment(wav, lens, cfg, 16000, torch.Generator().manual_seed(1))
    b = channel_augment(wav, lens, cfg, 16000, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, wav)
    assert (a[3, 1000:] == 0).all() and (a[1, 3000:] == 0).all()


def test_codec_eval_conditions_degrade_deterministically_and_the_cli_lists_them_all():
    from audiotok.cli.evaluate import CODEC_CONDITIONS
    from audiotok.codec.evaluate import CONDITIONS, degrade

    assert tuple(CONDITIONS) == CODEC_CONDITIONS
    t = torch.arange(24000) / 24000
    wav, lens = torch.sin(2 * torch.pi * 6000 * t)[None], torch.tensor([24000])
    assert torch.equal(degrade(wav, lens, "clean", 24000), wav)
    assert degrade(wav, lens, "telephone", 24000).abs().max() < 0.01
    noisy = degrade(wav, lens, "noisy", 24000, seed=3)
    assert torch.equal(noisy, degrade(wav, lens, "noisy", 24000, seed=3)) and not torch.equal(noisy, wav)
    with pytest.raises(ValueError, match="unknown condition"):
        degrade(wav, lens, "underwater", 24000)
