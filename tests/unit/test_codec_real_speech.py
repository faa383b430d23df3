"""recipes/codec/real_speech.py: the manifest of a folder of recordings, and a run on generated clips with a tiny
random codec (no Whisper; a random speaker encoder stands in for the speaker judge)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from audiotok import audio
from audiotok.codec.model import Codec, codec_config
from audiotok.data.manifest import read_manifest
from audiotok.speaker import SpeakerConfig, SpeakerEncoder
from audiotok.utils import sha256_file
from recipes.codec import real_speech
from tests.conftest import speechlike


def _tiny_codec(seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    model = Codec(codec_config("tiny"))
    model.quantizer.init_from_latents(torch.randn(200, 16), iters=3)
    return model.eval()


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    root = tmp_path / "recordings"
    audio.save(root / "speech.wav", speechlike(16000, 16000, seed=1), 16000)  # 1 s at 16 kHz
    (root / "speech.txt").write_text("  ask not what\nyour country can do  \n")
    audio.save(root / "other.wav", speechlike(19200, 24000, seed=2), 24000)  # no transcript
    (root / "SOURCE.md").write_text("generated for the test\n")
    return root


def test_manifest_of_a_folder(recordings, tmp_path):
    path = real_speech.build_manifest(recordings, tmp_path / "out")
    assert path == tmp_path / "out" / "manifest.jsonl"
    utts = {u.id: u for u in read_manifest(path)}
    assert sorted(utts) == ["other", "speech"]
    speech, other = utts["speech"], utts["other"]
    assert speech.text == "ask not what your country can do" and other.text is None
    assert (speech.sample_rate, other.sample_rate) == (16000, 24000)
    assert speech.duration == pytest.approx(1.0) and other.duration == pytest.approx(0.8)
    assert speech.language == "en" and speech.extra["sha256"] == sha256_file(recordings / "speech.wav")


def test_manifest_of_an_empty_folder_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no readable audio"):
        real_speech.build_manifest(tmp_path / "empty", tmp_path / "out")


def test_run_without_whisper(recordings, tmp_path):
    out = tmp_path / "out"
    manifest = real_speech.build_manifest(recordings, out)
    torch.manual_seed(0)
    judge = SpeakerEncoder(SpeakerConfig(channels=16, emb_dim=8)).eval()
    result = real_speech.run(manifest, {"tiny": _tiny_codec()}, out, speaker=judge)
    entry = result["models"]["tiny"]
    assert result["evaluation_only"] and "original" not in result
    assert entry["eval"]["utterances"] == 2 and entry["eval"]["sample_rate"] == 24000
    assert {"codec", "lower_bound", "upper_bound"} <= set(entry["eval"])
    assert set(entry["clips"]) == {"speech", "other"}
    for m in entry["clips"].values():
        assert set(real_speech.METRICS) <= set(m) and -1.0 <= m["speaker_similarity"] <= 1.0
        assert "wer" not in m
    # the all-clips run decodes one clip per batch: its means are the means of the clips alone
    for k in ("stoi", "mel_distance", "si_snr"):
        clip_mean = sum(m[k] for m in entry["clips"].values()) / 2
        assert entry["eval"]["codec"][k] == pytest.approx(clip_mean, rel=1e-5)
    decoded, _ = audio.load(out / "decoded" / "tiny" / "speech.wav")
    assert decoded.shape[-1] == 24000  # 1 s at the codec's 24 kHz
    assert "speaker_reference" in result
    table = real_speech.format_results(result)
    assert "| tiny | speech | 1.0 |" in table and "**all**" in table and "WER" not in table


def test_main_with_a_checkpoint_and_a_missing_codec(recordings, tmp_path):
    ckpt = _tiny_codec().save(tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    argv = [str(recordings), "--out", str(out), "--models", str(ckpt), "no-such-codec", "--no-judges", "--no-audio"]
    result = real_speech.main(argv)
    written = json.loads((out / "results.json").read_text())
    assert written["models"].keys() == {str(ckpt)} and "no-such-codec" in written["skipped"]
    assert written["judges"] == {"whisper": None, "speaker": None}
    assert written["source"] == "generated for the test\n" and result["recordings"] == str(recordings)
    assert not (out / "decoded").exists()
