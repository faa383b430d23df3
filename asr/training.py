"""The library half of ASR adaptation: :class:`AdaptConfig` (the shared Whisper training schema plus the base
model and the adapter) and :func:`adapt_task`, which trains only the adapter's parameters on
:func:`audiotok.whisper.training.train` (DDP, bf16 on GPU, resume, SpecAugment; validation WER picks ``best/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asr.adapters import Adapter, AdapterConfig
from audiotok.whisper import load_whisper, restricted_vocab
from audiotok.whisper.loss import WhisperWithCTC, teacher_forced_loss
from audiotok.whisper.training import ASRTask, WhisperTrainConfig, validate


@dataclass
class AdaptConfig(WhisperTrainConfig):
    base: str = "runs/whisper-synth/whisper.pt"  # the model to adapt (.pt or .safetensors); its dims win
    adapter: AdapterConfig = field(default_factory=AdapterConfig)


def adapt_task(cfg: AdaptConfig) -> ASRTask:
    model = load_whisper(cfg.base)
    model.train()
    if cfg.adapter.method == "adalora" and cfg.adapter.total_step <= 0:
        cfg.adapter.total_step = cfg.loop.max_steps
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
