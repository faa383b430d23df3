"""Train the TTS vocoder (CosyVoice 2 mel -> 24 kHz audio) with the codec's discriminators and losses.

    python recipes/tts/train_vocoder.py --config recipes/tts/configs/vocoder-tiny.yaml data.train=... data.valid=...
    torchrun --nproc_per_node 8 recipes/tts/train_vocoder.py --config recipes/tts/configs/vocoder-small.yaml

Needs only audio (no tokens): random segments, their mel, the vocoder's reconstruction; mel L1 first
(``pretrain_mel_steps``), then MPD + MRD (+ DAC) GAN with feature matching. Data loading, discriminators and the
GAN objectives are the codec recipe's (shared code). Resumes from ``<out_dir>/last.pt``; ``vocoder.safetensors``
is written at every save.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from audiotok.codec.discriminators import DiscriminatorConfig, Discriminators
from audiotok.codec.losses import MelLoss, discriminator_objective, generator_adversarial_terms
from audiotok.config import load_config, save_config, to_dict
from audiotok.data.features import MelSpectrogram
from audiotok.metrics import mean_metrics, reconstruction_metrics
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
from recipes.codec.train import DataConfig, OptimConfig, build_loader, random_peak_gain
from tts.vocoder import Vocoder, vocoder_config, vocoder_mel


@dataclass
class VocoderTrainConfig:
    model: str = "small"  # tts.vocoder.vocoder_config name
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    disc: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(n_cond_embeddings=0))
    weights: dict = field(
        default_factory=lambda: {"mel": 45.0, "adv/mpd": 1.0, "adv/mrd": 1.0, "fm/mpd": 1.0, "fm/mrd": 1.0}
    )
    pretrain_mel_steps: int = 0
    out_dir: str = "runs/tts-vocoder"
    seed: int = 3407
    log_every: int = 50
    valid_every: int = 1000
    save_every: int = 1000
    device: str = "auto"
    bf16: bool = True


def validate(model: Vocoder, mel_fn, cfg: VocoderTrainConfig, device) -> dict:
    from audiotok.audio import load, resample
    from audiotok.data.manifest import read_manifest

    model.eval()
    rows = []
    with torch.no_grad():
        for u in read_manifest(cfg.data.valid)[: cfg.data.n_valid]:
            wav, sr = load(u.audio, mono=True)
            wav = resample(wav, sr, model.sample_rate).to(device)
            mel, _ = mel_fn(wav[None], torch.tensor([wav.shape[-1]], device=device))
            rec = model(mel)[0, : wav.shape[-1]]
            rows.append(reconstruction_metrics(wav.cpu(), rec.cpu(), model.sample_rate))
    model.train()
    return mean_metrics(rows)


def train(cfg: VocoderTrainConfig) -> dict:
    info = setup_distributed(cfg.device)
    device, out_dir = info.device, Path(cfg.out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
    torch.manual_seed(cfg.seed + info.rank)
    vcfg = vocoder_config(cfg.model)
    model = Vocoder(vcfg).to(device)
    mel_fn = MelSpectrogram(vocoder_mel(vcfg)).to(device)
    discs = Discriminators(cfg.disc).to(device)
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
    objects = {"model": model, "discs": discs, "opt_g": opt_g, "opt_d": opt_d, "sched_g": sched_g, "sched_d": sched_d}
    state = resume_checkpoint(out_dir / "last.pt", {**objects, "sampler": sampler}, info.rank)
    step = state["step"] if state else 0
    g_model = DDP(model, broadcast_buffers=False) if info.distributed else model
    d_model = DDP(discs, broadcast_buffers=False) if info.distributed else discs
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda")
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + info.rank + step)
    model.train()
    t_last, consumed = time.time(), sampler.batches_done
    while step < cfg.optim.max_steps:
        epoch = sampler.epoch
        loader.dataset.set_epoch(epoch)
        for batch in loader:
            consumed += 1
            if not batch["ids"]:
                continue
            wav = random_peak_gain(batch["audio"], cfg.data.gain_db, gen)
            if cfg.data.dither_db is not None:
                wav = wav + 10 ** (cfg.data.dither_db / 20) * torch.randn(wav.shape, generator=gen)
            wav, lens = wav.to(device), batch["audio_lens"].to(device)
            wav = wav * (torch.arange(wav.shape[1], device=device)[None] < lens[:, None])
            mel, mel_lens = mel_fn(wav, lens)
            with amp:
                fake = g_model(mel, mel_lens).float()[:, : wav.shape[1]]
            gan = step >= cfg.pretrain_mel_steps
            logs = {}
            if gan:
                loss_d = discriminator_objective(d_model, wav, fake, None, amp)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                if cfg.optim.grad_clip:
                    torch.nn.utils.clip_grad_norm_(discs.parameters(), cfg.optim.grad_clip)
                opt_d.step()
                logs["disc"] = loss_d.detach()
            terms = {"mel": mel_loss(fake, wav, lens)}
            if gan:
                terms.update(generator_adversarial_terms(d_model, wav, fake, None, amp))
            loss_g = sum(cfg.weights.get(k, 0.0) * v.float() for k, v in terms.items())
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            if cfg.optim.grad_clip:
                logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt_g.step()
            sched_g.step()
            if gan:
                sched_d.step()
            step += 1
            if not math.isfinite(float(loss_g.detach())):
                raise FloatingPointError(f"non-finite generator loss at step {step}: {terms}")
            if info.is_main and (step % cfg.log_every == 0 or step == 1):
                now = time.time()
                logs.update(
                    {
                        **terms,
                        "total": loss_g.detach(),
                        "lr": sched_g.get_last_lr()[0],
                        "s_per_step": (now - t_last) / (cfg.log_every if step > 1 else 1),
                    }
                )
                t_last = now
                logger.scalars(step, logs)
            if info.is_main and step % cfg.valid_every == 0:
                logger.scalars(step, validate(model, mel_fn, cfg, device), prefix="valid")
            if step % cfg.save_every == 0 or step >= cfg.optim.max_steps:
                sampler_state = {**sampler.state_dict(), "epoch": epoch, "batches_done": consumed}
                saved = {k: (unwrap(v) if k in ("model", "discs") else v) for k, v in objects.items()}
                save_checkpoint(
                    out_dir / "last.pt", step, saved, info.is_main, sampler=sampler_state, config=to_dict(cfg)
                )
                if info.is_main:
                    model.save(out_dir / "vocoder.safetensors")
                barrier()
            if step >= cfg.optim.max_steps:
                break
        else:
            consumed = 0
    logger.close()
    barrier()
    cleanup_distributed()
    return {"step": step, "out_dir": str(out_dir)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    return train(load_config(VocoderTrainConfig, args.config, args.overrides))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
