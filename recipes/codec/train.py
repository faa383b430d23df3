"""Train the WavTokenizer-style codec (GAN: MPD + MRD [+ DAC] discriminators, mel L1, VQ commitment).

    python recipes/codec/train.py --config recipes/codec/configs/tiny.yaml [key.sub=value ...]
    torchrun --nproc_per_node 8 recipes/codec/train.py --config recipes/codec/configs/wavtokenizer-75.yaml
    torchrun --nnodes 2 --node_rank $R --master_addr $HOST --nproc_per_node 8 recipes/codec/train.py --config ...

Runs resume from ``<out_dir>/last.pt`` (model, discriminators, optimizers, schedulers, step, sampler position,
RNG). ``<out_dir>/model.safetensors`` is the inference checkpoint, written at every save.

Fixes of the released training code, each with a switch to reproduce the original:
  * ``dac_bug: true`` — the released code optimises a second DAC discriminator instance while the losses use a
    never-updated, randomly initialised one (so the switch freezes ours); by default it is trained.
  * dead codes are re-seeded with their counts reset (WavTokenizer issues #82/#89), and the dead-code threshold
    scales with the frames per batch (``dead_code_fraction``; a negative value keeps the released constant 2).
  * gradient clipping (``optim.grad_clip``; 0 = off, as released).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from audiotok.codec.discriminators import DiscriminatorConfig, Discriminators
from audiotok.codec.losses import MelLoss, discriminator_objective, generator_adversarial_terms
from audiotok.codec.model import Codec, codec_config
from audiotok.codec.quantizer import codebook_usage
from audiotok.config import load_config, save_config, to_dict
from audiotok.data.dataset import AudioDataset, collate_audio
from audiotok.data.manifest import read_manifest
from audiotok.data.sampler import DurationBatchSampler
from audiotok.metrics import mean_metrics, reconstruction_metrics
from audiotok.nn.init import data_dependent_init
from audiotok.train import (
    TrainLogger,
    barrier,
    cleanup_distributed,
    cosine_schedule,
    resume_checkpoint,
    save_checkpoint,
    setup_distributed,
    unwrap,
)


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


@dataclass
class OptimConfig:
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    max_steps: int = 1_000_000  # generator steps
    warmup_steps: int = 0
    min_lr_factor: float = 0.0
    grad_clip: float = 1.0  # 0 = off (as released)


@dataclass
class CodecTrainConfig:
    model: str = "wavtokenizer-75"  # a named config of audiotok.codec.codec_config
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    disc: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(dac_fft_sizes=(2048, 1024, 512)))
    weights: dict = field(
        default_factory=lambda: {
            "mel": 45.0,
            "commit": 1000.0,
            "adv/mpd": 1.0,
            "adv/mrd": 1.0,
            "adv/dac": 1.0,
            "fm/mpd": 1.0,
            "fm/mrd": 1.0,
            "fm/dac": 1.0,
        }
    )
    pretrain_mel_steps: int = 0  # generator-only steps before the GAN starts (0 = GAN from step 0, as released)
    dac_bug: bool = False  # reproduce the released DAC discriminator bug (see module docstring)
    n_cond: int = 4  # bandwidth ids drawn in training (0 at inference)
    kmeans_batches: int = 8  # batches of latents collected for the k-means initialisation
    kmeans_iters: int = 200
    encoder_init: str = "ddi"  # "ddi": data-dependent init of the encoder convs (a fresh SEANet's latents are ~1e-3
    # and the decoder learns to ignore them); "default": PyTorch's init, as released
    vq_warmup_steps: int = 0  # steps with the VQ bypassed before k-means init (0 = k-means on the first batches,
    # as released; the random encoder's latents are tiny and drift fast, which collapses a codebook fitted to them)
    dead_code_fraction: float = 0.1  # threshold = fraction * frames per batch / codebook size; < 0: released 2.0
    out_dir: str = "runs/codec"
    seed: int = 3407
    log_every: int = 50
    valid_every: int = 1000
    save_every: int = 1000
    device: str = "auto"
    bf16: bool = True  # autocast on CUDA (inference stays fp32: bf16 flips codes)


def build_loader(
    cfg: CodecTrainConfig, rank: int, world_size: int, seed: int | None = None
) -> tuple[DataLoader, DurationBatchSampler]:
    d = cfg.data
    seed = cfg.seed if seed is None else seed
    dataset = AudioDataset(
        d.train, sample_rate=24000, crop_seconds=d.segment_seconds, crop="random", seed=seed, on_error="skip"
    )
    sampler = DurationBatchSampler(
        dataset.durations,
        max_seconds=d.batch_size * d.segment_seconds,
        max_items=d.batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_audio,
        num_workers=d.n_workers,
        pin_memory=torch.cuda.is_available(),
    )  # workers restart per epoch: they see set_epoch
    return loader, sampler


def random_peak_gain(wav: torch.Tensor, gain_db: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """Scale each item to a random peak level in ``gain_db`` (dBFS)."""
    lo, hi = gain_db
    target = lo + (hi - lo) * torch.rand(wav.shape[0], generator=generator)
    peak = wav.abs().amax(dim=1).clamp_min(1e-5)
    return wav * (10 ** (target.to(wav) / 20) / peak).unsqueeze(1)


@torch.no_grad()
def kmeans_init(model: Codec, cfg: CodecTrainConfig, device: torch.device, step: int) -> None:
    """k-means over latents of ``kmeans_batches`` batches (rank 0; its own loader, so the training sampler's
    position is untouched), then broadcast the codebook to every rank."""
    loader, _ = build_loader(cfg, rank=0, world_size=1, seed=cfg.seed + 1 + step)
    latents = []
    for i, batch in enumerate(loader):
        if i >= cfg.kmeans_batches:
            break
        wav, lens = batch["audio"].to(device), batch["audio_lens"].to(device)
        z, code_lens = model.latents(wav, lens)
        valid = torch.arange(z.shape[-1], device=device)[None, :] < code_lens[:, None]
        latents.append(z.transpose(1, 2)[valid].float())
    model.quantizer.init_from_latents(torch.cat(latents), cfg.kmeans_iters)
    if dist.is_initialized():
        for buf in model.quantizer.vq._codebook.buffers():
            dist.broadcast(buf, src=0)


def validate(model: Codec, cfg: CodecTrainConfig, device: torch.device) -> tuple[dict, list]:
    """Reconstruction metrics and codebook usage on the first ``n_valid`` held-out utterances."""
    from audiotok.audio import load, resample

    model.eval()
    rows, all_codes, samples = [], [], []
    for u in read_manifest(cfg.data.valid)[: cfg.data.n_valid]:
        wav, sr = load(u.audio, mono=True)
        wav = resample(wav, sr, model.sample_rate).to(device)
        codes, code_lens = model.encode(wav)
        rec, _ = model.decode(codes, code_lens, lengths=torch.tensor([wav.shape[-1]]))
        rows.append(reconstruction_metrics(wav.cpu(), rec[0].cpu(), model.sample_rate))
        all_codes.append(codes[0])
        if len(samples) < 2:
            samples.append((u.id, wav.cpu(), rec[0].cpu()))
    model.train()
    metrics = mean_metrics(rows)
    metrics.update({f"codebook_{k}": v for k, v in codebook_usage(torch.cat(all_codes), model.codebook_size).items()})
    metrics["val_loss"] = metrics["mel_distance"] + (5 - metrics["pesq"])  # monitor (UTMOS is not offline)
    return metrics, samples


def train(cfg: CodecTrainConfig) -> dict:
    info = setup_distributed(cfg.device)
    device, out_dir = info.device, Path(cfg.out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
    torch.manual_seed(cfg.seed + info.rank)
    model = Codec(codec_config(cfg.model)).to(device)
    discs = Discriminators(cfg.disc).to(device)
    if cfg.dac_bug:  # the released bug: the DAC discriminator in the loss is never optimised
        discs.dac.requires_grad_(False)
    opt_g = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )
    opt_d = torch.optim.AdamW(
        discs.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )
    sched_g = cosine_schedule(opt_g, cfg.optim.max_steps, cfg.optim.warmup_steps, cfg.optim.min_lr_factor)
    sched_d = cosine_schedule(opt_d, cfg.optim.max_steps, cfg.optim.warmup_steps, cfg.optim.min_lr_factor)
    loader, sampler = build_loader(cfg, info.rank, info.world_size)
    mel_loss = MelLoss(model.sample_rate).to(device)
    logger = TrainLogger(out_dir, enabled=info.is_main)

    objects = {
        "model": model,
        "discs": discs,
        "opt_g": opt_g,
        "opt_d": opt_d,
        "sched_g": sched_g,
        "sched_d": sched_d,
        "sampler": sampler,
    }
    state = resume_checkpoint(out_dir / "last.pt", objects, info.rank)
    step = state["step"] if state else 0
    if state and info.is_main:
        print(f"resumed from {out_dir / 'last.pt'} at step {step}", flush=True)
    if not state and cfg.encoder_init == "ddi":
        init_loader, _ = build_loader(cfg, rank=0, world_size=1, seed=cfg.seed + 7)
        batch = next(iter(init_loader))
        wav = batch["audio"].to(device)
        data_dependent_init(model.encoder, lambda: model.encoder(wav.unsqueeze(1)))
        if dist.is_initialized():
            for p in model.encoder.parameters():
                dist.broadcast(p.data, src=0)
    if not state and cfg.vq_warmup_steps == 0:
        kmeans_init(model, cfg, device, step)

    frames_per_batch = cfg.data.batch_size * cfg.data.segment_seconds * model.frame_rate
    if cfg.dead_code_fraction >= 0:
        model.quantizer.set_dead_code_threshold(cfg.dead_code_fraction * frames_per_batch / model.codebook_size)
    g_model = DDP(model, broadcast_buffers=False) if info.distributed else model
    d_model = DDP(discs, broadcast_buffers=False) if info.distributed else discs
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + info.rank + step)
    w = cfg.weights
    model.train()
    t_last, batches_this_epoch = time.time(), sampler.batches_done
    while step < cfg.optim.max_steps:
        epoch = sampler.epoch  # the loader prefetches, so the sampler's own counters run ahead of training
        loader.dataset.set_epoch(epoch)
        for batch in loader:
            batches_this_epoch += 1
            if not batch["ids"]:
                continue
            wav = random_peak_gain(batch["audio"], cfg.data.gain_db, gen)
            if cfg.data.dither_db is not None:
                wav = wav + 10 ** (cfg.data.dither_db / 20) * torch.randn(wav.shape, generator=gen)
            wav = wav.to(device)
            lens = batch["audio_lens"].to(device)
            wav = wav * (torch.arange(wav.shape[1], device=device)[None] < lens[:, None])
            cond = torch.randint(0, cfg.n_cond, (1,), generator=gen).to(device)
            gan = step >= cfg.pretrain_mel_steps
            if step == cfg.vq_warmup_steps and step > 0:
                kmeans_init(model, cfg, device, step)
            with amp:
                out = g_model(wav, lens, cond, quantize=step >= cfg.vq_warmup_steps)
            fake = out["audio"].float()
            logs = {}
            if gan:  # discriminator step: one forward over real and fake together (one DDP pass)
                loss_d = discriminator_objective(d_model, wav, fake, cond, amp)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                if cfg.optim.grad_clip:
                    torch.nn.utils.clip_grad_norm_(discs.parameters(), cfg.optim.grad_clip)
                opt_d.step()
                logs["disc"] = loss_d.detach()
            terms = {"mel": mel_loss(fake, wav, lens), "commit": out["commit"]}
            if gan:
                terms.update(generator_adversarial_terms(d_model, wav, fake, cond, amp))
            loss_g = sum(w.get(k, 0.0) * v.float() for k, v in terms.items())
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            if cfg.optim.grad_clip:
                logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt_g.step()
            sched_g.step()
            if gan:
                sched_d.step()
            step += 1

            if info.is_main and (step % cfg.log_every == 0 or step == 1):
                usage = codebook_usage(out["codes"], model.codebook_size, out["code_lens"])
                now = time.time()
                logs.update(
                    {
                        **terms,
                        "total": loss_g.detach(),
                        "lr": sched_g.get_last_lr()[0],
                        "codebook_used": usage["used"],
                        "codebook_perplexity": usage["perplexity"],
                        "s_per_step": (now - t_last) / (cfg.log_every if step > 1 else 1),
                    }
                )
                t_last = now
                logger.scalars(step, logs)
            if not math.isfinite(float(loss_g.detach())):
                raise FloatingPointError(f"non-finite generator loss at step {step}: {terms}")
            if info.is_main and step % cfg.valid_every == 0:
                metrics, samples = validate(model, cfg, device)
                logger.scalars(step, metrics, prefix="valid")
                for uid, ref, rec in samples:
                    logger.audio(step, f"{uid}/reference", ref, model.sample_rate)
                    logger.audio(step, f"{uid}/reconstruction", rec, model.sample_rate)
            if step % cfg.save_every == 0 or step >= cfg.optim.max_steps:
                sampler_state = {**sampler.state_dict(), "epoch": epoch, "batches_done": batches_this_epoch}
                save(cfg, info, step, objects, sampler_state)
            if step >= cfg.optim.max_steps:
                break
        else:
            batches_this_epoch = 0  # the sampler moved on to the next epoch by itself
    logger.close()
    barrier()
    cleanup_distributed()
    return {"step": step, "out_dir": str(out_dir)}


def save(cfg, info, step, objects: dict, sampler_state: dict) -> None:
    """Training state (rank 0 writes, every rank's RNG) and the inference checkpoint."""
    out_dir = Path(cfg.out_dir)
    objects = {k: (unwrap(v) if k in ("model", "discs") else v) for k, v in objects.items() if k != "sampler"}
    save_checkpoint(out_dir / "last.pt", step, objects, info.is_main, sampler=sampler_state, config=to_dict(cfg))
    if info.is_main:
        unwrap(objects["model"]).save(out_dir / "model.safetensors", extra={"step": step, "train_config": to_dict(cfg)})
    barrier()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None, help="YAML of CodecTrainConfig fields")
    ap.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    args = ap.parse_args(argv)
    return train(load_config(CodecTrainConfig, args.config, args.overrides))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
