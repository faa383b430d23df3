"""Adapt a Whisper model to a new domain with S2-LoRA or a baseline (LoRA, AdaLoRA, BitFit, full fine-tuning).

The training loop is the one of ``recipes/whisper/train.py`` (DDP, bf16 on GPU, resume from ``last.pt``,
TensorBoard, SpecAugment); only the trainable parameters change, and validation WER picks ``<out_dir>/best``.

    python recipes/asr_s2lora/adapt.py --config recipes/asr_s2lora/configs/synth.yaml adapter.method=s2lora \
        out_dir=runs/adapt/s2lora
    torchrun --nproc_per_node 8 recipes/asr_s2lora/adapt.py --config ... (the same, on 8 GPUs)

Writes ``adapter.safetensors`` (the trained tensors + config; ``audiotok transcribe --model BASE --adapter ...``)
at every save and ``best/adapter.safetensors`` at the best validation WER.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from asr.adapters import Adapter, AdapterConfig
from audiotok.config import config_from_args
from audiotok.whisper import load_whisper, restricted_vocab
from recipes.whisper.train import (
    ASRTask,
    WhisperTrainConfig,
    WhisperWithCTC,
    teacher_forced_loss,
    train,
    validate,
)


@dataclass
class AdaptConfig(WhisperTrainConfig):
    base: str = "runs/whisper-synth/whisper.pt"  # the model to adapt (.pt or .safetensors); its dims win
    adapter: AdapterConfig = field(default_factory=AdapterConfig)


def adapt_task(cfg: AdaptConfig) -> ASRTask:
    model = load_whisper(cfg.base)
    model.train()
    if cfg.adapter.method == "adalora" and cfg.adapter.total_step <= 0:
        cfg.adapter.total_step = cfg.max_steps
    adapter = Adapter(model, cfg.adapter)
    # a character base trained by our recipe: the loss needs only its 77 logits (exact; the rows it leaves at zero
    # get no gradient, so they stay zero even under full fine-tuning)
    vocab = restricted_vocab(model)
    net_model = model if vocab is None else WhisperWithCTC(model, ctc=False)

    def loss(net, mel, texts, audio_lens):
        ce, _ = teacher_forced_loss(net, model, mel, texts, cfg, vocab=vocab)
        reg = adapter.regularizer()
        return ce + reg, {"ce": ce.detach(), "reg": reg.detach()}

    def save(out_dir: Path) -> None:
        adapter.save(out_dir / "adapter.safetensors", extra={"base": str(cfg.base)})

    return ASRTask(
        net_model,
        model,
        loss,
        save,
        lambda front, cfg_, device: validate(model, front, cfg_, device),
        param_groups=adapter.param_groups,
        after_step=adapter.after_step,
    )


def main(argv: list[str] | None = None) -> dict:
    return train(config_from_args(AdaptConfig, argv, __doc__), task_builder=adapt_task)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
