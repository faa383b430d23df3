"""Corpus and data commands: ``synth-corpus``, ``prepare``, ``stats``, ``features``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from audiotok.cli.common import print_table

if TYPE_CHECKING:
    from audiotok.cli.common import Subparsers


def cmd_synth_corpus(args: argparse.Namespace) -> int:
    from audiotok.data.synth import CorpusConfig, build_corpus

    config = CorpusConfig(
        out_dir=args.out,
        minutes=args.minutes,
        seed=args.seed,
        domain=args.domain,
        n_espeak=args.n_espeak,
        jobs=args.jobs,
        neural=args.neural,
    )
    summary = build_corpus(config, progress=not args.quiet)
    print(
        f"synthetic corpus ({args.domain}) in {args.out}: {len(summary['voices'])} voices, "
        f"{summary['build_seconds']} s to build"
    )
    for split, s in summary["splits"].items():
        print(
            f"  {split:<5}  {s['utterances']:>6} utterances  {s['hours'] * 60:7.1f} min  {len(s['speakers'])} speakers"
        )
    if summary["failures"]:
        print(f"  {len(summary['failures'])} utterances failed to synthesise (see corpus.json)")
    return 0


def _add_synth_corpus(sub: Subparsers) -> None:
    s = sub.add_parser("synth-corpus", help="build the synthetic multi-speaker corpus with Debian TTS engines")
    s.add_argument("out", help="output folder")
    s.add_argument("--minutes", type=float, default=30.0, help="approximate total audio (default 30)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--domain", choices=("adult", "child"), default="adult")
    s.add_argument("--n-espeak", type=int, default=16, help="espeak-ng accent x variant speakers (default 16)")
    s.add_argument("--jobs", type=int, default=2, help="engine processes in parallel")
    s.add_argument(
        "--neural", action="store_true", help="add the neural voices (corpus v2: Kokoro packs + blends, Hibari, Piper)"
    )
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_synth_corpus)


def cmd_prepare(args: argparse.Namespace) -> int:
    from audiotok.data.manifest import manifest_summary, write_manifest
    from audiotok.data.prepare import prepare

    report = prepare(args.root, layout=args.layout, language=args.language, progress=not args.quiet)
    out = Path(args.output)
    n = write_manifest(out, report.utterances, relative_to=str(out.resolve().parent) if args.relative else None)
    s = manifest_summary(report.utterances)
    print(f"wrote {n} utterances ({s['hours']:.3f} h, {s['speakers']} speakers) to {out}")
    for path, reason in list(report.failed.items())[:20]:
        print(f"  skipped {path}: {reason}", file=sys.stderr)
    if report.failed:
        print(f"  {len(report.failed)} files skipped", file=sys.stderr)
    return 0 if n else 1


def _add_prepare(sub: Subparsers) -> None:
    s = sub.add_parser("prepare", help="build a JSONL manifest from a corpus folder")
    s.add_argument("root", help="corpus folder (audio tree with side-cars, LJSpeech or LibriSpeech)")
    s.add_argument("-o", "--output", required=True, help="manifest path (.jsonl or .jsonl.gz)")
    s.add_argument("--layout", choices=("auto", "folder", "ljspeech", "librispeech"), default="auto")
    s.add_argument("--language", default=None)
    s.add_argument("--relative", action="store_true", help="write audio paths relative to the manifest")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_prepare)


def cmd_stats(args: argparse.Namespace) -> int:
    from audiotok.data.manifest import iter_manifest, manifest_summary

    s = manifest_summary(iter_manifest(args.manifest))
    print(f"{args.manifest}:")
    print_table(list(s.items()))
    return 0


def _add_stats(sub: Subparsers) -> None:
    s = sub.add_parser("stats", help="summarise a manifest")
    s.add_argument("manifest")
    s.set_defaults(func=cmd_stats)


def cmd_features(args: argparse.Namespace) -> int:
    from audiotok.data.extract import extract_features

    s = extract_features(
        args.manifest,
        feature=args.feature,
        batch_seconds=args.batch_seconds,
        device=args.device,
        n_workers=args.workers,
        out_dir=args.output,
        limit=args.limit,
        progress=not args.quiet,
    )
    print(f"features '{s['feature']}' on {s['device']}:")
    print_table(list(s.items()))
    return 0


def _add_features(sub: Subparsers) -> None:
    s = sub.add_parser("features", help="batched feature extraction over a manifest")
    s.add_argument("manifest")
    s.add_argument(
        "--feature", default="whisper-80", choices=("whisper-80", "whisper-128", "vocos", "cosyvoice2", "fbank")
    )
    s.add_argument("--batch-seconds", type=float, default=60.0, help="padded seconds of audio per batch")
    s.add_argument("--device", default="cpu")
    s.add_argument("--workers", type=int, default=0, help="data loading processes")
    s.add_argument("-o", "--output", default=None, help="folder for <id>.safetensors feature files")
    s.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_features)


def register(sub: Subparsers) -> None:
    """Add ``synth-corpus``, ``prepare``, ``stats`` and ``features``."""
    _add_synth_corpus(sub)
    _add_prepare(sub)
    _add_stats(sub)
    _add_features(sub)
