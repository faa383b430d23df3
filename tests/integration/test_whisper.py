from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import whisper
from whisper.model import Whisper

from audiotok.data.manifest import write_manifest
from audiotok.data.prepare import prepare
from audiotok.train.distributed import bf16_autocast
from audiotok.whisper import (
    WhisperFrontend,
    asr_loss,
    char_vocab,
    corrupt_tokens,
    load_whisper,
    new_whisper,
    save_openai,
    save_safetensors,
    small_dims,
    text_targets,
    tokenizer_for,
    transcribe,
    word_error_rate,
)
from audiotok.whisper.loss import WhisperWithCTC, guided_attention_loss
from audiotok.whisper.training import init_whisper_weights
from recipes.whisper.train import main

ROOT = Path(__file__).resolve().parents[2]


def _tiny() -> Whisper:
    return new_whisper(small_dims(seconds=2.0, n_state=64, n_head=2, n_layer=1, n_text_ctx=32), seed=0)


def test_frontend_targets_loss_decode_and_checkpoints(tmp_path):
    model = _tiny()
    front = WhisperFrontend(model.dims)
    wav, lens = torch.randn(2, 40000) * 0.1, torch.tensor([40000, 12000])
    mel = front(wav, lens)
    assert mel.shape == (2, 80, 200)  # 2 x n_audio_ctx, trimmed (2.5 s of audio)
    tok = tokenizer_for(model)
    y_in, y_out = text_targets(["hello", "a b c"], tok, 32)
    n_prefix = len(tok.sot_sequence_including_notimestamps)
    assert y_in[0, :n_prefix].tolist() == list(tok.sot_sequence_including_notimestamps)
    assert (y_out[:, : n_prefix - 1] == -100).all() and tok.eot in y_out[0].tolist()
    loss = asr_loss(model, mel, ["hello", "a b c"])
    assert torch.isfinite(loss)
    assert torch.isfinite(model.decoder.positional_embedding).all()  # openai-whisper leaves it torch.empty
    assert len(transcribe(model, mel)) == 2
    pt = save_openai(model, tmp_path / "w.pt")
    assert torch.allclose(whisper.load_model(str(pt), device="cpu").encoder(mel), model.encoder(mel), atol=1e-5)
    st = save_safetensors(model, tmp_path / "w.safetensors")
    assert torch.allclose(load_whisper(st).encoder(mel), model.encoder(mel), atol=1e-6)


def test_a_few_steps_lower_the_loss():
    model = _tiny()
    mel = WhisperFrontend(model.dims)(torch.randn(2, 32000) * 0.1, torch.tensor([32000, 32000]))
    texts = ["the cat sat", "on the mat"]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = float(asr_loss(model, mel, texts).detach())
    for _ in range(30):
        loss = asr_loss(model, mel, texts)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_wer_uses_the_english_normalizer():
    assert word_error_rate(["Hello, World!"], ["hello world"]) == 0.0
    assert word_error_rate(["two cats"], ["too cats"]) == 0.5


