from __future__ import annotations

import gzip
import json

import pytest

from audiotok.data.manifest import ManifestError, Utterance, iter_manifest, read_manifest, write_manifest


def _utts(root):
    return [
        Utterance(
            id="a",
            audio=str(root / "a.wav"),
            duration=1.5,
            sample_rate=16000,
            text="hello",
            speaker="s1",
            language="en",
        ),
        Utterance(id="b", audio=str(root / "sub" / "b.wav"), duration=2.0, start=0.5, end=2.5, extra={"snr": 10}),
    ]


@pytest.mark.parametrize("name", ["m.jsonl", "m.jsonl.gz"])
def test_round_trip(tmp_path, name):
    utts = _utts(tmp_path)
    assert write_manifest(tmp_path / name, utts, relative_to=str(tmp_path)) == 2
    if name.endswith(".gz"):
        with gzip.open(tmp_path / name, "rt") as f:
            first = json.loads(f.readline())
    else:
        first = json.loads((tmp_path / name).read_text().splitlines()[0])
    assert first["audio"] == "a.wav"  # written relative
    assert read_manifest(tmp_path / name) == utts  # and resolved back on read
    assert [u.id for u in iter_manifest(tmp_path / name)] == ["a", "b"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "invalid JSON"),
        ('{"id": "x", "duration": 1}', "missing required field 'audio'"),
        ('{"id": "x", "audio": "a.wav", "duration": -1}', "non-negative"),
        ('{"id": "x", "audio": "a.wav", "duration": 1, "colour": "red"}', "unknown field"),
        ('{"id": "x", "audio": "a.wav", "duration": 1, "start": 2, "end": 1}', "after 'start'"),
        ('{"id": "x", "audio": "a.wav", "duration": 1, "sample_rate": 16000.5}', "sample_rate"),
        ('{"id": "a", "audio": "a.wav", "duration": 1}', "duplicate id"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_validation_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "audio": "a.wav", "duration": 1}\n\n' + line + "\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert f"{path}:3:" in str(info.value)
    assert message in str(info.value)


def test_lazy_reading_yields_before_a_bad_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "audio": "a.wav", "duration": 1}\n{oops\n')
    it = iter_manifest(path)
    assert next(it).id == "a"
    with pytest.raises(ManifestError):
        next(it)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "none.jsonl")


def test_even_share_takes_every_speaker():
    from audiotok.data.manifest import even_share

    utts = [Utterance(id=f"{s}{i}", audio="x.wav", duration=1.0, speaker=s) for s in "abc" for i in range(10)]
    picked = even_share(utts, 6)
    assert [u.id for u in picked] == ["a0", "a1", "b0", "b1", "c0", "c1"]
    assert len(even_share(utts, 7)) == 9  # ceil(7 / 3) of each voice
    assert len(even_share(utts, 2, min_per_speaker=2)) == 6
    assert even_share(utts, None) == utts
