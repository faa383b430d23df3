from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one thread each
    torch.set_num_threads(1)

from audiotok import audio

# the official WavTokenizer test vectors (../shared/testvectors/wavtokenizer, beside the repository)
WAVTOKENIZER_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "testvectors" / "wavtokenizer"


def speechlike(n: int, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """A harmonic signal with a moving pitch and amplitude envelope, plus a little noise: (n,) float32."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / sample_rate
    f0 = 120 + 40 * torch.sin(2 * math.pi * 0.7 * t + seed)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    x = sum(torch.sin(k * phase) / k for k in range(1, 8))
    env = 0.5 + 0.5 * torch.sin(2 * math.pi * 2.5 * t).abs()
    return (0.2 * env * x + 0.01 * torch.randn(n, generator=g)).float()


def run_two_cpu_ranks(args: list[str], port: int):
    """``torchrun --nproc_per_node 2`` (gloo on CPU) of ``args`` from the repository root; returns the result."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def wav_tree(tmp_path: Path) -> Path:
    """speaker folders with wav/flac files and side-car transcripts."""
    root = tmp_path / "corpus"
    for spk, n in (("spk1", 2), ("spk2", 3)):
        for i in range(n):
            ext = ".wav" if i % 2 == 0 else ".flac"
            path = root / spk / f"{spk}_{i}{ext}"
            audio.save(path, speechlike(16000 + 1600 * i, 16000, seed=i), 16000)
            path.with_suffix(".txt").write_text(f"hello from {spk} number {i}\n")
    return root


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A ~1.5 minute synthetic corpus (real engines) shared by the tests that need real speech."""
    from audiotok.data.synth import CorpusConfig, build_corpus

    out = tmp_path_factory.mktemp("synth")
    build_corpus(CorpusConfig(out_dir=str(out), minutes=1.5, n_espeak=3, seed=0), progress=False)
    return out
