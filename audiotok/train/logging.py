"""Training logs: TensorBoard scalars/audio and a plain line on stdout, from rank 0 only."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch


class TrainLogger:
    def __init__(self, out_dir: str | os.PathLike, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.out_dir = Path(out_dir)
        self.writer = None
        self.t0 = time.time()
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out_dir / "tb"))

    def scalars(self, step: int, values: dict[str, float], prefix: str = "train", echo: bool = True) -> None:
        if not self.enabled:
            return
        values = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in values.items()}
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{prefix}/{k}", v, step)
        with open(self.out_dir / f"{prefix}.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "time": round(time.time() - self.t0, 1), **values}) + "\n")
        if echo:
            shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
            print(f"[{prefix} {step}] {shown}", flush=True)

    def audio(self, step: int, tag: str, wav: torch.Tensor, sample_rate: int) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_audio(tag, wav.detach().float().cpu().clamp(-1, 1), step, sample_rate=sample_rate)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
