from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR
from audiotok.whisper import WhisperFrontend, new_whisper
from tests.conftest import speechlike


@pytest.mark.parametrize("quantizer", ["fsq", "vq"])
def test_loss_gradients_and_exported_tokenizer_matches(quantizer, tmp_path):
    torch.manual_seed(0)
    cfg = SupervisedConfig(
        n_mels=80,
        seconds=2.0,
        n_state=64,
        n_head=2,
        n_layer=2,
        n_text_ctx=32,
        quantize_after=1,
        pool=2,
        quantizer=quantizer,
        codebook_size=64,
    )
    model = SupervisedTokenizerASR(cfg)
    front = WhisperFrontend(cfg.dims())
    wavs = [speechlike(32000, 16000, 1), speechlike(20000, 16000, 2)]
    wav = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    lens = torch.tensor([32000, 20000])
    mel = front(wav, lens)
    out = model(mel, ["the cat sat", "on the mat"])
    (out["asr"] + out["commit"]).backward()
    assert torch.isfinite(out["asr"]) and out["codes"].shape == (2, 50)  # 2 s context at 25 Hz
    assert model.whisper.encoder.conv1.weight.grad is not None  # gradients pass the quantizer
    model.eval()
    with torch.no_grad():
        _, train_codes, _ = model.quantizer(model.tokenize_hidden(mel))
    tok = model.export_tokenizer()
    codes, code_lens = tok.encode(wavs)
    assert code_lens.tolist() == [50, 32]  # 2 s and 1.25 s at 25 Hz
    for i, n in enumerate(code_lens.tolist()):
        assert torch.equal(codes[i, :n], train_codes[i, :n])
    from audiotok.semantic import SemanticTokenizer

    loaded = SemanticTokenizer.from_pretrained(tok.save(tmp_path / "tok.safetensors"))
    assert loaded.config.whisper_context and loaded.config.pool == 2
    assert torch.equal(loaded.encode(wavs)[0], codes)

    # the way back (a warm start from a bundled tokenizer): a fresh model given the tokenizer half tokenizes alike
    fresh = SupervisedTokenizerASR(cfg).eval()
    above = fresh.whisper.encoder.blocks[1].attn.query.weight.clone()
    fresh.load_tokenizer(loaded)
    assert torch.equal(fresh.whisper.encoder.blocks[1].attn.query.weight, above)  # the blocks above are untouched
    assert quantizer == "fsq" or fresh.quantizer.initialized  # (a VQ codebook counts as started: no k-means)
    with torch.no_grad():
        _, again, _ = fresh.quantizer(fresh.tokenize_hidden(mel))
    assert torch.equal(again, train_codes)
    with pytest.raises(ValueError, match="does not fit"):
        SupervisedTokenizerASR(replace(cfg, quantize_after=2)).load_tokenizer(loaded)


def _recipe_args(wav_tree, tmp_path) -> tuple[list[str], Path]:
    """The tiny recipe on the wav tree's manifest (train = valid) -> (command-line args, out_dir)."""
    from audiotok.data.manifest import write_manifest
    from audiotok.data.prepare import prepare

    root = Path(__file__).resolve().parents[2]
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, prepare(wav_tree, progress=False).utterances)
    out = tmp_path / "run"
    config = str(root / "recipes/semantic/configs/tiny.yaml")
    return ["--config", config, f"data.train={manifest}", f"data.valid={manifest}", f"out_dir={out}"], out


def test_recipe_two_steps_resume_and_exported_tokenizer(wav_tree, tmp_path):
    import json

    from audiotok.semantic import SemanticTokenizer
    from recipes.semantic.train import main

    args, out = _recipe_args(wav_tree, tmp_path)
    main([*args, "loop.max_steps=2", "loop.valid_every=2"])
    main([*args, "loop.max_steps=4"])
    lines = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4] and "codebook_perplexity" in lines[-1]
    assert "wer_tokens" in (out / "valid.jsonl").read_text()
    tok = SemanticTokenizer.from_pretrained(out / "tokenizer.safetensors")
    codes, lens = tok.encode([speechlike(16000, 16000)])
    assert lens.tolist() == [25] and tok.codebook_size == 6561

    # a new machine goes on from the exported (or bundled) tokenizer half: init_state takes it
    warm = tmp_path / "warm"
    argv = [a for a in args if not a.startswith("out_dir=")]
    main([*argv, f"out_dir={warm}", f"init_state={out / 'tokenizer.safetensors'}", "loop.max_steps=1", "loop.lr=0.0"])
    again = SemanticTokenizer.from_pretrained(warm / "tokenizer.safetensors")
    assert torch.equal(again.encode([speechlike(16000, 16000)])[0], codes)


