"""Timing and test-signal helpers shared by the benchmarks of ``bench/device_benches.py``: precision modes,
seeded noise clips, best-of-N timing, code mismatch, parameter counts and the copy bandwidth.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

import torch
from common import device_sync
from device_core import Context

PRECISIONS = ("fp32", "tf32")


@contextlib.contextmanager
def precision(mode: str) -> Iterator[None]:
    """fp32 (TF32 off for matmuls and cuDNN convolutions) or tf32 (both on); restored afterwards."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    on = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def precisions(ctx: Context) -> tuple[str, ...]:
    """Both modes on CUDA; on a CPU TF32 does not exist, so fp32 alone."""
    return PRECISIONS if ctx.cuda else ("fp32",)


def clip_lengths(n: int, seconds: tuple[float, float], sample_rate: int, seed: int) -> list[int]:
    """``n`` lengths in samples drawn uniformly from ``seconds`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = seconds
    return [int(sample_rate * (lo + (hi - lo) * float(u))) for u in torch.rand(n, generator=g)]


def noise_clips(lengths: list[int], seed: int, scale: float = 0.1) -> list[torch.Tensor]:
    """Gaussian noise clips (CPU float32) of the given lengths."""
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(n, generator=g) for n in lengths]


def best_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> tuple[float, object]:
    """(best wall time of ``repeats`` calls after one warm-up, the last call's result)."""
    out = fn()
    sync()
    best = math.inf
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best, out


def mismatch(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Fraction of code positions that differ between two lists of per-clip code vectors."""
    differ = total = 0
    for x, y in zip(a, b, strict=True):
        n = min(len(x), len(y))
        differ += int((x[:n] != y[:n]).sum()) + abs(len(x) - len(y))
        total += max(len(x), len(y))
    return differ / max(total, 1)


def n_params(*modules: torch.nn.Module) -> float:
    """Parameters in millions."""
    return sum(p.numel() for m in modules for p in m.parameters()) / 1e6


def copy_bandwidth(device: str, mib: int) -> float:
    """Device-to-device copy bandwidth in GB/s, counting bytes read and written (best of 5)."""
    n = mib * 2**20 // 4
    x = torch.empty(n, device=device).uniform_()
    y = torch.empty_like(x)
    t, _ = best_time(lambda: y.copy_(x), 5, device_sync(device))
    return 2 * x.numel() * 4 / t / 1e9
