from __future__ import annotations

import json

from audiotok.cli import main


def test_prepare_stats_features_in_process(wav_tree, tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    assert main(["prepare", str(wav_tree), "-o", str(manifest), "--quiet"]) == 0
    assert "wrote 5 utterances" in capsys.readouterr().out
    assert main(["stats", str(manifest)]) == 0
    assert "utterances" in capsys.readouterr().out
    out = tmp_path / "feats"
    assert main(["features", str(manifest), "--feature", "whisper-80", "-o", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "frames" in text
    files = sorted(p.name for p in out.rglob("*.safetensors"))
    assert len(files) == 5


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    assert main(["stats", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1" in err and "Traceback" not in err


def test_synth_corpus_and_demo(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["synth-corpus", str(out), "--minutes", "0.5", "--n-espeak", "1", "--quiet"]) == 0
    assert "synthetic corpus" in capsys.readouterr().out
    assert json.loads((out / "corpus.json").read_text())["synthetic"]
    assert main(["demo", "--data-dir", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    for feature in ("whisper-80", "vocos", "cosyvoice2", "fbank"):
        assert f"[demo] {feature}" in text