def test_a_character_whisper_trains_the_tokenizer_on_its_few_logits_with_the_same_loss():
    from audiotok.whisper import char_training_vocab, tokenizer_for, zero_rows_outside

    torch.manual_seed(0)
    cfg = SupervisedConfig(n_mels=80, seconds=4.0, n_state=32, n_head=2, n_layer=2, n_text_ctx=64, quantize_after=1)
    whisper = new_whisper(cfg.dims())
    whisper.text_unit = "char"
    zero_rows_outside(whisper, char_training_vocab(tokenizer_for(whisper)))
    model = SupervisedTokenizerASR(replace(cfg, text_unit="char", quantizer="fsq"), whisper).eval()
    assert model.vocab is not None
    mel = torch.randn(2, 80, 400)
    fast = model(mel, ["Hello there.", "A cat"])["asr"]
    model.vocab = None
    assert torch.allclose(fast, model(mel, ["Hello there.", "A cat"])["asr"], atol=1e-5)


def test_recipe_starts_from_a_whisper_with_more_encoder_than_decoder_layers(wav_tree, tmp_path):
    from pathlib import Path

    from audiotok.checkpoint import load_model
    from audiotok.data.manifest import write_manifest
    from audiotok.data.prepare import prepare
    from audiotok.whisper import save_safetensors, small_dims
    from recipes.semantic.train import main

    root = Path(__file__).resolve().parents[2]
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, prepare(wav_tree, progress=False).utterances)
    save_safetensors(
        new_whisper(small_dims(80, 4.0, 32, 2, 3, n_text_layer=1, n_text_ctx=64)), tmp_path / "w.safetensors"
    )
    out = tmp_path / "run"
    main(
        [
            "--config",
            str(root / "recipes/semantic/configs/tiny.yaml"),
            f"data.train={manifest}",
            f"data.valid={manifest}",
            f"out_dir={out}",
            f"init_whisper={tmp_path / 'w.safetensors'}",
            "model.quantize_after=2",
            "loop.max_steps=2",
            "distill_weight=1.0",
            "ctc_weight=0.3",
            "loop.log_every=1",
        ]
    )
    model = load_model(out / "model.safetensors")
    assert len(model.whisper.encoder.blocks) == 3 and len(model.whisper.decoder.blocks) == 1
    assert model.ctc is not None and bool(model.quantizer.initted)
    import json

    logs = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert all(x["distill"] > 0 and x["ctc"] > 0 for x in logs)


def test_recipe_with_frozen_decoder_trains_only_the_blocks_above_the_quantizer(wav_tree, tmp_path):
    """freeze_below + freeze_decoder: the conv stem, the blocks below and the decoder stay the starting Whisper's;
    the distillation target computed from the frozen lower blocks' output equals the starting encoder's output."""
    from audiotok.checkpoint import load_model
    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR
    from audiotok.whisper import load_whisper, save_safetensors, small_dims
    from recipes.semantic.train import main

    args, out = _recipe_args(wav_tree, tmp_path)
    torch.manual_seed(0)
    start = new_whisper(small_dims(80, 4.0, 32, 2, 3, n_text_layer=1, n_text_ctx=64))
    save_safetensors(start, tmp_path / "w.safetensors")
    args = [
        *args,
        f"init_whisper={tmp_path / 'w.safetensors'}",
        "model.quantize_after=1",
        "loop.max_steps=2",
        "loop.lr=0.01",
        "freeze_below=true",
        "freeze_decoder=true",
        "distill_weight=1.0",
        "loop.log_every=1",
    ]
    main(args)
    trained = load_model(out / "model.safetensors").whisper
    before, after = start.state_dict(), trained.state_dict()
    frozen = [k for k in before if k.startswith(("decoder.", "encoder.conv", "encoder.blocks.0."))]
    above = [k for k in before if k.startswith("encoder.blocks.") and not k.startswith("encoder.blocks.0.")]
    assert frozen and above
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in above)

    # the trained part holds only what training changed; a new run warm-starts from it
    from audiotok.checkpoint import load_state

    part = load_state(out / "trained.safetensors")
    assert part and not any(
        k.startswith(("whisper.decoder.", "whisper.encoder.conv", "whisper.encoder.blocks.0.")) for k in part
    )
    assert "whisper.encoder.blocks.1.attn.query.weight" in part and any(k.startswith("quantizer.") for k in part)
    warm = tmp_path / "warm"
    argv = [a for a in args if not a.startswith(("out_dir=", "loop.max_steps=", "loop.lr="))]
    main([*argv, f"out_dir={warm}", f"init_state={out / 'trained.safetensors'}", "loop.max_steps=1", "loop.lr=0.0"])
    again = load_model(warm / "model.safetensors").state_dict()
    full = load_model(out / "model.safetensors").state_dict()
    k = "whisper.encoder.blocks.1.attn.query.weight"
    assert torch.allclose(again[k], full[k], atol=1e-2) and not torch.allclose(again[k], before[k[len("whisper.") :]])

    # the teacher shortcut: upper blocks of the start applied to the lower blocks' output == the start's encoder
    w = load_whisper(str(tmp_path / "w.safetensors")).eval()
    c = SupervisedConfig(n_mels=80, seconds=4.0, n_state=32, n_head=2, n_layer=3, n_text_layer=1, n_text_ctx=64)
    model = SupervisedTokenizerASR(SupervisedConfig(**{**c.__dict__, "quantize_after": 1}), w).eval()
    mel = torch.randn(2, 80, 400)
    x = model.encode_below(mel)
    for block in w.encoder.blocks[1:]:
        x = block(x)
    assert torch.allclose(w.encoder.ln_post(x), w.encoder(mel), atol=1e-5)


