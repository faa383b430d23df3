"""Tokenizer evaluation commands: ``eval-codec``, ``eval-semantic``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from audiotok.cli.common import add_speakers, report, speakers

CODEC_CONDITIONS = ("clean", "telephone", "8k", "16k", "noisy", "reverb")  # audiotok.codec.evaluate.CONDITIONS

if TYPE_CHECKING:
    from audiotok.cli.common import Subparsers

_BUNDLED_SEMANTIC = Path(__file__).parent.parent / "assets" / "semantic" / "model.safetensors"


def _load_codec(args: argparse.Namespace):
    from audiotok.codec import Codec

    return Codec.from_pretrained(args.model, config=getattr(args, "config", None), device=args.device)


def cmd_eval_codec(args: argparse.Namespace) -> int:
    from audiotok.codec.evaluate import evaluate_codec, format_table

    model = _load_codec(args)
    result = evaluate_codec(
        model,
        args.manifest,
        limit=args.limit,
        batch_seconds=args.batch_seconds,
        references=not args.no_references,
        progress=not args.quiet,
        skip_per_speaker=args.skip_per_speaker,
        condition=args.condition,
    )
    result["model"] = str(args.model or "bundled:codec")
    result["manifest"] = str(args.manifest)
    return report(result, format_table(result), args.output)


def _add_eval_codec(sub: Subparsers) -> None:
    s = sub.add_parser("eval-codec", help="reconstruction metrics of a codec over a manifest (held-out speakers)")
    s.add_argument("manifest")
    s.add_argument(
        "--model", default=None, help="checkpoint (.safetensors, folder, or official .ckpt); default: bundled"
    )
    s.add_argument("--config", default=None, help="YAML of an official WavTokenizer .ckpt")
    s.add_argument("--limit", type=int, default=None)
    s.add_argument(
        "--skip-per-speaker", type=int, default=0, help="leave out each voice's first N (a run's validation share)"
    )
    s.add_argument(
        "--condition",
        default="clean",
        choices=list(CODEC_CONDITIONS),
        help="degrade the input as real recordings are (band-limited, noisy, reverberant); it is also the reference",
    )
    s.add_argument("--batch-seconds", type=float, default=60.0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--no-references", action="store_true", help="skip the lower/upper bound reference points")
    s.add_argument("-o", "--output", default=None, help="write the result as JSON")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_eval_codec)


def cmd_eval_semantic(args: argparse.Namespace) -> int:
    from audiotok.checkpoint import load_model
    from audiotok.codec.model import Codec
    from audiotok.semantic import SemanticTokenizer
    from audiotok.semantic.evaluate import evaluate_semantic, format_report
    from audiotok.whisper import load_whisper

    path = Path(args.model) if args.model else _BUNDLED_SEMANTIC
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no semantic tokenizer there (train one: recipes/semantic/train.py)")
    tokenizer = SemanticTokenizer.from_pretrained(path, device=args.device)
    codec = None if args.codec == "none" else Codec.from_pretrained(args.codec, device=args.device)
    asr = load_model(args.asr, device=args.device) if args.asr else None
    reference = load_whisper(args.reference_asr, device=args.device) if args.reference_asr else None
    result = evaluate_semantic(
        tokenizer,
        args.manifest,
        codec,
        asr,
        reference,
        limit=args.limit,
        progress=not args.quiet,
        speakers=speakers(args),
    )
    result["model"] = str(path)
    return report(result, format_report(result), args.output)


def _add_eval_semantic(sub: Subparsers) -> None:
    s = sub.add_parser("eval-semantic", help="content, robustness and speaker leakage of semantic vs codec tokens")
    s.add_argument("manifest", help="held-out speakers, e.g. data/synth/test.jsonl")
    s.add_argument("--model", default=None, help="semantic tokenizer .safetensors (default: bundled)")
    s.add_argument("--asr", default=None, help="the tokenizer's own ASR model (recipe's model.safetensors): WER")
    s.add_argument(
        "--reference-asr",
        default=None,
        help="an unquantized Whisper to compare: a name (base, tiny.en) or a .pt/.safetensors",
    )
    s.add_argument("--codec", default=None, help="codec checkpoint to compare (default: bundled; 'none' to skip)")
    s.add_argument("--limit", type=int, default=100)
    add_speakers(s)
    s.add_argument("--device", default="cpu")
    s.add_argument("-o", "--output", default=None, help="write the result as JSON")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_eval_semantic)


def register(sub: Subparsers) -> None:
    """Add ``eval-codec`` and ``eval-semantic``."""
    _add_eval_codec(sub)
    _add_eval_semantic(sub)
