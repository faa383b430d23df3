"""Token and model commands: ``encode``, ``decode``, ``info``, ``models``, ``bundle``, ``export``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from audiotok.cli.common import print_table, torch_dtype

if TYPE_CHECKING:
    from audiotok.cli.common import Subparsers


MODEL_HELP = (
    "bundled name, checkpoint path (ours, WavTokenizer .ckpt, S3Tokenizer .onnx), official name "
    "(speech_tokenizer_v2_25hz) or hub id org/name[:file] (default: the bundled codec)"
)


def _add_model_options(s: argparse.ArgumentParser) -> None:
    """``--model`` and what goes with it, shared by ``encode`` and ``decode``."""
    s.add_argument("--model", default=None, help=MODEL_HELP)
    s.add_argument("--config", default=None, help="YAML of an official WavTokenizer .ckpt (when not found beside it)")
    s.add_argument("--official", default=None, help="--model is an official S3Tokenizer state dict of this name")
    s.add_argument("--revision", default=None, help="branch, tag or commit of a hub id")
    s.add_argument("--cache-dir", default=None, help="hub cache (default: $HF_HOME/hub)")


def _load_model(args: argparse.Namespace, device: str):
    from audiotok.registry import load_tokenizer

    return load_tokenizer(args.model, device, args.config, args.official, args.revision, args.cache_dir)


def cmd_encode(args: argparse.Namespace) -> int:
    import os

    from audiotok.batch import EncodeOptions, collect_inputs, encode_items
    from audiotok.train import cleanup_distributed, setup_distributed

    info = setup_distributed(args.device)
    model, name = _load_model(args, str(info.device))
    items = collect_inputs(args.inputs)
    batch_seconds = args.batch_seconds
    if batch_seconds is None:  # batching pays on GPUs; on CPUs one file at a time is faster (bench/cli.py)
        batch_seconds = 120.0 if info.device.type == "cuda" else 0.0
    opts = EncodeOptions(
        out=args.output,
        format=args.format,
        batch_seconds=batch_seconds,
        n_workers=args.workers,
        window_seconds=args.window_seconds,
        shard_size=args.shard_size,
        overwrite=args.overwrite,
        fail_fast=args.fail_fast,
        progress=not args.quiet and info.is_main,
        rank=info.rank,
        world_size=info.world_size,
    )
    if args.format == "jsonl" and info.world_size > 1:
        root, ext = os.path.splitext(args.output)
        opts.out = f"{root}.rank{info.rank}{ext}"
    summary = encode_items(model, name, items, opts)
    tag = f"[rank {info.rank}/{info.world_size}] " if info.distributed else ""
    print(f"{tag}encode: {summary.line()}")
    for f in summary.failures[:10]:
        print(f"{tag}  failed {f['path']}: {f['reason']}", file=sys.stderr)
    cleanup_distributed()
    return 1 if summary.failed else 0


def _add_encode(sub: Subparsers) -> None:
    s = sub.add_parser("encode", help="audio files/folders/manifests -> token files (resumable, batched)")
    s.add_argument("inputs", nargs="+", help="files, folders (recursive), manifests (.jsonl), or - for stdin paths")
    s.add_argument("-o", "--output", required=True, help="output folder (files, shards) or .jsonl path")
    _add_model_options(s)
    s.add_argument("--format", choices=("files", "jsonl", "shards"), default="files")
    s.add_argument("--device", default="cpu")
    s.add_argument(
        "--batch-seconds",
        type=float,
        default=None,
        help="padded audio seconds per batch (default: 120 on CUDA; 0 = one file per batch on CPU, "
        "which is faster there: bench/cli.py)",
    )
    s.add_argument("--workers", type=int, default=2, help="data loading processes")
    s.add_argument("--window-seconds", type=float, default=60.0, help="longer files are encoded in windows")
    s.add_argument("--shard-size", type=int, default=1000, help="items per shard (--format shards)")
    s.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    s.add_argument("--fail-fast", action="store_true", help="stop at the first bad file")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_encode)


def cmd_decode(args: argparse.Namespace) -> int:
    from audiotok.batch import decode_tokens

    model, name = _load_model(args, args.device)
    if not hasattr(model, "decode"):
        raise ValueError(f"{name} is a semantic tokenizer: its tokens decode to speech through the TTS flow model")
    summary = decode_tokens(
        model, name, args.inputs, args.output, sample_rate=args.sample_rate, force=args.force, progress=not args.quiet
    )
    print(f"decode: {summary.line()}")
    return 0


def _add_decode(sub: Subparsers) -> None:
    s = sub.add_parser("decode", help="token files/folders/jsonl/shards -> wav files")
    s.add_argument("inputs", nargs="+")
    s.add_argument("-o", "--output", required=True, help="output folder")
    _add_model_options(s)
    s.add_argument("--sample-rate", type=int, default=None, help="resample the output (default: the model's)")
    s.add_argument("--force", action="store_true", help="decode tokens made by another model")
    s.add_argument("--device", default="cpu")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_decode)


def cmd_info(args: argparse.Namespace) -> int:
    from audiotok.batch import describe

    for path in args.files:
        d = describe(path)
        print(f"{path}: {d.pop('kind')}")
        print_table([(k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in d.items()])
    return 0


def _add_info(sub: Subparsers) -> None:
    s = sub.add_parser("info", help="what a token file, shard or checkpoint is")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=cmd_info)


def cmd_models(args: argparse.Namespace) -> int:
    from audiotok import registry

    print("bundled (load by name with --model NAME):")
    for b in registry.installed():
        path = registry.bundled_path(b.name)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
        print(f"  {b.name:<14} {size / 1e6:6.1f} MB  {b.about}")
    if not registry.installed():
        print("  (none installed)")
    print("architectures (build with audiotok.codec.codec_config(NAME); train with recipes/codec):")
    print("  wavtokenizer-75, wavtokenizer-40 (the released small configs), small-75, tiny")
    print("official names (fetched once into their package's cache):")
    print("  S3Tokenizer: speech_tokenizer_v1 (50 Hz, VQ 4096), speech_tokenizer_v1_25hz, speech_tokenizer_v2_25hz")
    print("  Whisper: tiny.en, base, ... (openai-whisper names; tiny.en and base from packaged copies offline)")
    print("hub ids (--model org/name[:file], --revision REV; offline from the HF cache with HF_HUB_OFFLINE=1):")
    print("  novateur/WavTokenizer-large-speech-75token (no YAML in the repo: the built-in config of the release)")
    print("  novateur/WavTokenizer:WavTokenizer_small_320_24k_4096.ckpt, FunAudioLLM/CosyVoice2-0.5B (its .onnx),")
    print("  or a bundled model folder uploaded as is")
    print("official files (local): WavTokenizer .ckpt (+ --config X.yaml unless beside it or a release),")
    print("  S3Tokenizer .onnx; s3tokenizer's onnx2torch state dict: --model FILE.pt --official NAME")
    return 0


def _add_models(sub: Subparsers) -> None:
    s = sub.add_parser("models", help="list bundled and known models")
    s.set_defaults(func=cmd_models)


def cmd_bundle(args: argparse.Namespace) -> int:
    from audiotok.checkpoint import bundle

    dst = bundle(args.checkpoint, args.name, torch_dtype(args.dtype))
    print(f"{args.checkpoint} -> {dst} ({dst.stat().st_size / 1e6:.1f} MB); write {dst.parent / 'card.md'} next to it")
    return 0


def _add_bundle(sub: Subparsers) -> None:
    s = sub.add_parser("bundle", help="install a trained checkpoint as a bundled default (fp16, by name)")
    s.add_argument("checkpoint", help="a .safetensors checkpoint of the suite")
    s.add_argument("name", help="the default's name: codec, semantic, whisper-synth, ...")
    s.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default="fp16")
    s.set_defaults(func=cmd_bundle)


def cmd_export(args: argparse.Namespace) -> int:
    from audiotok.codec import Codec

    model = Codec.from_pretrained(args.checkpoint, config=args.config)
    path = model.save(args.output, dtype=torch_dtype(args.dtype))
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {model.frame_rate:g} tokens/s, {model.codebook_size} codes)"
    )
    return 0


def register_export(sub: Subparsers) -> None:
    """Add ``export`` (separate from :func:`register`: ``audiotok --help`` has always listed it last)."""
    s = sub.add_parser("export", help="convert an official WavTokenizer .ckpt + YAML into our checkpoint")
    s.add_argument("checkpoint")
    s.add_argument("--config", required=True, help="the release's YAML")
    s.add_argument("-o", "--output", required=True, help="output .safetensors")
    s.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    s.set_defaults(func=cmd_export)


def register(sub: Subparsers) -> None:
    """Add ``encode``, ``decode``, ``info``, ``models`` and ``bundle`` (``export``: :func:`register_export`)."""
    _add_encode(sub)
    _add_decode(sub)
    _add_info(sub)
    _add_models(sub)
    _add_bundle(sub)
