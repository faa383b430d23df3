"""The ``audiotok`` command: a thin argparse adapter over importable functions.

Subcommands import their heavy modules inside the handler, so ``audiotok --help`` is fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path


def _print_table(rows: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.4g}"
        print(f"  {k:<{width}}  {v}")


def cmd_synth_corpus(args: argparse.Namespace) -> int:
    from audiotok.data.synth import CorpusConfig, build_corpus

    config = CorpusConfig(
        out_dir=args.out,
        minutes=args.minutes,
        seed=args.seed,
        domain=args.domain,
        n_espeak=args.n_espeak,
        jobs=args.jobs,
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


def cmd_stats(args: argparse.Namespace) -> int:
    from audiotok.data.manifest import iter_manifest, manifest_summary

    s = manifest_summary(iter_manifest(args.manifest))
    print(f"{args.manifest}:")
    _print_table(list(s.items()))
    return 0


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
    _print_table(list(s.items()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """What exists so far, end to end: corpus -> manifest -> batched features -> summary."""
    from audiotok.data.extract import extract_features
    from audiotok.data.manifest import read_manifest
    from audiotok.data.synth import CorpusConfig, build_corpus

    data = Path(args.data_dir)
    t0 = time.time()
    if not (data / "corpus.json").exists():
        print(f"[demo] building a {args.minutes:g}-minute synthetic corpus in {data} ...")
        build_corpus(CorpusConfig(out_dir=str(data), minutes=args.minutes, seed=0), progress=not args.quiet)
    corpus = json.loads((data / "corpus.json").read_text())
    print(
        f"[demo] synthetic corpus: {len(corpus['voices'])} voices; "
        + ", ".join(f"{k} {v['utterances']} utt / {v['hours'] * 60:.1f} min" for k, v in corpus["splits"].items())
    )
    valid = read_manifest(data / "valid.jsonl")
    print(f"[demo] manifest {data / 'valid.jsonl'}: {len(valid)} utterances")
    for feature in ("whisper-80", "vocos", "cosyvoice2", "fbank"):
        s = extract_features(data / "all.jsonl", feature=feature, batch_seconds=60, device=args.device, progress=False)
        print(
            f"[demo] {feature:<11} {s['utterances']} utt, {s['hours'] * 60:.1f} min of audio -> {s['frames']} frames "
            f"x {s['n_bins']} bins (mean {s['mean']:.2f}, std {s['std']:.2f}) in {s['wall_seconds']:.1f} s "
            f"= {s['audio_hours_per_second'] * 3600:.0f}x realtime on {s['device']}"
        )
    print(f"[demo] done in {time.time() - t0:.1f} s (all audio is synthetic)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audiotok", description="Audio and speech tokenization suite.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth-corpus", help="build the synthetic multi-speaker corpus with Debian TTS engines")
    s.add_argument("out", help="output folder")
    s.add_argument("--minutes", type=float, default=30.0, help="approximate total audio (default 30)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--domain", choices=("adult", "child"), default="adult")
    s.add_argument("--n-espeak", type=int, default=16, help="espeak-ng accent x variant speakers (default 16)")
    s.add_argument("--jobs", type=int, default=2, help="engine processes in parallel")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_synth_corpus)

    s = sub.add_parser("prepare", help="build a JSONL manifest from a corpus folder")
    s.add_argument("root", help="corpus folder (audio tree with side-cars, LJSpeech or LibriSpeech)")
    s.add_argument("-o", "--output", required=True, help="manifest path (.jsonl or .jsonl.gz)")
    s.add_argument("--layout", choices=("auto", "folder", "ljspeech", "librispeech"), default="auto")
    s.add_argument("--language", default=None)
    s.add_argument("--relative", action="store_true", help="write audio paths relative to the manifest")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("stats", help="summarise a manifest")
    s.add_argument("manifest")
    s.set_defaults(func=cmd_stats)

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

    s = sub.add_parser("demo", help="run the suite's main job on the bundled defaults")
    s.add_argument("--data-dir", default="data/synth-demo", help="where the demo corpus lives")
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from audiotok.audio import AudioError
    from audiotok.data.manifest import ManifestError

    try:
        return args.func(args)
    except (AudioError, ManifestError, FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"audiotok {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
