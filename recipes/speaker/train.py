"""Train the speaker-embedding model (x-vector on Kaldi fbank) to classify the corpus' training voices.

    python recipes/speaker/train.py --config recipes/speaker/configs/synth.yaml

Random 2 s crops at 16 kHz, cross-entropy over the training voices, the shared loop (resume, DDP, TensorBoard).
Validation: equal error rate of cosine scores on held-out voices (same-voice vs different-voice pairs), which is
what the TTS similarity numbers rely on. Writes ``speaker.safetensors`` at every save (without the classifier).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from audiotok.config import config_from_args, save_config
from audiotok.data.dataset import AudioDataset, collate_audio
from audiotok.data.sampler import DurationBatchSampler
from audiotok.speaker import SpeakerConfig, SpeakerEncoder
from audiotok.train import barrier, cleanup_distributed, setup_distributed
from audiotok.train.loop import LoopConfig, run_loop


@dataclass
class SpeakerData:
    train: str = "data/synth-adult/train.jsonl"
    test: str = "data/synth-adult/test.jsonl"  # held-out voices, for the EER
    crop_seconds: float = 2.0
    batch_size: int = 32
    n_test: int = 200


@dataclass
class SpeakerTrainConfig:
    model: SpeakerConfig = field(default_factory=SpeakerConfig)
    data: SpeakerData = field(default_factory=SpeakerData)
    loop: LoopConfig = field(
        default_factory=lambda: LoopConfig(lr=1e-3, betas=(0.9, 0.999), warmup_steps=100, max_steps=2000)
    )
    out_dir: str = "runs/speaker"
    seed: int = 0
    device: str = "auto"


def equal_error_rate(scores: torch.Tensor, same: torch.Tensor) -> float:
    """EER of similarity ``scores`` for target (``same``) vs non-target pairs."""
    order = scores.argsort(descending=True)
    same = same[order].float()
    fa = torch.cumsum(1 - same, 0) / (1 - same).sum().clamp_min(1)  # false acceptance at each threshold
    fr = 1 - torch.cumsum(same, 0) / same.sum().clamp_min(1)  # false rejection
    i = int((fa - fr).abs().argmin())
    return float((fa[i] + fr[i]) / 2)


def held_out_eer(model: SpeakerEncoder, manifest: str, limit: int) -> dict:
    from audiotok.audio import load, resample
    from audiotok.data.manifest import even_share, read_manifest

    utts = even_share([u for u in read_manifest(manifest) if u.speaker], limit, min_per_speaker=2)
    wavs = []
    for u in utts:
        w, sr = load(u.audio, mono=True)
        wavs.append(resample(w, sr, 16000))
    emb = torch.cat([model.embed_audio(wavs[i : i + 16]) for i in range(0, len(wavs), 16)])
    scores = emb @ emb.T
    spk = [u.speaker for u in utts]
    same = torch.tensor([[a == b for b in spk] for a in spk])
    upper = torch.triu(torch.ones_like(same), diagonal=1)
    return {
        "eer": equal_error_rate(scores[upper], same[upper]),
        "same": float(scores[upper & same].mean()),
        "different": float(scores[upper & ~same].mean()),
    }


def train(cfg: SpeakerTrainConfig) -> dict:
    info = setup_distributed(cfg.device)
    device, out = info.device, Path(cfg.out_dir)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    dataset = AudioDataset(
        cfg.data.train,
        sample_rate=16000,
        crop_seconds=cfg.data.crop_seconds,
        crop="random",
        seed=cfg.seed,
        on_error="skip",
    )
    speakers = sorted({u.speaker or "" for u in dataset.utterances})
    index = {s: i for i, s in enumerate(speakers)}
    torch.manual_seed(cfg.seed)
    model = SpeakerEncoder(replace(cfg.model, n_speakers=len(speakers))).to(device)
    sampler = DurationBatchSampler(
        [cfg.data.crop_seconds] * len(dataset),
        cfg.data.batch_size * cfg.data.crop_seconds,
        seed=cfg.seed,
        rank=info.rank,
        world_size=info.world_size,
    )
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_audio, num_workers=0)
    net = torch.nn.parallel.DistributedDataParallel(model) if info.distributed else model

    def loss_fn(batch):
        labels = torch.tensor([index[s or ""] for s in batch["speakers"]], device=device)
        logits = model.classifier(net(batch["audio"], batch["audio_lens"]))
        loss = F.cross_entropy(logits, labels)
        return loss, {"acc": (logits.argmax(-1) == labels).float().mean().detach()}

    def save(d: Path) -> None:
        embedder = SpeakerEncoder(replace(model.config, n_speakers=0))
        embedder.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")})
        embedder.save(d / "speaker.safetensors")

    step = run_loop(
        cfg.loop,
        info,
        out,
        model,
        loss_fn,
        loader,
        sampler,
        save,
        validate_fn=lambda: held_out_eer(model, cfg.data.test, cfg.data.n_test),
        full_config=cfg,
    )
    barrier()
    cleanup_distributed()
    return {"step": step, "out_dir": str(out)}


def main(argv: list[str] | None = None) -> dict:
    return train(config_from_args(SpeakerTrainConfig, argv, __doc__))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
