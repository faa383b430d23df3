"""The GAN training loop shared by the waveform generators (the codec, the TTS vocoder).

One generator step per batch of random audio segments: a discriminator step on real vs. generated audio (skipped
during the mel-only warm-up ``pretrain_mel_steps``), then the generator step on the weighted sum of the mel L1, the
recipe's own terms (e.g. VQ commitment) and the adversarial + feature-matching terms. AdamW + warm-up/cosine for
both sides, gradient clipping, bf16 autocast on CUDA, DDP-ready, resume from ``last.pt`` (both models, optimisers,
schedules, sampler position, RNG), logging, validation and saves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from audiotok.config import to_dict
from audiotok.data.augment import ChannelAugmentConfig, channel_augment
from audiotok.data.dataset import AudioDataset, collate_audio
from audiotok.data.sampler import DurationBatchSampler
from audiotok.nn.losses import MelLoss, discriminator_objective, generator_adversarial_terms
from audiotok.train.distributed import DistInfo, barrier, bf16_autocast, broadcast_object, unwrap
from audiotok.train.logging import TrainLogger
from audiotok.train.loop import LoopConfig, Selection, save_best
from audiotok.train.schedule import cosine_schedule
from audiotok.train.state import resume_checkpoint, save_checkpoint


@dataclass
class DataConfig:
    train: str = "data/synth/train.jsonl"
    valid: str = "data/synth/test.jsonl"  # held-out speakers
    segment_seconds: float = 3.0
    batch_size: int = 40  # per process
    n_workers: int = 4
    gain_db: tuple[float, float] = (-6.0, -1.0)  # random peak level of training segments, as released
    dither_db: float | None = None  # white noise floor (dBFS RMS) added to segments; digital silence (synthetic
    # speech) otherwise dominates the log-mel loss at log(1e-7)
    n_valid: int = 16  # utterances scored at each validation
    augment: ChannelAugmentConfig = field(default_factory=ChannelAugmentConfig)  # band, noise, reverb (off)


@dataclass
class GANTrainConfig:
    """What the GAN loop reads; the recipes' configs extend it."""

    data: DataConfig = field(default_factory=DataConfig)
    # both optimisers; WavTokenizer's released settings: AdamW 2e-4, betas (0.9, 0.999), no clipping by default here
    loop: LoopConfig = field(
        default_factory=lambda: LoopConfig(
            lr=2e-4, betas=(0.9, 0.999), warmup_steps=0, max_steps=1_000_000, save_every=1000, log_every=50
        )
    )
    weights: dict = field(default_factory=lambda: {"mel": 45.0})  # loss term name -> weight (absent = 0)
    pretrain_mel_steps: int = 0  # generator-only steps before the GAN starts (0 = GAN from step 0, as released)
    select_on: str | None = None  # validation metric (lower is better) for best/ and loop.patience
    out_dir: str = "runs/gan"
    seed: int = 3407
    device: str = "auto"


@dataclass
class Generated:
    """One generator forward: ``fake`` (B, T) audio aligned with the real segments, the discriminators'
    condition (or None), the recipe's own loss terms, and extra values to log (called only at log steps)."""

    fake: torch.Tensor
    cond: torch.Tensor | None = None
    terms: dict = field(default_factory=dict)
    logs: Callable[[], dict] | None = None


def build_loader(
    data: DataConfig, sample_rate: int, seed: int, rank: int = 0, world_size: int = 1
) -> tuple[DataLoader, DurationBatchSampler]:
    """Random ``segment_seconds`` crops of the training manifest, ``batch_size`` per process."""
    dataset = AudioDataset(
        data.train,
        sample_rate=sample_rate,
        crop_seconds=data.segment_seconds,
        crop="random",
        seed=seed,
        on_error="skip",
    )
    sampler = DurationBatchSampler(
        dataset.durations,
        max_seconds=data.batch_size * data.segment_seconds,
        max_items=data.batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_audio,
        num_workers=data.n_workers,
        pin_memory=torch.cuda.is_available(),
    )  # workers restart per epoch: they see set_epoch
    return loader, sampler


