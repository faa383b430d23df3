from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from audiotok import checkpoint
from audiotok.config import ConfigError, apply_overrides, from_dict, load_config, save_config, to_dict


@dataclass
class Inner:
    width: int = 8
    rates: tuple[int, ...] = (2, 4)


@dataclass
class Outer:
    name: str = "tiny"
    lr: float = 1e-3
    inner: Inner = field(default_factory=Inner)
    dropout: float | None = None


def test_from_dict_round_trip_and_errors(tmp_path):
    cfg = Outer(name="x", lr=2, inner=Inner(16, (1, 2, 3)))
    d = to_dict(cfg)
    assert d["inner"]["rates"] == [1, 2, 3]
    assert from_dict(Outer, d) == Outer(name="x", lr=2.0, inner=Inner(16, (1, 2, 3)))
    with pytest.raises(ConfigError, match=r"inner: unknown key\(s\) \['depth'\]"):
        from_dict(Outer, {"inner": {"depth": 3}})
    with pytest.raises(ConfigError, match="inner.width: expected int"):
        from_dict(Outer, {"inner": {"width": "wide"}})
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(Outer, tmp_path / "c.yaml", ["inner.width=32", "dropout=0.1"]) == Outer(
        name="x", lr=2.0, inner=Inner(32, (1, 2, 3)), dropout=0.1
    )
    with pytest.raises(ConfigError):
        apply_overrides({}, ["novalue"])


class TinyNet(nn.Module):
    model_type = "test-tiny"
    config_class = Inner

    def __init__(self, config: Inner):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.width, config.width)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        return self.proj(x)


def test_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    model = TinyNet(Inner(width=12))
    path = checkpoint.save_model(model, tmp_path / "m.safetensors", extra={"card": {"steps": 3}})
    meta = checkpoint.read_metadata(path)
    assert meta["model_type"] == "test-tiny" and meta["format_version"] == checkpoint.FORMAT_VERSION
    loaded = checkpoint.load_model(path, TinyNet)
    assert loaded.config == Inner(width=12, rates=(2, 4))
    x = torch.randn(3, 12)
    assert torch.equal(loaded(x), model(x))
    half = checkpoint.load_model(checkpoint.save_model(model, tmp_path / "h.safetensors", dtype=torch.float16), TinyNet)
    assert torch.allclose(half(x), model(x), atol=1e-2) and half.proj.weight.dtype == torch.float32
    with pytest.raises(checkpoint.CheckpointError, match="unknown model_type"):
        checkpoint.load_model(path)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(checkpoint.CheckpointError, match="not a safetensors"):
        checkpoint.load_model(tmp_path / "junk.safetensors", TinyNet)

    class Wider(TinyNet):
        def __init__(self, config):
            super().__init__(config)
            self.extra = nn.Linear(2, 2)

    with pytest.raises(checkpoint.CheckpointError, match="do not fit"):
        checkpoint.load_model(path, Wider)


def test_bundle_installs_an_fp16_copy_that_loads_by_name(tmp_path, monkeypatch):
    from audiotok.whisper import load_whisper, new_whisper, save_safetensors, small_dims

    model = new_whisper(small_dims(seconds=1.0, n_state=32, n_head=2, n_layer=1, n_text_ctx=16), seed=0)
    src = save_safetensors(model, tmp_path / "w.safetensors")
    from audiotok import registry

    monkeypatch.setattr(registry, "ASSETS", tmp_path / "assets")
    dst = checkpoint.bundle(src, "whisper-tiny", root=registry.ASSETS)
    assert dst == tmp_path / "assets/whisper-tiny/model.safetensors"
    assert checkpoint.read_metadata(dst) == checkpoint.read_metadata(src)
    assert dst.stat().st_size < 0.6 * src.stat().st_size  # half the bytes (plus the header)
    loaded = load_whisper("whisper-tiny")  # by name, through the registry
    mel = torch.randn(1, 80, 100)
    tokens = torch.tensor([[50258, 50259]])
    torch.testing.assert_close(loaded(mel, tokens), model.eval()(mel, tokens), atol=5e-2, rtol=5e-2)


