"""The ``transcribe`` command: Whisper + adapter transcription (the ``asr`` package is imported in the handler)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from audiotok.cli.common import Subparsers


def cmd_transcribe(args: argparse.Namespace) -> int:
    import torch

    from asr.adapters import load_adapted
    from audiotok.whisper import evaluate_manifest, transcribe_files

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_adapted(args.model, args.adapter, merge=True, device=device)
    opts = {"batch_size": args.batch_size, "beam_size": args.beam_size, "progress": not args.quiet}
    if len(args.files) == 1 and args.files[0].endswith(".jsonl"):
        res = evaluate_manifest(model, args.files[0], limit=args.limit, **opts)
        rows = [{"ref": r, "text": h} for r, h in zip(res.refs, res.hyps, strict=True)]
        print(f"WER {res.wer:.4f} over {res.n} utterances of {args.files[0]}", file=sys.stderr)
    else:
        files = [str(f) for f in args.files][: args.limit]
        rows = [{"audio": f, "text": t} for f, t in zip(files, transcribe_files(model, files, **opts), strict=True)]
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"wrote {len(rows)} transcripts -> {args.out}", file=sys.stderr)
    else:
        for r in rows:
            print(f"{r.get('audio', r.get('ref'))}\t{r['text']}")
    return 0


def register(sub: Subparsers) -> None:
    """Add ``transcribe``."""
    s = sub.add_parser("transcribe", help="transcribe audio (or a manifest, with WER) with a Whisper model + adapter")
    s.add_argument("files", nargs="+", help="audio files, or one .jsonl manifest (then WER is printed)")
    s.add_argument("--model", required=True, help="openai-whisper .pt or our Whisper .safetensors")
    s.add_argument("--adapter", default=None, help="an adapter .safetensors trained on that model (merged on load)")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--beam-size", type=int, default=None)
    s.add_argument("--limit", type=int, default=None, help="first N items only")
    s.add_argument("--device", default=None)
    s.add_argument("--out", default=None, help="write JSONL instead of printing")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_transcribe)
