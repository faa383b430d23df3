from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from audiotok.codec import Codec
from audiotok.data.manifest import write_manifest
from audiotok.data.prepare import prepare
from recipes.codec.train import main
from tests.conftest import run_two_cpu_ranks

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "recipes" / "codec" / "configs" / "tiny.yaml")


@pytest.fixture
def manifest(wav_tree, tmp_path) -> str:
    path = tmp_path / "train.jsonl"
    write_manifest(path, prepare(wav_tree, progress=False).utterances)
    return str(path)


def _args(manifest, out_dir, *extra):
    return ["--config", TINY, f"data.train={manifest}", f"data.valid={manifest}", f"out_dir={out_dir}", *extra]


def test_two_steps_then_resume_two_more(manifest, tmp_path):
    out = tmp_path / "run"
    main(_args(manifest, out, "loop.max_steps=2", "loop.valid_every=2", "vq_warmup_steps=1", "pretrain_mel_steps=1"))
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["step"] == 2 and set(state) >= {"model", "discs", "opt_g", "opt_d", "sched_g", "sampler", "rng"}
    first = Codec.from_pretrained(out / "model.safetensors")
    assert first.quantizer.initialized
    main(_args(manifest, out, "loop.max_steps=4", "vq_warmup_steps=1", "pretrain_mel_steps=1"))
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 4
    lines = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]  # resumed at 3, not from scratch
    assert "adv/mpd" in lines[-1] and "fm/mrd" in lines[-1] and "adv/dac" in lines[-1]
    valid = [json.loads(line) for line in (out / "valid.jsonl").read_text().splitlines()]
    assert {"pesq", "stoi", "mel_distance", "codebook_perplexity"} <= set(valid[0])
    resumed = Codec.from_pretrained(out / "model.safetensors")
    assert not torch.equal(resumed.backbone.embed.weight, first.backbone.embed.weight)


def test_dac_bug_switch_freezes_the_dac_discriminator(manifest, tmp_path):
    out = tmp_path / "bug"
    main(_args(manifest, out, "loop.max_steps=2", "dac_bug=true"))
    state = torch.load(out / "last.pt", weights_only=False)
    start = torch.load(out / "last.pt", weights_only=False)["discs"]
    dac_keys = [k for k in state["discs"] if k.startswith("dac.")]
    assert dac_keys
    main(_args(manifest, out, "loop.max_steps=4", "dac_bug=true"))
    after = torch.load(out / "last.pt", weights_only=False)["discs"]
    assert all(torch.equal(start[k], after[k]) for k in dac_keys)
    assert not all(torch.equal(start[k], after[k]) for k in start if k.startswith("mpd."))


def test_ddp_two_cpu_processes(manifest, tmp_path):
    out = tmp_path / "ddp"
    train = str(ROOT / "recipes" / "codec" / "train.py")
    res = run_two_cpu_ranks([train, *_args(manifest, out, "loop.max_steps=2", "device=cpu")], port=29517)
    assert res.returncode == 0, res.stderr[-3000:]
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["step"] == 2 and len(state["rng"]) == 2 and state["sampler"]["world_size"] == 2


def test_kmeans_init_reads_audio_at_the_models_rate(monkeypatch):
    """A 16 kHz codec's k-means start must see 16 kHz audio (the recipe once hard-coded 24 kHz there)."""
    from dataclasses import replace

    import recipes.codec.train as recipe
    from audiotok.codec import codec_config

    model = Codec(replace(codec_config("tiny"), sample_rate=16000))
    rates = []

    def fake_loader(data, sample_rate, seed, rank=0, world_size=1):
        rates.append(sample_rate)
        batch = {"audio": torch.randn(2, sample_rate // 2), "audio_lens": torch.tensor([sample_rate // 2] * 2)}
        return [batch], None

    monkeypatch.setattr(recipe, "build_loader", fake_loader)
    monkeypatch.setattr(model.quantizer, "init_from_latents", lambda latents, iters: None)
    recipe.kmeans_init(model, recipe.CodecTrainConfig(kmeans_batches=1), torch.device("cpu"), 0)
    assert rates == [16000]
