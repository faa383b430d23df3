"""The benchmarks of ``bench/device.sh`` (driven by ``bench/device.py``): each figure against its peer in the same
run, same weights, built from the other ``bench/`` modules where they have the piece.

Every benchmark is a function ``(ctx: Context) -> None`` that adds rows to ``ctx.rec`` as it measures (so a run
stopped at its time cap keeps what it finished) and may raise :class:`~device_core.Skip` when its peer cannot run
here. Sizes come from :data:`~device_core.FULL` (the GPU run) or :data:`~device_core.QUICK` (the CPU smoke run: tiny
random models, seconds). This module holds the table of them (:data:`FUNCTIONS`) and runs one
(:func:`run_benchmark`); they live by family in ``device_env``, ``device_codec``, ``device_semantic``,
``device_features``, ``device_tts`` and ``device_train``, on the shared pieces of ``device_core`` (context, sizes,
recorder) and ``device_measure`` (timing helpers).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # the sibling benchmarks import each other as top-level modules
    sys.path.insert(0, str(BENCH_DIR))

from device_codec import bench_codec, bench_encodec  # noqa: E402
from device_core import FULL, QUICK, Context, Recorder, Skip  # noqa: E402
from device_env import bench_env  # noqa: E402
from device_features import bench_features  # noqa: E402
from device_semantic import bench_semantic  # noqa: E402
from device_train import bench_train_codec, bench_train_flow, bench_train_lm, bench_train_semantic  # noqa: E402
from device_tts import bench_tts_bundled, bench_tts_full  # noqa: E402

# name -> benchmark, in the order bench/device.py's SPECS runs them (titles, peers and caps are there)
FUNCTIONS: dict[str, Callable[[Context], None]] = {
    "env": bench_env,
    "codec": bench_codec,
    "codec-encodec": bench_encodec,
    "semantic": bench_semantic,
    "features": bench_features,
    "tts-bundled": bench_tts_bundled,
    "tts-full": bench_tts_full,
    "train-codec": bench_train_codec,
    "train-semantic": bench_train_semantic,
    "train-lm": bench_train_lm,
    "train-flow": bench_train_flow,
}


def run_benchmark(name: str, device: str, quick: bool, part: Path | None) -> Recorder:
    """Run one benchmark here, in this process; its outcome (ok / skipped / failed) is in the returned recorder
    (and in ``part``, rewritten as it goes)."""
    import traceback

    rec = Recorder(name, part)
    ctx = Context(device=resolve_device(device), sizes=QUICK if quick else FULL, rec=rec, quick=quick)
    rec.flush()
    threads = torch.get_num_threads()
    if quick:  # tiny ops on a shared CPU: a second spinning thread makes timings erratic (10-100x) and slow
        torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        FUNCTIONS[name](ctx)
    except Skip as e:
        rec.finish("skipped", str(e))
    except Exception as e:  # noqa: BLE001 (recorded; the run goes on with the next benchmark)
        traceback.print_exc()
        rec.finish("failed", f"{type(e).__name__}: {e}"[:500])
    else:
        rec.finish("ok")
    finally:
        torch.set_num_threads(threads)
    return rec


def resolve_device(device: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
