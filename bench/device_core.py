"""What every benchmark of ``bench/device_benches.py`` is given and hands back: the run's sizes (:data:`FULL`
for the GPU run, :data:`QUICK` for the CPU smoke run), the :class:`Context` with its :class:`Recorder`, and
:class:`Skip` (see :func:`require`) for a peer that cannot run here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from common import device_sync


class Skip(Exception):
    """The benchmark cannot run here (a peer package is missing, a bundled asset is absent): recorded as skipped."""


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (None where it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def require(module: str, what: str) -> None:
    """Raise :class:`Skip` when ``module`` cannot be imported."""
    try:
        __import__(module)
    except Exception as e:  # noqa: BLE001 (any import failure means the peer cannot run)
        raise Skip(f"{what}: `import {module}` failed ({type(e).__name__}: {e})") from e


@dataclass(frozen=True)
class Sizes:
    """Every size knob of the run (see :data:`FULL` and :data:`QUICK`)."""

    # codec: ours at a named config vs the one-by-one loop, and EnCodec
    codec_config: str = "wavtokenizer-75"
    codec_clips: int = 64
    codec_seconds: float = 10.0
    codec_batches: tuple[int, ...] = (1, 16, 64)
    codec_kmeans_iters: int = 10
    # semantic: an official architecture (or a tiny one of the same version) on mixed lengths
    semantic_name: str = "speech_tokenizer_v1_25hz"
    semantic_tiny: bool = False
    semantic_batch: int = 32
    semantic_seconds: tuple[float, float] = (2.0, 15.0)
    # features: files of mixed lengths, batched in length order
    feature_files: int = 64
    feature_seconds: tuple[float, float] = (2.0, 15.0)
    feature_batch: int = 16
    # TTS streaming
    tts_tokens: int = 100
    tts_steps: int = 10
    tts_concurrency: tuple[int, ...] = (1, 8)
    tts_tiny: bool = False
    # training steps
    train_tiny: bool = False
    train_warmup: int = 1
    train_steps: int = 3
    codec_train_batches: tuple[int, ...] = (40, 16, 4)  # tried in turn until one fits in memory
    codec_train_seconds: float = 3.0
    semantic_train_batch: int = 8
    lm_train_batch: int = 16
    lm_train_speech: int = 450
    flow_train_batch: int = 8
    flow_train_tokens: int = 250
    # repeats of timed passes (best of)
    repeats: int = 2
    copy_mib: int = 1024


FULL = Sizes()
QUICK = Sizes(
    codec_config="tiny",
    codec_clips=4,
    codec_seconds=0.5,
    codec_batches=(1, 2, 4),
    codec_kmeans_iters=2,
    semantic_tiny=True,
    semantic_batch=3,
    semantic_seconds=(0.3, 1.0),
    feature_files=4,
    feature_seconds=(0.3, 1.0),
    feature_batch=2,
    tts_tokens=10,
    tts_steps=2,
    tts_concurrency=(1, 2),
    tts_tiny=True,
    train_tiny=True,
    train_warmup=1,
    train_steps=1,
    codec_train_batches=(2,),
    codec_train_seconds=0.5,
    semantic_train_batch=2,
    lm_train_batch=2,
    lm_train_speech=20,
    flow_train_batch=2,
    flow_train_tokens=20,
    repeats=1,
    copy_mib=16,
)


@dataclass
class Recorder:
    """One benchmark's results, rewritten to ``path`` (JSON) after every change."""

    name: str
    path: Path | None = None
    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    status: str = "running"
    reason: str | None = None
    seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def row(self, **values) -> dict:
        """Add one table row (floats rounded for reading) and print it."""
        row = {k: _rounded(v) for k, v in values.items()}
        self.rows.append(row)
        print(f"[{self.name}] " + ", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        self.flush()
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.flush()

    def finish(self, status: str, reason: str | None = None) -> None:
        self.status, self.reason = status, reason
        self.flush()

    def as_dict(self) -> dict:
        self.seconds = time.perf_counter() - self.started
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "rows": self.rows,
            "summary": self.summary,
            "notes": self.notes,
        }

    def flush(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=1))
        os.replace(tmp, self.path)


def _rounded(v):
    if isinstance(v, float):
        return round(v, 6) if abs(v) < 1 else round(v, 4 if abs(v) < 1000 else 1)
    return v


@dataclass
class Context:
    """What a benchmark is given: the device, the sizes and its recorder."""

    device: str
    sizes: Sizes
    rec: Recorder
    quick: bool = False

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def sync(self) -> Callable[[], None]:
        return device_sync(self.device)

    def peak_mib(self) -> float | None:
        """Peak CUDA memory allocated since the last :meth:`reset_peak` (None on a CPU)."""
        return torch.cuda.max_memory_allocated() / 2**20 if self.cuda else None

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