def test_ctc_head_on_the_quantized_features_and_training_aids_reach_the_loss():
    torch.manual_seed(0)
    cfg = SupervisedConfig(
        n_mels=80, seconds=2.0, n_state=32, n_head=2, n_layer=2, n_text_ctx=32, quantize_after=1, ctc=True
    )
    model = SupervisedTokenizerASR(cfg)
    mel = torch.randn(2, 80, 200)
    texts = ["the cat sat", "on the mat"]
    out = model(mel, texts)
    assert torch.isfinite(out["ctc"]) and out["ctc"] > 0
    out["ctc"].backward()
    # the CTC gradient reaches the encoder below the quantizer (straight-through), not the decoder
    assert model.quantizer.project_down.weight.grad.abs().sum() > 0
    assert model.whisper.encoder.conv1.weight.grad.abs().sum() > 0
    assert model.whisper.decoder.token_embedding.weight.grad is None
    assert "ctc" not in SupervisedTokenizerASR(replace(cfg, ctc=False))(mel, texts)
    model.eval()
    with torch.no_grad():
        plain = model(mel, texts)["asr"]
        assert torch.equal(plain, model(mel, texts)["asr"])
        assert not torch.allclose(plain, model(mel, texts, label_smoothing=0.1)["asr"])
        torch.manual_seed(1)
        assert not torch.allclose(plain, model(mel, texts, token_noise=0.5)["asr"])


def test_ctc_head_on_the_encoder_output_starts_from_a_whisper_runs_head(tmp_path):
    from audiotok.whisper import CTC_CHARS, save_safetensors, small_dims
    from recipes.semantic.train import SemanticTrainConfig, semantic_task

    save_safetensors(new_whisper(small_dims(80, 2.0, 32, 2, 2, n_text_ctx=32)), tmp_path / "w.safetensors")
    head = {"ctc.weight": torch.randn(len(CTC_CHARS) + 1, 32), "ctc.bias": torch.randn(len(CTC_CHARS) + 1)}
    torch.save({"model": {"whisper.encoder.conv1.weight": torch.zeros(1), **head}}, tmp_path / "last.pt")
    cfg = SemanticTrainConfig(
        init_whisper=str(tmp_path / "w.safetensors"), ctc_weight=0.3, init_ctc=str(tmp_path / "last.pt")
    )
    cfg.model.quantize_after, cfg.model.ctc_input = 1, "encoder"
    model = semantic_task(cfg).model
    assert torch.equal(model.ctc.weight, head["ctc.weight"]) and torch.equal(model.ctc.bias, head["ctc.bias"])
    out = model(torch.randn(2, 80, 200), ["a cat", "the dog"])
    assert torch.isfinite(out["ctc"])
    cfg.model.ctc_input = "tokens"
    with pytest.raises(ValueError, match="ctc_input=encoder"):
        semantic_task(cfg)


