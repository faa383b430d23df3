"""The ``env`` benchmark: the machine and software, and the copy bandwidth and matmul rate that the other
figures are read against.
"""

from __future__ import annotations

import os
import platform

import torch
from device_core import Context, package_version
from device_measure import best_time, copy_bandwidth, precision

PACKAGES = (
    "torch",
    "torchaudio",
    "transformers",
    "numpy",
    "openai-whisper",
    "vector-quantize-pytorch",
    "s3tokenizer",
    "encodec",
    "librosa",
    "soundfile",
)


def nvidia_driver() -> str | None:
    """The NVIDIA driver's version as ``nvidia-smi`` reports it (None where it cannot)."""
    import subprocess

    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def bench_env(ctx: Context) -> None:
    """The machine and software, and two reference speeds the other figures are read against."""
    s, rec = ctx.sizes, ctx.rec
    rec.summary.update(
        {
            "device": ctx.device,
            "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "packages": {p: package_version(p) for p in PACKAGES},
        }
    )
    if ctx.cuda:
        props = torch.cuda.get_device_properties(0)
        rec.summary.update(
            {
                "gpu": props.name,
                "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "sm_count": props.multi_processor_count,
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "driver": nvidia_driver(),
            }
        )
    rec.flush()
    rec.row(measure="device-to-device copy (read + write)", value=copy_bandwidth(ctx.device, s.copy_mib), unit="GB/s")
    n = 8192 if ctx.cuda else 256
    for dtype, label in ((torch.bfloat16, "bf16"), (torch.float32, "tf32" if ctx.cuda else "fp32")):
        a = torch.randn(n, n, device=ctx.device, dtype=dtype)
        with precision("tf32"):
            t, _ = best_time(lambda a=a: a @ a, 5, ctx.sync)
        rec.row(measure=f"{n}x{n}x{n} {label} matmul", value=2 * n**3 / t / 1e12, unit="TFLOP/s")
