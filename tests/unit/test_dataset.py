from __future__ import annotations

import torch

from audiotok.data.dataset import AudioDataset, audio_loader, collate_audio
from audiotok.data.manifest import write_manifest
from audiotok.data.prepare import prepare


def _manifest(wav_tree, tmp_path):
    path = tmp_path / "m.jsonl"
    write_manifest(path, prepare(wav_tree, progress=False).utterances)
    return path


def test_resamples_and_collates_with_lengths(wav_tree, tmp_path):
    ds = AudioDataset(_manifest(wav_tree, tmp_path), sample_rate=24000)
    batch = collate_audio([ds[i] for i in range(len(ds))])
    assert batch["audio"].shape == (5, int(batch["audio_lens"].max()))
    expected = sorted(int(u.duration * 24000) for u in ds.utterances)
    assert sorted(batch["audio_lens"].tolist()) == expected
    for i, n in enumerate(batch["audio_lens"].tolist()):
        assert (batch["audio"][i, n:] == 0).all()
    assert batch["text"][0].startswith("hello from")


def test_crops_reproducible_and_deterministic_for_validation(wav_tree, tmp_path):
    m = _manifest(wav_tree, tmp_path)
    a = AudioDataset(m, 16000, crop_seconds=0.5, crop="random", seed=1)
    b = AudioDataset(m, 16000, crop_seconds=0.5, crop="random", seed=1)
    assert torch.equal(a[4]["audio"], b[4]["audio"]) and a[4]["audio"].shape == (8000,)
    b.set_epoch(1)
    assert not torch.equal(a[4]["audio"], b[4]["audio"])
    whole = AudioDataset(m, 16000)[4]["audio"]
    v = AudioDataset(m, 16000, crop_seconds=0.5, crop="start")[4]["audio"]
    assert torch.equal(v, whole[:8000])
    c = AudioDataset(m, 16000, crop_seconds=0.5, crop="center")[4]["audio"]
    off = (whole.shape[0] - 8000) // 2
    assert torch.equal(c, whole[off : off + 8000])


def test_bad_items_skipped_on_request(wav_tree, tmp_path):
    m = _manifest(wav_tree, tmp_path)
    (wav_tree / "spk1" / "spk1_0.wav").write_bytes(b"")  # broken after indexing
    ds = AudioDataset(m, 16000, on_error="skip")
    batch = collate_audio([ds[i] for i in range(len(ds))])
    assert len(batch["ids"]) == 4 and "spk1/spk1_0" not in batch["ids"]


def test_loader_covers_epoch_in_bounded_batches(wav_tree, tmp_path):
    ds = AudioDataset(_manifest(wav_tree, tmp_path), 16000)
    loader = audio_loader(ds, max_seconds=2.5, seed=0)
    seen = []
    for batch in loader:
        assert batch["audio"].shape[0] * batch["audio"].shape[1] <= 2.5 * 16000
        seen += batch["ids"]
    assert sorted(seen) == sorted(u.id for u in ds.utterances)