def random_peak_gain(wav: torch.Tensor, gain_db: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Scale each row of (B, T) to a random peak level in ``gain_db`` (dBFS)."""
    lo, hi = gain_db
    target = lo + (hi - lo) * torch.rand(wav.shape[0], generator=generator)
    peak = wav.abs().amax(dim=1).clamp_min(1e-5)
    return wav * (10 ** (target.to(wav) / 20) / peak).unsqueeze(1)


def prepare_segments(
    batch: dict, data: DataConfig, sample_rate: int, generator: torch.Generator, device
) -> tuple[torch.Tensor, ...]:
    """The real audio of a batch: channel augmentation (``data.augment``), random peak gain, optional dither, zero
    past each length. -> (wav, lens)."""
    wav = channel_augment(batch["audio"], batch["audio_lens"], data.augment, sample_rate, generator)
    wav = random_peak_gain(wav, data.gain_db, generator)
    if data.dither_db is not None:
        wav = wav + 10 ** (data.dither_db / 20) * torch.randn(wav.shape, generator=generator)
    wav, lens = wav.to(device), batch["audio_lens"].to(device)
    return wav * (torch.arange(wav.shape[1], device=device)[None] < lens[:, None]), lens


def run_gan_loop(
    cfg: GANTrainConfig,
    info: DistInfo,
    model: torch.nn.Module,
    discs: torch.nn.Module,
    generate: Callable[[torch.Tensor, torch.Tensor, int, torch.Generator], Generated],
    loader,
    sampler,
    sample_rate: int,
    save_fn: Callable[[Path, int], None],
    validate_fn: Callable[[], tuple[dict, list]] | None = None,
) -> int:
    """Train until ``cfg.loop.max_steps`` generator steps.

    ``generate(wav (B, T), lens (B,), step, generator) -> Generated`` runs the (DDP-wrapped, if distributed)
    generator on the real segments; ``save_fn(out_dir, step)`` writes the inference checkpoint (rank 0);
    ``validate_fn() -> (metrics, [(name, reference, reconstruction), ...])`` (rank 0). Returns the final step."""
    device, out_dir, o = info.device, Path(cfg.out_dir), cfg.loop

    def adamw(params):
        return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)

    opt_g, opt_d = adamw(model.parameters()), adamw(discs.parameters())
    sched_g = cosine_schedule(opt_g, o.max_steps, o.warmup_steps, o.min_lr_factor)
    sched_d = cosine_schedule(opt_d, o.max_steps, o.warmup_steps, o.min_lr_factor)
    objects = {"model": model, "discs": discs, "opt_g": opt_g, "opt_d": opt_d, "sched_g": sched_g, "sched_d": sched_d}
    state = resume_checkpoint(out_dir / "last.pt", {**objects, "sampler": sampler}, info.rank)
    step = state["step"] if state else 0
    selection = Selection.resumed(cfg.select_on, o.patience, state)
    if state and info.is_main:
        print(f"resumed from {out_dir / 'last.pt'} at step {step}", flush=True)
    mel_loss = MelLoss(sample_rate).to(device)
    d_model = DDP(discs, broadcast_buffers=False) if info.distributed else discs
    amp = bf16_autocast(device, o.bf16, o.cpu_bf16)
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + info.rank + step)
    logger = TrainLogger(out_dir, enabled=info.is_main)
    model.train()
    t_last, consumed, stop = time.time(), sampler.batches_done, selection.exhausted
    while step < o.max_steps and not stop:
        epoch = sampler.epoch  # the loader prefetches, so the sampler's own counters run ahead of training
        loader.dataset.set_epoch(epoch)
        for batch in loader:
            consumed += 1
            if not batch["ids"]:
                continue
            wav, lens = prepare_segments(batch, cfg.data, sample_rate, gen, device)
            with amp:
                g = generate(wav, lens, step, gen)
            fake = g.fake.float()[:, : wav.shape[1]]
            gan, logs = step >= cfg.pretrain_mel_steps, {}
            if gan:  # discriminator step: one forward over real and fake together (one DDP pass)
                loss_d = discriminator_objective(d_model, wav, fake, g.cond, amp)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                if o.grad_clip:
                    torch.nn.utils.clip_grad_norm_(discs.parameters(), o.grad_clip)
                opt_d.step()
                logs["disc"] = loss_d.detach()
            terms = {"mel": mel_loss(fake, wav, lens), **g.terms}
            if gan:
                terms.update(generator_adversarial_terms(d_model, wav, fake, g.cond, amp))
            loss_g = sum(cfg.weights.get(k, 0.0) * v.float() for k, v in terms.items())
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            if o.grad_clip:
                logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
            opt_g.step()
            sched_g.step()
            if gan:
                sched_d.step()
            step += 1
            if not math.isfinite(float(loss_g.detach())):
                raise FloatingPointError(f"non-finite generator loss at step {step}: {terms}")
            if info.is_main and (step % o.log_every == 0 or step == 1):
                now = time.time()
                logs.update(
                    {
                        **terms,
                        "total": loss_g.detach(),
                        "lr": sched_g.get_last_lr()[0],
                        **(g.logs() if g.logs is not None else {}),
                        "s_per_step": (now - t_last) / (o.log_every if step > 1 else 1),
                    }
                )
                t_last = now
                logger.scalars(step, logs)
            if validate_fn is not None and step % o.valid_every == 0:
                if info.is_main:
                    model.eval()
                    metrics, samples = validate_fn()
                    model.train()
                    logger.scalars(step, metrics, prefix="valid")
                    for name, ref, rec in samples:
                        logger.audio(step, f"{name}/reference", ref, sample_rate)
                        logger.audio(step, f"{name}/reconstruction", rec, sample_rate)
                    if selection.update(metrics):
                        save_best(out_dir, step, metrics, lambda d, s=step: save_fn(d, s))
                stop = broadcast_object(selection.exhausted)
                barrier()
            if step % o.save_every == 0 or step >= o.max_steps or stop:
                sampler_state = {**sampler.state_dict(), "epoch": epoch, "batches_done": consumed}
                saved = {k: unwrap(v) for k, v in objects.items()}
                save_checkpoint(
                    out_dir / "last.pt",
                    step,
                    saved,
                    info.is_main,
                    sampler=sampler_state,
                    config=to_dict(cfg),
                    **selection.state(),
                )
                if info.is_main:
                    save_fn(out_dir, step)
                barrier()
            if step >= o.max_steps or stop:
                break
        else:
            consumed = 0  # the sampler moved on to the next epoch by itself
    if stop and info.is_main:
        print(f"early stop at step {step}: {cfg.select_on} did not improve in {o.patience} validations", flush=True)
    logger.close()
    return step