def test_vq_starts_from_cosine_kmeans_scaled_to_the_features():
    from audiotok.semantic.supervised import TrainableVQ

    torch.manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    h = 5.0 * (centres.repeat(50, 1) + 0.01 * torch.randn(400, 16))  # 8 directions, norm about 5
    vq = TrainableVQ(16, 32, 0.99)  # spare codes: plain k-means can merge two clusters when K equals their number
    assert not vq.initialized
    vq.init_from(h)
    cb = vq.vq._codebook.embed[0]
    assert vq.initialized and torch.allclose(cb.norm(dim=-1), torch.ones(32), atol=1e-4)
    assert abs(vq.scale.item() - h.norm(dim=-1).mean().item()) < 1e-4
    # each direction found: every centre has a codeword within a small angle
    assert (centres @ cb.T).max(dim=1).values.min() > 0.99
    vq.eval()
    with torch.no_grad():
        q, codes, _ = vq(h[None])
    assert torch.allclose(q.norm(dim=-1), torch.full((1, 400), vq.scale.item()), atol=1e-3)
    assert torch.nn.functional.cosine_similarity(q[0], h, dim=-1).min() > 0.99


def test_recipe_vq_start_gathers_many_batches(wav_tree, tmp_path, capsys):
    from pathlib import Path

    from safetensors.torch import load_file

    from audiotok.data.manifest import write_manifest
    from audiotok.data.prepare import prepare
    from recipes.semantic.train import main

    root = Path(__file__).resolve().parents[2]
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, prepare(wav_tree, progress=False).utterances)
    args = [
        "--config",
        str(root / "recipes/semantic/configs/tiny.yaml"),
        f"data.train={manifest}",
        f"data.valid={manifest}",
        f"out_dir={tmp_path / 'run'}",
        "model.quantizer=vq",
        "model.codebook_size=16",
        "vq_init_frames=100",
        "data.batch_seconds=2.0",
        "loop.max_steps=1",
    ]
    main(args)
    log = capsys.readouterr().out
    frames = int(log.split("vq: k-means start over ")[1].split()[0])
    assert frames >= 100  # several batches: one of 2 s holds 50 frames at most
    state = load_file(tmp_path / "run/model.safetensors")
    assert float(state["quantizer.scale"]) > 1.5  # the features' norm, not the unit codewords'


def test_extra_position_scale_zero_hands_the_pooled_tokens_to_the_blocks_above_as_they_are():
    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR

    torch.manual_seed(0)
    c = SupervisedConfig(n_mels=80, seconds=4.0, n_state=32, n_head=2, n_layer=3, quantize_after=1, quantizer="vq")
    q = torch.randn(2, 100, 32)
    off = SupervisedTokenizerASR(SupervisedConfig(**{**c.__dict__, "extra_position_scale": 0.0})).eval()
    on = SupervisedTokenizerASR(c).eval()
    on.load_state_dict(off.state_dict())
    enc = off.whisper.encoder
    x = q.repeat_interleave(2, dim=1)
    for block in enc.blocks[1:]:
        x = block(x)
    assert torch.allclose(off.decode_tokens_to_features(q), enc.ln_post(x), atol=1e-5)
    assert not torch.allclose(on.decode_tokens_to_features(q), enc.ln_post(x), atol=1e-3)


def test_whisper_positions_quantize_the_content_and_give_the_blocks_above_exact_positions():
    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR

    torch.manual_seed(0)
    c = SupervisedConfig(
        n_mels=80, seconds=2.0, n_state=32, n_head=2, n_layer=3, quantize_after=1, quantizer="vq", codebook_size=16,
        extra_position_scale=0.0, whisper_positions=True,
    )  # fmt: skip
    model = SupervisedTokenizerASR(c).eval()
    pos = model.whisper.encoder.positional_embedding
    below = torch.randn(2, 100, 32)
    assert torch.allclose(model.to_quantizer_input(below), model.pool(below - pos[:100]))
    q = torch.randn(2, 50, 32)
    x = q.repeat_interleave(2, dim=1) + pos[:100]
    for block in model.whisper.encoder.blocks[1:]:
        x = block(x)
    assert torch.allclose(model.decode_tokens_to_features(q), model.whisper.encoder.ln_post(x), atol=1e-5)
    # the exported tokenizer takes the positions out too: its codes are the training model's
    front = WhisperFrontend(c.dims())
    wavs = [speechlike(32000, 16000, 1), speechlike(20000, 16000, 2)]
    mel = front(torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True), torch.tensor([32000, 20000]))
    model.quantizer.init_from(model.tokenize_hidden(mel).flatten(0, 1))
    with torch.no_grad():
        _, train_codes, _ = model.quantizer(model.tokenize_hidden(mel))
    tok = model.export_tokenizer()
    assert tok.config.subtract_positions
    codes, lens = tok.encode(wavs)
    for i, n in enumerate(lens.tolist()):
        assert torch.equal(codes[i, :n], train_codes[i, :n])
