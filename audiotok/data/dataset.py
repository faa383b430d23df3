"""Map-style audio dataset over a manifest, and the collate function that pads with explicit lengths.

Data flows manifest -> :class:`~audiotok.data.sampler.DurationBatchSampler` -> :class:`AudioDataset` ->
:func:`collate_audio`; features are then computed on the device from the padded batch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from audiotok.audio import AudioError, load, resample
from audiotok.data.manifest import Utterance, read_manifest
from audiotok.data.sampler import DurationBatchSampler
from audiotok.utils import stable_hash

log = logging.getLogger(__name__)


class AudioDataset(Dataset):
    """Loads utterances as mono float32 at ``sample_rate``, optionally cropped to ``crop_seconds``.

    Args:
        utterances: a manifest path or a list of :class:`Utterance`.
        sample_rate: target rate; audio is resampled when it differs.
        crop_seconds: crop length (None = whole utterance). Shorter items are returned whole.
        crop: ``"random"`` (reproducible from ``(seed, epoch, index)``), ``"start"`` or ``"center"``
            (deterministic, for validation).
        seed: base seed of random crops; call :meth:`set_epoch` to vary them per epoch.
        on_error: ``"raise"`` or ``"skip"``; skipped items come back as None and :func:`collate_audio` drops them.
    """

    def __init__(
        self,
        utterances: str | os.PathLike | Sequence[Utterance],
        sample_rate: int,
        crop_seconds: float | None = None,
        crop: str = "random",
        seed: int = 0,
        on_error: str = "raise",
    ):
        if crop not in ("random", "start", "center"):
            raise ValueError(f"crop must be 'random', 'start' or 'center', got {crop!r}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.utterances = read_manifest(utterances) if isinstance(utterances, (str, os.PathLike)) else list(utterances)
        self.sample_rate = sample_rate
        self.crop_seconds = crop_seconds
        self.crop = crop
        self.seed = seed
        self.epoch = 0
        self.on_error = on_error

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def durations(self) -> list[float]:
        """Seconds per item after cropping (what the batch sampler bounds)."""
        if self.crop_seconds is None:
            return [u.duration for u in self.utterances]
        return [min(u.duration, self.crop_seconds) for u in self.utterances]

    def _crop(self, wav: torch.Tensor, index: int) -> torch.Tensor:
        n = int(round(self.crop_seconds * self.sample_rate))
        if wav.shape[-1] <= n:
            return wav
        room = wav.shape[-1] - n
        if self.crop == "start":
            offset = 0
        elif self.crop == "center":
            offset = room // 2
        else:
            offset = int(np.random.default_rng(stable_hash(self.seed, self.epoch, index)).integers(0, room + 1))
        return wav[offset : offset + n]

    def __getitem__(self, index: int) -> dict | None:
        u = self.utterances[index]
        try:
            wav, sample_rate = load(u.audio, start=u.start, end=u.end, mono=True)
        except AudioError as err:
            if self.on_error == "raise":
                raise
            log.warning("skipping %s: %s", u.id, err)
            return None
        wav = resample(wav, sample_rate, self.sample_rate)
        if self.crop_seconds is not None:
            wav = self._crop(wav, index)
        return {"id": u.id, "audio": wav, "text": u.text, "speaker": u.speaker, "index": index}


def pad_sequences(seqs: Sequence[torch.Tensor], pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad tensors on their last axis: returns ``(B, ..., T_max)`` and ``(B,)`` lengths."""
    lens = torch.tensor([s.shape[-1] for s in seqs], dtype=torch.long)
    out = seqs[0].new_full((len(seqs), *seqs[0].shape[:-1], int(lens.max())), pad_value)
    for i, s in enumerate(seqs):
        out[i, ..., : s.shape[-1]] = s
    return out, lens


def as_padded_batch(
    wav: torch.Tensor | list[torch.Tensor], wav_lens: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept (T,), (B, T), (B, 1, T) or a list of 1-D tensors; return (B, T) float and (B,) lengths."""
    if isinstance(wav, (list, tuple)):
        wav, wav_lens = pad_sequences([w.reshape(-1).float() for w in wav])
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    if wav.dim() == 3:
        if wav.shape[1] != 1:
            raise ValueError(f"expected mono (B, 1, T) audio, got {tuple(wav.shape)}; downmix first")
        wav = wav.squeeze(1)
    if wav_lens is None:
        wav_lens = torch.full((wav.shape[0],), wav.shape[-1], dtype=torch.long)
    return wav.float(), wav_lens.to(wav.device).long()


def collate_audio(items: Sequence[dict | None]) -> dict:
    """Pad a list of :class:`AudioDataset` items into ``{"ids", "audio" (B, T), "audio_lens" (B,), "text",
    "speakers", "indices"}``; None items (skipped bad files) are dropped."""
    items = [it for it in items if it is not None]
    if not items:
        return {
            "ids": [],
            "audio": torch.zeros(0, 0),
            "audio_lens": torch.zeros(0, dtype=torch.long),
            "text": [],
            "speakers": [],
            "indices": [],
        }
    audio, audio_lens = pad_sequences([it["audio"] for it in items])
    return {
        "ids": [it["id"] for it in items],
        "audio": audio,
        "audio_lens": audio_lens,
        "text": [it["text"] for it in items],
        "speakers": [it["speaker"] for it in items],
        "indices": [it["index"] for it in items],
    }


def audio_loader(
    dataset: AudioDataset,
    max_seconds: float,
    shuffle: bool = True,
    seed: int = 0,
    n_workers: int = 0,
    **sampler_kwargs,
) -> DataLoader:
    """A DataLoader over ``dataset`` with a :class:`DurationBatchSampler` (reachable as ``loader.batch_sampler``)."""
    sampler = DurationBatchSampler(dataset.durations, max_seconds, shuffle=shuffle, seed=seed, **sampler_kwargs)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_audio,
        num_workers=n_workers,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )
