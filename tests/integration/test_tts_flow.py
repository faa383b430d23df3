"""The flow-matching decoder with an LLM-architecture backbone (tiny random models)."""

from __future__ import annotations

import pytest
import torch

from audiotok.nn.masks import attention_mask
from tts.flow import FlowDecoder, cosine_schedule, flow_config, position_noise


def tiny() -> FlowDecoder:
    torch.manual_seed(0)
    return FlowDecoder(flow_config("tiny")).eval()


def batch(B: int = 2, L: int = 12):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 64, (B, L), generator=g)
    token_lens = torch.tensor([L, L - 3])[:B]
    mel = torch.randn(B, 2 * L, 16, generator=g)
    return tokens, token_lens, mel, token_lens * 2


def test_chunk_mask_never_looks_into_a_later_chunk():
    lens = torch.tensor([20, 13])
    m = attention_mask(lens, 20, "chunk", chunk=4)
    for i in range(20):
        for j in range(20):
            if j // 4 > i // 4:
                assert not m[:, 0, i, j].any()
    assert m[0, 0, 5, 7] and m[0, 0, 5, 0] and not m[1, 0, 5, 15]  # own chunk, earlier chunk, padded key
    causal = attention_mask(lens, 20, "causal")
    assert causal[0, 0, 3, 3] and not causal[0, 0, 3, 4]
    assert attention_mask(lens, 20, "full")[0, 0, 0, 19]


def test_cfm_loss_is_finite_and_decreases_on_one_batch():
    model = tiny().train()
    tokens, token_lens, mel, mel_lens = batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        loss, _ = model.loss(mel, mel_lens, tokens, token_lens, generator=torch.Generator().manual_seed(step % 4))
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert sum(losses[-4:]) < 0.7 * sum(losses[:4])


def test_schedule_reaches_one_and_euler_integrates_a_constant_field():
    ts = cosine_schedule(10)
    assert ts[0] == 0 and ts[-1] == 1 and bool((ts[1:] > ts[:-1]).all())
    model = tiny()
    tokens, token_lens, _, _ = batch(1)
    model.velocity = lambda x, *a, **k: torch.full_like(x, 2.0)  # dx/dt = 2 from t = 0 to 1
    out, _ = model.synthesize(tokens, token_lens, n_steps=7, cfg_strength=0.0, seed=3)
    noise = position_noise(out.shape[1], 16, seed=3)
    assert torch.allclose(out, noise + 2.0, atol=1e-5)


def test_sampler_shapes_determinism_and_prompt():
    model = tiny()
    tokens, token_lens, mel, mel_lens = batch()
    a, lens = model.synthesize(tokens, token_lens, n_steps=4, seed=0)
    assert a.shape == (2, 24, 16) and lens.tolist() == [24, 18]
    assert torch.equal(a, model.synthesize(tokens, token_lens, n_steps=4, seed=0)[0])
    assert not torch.allclose(a, model.synthesize(tokens, token_lens, n_steps=4, seed=1)[0])
    assert a[1, 18:].abs().sum() == 0  # padded frames are zero
    prompted, _ = model.synthesize(
        tokens, token_lens, prompt_mel=mel[:, :6], prompt_lens=torch.tensor([6, 4]), n_steps=4
    )
    assert torch.equal(prompted[0, :6], mel[0, :6]) and torch.equal(prompted[1, :4], mel[1, :4])


