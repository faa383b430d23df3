"""Whisper models: small Whisper-architecture configs (a short audio context: mel padded to ``2 * n_audio_ctx``
frames, not 30 s), fresh initialisation, the log-mel front end, and checkpoints — openai-whisper's own
``{dims, model_state_dict}`` ``.pt`` (loads with ``whisper.load_model``) and a self-describing safetensors file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from whisper.model import ModelDimensions
from whisper.model import Whisper as OpenAIWhisper

from audiotok.audio import resample
from audiotok.data.features import MelSpectrogram, whisper_mel
from audiotok.registry import Pretrained

SAMPLE_RATE = 16000
TEXT_UNITS = ("bpe", "char")


def small_dims(
    n_mels: int = 80,
    seconds: float = 10.0,
    n_state: int = 256,
    n_head: int = 4,
    n_layer: int = 4,
    n_text_layer: int | None = None,
    n_text_ctx: int = 128,
    multilingual: bool = True,
) -> ModelDimensions:
    """A Whisper architecture with ``seconds`` of audio context (50 encoder frames per second)."""
    return ModelDimensions(
        n_mels=n_mels,
        n_audio_ctx=int(seconds * 50),
        n_audio_state=n_state,
        n_audio_head=n_head,
        n_audio_layer=n_layer,
        n_vocab=51865 if multilingual else 51864,
        n_text_ctx=n_text_ctx,
        n_text_state=n_state,
        n_text_head=n_head,
        n_text_layer=n_text_layer or n_layer,
    )


class Whisper(Pretrained, OpenAIWhisper):
    """openai-whisper's model (same modules, same state dict: ``whisper.decode`` and ``load_model`` work on it) that
    also records how it spells its transcripts, ``text_unit`` (see :func:`text_unit`): a constructor argument saved
    with its checkpoints, where openai-whisper's own ``Whisper`` is always ``bpe``. ``from_pretrained`` takes what
    :func:`load_whisper` does (a Whisper name as openai-whisper's own class)."""

    registry_kind = "whisper"

    def __init__(self, dims: ModelDimensions, text_unit: str = "bpe"):
        if text_unit not in TEXT_UNITS:
            raise ValueError(f"text unit must be one of {TEXT_UNITS}, got {text_unit!r}")
        super().__init__(dims)
        self.text_unit = text_unit


def new_whisper(dims: ModelDimensions, seed: int | None = None, text_unit: str = "bpe") -> Whisper:
    """A Whisper model initialised for training from scratch. openai-whisper leaves the decoder's positional
    embedding as ``torch.empty`` (it expects a checkpoint) — uninitialised memory, sometimes NaN — and gives the
    tied token embedding unit variance; both get N(0, 0.02) here."""
    if seed is not None:
        torch.manual_seed(seed)
    model = Whisper(dims, text_unit)
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0.0, 0.02)
        model.decoder.token_embedding.weight.normal_(0.0, 0.02)
    return model


def text_unit(model: OpenAIWhisper) -> str:
    """How ``model`` spells its transcripts: ``bpe`` (Whisper's own tokens, the default) or ``char`` (one Whisper
    token per character — every character is a token of Whisper's vocabulary, so the model and its outputs stay
    plain openai-whisper; a small model trained from scratch learns 40 symbols far faster than 50k)."""
    return getattr(model, "text_unit", "bpe")


class WhisperFrontend(torch.nn.Module):
    """Padded 16 kHz audio (B, T) -> Whisper log-mel (B, n_mels, 2 * n_audio_ctx), padded/trimmed in frames."""

    def __init__(self, dims: ModelDimensions):
        super().__init__()
        self.n_frames = 2 * dims.n_audio_ctx
        self.mel = MelSpectrogram(whisper_mel(dims.n_mels))

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        if sample_rate != SAMPLE_RATE:
            wav = resample(wav, sample_rate, SAMPLE_RATE)
            wav_lens = torch.div(wav_lens * SAMPLE_RATE + sample_rate - 1, sample_rate, rounding_mode="floor")
        mel, mel_lens = self.mel(wav, wav_lens)
        # frames past an item are what Whisper sees for zero-padded audio: its per-utterance floor, peak - 2
        floor = mel.amax(dim=(1, 2), keepdim=True) - 2.0
        mel = mel[..., : self.n_frames]
        mel = F.pad(mel, (0, self.n_frames - mel.shape[-1]))
        pad = torch.arange(self.n_frames, device=mel.device)[None, None, :] >= mel_lens[:, None, None]
        return torch.where(pad, floor, mel)


def save_openai(model: Whisper, path: str | os.PathLike, half: bool = False) -> Path:
    """openai-whisper's checkpoint layout; ``whisper.load_model(path)`` loads it."""
    from audiotok.utils import atomic_path

    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        # openai-whisper reads dims and weights and ignores the rest
        torch.save({"dims": asdict(model.dims), "model_state_dict": state, "text_unit": text_unit(model)}, tmp)
    return path


