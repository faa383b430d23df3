"""The bundled defaults (DECISIONS.md): fp16 weights with a card that names the training command, all of them
together within the 120 MB budget, and the default TTS's parts agreeing with each other and with the semantic
tokenizer they were trained on (the file in the TTS folder)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from audiotok.registry import ASSETS

BUDGET_BYTES = 120_000_000
WEIGHTS = sorted(ASSETS.rglob("*.safetensors"))


def test_bundled_weights_are_fp16_cards_name_their_command_and_fit_the_budget():
    assert WEIGHTS, f"no bundled weights under {ASSETS}"
    for path in WEIGHTS:
        with safe_open(str(path), "pt") as f:
            dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        floats = dtypes - {"I64", "I32", "I16", "I8", "U8", "BOOL"}
        assert floats <= {"F16"}, f"{path}: {floats}"
    for folder in {p.relative_to(ASSETS).parts[0] for p in WEIGHTS}:
        card = (ASSETS / folder / "card.md").read_text()
        assert "python " in card or "audiotok " in card, f"{folder}/card.md names no command"
    total = sum(p.stat().st_size for p in WEIGHTS)
    assert total < BUDGET_BYTES, f"bundled weights {total / 1e6:.1f} MB > {BUDGET_BYTES / 1e6:.0f} MB"


@pytest.mark.skipif(not (ASSETS / "tts" / "pipeline.json").is_file(), reason="no bundled TTS")
def test_bundled_tts_parts_agree_and_synthesize_deterministically():
    from tts.pipeline import TTS, SynthesisOptions

    spec = json.loads((ASSETS / "tts" / "pipeline.json").read_text())
    assert spec["semantic"] == "semantic.safetensors"  # the tokenizer it was trained on travels with it
    tts = TTS.from_pretrained(ASSETS / "tts")
    assert tts.lm.config.n_speech == tts.flow.config.n_speech == tts.semantic.codebook_size
    assert tts.flow.config.n_mels == tts.mel_config.n_mels and tts.sample_rate == 24000
    options = SynthesisOptions(n_steps=4, seed=3)
    a = tts.synthesize("The cat sat on the mat.", options=options)
    b = tts.synthesize("The cat sat on the mat.", options=options)
    assert torch.equal(a, b) and a.ndim == 1 and torch.isfinite(a).all()
    assert 0.3 < len(a) / tts.sample_rate < 10.0 and a.abs().max() > 1e-3  # speech-length, not silence
