"""Tokenization throughput of ``audiotok encode``: audio hours per wall-clock hour, batched vs. one-by-one.

Model: the bundled codec (or --model). Data: the synthetic corpus (built if missing). Both runs write token files;
the batched one goes through the CLI's own code path (duration batches, loading workers, atomic writes).

    python bench/cli.py [--data-dir data/synth-bench] [--device cpu] [--limit 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from audiotok import audio
from audiotok.batch import EncodeOptions, collect_inputs, encode_items
from audiotok.data.synth import CorpusConfig, build_corpus
from audiotok.registry import load_tokenizer
from audiotok.tokens import TOKEN_SUFFIX, TokenRecord, model_identity, save_tokens


def one_by_one(model, name, items, out: Path) -> tuple[float, float]:
    ident = model_identity(model, name)
    seconds, t0 = 0.0, time.time()
    for it in items:
        wav, sr = audio.load(it.path, mono=True)
        codes, _ = model.encode(wav, sample_rate=sr)
        n = audio.resampled_length(wav.shape[-1], sr, model.sample_rate)
        save_tokens(out / (it.rel + TOKEN_SUFFIX), TokenRecord(codes[0].cpu().numpy(), ident, n, it.path))
        seconds += wav.shape[-1] / sr
    return seconds, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/synth-bench")
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--batch-seconds", type=float, default=120.0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    data = Path(args.data_dir)
    if not (data / "all.jsonl").exists():
        build_corpus(CorpusConfig(out_dir=str(data), minutes=args.minutes, seed=0))
    model, name = load_tokenizer(args.model, device=args.device)
    items = collect_inputs([str(data / "all.jsonl")])[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        s1, w1 = one_by_one(model, name, items, Path(tmp) / "single")
        opts = EncodeOptions(
            out=str(Path(tmp) / "batched"), batch_seconds=args.batch_seconds, n_workers=args.workers, progress=False
        )
        summary = encode_items(model, name, items, opts)
    s2, w2 = summary.seconds, summary.wall
    print(
        f"audiotok encode throughput, model {name} ({model.frame_rate:g} tokens/s), {len(items)} synthetic files "
        f"({s1 / 3600:.3f} h), device {args.device}, {torch.get_num_threads()} threads"
    )
    print("| mode | wall (s) | audio hours / hour | speed-up |")
    print("|---|---|---|---|")
    print(f"| one-by-one | {w1:.1f} | {s1 / w1:.0f} | 1.0x |")
    print(
        f"| batched ({args.batch_seconds:g} s batches, {args.workers} workers) | {w2:.1f} | {s2 / w2:.0f} | "
        f"{(s2 / w2) / (s1 / w1):.1f}x |"
    )


if __name__ == "__main__":
    main()
