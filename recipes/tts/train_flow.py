"""Train the flow-matching decoder (semantic tokens -> CosyVoice 2 mel) with its LLM-architecture backbone.

    python recipes/tts/train_flow.py --config recipes/tts/configs/flow-tiny.yaml data.train=... data.valid=...
    torchrun --nproc_per_node 8 recipes/tts/train_flow.py --config recipes/tts/configs/flow-small.yaml

Data: the first run tokenizes each split with ``semantic_tokenizer`` into ``<out_dir>/tokens-*.jsonl`` (resumable
cache; or imports ``data.train_tokens``/``valid_tokens``, the same tokenizer's ``audiotok encode`` output); each step reads the 24 kHz audio, trims it to whole tokens, crops at most ``max_tokens`` aligned tokens and
computes the mel on the device. The loss, prompts, CFG dropout and the four attention masks are the model's
(:meth:`tts.flow.FlowDecoder.loss`). Shared loop (``audiotok.train.loop``): DDP, bf16 on GPU, resume, TensorBoard,
validation loss; ``flow.safetensors`` at every save.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from audiotok.config import config_from_args, save_config
from audiotok.data.features import MelSpectrogram
from audiotok.data.sampler import DurationBatchSampler
from audiotok.train import barrier, cleanup_distributed, setup_distributed
from audiotok.train.loop import LoopConfig, run_loop
from tts.data import TokenMelDataset, TokenSplits, cache_tokens, collate_token_mel, read_tokens
from tts.flow import FlowConfig, FlowDecoder
from tts.vocoder import vocoder_config, vocoder_mel


@dataclass
class FlowData(TokenSplits):
    max_tokens: int = 250  # 10 s crops
    batch_tokens: int = 2000  # padded tokens per batch and process
    n_valid: int = 32


@dataclass
class FlowTrainConfig:
    model: FlowConfig = field(default_factory=FlowConfig)
    vocoder: str = "small"  # the vocoder config whose mel the flow predicts (hop, bins)
    data: FlowData = field(default_factory=FlowData)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(lr=1e-4, betas=(0.9, 0.999)))
    semantic_tokenizer: str = "semantic"
    out_dir: str = "runs/tts-flow"
    seed: int = 0
    device: str = "auto"


def train(cfg: FlowTrainConfig) -> dict:
    info = setup_distributed(cfg.device)
    device, out = info.device, Path(cfg.out_dir)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    if info.is_main:
        cache_tokens(cfg.semantic_tokenizer, cfg.data, out, cfg.model.n_speech)
    barrier()
    torch.manual_seed(cfg.seed)
    flow = FlowDecoder(cfg.model).to(device)
    mel_cfg = vocoder_mel(vocoder_config(cfg.vocoder))
    if mel_cfg.n_mels != cfg.model.n_mels:
        raise ValueError(f"the vocoder reads {mel_cfg.n_mels} mel bins, the flow makes {cfg.model.n_mels}")
    mel_fn = MelSpectrogram(mel_cfg).to(device)
    unit = mel_cfg.hop_length * cfg.model.ratio
    token_rate = json.loads((out / "tokens.json").read_text())["frame_rate"]
    if abs(token_rate * unit - mel_cfg.sample_rate) > 1e-3:
        raise ValueError(
            f"{token_rate:g} tokens/s x {cfg.model.ratio} mel frames per token x hop {mel_cfg.hop_length} "
            f"!= {mel_cfg.sample_rate} samples/s: the flow's ratio does not fit the tokenizer and the vocoder"
        )
    dataset = TokenMelDataset(
        read_tokens(out / "tokens-train.jsonl"), mel_cfg.sample_rate, unit, cfg.data.max_tokens, cfg.seed
    )
    sampler = DurationBatchSampler(
        dataset.lengths(), cfg.data.batch_tokens, seed=cfg.seed, rank=info.rank, world_size=info.world_size
    )
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_token_mel, num_workers=0)
    net = DDP(flow) if info.distributed else flow
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + info.rank)

    def loss_fn(batch, generator=gen):
        codes, code_lens = batch["codes"], batch["code_lens"]
        mel, _ = mel_fn(batch["audio"], batch["audio_lens"])
        mel = mel.transpose(1, 2)[:, : codes.shape[1] * cfg.model.ratio]
        loss, logs = (net.module if info.distributed else net).loss(
            mel, code_lens * cfg.model.ratio, codes, code_lens, generator=generator
        )
        return loss, logs

    valid = TokenMelDataset(
        read_tokens(out / "tokens-valid.jsonl")[: cfg.data.n_valid],
        mel_cfg.sample_rate,
        unit,
        cfg.data.max_tokens,
        cfg.seed,
    )

    def validate() -> dict:
        g = torch.Generator().manual_seed(1234)  # the same noise, t and masks at every validation
        total, n = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(valid), 8):
                batch = collate_token_mel([valid[j] for j in range(i, min(i + 8, len(valid)))])
                loss, _ = loss_fn({k: v.to(device) for k, v in batch.items()}, generator=g)
                total, n = total + float(loss), n + 1
        return {"loss": total / max(n, 1)}

    step = run_loop(
        cfg.loop,
        info,
        out,
        flow,
        loss_fn,
        loader,
        sampler,
        save_fn=lambda d: flow.save(d / "flow.safetensors"),
        validate_fn=validate,
        full_config=cfg,
    )
    barrier()
    cleanup_distributed()
    return {"step": step, "out_dir": str(out)}


def main(argv: list[str] | None = None) -> dict:
    return train(config_from_args(FlowTrainConfig, argv, __doc__))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