def test_bundle_stores_a_character_whispers_zero_embedding_rows_compactly(tmp_path):
    from audiotok.whisper import (
        char_training_vocab,
        load_whisper,
        new_whisper,
        save_safetensors,
        small_dims,
        tokenizer_for,
        zero_rows_outside,
    )

    model = new_whisper(small_dims(seconds=1.0, n_state=32, n_head=2, n_layer=1, n_text_ctx=16), seed=0)
    model.text_unit = "char"
    zero_rows_outside(model, char_training_vocab(tokenizer_for(model)))
    src = save_safetensors(model, tmp_path / "w.safetensors")
    dst = checkpoint.bundle(src, "w", root=tmp_path / "assets")
    assert dst.stat().st_size < 0.1 * src.stat().st_size  # the 51,865 x 32 embedding keeps 77 rows
    assert "compact_rows" in checkpoint.read_metadata(dst)
    loaded = load_whisper(dst)
    full = model.decoder.token_embedding.weight.detach().half().float()
    assert torch.equal(loaded.decoder.token_embedding.weight, full) and loaded.text_unit == "char"


def test_bundle_stores_tensors_a_sibling_file_holds_only_once(tmp_path):
    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR

    torch.manual_seed(0)
    cfg = SupervisedConfig(n_mels=80, seconds=2.0, n_state=32, n_head=2, n_layer=2, n_text_ctx=16, quantize_after=1)
    model = SupervisedTokenizerASR(cfg).eval()
    checkpoint.save_model(model, tmp_path / "asr.safetensors")
    model.export_tokenizer().save(tmp_path / "tok.safetensors")
    tok = checkpoint.bundle(tmp_path / "tok.safetensors", "sem", root=tmp_path / "assets")
    alone = checkpoint.bundle(tmp_path / "asr.safetensors", "alone", root=tmp_path / "assets")
    asr = checkpoint.bundle(
        tmp_path / "asr.safetensors",
        "sem",
        root=tmp_path / "assets",
        filename="asr.safetensors",
        share_with="model.safetensors",
    )
    assert asr.parent == tok.parent and asr.stat().st_size < alone.stat().st_size - 0.5 * tok.stat().st_size
    shared = json.loads(checkpoint.read_metadata(asr)["shared_tensors"])["keys"]
    assert "whisper.encoder.blocks.0.attn.query.weight" in shared  # the block below the quantizer
    a, b = checkpoint.load_model(asr).state_dict(), checkpoint.load_model(alone).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    tok.unlink()
    with pytest.raises(checkpoint.CheckpointError, match="missing"):
        checkpoint.load_model(asr)


def test_a_partial_section_keeps_its_parents_defaults():
    """``loop: {max_steps: 4}`` in a GAN recipe's YAML keeps the GAN's lr/betas/warm-up, not LoopConfig's own."""
    from audiotok.config import from_dict
    from audiotok.train.gan import GANTrainConfig
    from audiotok.train.loop import LoopConfig

    cfg = from_dict(GANTrainConfig, {"loop": {"max_steps": 4}})
    assert cfg.loop.max_steps == 4
    assert (cfg.loop.lr, cfg.loop.betas, cfg.loop.warmup_steps) == (2e-4, (0.9, 0.999), 0)
    assert LoopConfig().warmup_steps != 0  # (the section class's own default differs)


def test_a_mapping_of_sections_builds_each_value_as_its_dataclass():
    @dataclass
    class Holder:
        parts: dict[str, Inner] = field(default_factory=dict)

    h = from_dict(Holder, {"parts": {"a": {"width": 4}, "b": {}}})
    assert h.parts["a"] == Inner(width=4) and h.parts["b"] == Inner()
    with pytest.raises(ConfigError, match="parts.a"):
        from_dict(Holder, {"parts": {"a": {"nope": 1}}})
