"""Adapt a Whisper model to a new domain with S2-LoRA or a baseline (LoRA, AdaLoRA, BitFit, full fine-tuning).

The training loop is :func:`audiotok.whisper.training.train` (DDP, bf16 on GPU, resume from ``last.pt``,
TensorBoard, SpecAugment); only the trainable parameters change, and validation WER picks ``<out_dir>/best``.

    python recipes/asr_s2lora/adapt.py --config recipes/asr_s2lora/configs/synth.yaml adapter.method=s2lora \
        out_dir=runs/adapt/s2lora
    torchrun --nproc_per_node 8 recipes/asr_s2lora/adapt.py --config ... (the same, on 8 GPUs)

Writes ``adapter.safetensors`` (the trained tensors + config; ``audiotok transcribe --model BASE --adapter ...``)
at every save and ``best/adapter.safetensors`` at the best validation WER.
"""

from __future__ import annotations

import sys

from asr.training import AdaptConfig, adapt_task
from audiotok.config import config_from_args
from audiotok.whisper.training import train


def main(argv: list[str] | None = None) -> dict:
    return train(config_from_args(AdaptConfig, argv, __doc__), task_builder=adapt_task)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