def test_streamed_prefix_equals_the_offline_prefix_under_the_chunk_mask():
    model = tiny()
    c = model.config
    L = 3 * c.chunk_tokens + 2
    tokens = torch.randint(0, 64, (1, L), generator=torch.Generator().manual_seed(5))
    offline, _ = model.synthesize(tokens, torch.tensor([L]), n_steps=5, mask="chunk", seed=7)
    for k in (1, 2):
        seen = k * c.chunk_tokens + c.lookahead  # tokens available when chunk k is done, with its look-ahead
        part, _ = model.synthesize(tokens[:, :seen], torch.tensor([seen]), n_steps=5, mask="chunk", seed=7)
        frames = k * c.chunk_tokens * c.ratio
        assert torch.allclose(part[:, :frames], offline[:, :frames], atol=1e-5)
    # under the full mask the prefix depends on the future: streaming needs the chunk mask
    full, _ = model.synthesize(tokens, torch.tensor([L]), n_steps=5, mask="full", seed=7)
    part, _ = model.synthesize(tokens[:, : c.chunk_tokens + 3], torch.tensor([c.chunk_tokens + 3]), n_steps=5, seed=7)
    assert not torch.allclose(part[:, : c.chunk_tokens * 2], full[:, : c.chunk_tokens * 2], atol=1e-5)


def test_save_and_load(tmp_path):
    model = tiny()
    tokens, token_lens, _, _ = batch()
    model.save(tmp_path / "flow.safetensors")
    again = FlowDecoder.from_pretrained(tmp_path / "flow.safetensors")
    assert torch.equal(
        model.synthesize(tokens, token_lens, n_steps=2)[0], again.synthesize(tokens, token_lens, n_steps=2)[0]
    )


def test_flow_recipe_runs_two_steps_and_resumes(tiny_corpus, tmp_path):
    import json
    from pathlib import Path

    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR
    from recipes.tts.train_flow import main

    torch.manual_seed(0)
    sem = tmp_path / "semantic.safetensors"
    cfg = SupervisedConfig(n_mels=80, seconds=4.0, n_state=32, n_head=2, n_layer=2, n_text_ctx=32, quantize_after=1)
    SupervisedTokenizerASR(cfg).export_tokenizer().save(sem)
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    args = [
        "--config",
        str(root / "recipes/tts/configs/flow-tiny.yaml"),
        f"data.train={tiny_corpus / 'train.jsonl'}",
        f"data.valid={tiny_corpus / 'valid.jsonl'}",
        f"semantic_tokenizer={sem}",
        f"out_dir={out}",
    ]
    main([*args, "loop.max_steps=2"])
    assert (out / "flow.safetensors").exists()
    main([*args, "loop.max_steps=4"])
    steps = [json.loads(line)["step"] for line in (out / "train.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert json.loads((out / "valid.jsonl").read_text().splitlines()[0])["loss"] > 0
    FlowDecoder.from_pretrained(out / "flow.safetensors")


def test_position_noise_prefixes_agree_at_any_length():
    long, short = position_noise(700, 4, seed=2), position_noise(300, 4, seed=2)
    assert torch.equal(long[:, :300], short) and long.shape == (1, 700, 4)
    assert not torch.equal(position_noise(300, 4, seed=3), short)


def test_flow_recipe_refuses_a_tokenizer_of_another_codebook_size(tiny_corpus, tmp_path):
    from pathlib import Path

    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR
    from recipes.tts.train_flow import main

    sem = tmp_path / "semantic-vq.safetensors"
    cfg = SupervisedConfig(
        n_mels=80, seconds=4.0, n_state=32, n_head=2, n_layer=2, n_text_ctx=32, quantize_after=1, quantizer="vq",
        codebook_size=32,
    )  # fmt: skip
    SupervisedTokenizerASR(cfg).export_tokenizer().save(sem)
    config = str(Path(__file__).resolve().parents[2] / "recipes/tts/configs/flow-tiny.yaml")
    args = [
        "--config",
        config,
        f"data.train={tiny_corpus / 'train.jsonl'}",
        f"data.valid={tiny_corpus / 'valid.jsonl'}",
    ]
    with pytest.raises(ValueError, match="set n_speech=32"):
        main([*args, f"semantic_tokenizer={sem}", f"out_dir={tmp_path / 'run'}"])
    main([*args, f"semantic_tokenizer={sem}", f"out_dir={tmp_path / 'run'}", "model.n_speech=32", "loop.max_steps=1"])