def test_recipe_runs_two_steps_and_resumes(wav_tree, tmp_path):
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, prepare(wav_tree, progress=False).utterances)
    out = tmp_path / "run"
    args = [
        "--config",
        str(ROOT / "recipes/whisper/configs/tiny.yaml"),
        f"data.train={manifest}",
        f"data.valid={manifest}",
        f"out_dir={out}",
    ]
    main([*args, "loop.max_steps=2", "loop.valid_every=2"])
    assert (out / "whisper.pt").exists() and (out / "model.safetensors").exists()
    main([*args, "loop.max_steps=4"])
    steps = [json.loads(line)["step"] for line in (out / "train.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    valid = json.loads((out / "valid.jsonl").read_text().splitlines()[0])
    assert 0.0 <= valid["wer"] and valid["n"] == 2
    assert whisper.load_model(str(out / "whisper.pt"), device="cpu").dims.n_audio_ctx == 200


def test_recipe_with_auxiliary_ctc_exports_a_plain_whisper(wav_tree, tmp_path):
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, prepare(wav_tree, progress=False).utterances)
    out = tmp_path / "run"
    main(
        [
            "--config",
            str(ROOT / "recipes/whisper/configs/tiny.yaml"),
            f"data.train={manifest}",
            f"data.valid={manifest}",
            f"out_dir={out}",
            "loop.max_steps=2",
            "ctc_weight=0.3",
            "token_noise=0.2",
            "label_smoothing=0.1",
            "guided_attention=1.0",
            "text_unit=char",
            "data.concat=true",
            "loop.cpu_bf16=true",
        ]
    )
    logs = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert all("ctc" in r and r["ctc"] > 0 and 0 < r["guided"] < 1 for r in logs)
    model = whisper.load_model(str(out / "whisper.pt"), device="cpu")  # the CTC head is not in the export
    assert not any("ctc" in k for k in model.state_dict())


def test_init_grows_a_shallower_encoder_into_the_same_function(tmp_path):
    src = new_whisper(small_dims(80, 2.0, 64, 2, 2, n_text_ctx=32), seed=1)
    save_safetensors(src, tmp_path / "src.safetensors")
    deep = WhisperWithCTC(new_whisper(small_dims(80, 2.0, 64, 2, 4, n_text_layer=2, n_text_ctx=32), seed=2))
    init_whisper_weights(deep, str(tmp_path / "src.safetensors"))
    mel = torch.randn(2, 80, 200)
    torch.testing.assert_close(deep.whisper.encoder(mel), src.encoder(mel))
    # the new blocks still learn: their output projections receive gradients
    deep.whisper.encoder(mel).square().sum().backward()
    assert deep.whisper.encoder.blocks[3].attn.out.weight.grad.abs().sum() > 0
    # a run's last.pt also carries the CTC head
    torch.save({"model": deep.state_dict()}, tmp_path / "last.pt")
    again = WhisperWithCTC(new_whisper(small_dims(80, 2.0, 64, 2, 4, n_text_layer=2, n_text_ctx=32), seed=3))
    init_whisper_weights(again, str(tmp_path / "last.pt"))
    torch.testing.assert_close(again.ctc.weight, deep.ctc.weight)
    with pytest.raises(ValueError, match="encoder layers"):
        init_whisper_weights(
            new_whisper(small_dims(80, 2.0, 64, 2, 1, n_text_layer=2, n_text_ctx=32)), str(tmp_path / "src.safetensors")
        )


def test_bf16_autocast_only_where_asked_and_native():
    a = torch.randn(4, 8)
    with bf16_autocast(torch.device("cpu"), cpu=False):
        assert (a @ a.T).dtype == torch.float32
    with bf16_autocast(torch.device("cpu"), cpu=True):
        native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        assert (a @ a.T).dtype == (torch.bfloat16 if native else torch.float32)


def test_concat_utterances_joins_short_items_first_fit_within_both_contexts():
    from audiotok.whisper.training import concat_utterances

    lens = torch.tensor([30, 20, 50, 10])
    audio = torch.zeros(4, 50)
    for i, n in enumerate(lens):
        audio[i, :n] = i + 1
    out, out_lens, texts = concat_utterances(audio, lens, ["a", "b", "c", "d"], max_len=70, gap=5)
    assert texts == ["a b d", "c"] and out_lens.tolist() == [30 + 5 + 20 + 5 + 10, 50]
    assert out[0, :30].eq(1).all() and out[0, 30:35].eq(0).all() and out[0, 35:55].eq(2).all()
    assert out[0, 60:70].eq(4).all() and out[1, :50].eq(3).all() and out.shape == (2, 70)
    _, _, texts = concat_utterances(audio, lens, ["a", "b", "c", "d"], 70, 5, fits=lambda t: len(t) <= 3)
    assert texts == ["a b", "c d"]  # the text context limits a join too


def test_token_noise_replaces_only_text_tokens():
    tok = tokenizer_for(_tiny())
    y_in, _ = text_targets(["a cat sat on the mat", "hi"], tok, 64)
    n_prefix = len(tok.sot_sequence_including_notimestamps)
    torch.manual_seed(0)
    assert torch.equal(corrupt_tokens(y_in, 0.0, n_prefix, tok.eot), y_in)
    noisy = corrupt_tokens(y_in, 1.0, n_prefix, tok.eot)
    text = torch.zeros_like(y_in, dtype=torch.bool)
    text[:, n_prefix:] = y_in[:, n_prefix:] < tok.eot
    assert torch.equal(noisy[~text], y_in[~text])  # task prefix and eot padding untouched
    assert (noisy[text] < tok.eot).all() and (noisy[text] != y_in[text]).float().mean() > 0.9
    chars = char_vocab(tok)
    noisy = corrupt_tokens(y_in, 1.0, n_prefix, tok.eot, chars)  # character noise for a character model
    assert torch.isin(noisy[text], chars).all() and torch.equal(noisy[~text], y_in[~text])
    assert len(chars) == 100 - 23 - 5  # printable ASCII less the suppressed symbols and whitespace but ' '


def test_transcribe_retries_runaway_greedy_results_with_beam_search():
    model = _tiny().eval()
    torch.manual_seed(0)
    mel = torch.randn(2, model.dims.n_mels, 2 * model.dims.n_audio_ctx)
    options = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False, sample_len=8)
    model.dims.n_text_ctx = 16  # sample_len = n_text_ctx // 2 = 8 tokens
    greedy = whisper.decode(model, mel, options)
    assert all(len(r.tokens) >= 8 for r in greedy)  # a random model never ends: every result hits the limit
    beam = transcribe(model, mel, beam_size=2, fallback_beam=None)
    assert transcribe(model, mel, fallback_beam=2) == beam
    assert transcribe(model, mel, fallback_beam=None) == [r.text for r in greedy]


