"""The training-step benchmarks (for planning): one step of the codec GAN, the semantic tokenizer, the TTS LM
and the TTS flow at full size (tiny in the smoke run), bf16 autocast on CUDA.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from device_core import Context
from device_measure import n_params


def amp_context(ctx: Context):
    """bf16 autocast on CUDA, as the recipes train there; fp32 on a CPU."""
    from audiotok.train.distributed import bf16_autocast

    return bf16_autocast(torch.device(ctx.device), cuda=True, cpu=False)


def time_steps(ctx: Context, step: Callable[[], None]) -> float:
    """Mean seconds per training step after ``train_warmup`` untimed ones."""
    for _ in range(ctx.sizes.train_warmup):
        step()
    ctx.sync()
    t = time.perf_counter()
    for _ in range(ctx.sizes.train_steps):
        step()
    ctx.sync()
    return (time.perf_counter() - t) / ctx.sizes.train_steps


def step_row(ctx: Context, model: str, params_m: float, batch: str, items: int, seconds: float) -> None:
    ctx.rec.row(
        model=model,
        params_m=params_m,
        batch=batch,
        precision="bf16 autocast" if ctx.cuda else "fp32",
        s_per_step=seconds,
        items_per_s=items / seconds,
        peak_mib=ctx.peak_mib(),
    )


def codec_gan_step(ctx: Context, model, discs, batch: int, seconds: float) -> Callable[[], None]:
    """One discriminator + generator step of the codec recipe's GAN loop (``audiotok.train.gan``) on noise."""
    from audiotok.codec.discriminators import RELEASED_LOSS_WEIGHTS as weights
    from audiotok.nn.losses import MelLoss, discriminator_objective, generator_adversarial_terms

    opt_g, opt_d = torch.optim.AdamW(model.parameters(), 2e-4), torch.optim.AdamW(discs.parameters(), 2e-4)
    mel_loss, amp = MelLoss(model.sample_rate).to(ctx.device), amp_context(ctx)
    wav = 0.1 * torch.randn(batch, int(seconds * model.sample_rate), device=ctx.device)
    lens = torch.full((batch,), wav.shape[1], device=ctx.device)
    cond = torch.zeros(1, dtype=torch.long, device=ctx.device)

    def step() -> None:
        with amp:
            out = model(wav, lens, cond)
        fake = out["audio"].float()[:, : wav.shape[1]]
        loss_d = discriminator_objective(discs, wav, fake, cond, amp)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        terms = {"mel": mel_loss(fake, wav, lens), "commit": out["commit"]}
        terms.update(generator_adversarial_terms(discs, wav, fake, cond, amp))
        loss_g = sum(weights.get(k, 0.0) * v.float() for k, v in terms.items())
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    return step


def bench_train_codec(ctx: Context) -> None:
    """Generator + discriminator step of the codec at full size (wavtokenizer-75 with MPD, MRD and DAC
    discriminators, 3 s segments; the largest of the batch sizes that fits)."""
    from audiotok.codec import Codec, codec_config
    from audiotok.codec.discriminators import DiscriminatorConfig, Discriminators

    s, tiny = ctx.sizes, ctx.sizes.train_tiny
    torch.manual_seed(0)
    model = Codec(codec_config("tiny" if tiny else "wavtokenizer-75")).to(ctx.device).train()
    cb = model.quantizer.vq._codebook
    cb.embed.data.normal_()
    cb.initted.data.fill_(True)
    disc_cfg = DiscriminatorConfig(
        periods=(2, 3), mpd_channels=(4, 8, 8), resolutions=((512, 128, 512),), mrd_channels=4, dac_fft_sizes=(512,)
    )
    discs = Discriminators(disc_cfg if tiny else DiscriminatorConfig(dac_fft_sizes=(2048, 1024, 512)))
    discs = discs.to(ctx.device).train()
    for batch in s.codec_train_batches:
        ctx.reset_peak()
        try:
            t = time_steps(ctx, codec_gan_step(ctx, model, discs, batch, s.codec_train_seconds))
        except torch.cuda.OutOfMemoryError:
            ctx.rec.note(f"batch {batch} x {s.codec_train_seconds:g} s: out of memory")
            continue
        label = f"{batch} x {s.codec_train_seconds:g} s"
        step_row(
            ctx, "codec " + ("tiny" if tiny else "wavtokenizer-75 + discs"), n_params(model, discs), label, batch, t
        )
        return


