"""Train the TTS vocoder (CosyVoice 2 mel -> 24 kHz audio) with the codec's discriminators and losses.

    python recipes/tts/train_vocoder.py --config recipes/tts/configs/vocoder-tiny.yaml data.train=... data.valid=...
    torchrun --nproc_per_node 8 recipes/tts/train_vocoder.py --config recipes/tts/configs/vocoder-small.yaml

Needs only audio (no tokens): random segments, their mel, the vocoder's reconstruction; mel L1 first
(``pretrain_mel_steps``), then MPD + MRD (+ DAC) GAN with feature matching. Data loading, discriminators and the
GAN objectives are the codec recipe's (shared code). Resumes from ``<out_dir>/last.pt``; ``vocoder.safetensors``
is written at every save.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from audiotok.codec.discriminators import DiscriminatorConfig, Discriminators
from audiotok.config import config_from_args, save_config
from audiotok.data.features import MelSpectrogram
from audiotok.metrics import mean_metrics, reconstruction_metrics
from audiotok.train import barrier, cleanup_distributed, setup_distributed
from audiotok.train.gan import GANTrainConfig, Generated, build_loader, run_gan_loop
from tts.vocoder import Vocoder, vocoder_config, vocoder_mel


@dataclass
class VocoderTrainConfig(GANTrainConfig):
    model: str = "small"  # tts.vocoder.vocoder_config name
    disc: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(n_cond_embeddings=0))
    weights: dict = field(
        default_factory=lambda: {"mel": 45.0, "adv/mpd": 1.0, "adv/mrd": 1.0, "fm/mpd": 1.0, "fm/mrd": 1.0}
    )
    out_dir: str = "runs/tts-vocoder"


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
    loader, sampler = build_loader(cfg.data, model.sample_rate, cfg.seed, info.rank, info.world_size)
    g_model = DDP(model, broadcast_buffers=False) if info.distributed else model

    def generate(wav: torch.Tensor, lens: torch.Tensor, step: int, gen: torch.Generator) -> Generated:
        with torch.autocast(device.type, enabled=False):
            mel, mel_lens = mel_fn(wav, lens)
        return Generated(g_model(mel, mel_lens))

    step = run_gan_loop(
        cfg,
        info,
        model,
        discs,
        generate,
        loader,
        sampler,
        model.sample_rate,
        lambda d, step: model.save(d / "vocoder.safetensors"),
        validate_fn=lambda: (validate(model, mel_fn, cfg, device), []),
    )
    barrier()
    cleanup_distributed()
    return {"step": step, "out_dir": str(out_dir)}


def main(argv: list[str] | None = None) -> dict:
    return train(config_from_args(VocoderTrainConfig, argv, __doc__))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
