"""The ``audiotok`` command: a thin argparse adapter over importable functions.

Each module of this package holds one group of subcommands, their arguments declared next to their handlers.
Subcommands import their heavy modules inside the handler, so ``audiotok --help`` is fast.
"""

from __future__ import annotations

import argparse
import logging
import sys

from audiotok.cli import asr, curation, data, demo, evaluate, tokens, tts
from audiotok.cli.common import print_table, torch_dtype, write_json

__all__ = ["build_parser", "main", "print_table", "torch_dtype", "write_json"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audiotok", description="Audio and speech tokenization suite.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)
    # the order of `audiotok --help`: data, demo, evaluation, curation, TTS, tokens, ASR, then export
    data.register(sub)
    demo.register(sub)
    evaluate.register(sub)
    curation.register(sub)
    tts.register(sub)
    tokens.register(sub)
    asr.register(sub)
    tokens.register_export(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from audiotok.audio import AudioError
    from audiotok.checkpoint import CheckpointError
    from audiotok.data.manifest import ManifestError
    from audiotok.tokens import TokenFileError

    try:
        return args.func(args)
    except (
        AudioError,
        ManifestError,
        CheckpointError,
        TokenFileError,
        FileNotFoundError,
        ValueError,
        RuntimeError,
    ) as err:
        print(f"audiotok {args.command}: error: {err}", file=sys.stderr)
        return 2
