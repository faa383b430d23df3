"""The vocoder (codec modules on mel input): shapes, padding, streaming vs offline, checkpoints."""

from __future__ import annotations

import torch

from tts.vocoder import Vocoder, vocoder_config


def tiny() -> Vocoder:
    torch.manual_seed(0)
    return Vocoder(vocoder_config("tiny")).eval()


def test_shapes_and_padding():
    model = tiny()
    mel = torch.randn(2, 16, 30)
    wav = model(mel, torch.tensor([30, 20]))
    assert wav.shape == (2, 30 * 480)
    single = model(mel[1:, :, :20])
    assert torch.allclose(wav[1, : 20 * 480], single[0], atol=1e-4)  # padding never reaches a valid sample


def _snr(ref: torch.Tensor, x: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (ref - x).pow(2).sum().clamp_min(1e-20)))


def test_streamed_audio_matches_offline():
    model = tiny()
    with torch.no_grad():
        mel = torch.randn(16, 64)
        offline = model(mel[None])[0]
        chunks = [mel[:, i : i + 10] for i in range(0, 64, 10)]
        # look-ahead and context past the receptive field: exactly the offline audio
        exact = torch.cat(list(model.stream(chunks, lookahead=12, context=16, crossfade=0)))
        assert exact.shape == offline.shape and torch.allclose(exact, offline, atol=1e-4)
        # a small look-ahead with cross-fades: close
        close = torch.cat(list(model.stream(chunks, lookahead=4, context=16, crossfade=1)))
        assert close.shape == offline.shape and _snr(offline, close) > 25  # dB, random weights


def test_save_and_load(tmp_path):
    model = tiny()
    model.save(tmp_path / "voc.safetensors")
    mel = torch.randn(1, 16, 12)
    assert torch.equal(Vocoder.from_pretrained(tmp_path / "voc.safetensors")(mel), model(mel))


def test_vocoder_recipe_runs_two_steps_and_resumes(tiny_corpus, tmp_path):
    import json
    from pathlib import Path

    from recipes.tts.train_vocoder import main

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    args = [
        "--config",
        str(root / "recipes/tts/configs/vocoder-tiny.yaml"),
        f"data.train={tiny_corpus / 'train.jsonl'}",
        f"data.valid={tiny_corpus / 'test.jsonl'}",
        f"out_dir={out}",
    ]
    main([*args, "loop.max_steps=2"])
    assert (out / "vocoder.safetensors").exists()
    main([*args, "loop.max_steps=4", "loop.cpu_bf16=true"])  # the GAN steps under CPU bf16 autocast where native
    logs = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs] == [1, 2, 3, 4]
    assert "disc" not in logs[0] and "disc" in logs[1]  # mel-only first, then the GAN
    assert "pesq" in json.loads((out / "valid.jsonl").read_text().splitlines()[0])
    Vocoder.from_pretrained(out / "vocoder.safetensors")
