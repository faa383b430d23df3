"""Helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed(fn, repeats: int, sync=lambda: None) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` after one warm-up call; ``sync`` waits for the device."""
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def device_sync(device: str) -> Callable[[], None]:
    """What waits for ``device``'s queued work: ``torch.cuda.synchronize`` on CUDA, nothing on a CPU."""
    import torch

    return torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
