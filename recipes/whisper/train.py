"""Train a small Whisper-architecture ASR model (``whisper-synth``) on the synthetic corpus.

It was the ASR base model of the S2-LoRA work and the starting point of the supervised semantic tokenizer before
real Whisper weights could be had offline; it stays as a capability (a Whisper from scratch). openai-whisper's
architecture with a short audio context (mel padded to ``2 * n_audio_ctx`` frames, not 30 s), teacher-forced
cross-entropy with the sot sequence, SpecAugment (Whisper has no dropout). The shared machinery is
:mod:`audiotok.whisper.training`.

    python recipes/whisper/train.py --config recipes/whisper/configs/tiny.yaml data.train=... data.valid=...
    torchrun --nproc_per_node 8 recipes/whisper/train.py --config recipes/whisper/configs/synth.yaml

Resumes from ``<out_dir>/last.pt``; writes ``model.safetensors`` and openai-whisper's ``whisper.pt`` (loads with
``whisper.load_model``) at every save.
"""

from __future__ import annotations

import sys
from pathlib import Path

from audiotok.config import config_from_args
from audiotok.whisper import (
    char_training_vocab,
    new_whisper,
    save_openai,
    save_safetensors,
    small_dims,
    tokenizer_for,
    zero_rows_outside,
)
from audiotok.whisper.loss import CrossAttentionProbe, WhisperWithCTC, teacher_forced_loss
from audiotok.whisper.training import ASRTask, WhisperTrainConfig, init_whisper_weights, train, validate


def whisper_task(cfg: WhisperTrainConfig) -> ASRTask:
    a = cfg.model
    dims = small_dims(a.n_mels, a.seconds, a.n_state, a.n_head, a.n_layer, a.n_text_layer, a.n_text_ctx)
    model = new_whisper(dims, seed=cfg.seed, text_unit=cfg.text_unit)
    char = cfg.text_unit == "char"
    net_model = WhisperWithCTC(model, ctc=cfg.ctc_weight > 0) if cfg.ctc_weight > 0 or char else model
    if cfg.init and not (Path(cfg.out_dir) / "last.pt").exists():
        init_whisper_weights(net_model, cfg.init)

    def save(out_dir: Path) -> None:
        save_safetensors(model, out_dir / "model.safetensors")
        save_openai(model, out_dir / "whisper.pt")

    def valid(front, cfg_, device):
        return validate(model, front, cfg_, device)

    probe = CrossAttentionProbe(model) if cfg.guided_attention > 0 else None
    vocab = char_training_vocab(tokenizer_for(model)) if char else None

    def loss(net, mel, texts, audio_lens):
        return teacher_forced_loss(net, model, mel, texts, cfg, audio_lens, probe, vocab)

    def after_step(step: int, lr: float) -> None:
        zero_rows_outside(model, vocab)

    if char:
        zero_rows_outside(model, vocab)
    return ASRTask(net_model, model, loss, save, valid, after_step=after_step if char else None)


def main(argv: list[str] | None = None) -> dict:
    return train(config_from_args(WhisperTrainConfig, argv, __doc__), whisper_task)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