def test_guided_attention_loss_prefers_the_diagonal_and_penalises_padding():
    L, T = 6, 20
    y_out = torch.full((1, L), -100)
    y_out[0, 1:5] = 7  # 4 rows predict text/eot; rows 0 and 5 (prefix, padding) carry no penalty
    n_frames = torch.tensor([16])
    diagonal = torch.zeros(1, 1, L, T)
    for j, i in enumerate(range(1, 5)):
        diagonal[0, 0, i, 4 * j + 2] = 1.0  # row j of 4 looks at the middle of its quarter of the 16 frames
    reversed_ = diagonal.flip(-1).roll(-4, dims=-1)  # the same frames in reverse order
    padding = torch.zeros(1, 1, L, T)
    padding[..., 18] = 1.0  # past the 16 valid frames
    loss = lambda m: float(guided_attention_loss([m], y_out, n_frames, 0.2))  # noqa: E731
    assert loss(diagonal) < 0.02 and loss(reversed_) > 0.3 and loss(padding) == 1.0
    diagonal[0, 0, 0] = diagonal[0, 0, 5] = 0.5 / T  # ignored rows change nothing
    assert loss(diagonal) < 0.02


def test_character_unit_round_trips_and_travels_with_the_checkpoints(tmp_path):
    from audiotok.whisper import encode_text, text_unit

    model = _tiny()
    tok = tokenizer_for(model)
    text = "My sister, who's 65, said: You're going!"
    chars = encode_text(text, tok, "char")
    # one token per character; no leading space and no ':' (openai-whisper's decoding would never emit them)
    assert tok.decode(chars) == "My sister, who's 65, said You're going!" and len(chars) == len(text) - 1
    assert tok.decode(encode_text(text, tok)) == " " + text and len(encode_text(text, tok)) < len(chars)
    y_in, y_out = text_targets([text], tok, 64, unit="char")
    n_prefix = len(tok.sot_sequence_including_notimestamps)
    assert y_in[0, n_prefix:].tolist() == chars and y_out[0, -1] == tok.eot
    assert text_unit(model) == "bpe"
    model.text_unit = "char"
    save_openai(model, tmp_path / "w.pt")
    save_safetensors(model, tmp_path / "w.safetensors")
    assert text_unit(load_whisper(tmp_path / "w.pt")) == "char" == text_unit(load_whisper(tmp_path / "w.safetensors"))
    assert text_unit(whisper.load_model(str(tmp_path / "w.pt"), device="cpu")) == "bpe"  # openai-whisper loads it


def test_restricted_cross_entropy_equals_the_full_vocabulary_loss_when_other_rows_are_zero():
    from audiotok.whisper import char_training_vocab, restricted_cross_entropy, restricted_vocab, zero_rows_outside

    model = _tiny()
    tok = tokenizer_for(model)
    vocab = char_training_vocab(tok)
    model.text_unit = "char"
    assert restricted_vocab(model) is None  # its other rows are not zero yet
    zero_rows_outside(model, vocab)
    assert torch.equal(restricted_vocab(model), vocab)
    emb = model.decoder.token_embedding.weight
    assert emb[tok.encode(" the")[0]].abs().sum() == 0 and emb[vocab].abs().sum(1).gt(0).all()
    y_in, y_out = text_targets(["Café au lait, please!", "hi"], tok, 64, unit="char")
    net = WhisperWithCTC(model, ctc=False)
    torch.manual_seed(0)
    mel = torch.randn(2, 80, 2 * model.dims.n_audio_ctx)
    full, ctc = net(mel, y_in)
    part, _ = net(mel, y_in, vocab=vocab)
    assert ctc is None and part.shape == (*y_in.shape, len(vocab))
    assert torch.allclose(part, full[..., vocab], atol=1e-5)
    for eps in (0.0, 0.1):
        ref = torch.nn.functional.cross_entropy(full.transpose(1, 2), y_out, ignore_index=-100, label_smoothing=eps)
        got = restricted_cross_entropy(part, y_out, vocab, model.dims.n_vocab, eps)
        assert torch.allclose(got, ref, atol=1e-5), (got, ref)
