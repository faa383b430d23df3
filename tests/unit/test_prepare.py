from __future__ import annotations

from audiotok import audio
from audiotok.data.prepare import detect_layout, prepare
from tests.conftest import speechlike


def test_folder_with_sidecars(wav_tree):
    (wav_tree / "spk2" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    report = prepare(wav_tree, progress=False)
    assert detect_layout(wav_tree) == "folder"
    assert len(report.utterances) == 5
    assert list(report.failed) == [str(wav_tree / "spk2" / "broken.wav")]
    u = {u.id: u for u in report.utterances}["spk2/spk2_1"]
    assert u.text == "hello from spk2 number 1" and u.speaker == "spk2" and u.sample_rate == 16000
    assert abs(u.duration - 17600 / 16000) < 1e-9


def test_libritts_normalized_sidecar_wins(tmp_path):
    audio.save(tmp_path / "s" / "x.wav", speechlike(1600, 16000), 16000)
    (tmp_path / "s" / "x.normalized.txt").write_text("normalized text")
    (tmp_path / "s" / "x.txt").write_text("other")
    (u,) = prepare(tmp_path, progress=False).utterances
    assert u.text == "normalized text"


def test_ljspeech(tmp_path):
    for i in range(3):
        audio.save(tmp_path / "wavs" / f"LJ001-000{i}.wav", speechlike(22050, 22050, i), 22050)
    (tmp_path / "metadata.csv").write_text(
        "LJ001-0000|Printing, 1st.|Printing, first.\nLJ001-0001|Two|\nLJ001-0002|Three|three\n"
    )
    report = prepare(tmp_path, progress=False)
    assert detect_layout(tmp_path) == "ljspeech"
    assert [u.text for u in report.utterances] == ["Printing, first.", "Two", "three"]
    assert all(u.speaker == "LJ" and u.duration == 1.0 for u in report.utterances)


def test_librispeech(tmp_path):
    chapter = tmp_path / "19" / "198"
    for i in range(2):
        audio.save(chapter / f"19-198-000{i}.flac", speechlike(8000, 16000, i), 16000)
    (chapter / "19-198.trans.txt").write_text("19-198-0000 NORTHANGER ABBEY\n19-198-0001 CHAPTER ONE\n")
    report = prepare(tmp_path, progress=False)
    assert detect_layout(tmp_path) == "librispeech"
    assert [(u.id, u.text, u.speaker) for u in report.utterances] == [
        ("19-198-0000", "NORTHANGER ABBEY", "19"),
        ("19-198-0001", "CHAPTER ONE", "19"),
    ]
    assert report.utterances[0].duration == 0.5
