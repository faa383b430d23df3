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
    assert "[demo] codec:" in text and "[demo] tts:" in text


def test_eval_codec_and_export(wav_tree, tmp_path, capsys):
    import torch

    from audiotok.codec import Codec, codec_config
    from tests.conftest import WAVTOKENIZER_VECTORS as VECTORS

    torch.manual_seed(0)
    model = Codec(codec_config("tiny"))
    model.quantizer.init_from_latents(torch.randn(200, 16), iters=3)
    ckpt = model.save(tmp_path / "tiny.safetensors")
    manifest = tmp_path / "m.jsonl"
    assert main(["prepare", str(wav_tree), "-o", str(manifest), "--quiet"]) == 0
    out = tmp_path / "eval.json"
    assert main(["eval-codec", str(manifest), "--model", str(ckpt), "-o", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "lower bound (constant code)" in text and "upper bound (unquantized latents)" in text
    result = json.loads(out.read_text())
    assert result["utterances"] == 5 and result["tokens_per_second"] == 75.0
    assert abs(result["bitrate_kbps"] - 0.45) < 1e-9  # 75 tokens/s x log2(64) bits
    assert {"pesq", "stoi", "mel_distance", "stft_distance", "si_snr"} <= set(result["codec"])
    if (VECTORS / "model.ckpt").exists():
        exported = tmp_path / "wt.safetensors"
        assert (
            main(["export", str(VECTORS / "model.ckpt"), "--config", str(VECTORS / "config.yaml"), "-o", str(exported)])
            == 0
        )
        assert Codec.from_pretrained(exported).config.decoder.dim == 64
