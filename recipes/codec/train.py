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
  * gradient clipping (``loop.grad_clip``; 0 = off, as released).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from audiotok.codec.discriminators import RELEASED_LOSS_WEIGHTS, DiscriminatorConfig, Discriminators
from audiotok.codec.model import Codec, codec_config
from audiotok.codec.quantizer import codebook_usage
from audiotok.config import config_from_args, save_config, to_dict
from audiotok.data.manifest import even_share, read_manifest
from audiotok.metrics import mean_metrics, reconstruction_metrics
from audiotok.nn.init import data_dependent_init
from audiotok.train import barrier, cleanup_distributed, setup_distributed
from audiotok.train.gan import GANTrainConfig, Generated, build_loader, run_gan_loop


@dataclass
class CodecTrainConfig(GANTrainConfig):
    model: str = "wavtokenizer-75"  # a named config of audiotok.codec.codec_config
    disc: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(dac_fft_sizes=(2048, 1024, 512)))
    weights: dict = field(default_factory=lambda: dict(RELEASED_LOSS_WEIGHTS))
    dac_bug: bool = False  # reproduce the released DAC discriminator bug (see module docstring)
    n_cond: int = 4  # bandwidth ids drawn in training (0 at inference)
    kmeans_batches: int = 8  # batches of latents collected for the k-means initialisation
    kmeans_iters: int = 200
    encoder_init: str = "ddi"  # "ddi": data-dependent init of the encoder convs (a fresh SEANet's latents are ~1e-3
    # and the decoder learns to ignore them); "default": PyTorch's init, as released
    vq_warmup_steps: int = 0  # steps with the VQ bypassed before k-means init (0 = k-means on the first batches,
    # as released; the random encoder's latents are tiny and drift fast, which collapses a codebook fitted to them)
    dead_code_fraction: float = 0.1  # threshold = fraction * frames per batch / codebook size; < 0: released 2.0
    init_from: str | None = None  # warm start of a fresh run: a bundled name ("codec") or checkpoint of the same
    # architecture; its encoder, codebook and decoder replace the data-dependent and k-means initialisations
    select_on: str | None = "val_loss"  # best/ and loop.patience follow validation mel distance + (5 - PESQ)
    out_dir: str = "runs/codec"  # (bf16 autocasts training only: inference stays fp32, bf16 flips codes)


@torch.no_grad()
def kmeans_init(model: Codec, cfg: CodecTrainConfig, device: torch.device, step: int) -> None:
    """k-means over latents of ``kmeans_batches`` batches (rank 0; its own loader, so the training sampler's
    position is untouched), then broadcast the codebook to every rank."""
    loader, _ = build_loader(cfg.data, model.sample_rate, seed=cfg.seed + 1 + step)
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


def warm_start(model: Codec, name_or_path: str) -> None:
    """Copy a trained codec's weights and codebook into ``model`` (which must have the same config)."""
    source = Codec.from_pretrained(name_or_path)
    if to_dict(source.config) != to_dict(model.config):
        raise ValueError(f"init_from={name_or_path!r} is a different architecture than model={model.config}")
    model.load_state_dict(source.state_dict())
    print(f"warm start from {name_or_path} ({getattr(source, 'weights_sha256', '')[:12]})", flush=True)


def validate(model: Codec, cfg: CodecTrainConfig, device: torch.device) -> tuple[dict, list]:
    """Reconstruction metrics and codebook usage on about ``n_valid`` held-out utterances, an even share of every
    voice (the first ones of each: ``eval-codec --skip-per-speaker`` leaves them out of a report)."""
    from audiotok.audio import load, resample

    model.eval()
    rows, all_codes, samples = [], [], []
    for u in even_share(read_manifest(cfg.data.valid), cfg.data.n_valid):  # every held-out voice
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
    loader, sampler = build_loader(cfg.data, model.sample_rate, cfg.seed, info.rank, info.world_size)
    if not (out_dir / "last.pt").exists() and cfg.init_from:  # a fresh run from trained weights
        warm_start(model, cfg.init_from)
    elif not (out_dir / "last.pt").exists():  # a fresh run (a resumed one loads all of this)
        if cfg.encoder_init == "ddi":
            init_loader, _ = build_loader(cfg.data, model.sample_rate, seed=cfg.seed + 7)
            wav = next(iter(init_loader))["audio"].to(device)
            data_dependent_init(model.encoder, lambda: model.encoder(wav.unsqueeze(1)))
            if dist.is_initialized():
                for p in model.encoder.parameters():
                    dist.broadcast(p.data, src=0)
        if cfg.vq_warmup_steps == 0:
            kmeans_init(model, cfg, device, 0)
    frames_per_batch = cfg.data.batch_size * cfg.data.segment_seconds * model.frame_rate
    if cfg.dead_code_fraction >= 0:
        model.quantizer.set_dead_code_threshold(cfg.dead_code_fraction * frames_per_batch / model.codebook_size)
    g_model = DDP(model, broadcast_buffers=False) if info.distributed else model

    def generate(wav: torch.Tensor, lens: torch.Tensor, step: int, gen: torch.Generator) -> Generated:
        if step == cfg.vq_warmup_steps and step > 0 and not cfg.init_from:
            with torch.autocast(device.type, enabled=False):
                kmeans_init(model, cfg, device, step)
        cond = torch.randint(0, cfg.n_cond, (1,), generator=gen).to(device)
        out = g_model(wav, lens, cond, quantize=bool(cfg.init_from) or step >= cfg.vq_warmup_steps)

        def usage() -> dict:
            u = codebook_usage(out["codes"], model.codebook_size, out["code_lens"])
            return {"codebook_used": u["used"], "codebook_perplexity": u["perplexity"]}

        return Generated(out["audio"], cond, {"commit": out["commit"]}, usage)

    def save(d: Path, step: int) -> None:
        model.save(d / "model.safetensors", extra={"step": step, "train_config": to_dict(cfg)})

    step = run_gan_loop(
        cfg,
        info,
        model,
        discs,
        generate,
        loader,
        sampler,
        model.sample_rate,
        save,
        validate_fn=lambda: validate(model, cfg, device),
    )
    barrier()
    cleanup_distributed()
    return {"step": step, "out_dir": str(out_dir)}


def main(argv: list[str] | None = None) -> dict:
    return train(config_from_args(CodecTrainConfig, argv, __doc__))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
