"""The speaker-embedding model and its recipe."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from audiotok.speaker import SpeakerConfig, SpeakerEncoder
from recipes.speaker.train import equal_error_rate, main
from tests.conftest import speechlike

ROOT = Path(__file__).resolve().parents[2]


def test_embeddings_are_unit_norm_and_padding_free():
    torch.manual_seed(0)
    model = SpeakerEncoder(SpeakerConfig(channels=16, emb_dim=8)).eval()
    a, b = speechlike(16000, 16000, seed=1), speechlike(24000, 16000, seed=2)
    emb = model.embed_audio([a, b])
    assert emb.shape == (2, 8) and torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(emb[0], model.embed_audio([a])[0], atol=1e-4)  # padding in a batch changes nothing
    assert float(model.similarity([a], [a])[0]) > 0.999


def test_equal_error_rate():
    same = torch.tensor([True, True, False, False])
    assert equal_error_rate(torch.tensor([0.9, 0.8, 0.1, 0.2]), same) == 0.0
    assert equal_error_rate(torch.tensor([0.1, 0.2, 0.9, 0.8]), same) == 1.0


def test_recipe_runs_two_steps_resumes_and_saves_an_embedder(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    args = [
        "--config",
        str(ROOT / "recipes/speaker/configs/tiny.yaml"),
        f"data.train={tiny_corpus / 'train.jsonl'}",
        f"data.test={tiny_corpus / 'all.jsonl'}",
        f"out_dir={out}",
    ]
    main([*args, "loop.max_steps=2"])
    main([*args, "loop.max_steps=4"])
    steps = [json.loads(line)["step"] for line in (out / "train.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    valid = json.loads((out / "valid.jsonl").read_text().splitlines()[0])
    assert 0.0 <= valid["eer"] <= 1.0
    model = SpeakerEncoder.from_pretrained(out / "speaker.safetensors")
    assert model.classifier is None