def bench_train_semantic(ctx: Context) -> None:
    """Step of the supervised semantic tokenizer at Whisper-base size (512-d, 6+6 layers, FSQ after block 3,
    10 s inputs, ASR loss through the quantizer)."""
    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR

    s, tiny = ctx.sizes, ctx.sizes.train_tiny
    torch.manual_seed(0)
    cfg = (
        SupervisedConfig(n_mels=80, seconds=2.0, n_state=32, n_head=2, n_layer=2, n_text_ctx=64, quantize_after=1)
        if tiny
        else SupervisedConfig(n_mels=80, seconds=10.0, n_state=512, n_head=8, n_layer=6, quantize_after=3)
    )
    model = SupervisedTokenizerASR(cfg).to(ctx.device).train()
    opt, amp = torch.optim.AdamW(model.parameters(), 1e-4), amp_context(ctx)
    b = s.semantic_train_batch
    mel = torch.randn(b, cfg.n_mels, 2 * cfg.dims().n_audio_ctx, device=ctx.device)
    texts = ["the quick brown fox jumps over the lazy dog and runs far away into the woods"] * b

    def step() -> None:
        with amp:
            out = model(mel, texts)
            loss = out["asr"] + out["commit"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ctx.reset_peak()
    label = "semantic " + ("tiny" if tiny else "whisper-base size")
    step_row(ctx, label, n_params(model), f"{b} x {cfg.seconds:g} s", b, time_steps(ctx, step))


def bench_train_lm(ctx: Context) -> None:
    """Step of the TTS LM at the Qwen2.5-0.5B shape (about 8,000 tokens a batch, as ``lm-small.yaml``)."""
    from tts_lm import bench_tokenizer

    from tts.lm import TTSLM, Example, lm_config, lm_loss

    s, tiny = ctx.sizes, ctx.sizes.train_tiny
    torch.manual_seed(0)
    cfg = lm_config("tiny" if tiny else "qwen2.5-0.5b")
    lm = TTSLM(cfg, bench_tokenizer(n_speech=cfg.n_speech)).to(ctx.device).train()
    objective, opt, amp = lm.objective(), torch.optim.AdamW(lm.parameters(), 5e-4), amp_context(ctx)
    g = torch.Generator().manual_seed(0)
    text = lm.tokenizer.encode_text("the quick brown fox jumps over the lazy dog")
    examples = [
        Example(text=text, target_codes=torch.randint(cfg.n_speech, (s.lm_train_speech,), generator=g).tolist())
        for _ in range(s.lm_train_batch)
    ]
    batch = {k: v.to(ctx.device) for k, v in lm.collate(examples).items()}

    def step() -> None:
        with amp:
            loss, _ = lm_loss(objective, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ctx.reset_peak()
    n_tokens = int(batch["attention_mask"].sum())
    shape = f"{len(examples)} x {batch['input_ids'].shape[1]} tokens"
    step_row(ctx, "tts lm " + cfg_name(tiny, "qwen2.5-0.5b"), n_params(lm), shape, n_tokens, time_steps(ctx, step))
    ctx.rec.note("items_per_s of the LM and flow rows count tokens")


def bench_train_flow(ctx: Context) -> None:
    """Step of the flow at CosyVoice 2's estimator size (768-d x 10, 2,000 tokens a batch, as ``flow-small.yaml``)."""
    from tts_flow import cosyvoice2_flow_config

    from tts.flow import FlowDecoder, flow_config

    s, tiny = ctx.sizes, ctx.sizes.train_tiny
    torch.manual_seed(0)
    flow = FlowDecoder(flow_config("tiny") if tiny else cosyvoice2_flow_config()).to(ctx.device).train()
    c, opt, amp = flow.config, torch.optim.AdamW(flow.parameters(), 3e-4), amp_context(ctx)
    b, L = s.flow_train_batch, s.flow_train_tokens
    tokens = torch.randint(c.n_speech, (b, L), device=ctx.device)
    token_lens = torch.full((b,), L, device=ctx.device)
    mel = torch.randn(b, L * c.ratio, c.n_mels, device=ctx.device)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        with amp:
            loss, _ = flow.loss(mel, token_lens * c.ratio, tokens, token_lens, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ctx.reset_peak()
    step_row(
        ctx, "tts flow " + cfg_name(tiny, "768x10"), n_params(flow), f"{b} x {L} tokens", b * L, time_steps(ctx, step)
    )


def cfg_name(tiny: bool, full: str) -> str:
    return "tiny" if tiny else full