def save_safetensors(model: Whisper, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
    from safetensors.torch import save_file

    from audiotok.utils import atomic_path

    state = {
        k: v.detach().to(dtype if dtype and v.is_floating_point() else v.dtype).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(
            state,
            str(tmp),
            metadata={
                "format_version": "1",
                "model_type": "openai-whisper",
                "config": json.dumps(asdict(model.dims)),
                "text_unit": text_unit(model),
            },
        )
    return path


def load_whisper(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Whisper:
    """A Whisper model from our safetensors file, an openai-whisper ``.pt``, or any name the registry resolves to a
    Whisper: a bundled name (``whisper-synth``), a Whisper name (``tiny.en``, ``base``:
    :mod:`audiotok.whisper.pretrained`), a hub id of such a file (``org/name:model.pt``)."""
    path = Path(path)
    if not path.is_file():
        from audiotok.registry import resolve

        resolved = resolve(str(path), "whisper", revision, cache_dir)
        if "whisper_name" in resolved.options:  # openai-whisper's cache, the packaged copy, or its download
            from audiotok.whisper.pretrained import load_pretrained_whisper

            return load_pretrained_whisper(resolved.options["whisper_name"], device=device)
        path = resolved.path
    from audiotok.checkpoint import (
        CheckpointError,
        declared_shapes,
        load_pickled,
        load_state,
        read_metadata,
        real_tensors,
    )

    if path.suffix == ".safetensors":
        meta = read_metadata(path)
        if meta.get("model_type") != "openai-whisper":
            raise CheckpointError(f"{path}: not a Whisper checkpoint (model_type {meta.get('model_type')!r})")
        try:
            dims = json.loads(meta["config"])
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"{path}: no Whisper config in the header ({err!r})") from None
        unit = meta.get("text_unit", "bpe")
        dims = _checked_dims(path, dims, unit, declared_shapes(path, meta))
        state = {k: v.float() for k, v in load_state(path, meta).items()}
    else:  # openai-whisper's {dims, model_state_dict} layout, read once; our exports also say how they spell
        ckpt = load_pickled(path)
        state = real_tensors(
            ckpt.get("model_state_dict") if isinstance(ckpt, dict) else None, path, "an openai-whisper checkpoint"
        )
        unit = ckpt.get("text_unit", "bpe")
        dims = _checked_dims(path, ckpt.get("dims"), unit, {k: tuple(v.shape) for k, v in state.items()})
    model = Whisper(dims, unit)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit its Whisper dims: {err}") from None
    return model.to(device).eval()


def _checked_dims(path: Path, dims: object, unit: object, shapes: dict[str, tuple]) -> ModelDimensions:
    """A checkpoint's Whisper dims, once they agree with its weights' shapes (so that building the model allocates
    no more than the file holds) and its text unit is known."""
    from audiotok.checkpoint import CheckpointError

    names = list(ModelDimensions.__dataclass_fields__)
    if not isinstance(dims, dict) or sorted(dims) != sorted(names):
        raise CheckpointError(f"{path}: Whisper dims must be the fields {names}, got {dims!r:.200}")
    if not all(type(v) is int and v > 0 for v in dims.values()):
        raise CheckpointError(f"{path}: Whisper dims must be positive integers, got {dims}")
    if unit not in TEXT_UNITS:
        raise CheckpointError(f"{path}: text unit must be one of {TEXT_UNITS}, got {unit!r:.100}")
    d = ModelDimensions(**dims)
    expected = {
        "encoder.conv1.weight": (d.n_audio_state, d.n_mels, 3),
        "encoder.positional_embedding": (d.n_audio_ctx, d.n_audio_state),
        "decoder.token_embedding.weight": (d.n_vocab, d.n_text_state),
        "decoder.positional_embedding": (d.n_text_ctx, d.n_text_state),
    }
    wrong = [f"{k} {list(shapes.get(k, ()))} (expected {list(v)})" for k, v in expected.items() if shapes.get(k) != v]
    for part, n_layers in (("encoder", d.n_audio_layer), ("decoder", d.n_text_layer)):
        blocks = {k.split(".")[2] for k in shapes if k.startswith(f"{part}.blocks.")}
        if len(blocks) != n_layers or blocks != {str(i) for i in range(n_layers)}:
            wrong.append(f"{len(blocks)} {part} blocks (expected {n_layers})")
    if d.n_audio_state % d.n_audio_head or d.n_text_state % d.n_text_head:
        wrong.append(f"heads {d.n_audio_head}/{d.n_text_head} do not divide the widths")
    if wrong:
        raise CheckpointError(f"{path}: weights do not fit its Whisper dims: {', '.join(wrong[:3])}")
    return d


def run_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The model tensors of a training run's ``last.pt`` (as the shared loop saves them; read with
    ``weights_only=True``, numpy arrays allowed for its RNG state)."""
    from audiotok.checkpoint import load_pickled

    return load_pickled(path, numpy_arrays=True)["model"]


def with_audio_context(model: Whisper, seconds: float) -> Whisper:
    """The same Whisper with an audio context of ``seconds`` (50 encoder frames per second): the encoder's
    sinusoidal positional embedding sliced to its first ``50 * seconds`` rows, everything else shared. Real
    Whisper was trained on 30 s windows; a short context makes fine-tuning and tokenizing short clips several times
    cheaper (mel is padded to ``2 * n_audio_ctx`` frames)."""
    n_ctx = int(round(seconds * 50))
    if not 0 < n_ctx <= model.dims.n_audio_ctx:
        raise ValueError(f"audio context of {seconds} s: must be within the model's {model.dims.n_audio_ctx / 50} s")
    if n_ctx == model.dims.n_audio_ctx:
        return model
    dims = ModelDimensions(**{**asdict(model.dims), "n_audio_ctx": n_ctx})
    out = Whisper(dims, text_unit(model))
    state = model.state_dict()
    state["encoder.positional_embedding"] = state["encoder.positional_embedding"][:n_ctx].clone()
    out.load_state_dict(state)
    return out.to(next(model.parameters()).device).train(model.training)
