"""The ``curate`` command (alias ``pipeline``): found audio (raw recordings) -> segmented, twice-transcribed, filtered, tokenized data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from audiotok.cli.common import Subparsers


def cmd_curate(args: argparse.Namespace) -> int:
    from audiotok.config import load_config
    from audiotok.curation.run import STAGES, CurationConfig, run_curation
    from audiotok.train import cleanup_distributed, setup_distributed

    overrides = [f"device={args.device}"] + args.set
    cfg = (
        load_config(CurationConfig, args.config, overrides)
        if args.config
        else load_config(CurationConfig, None, overrides)
    )
    info = setup_distributed(args.device)
    stages = args.stage or STAGES
    report = run_curation(args.source, args.output, cfg, stages, info.rank, info.world_size)
    if report is not None:
        print((Path(args.output) / "report.md").read_text())
    cleanup_distributed()
    return 0


def register(sub: Subparsers) -> None:
    """Add ``curate`` (alias ``pipeline``, its old name)."""
    s = sub.add_parser(
        "curate", aliases=["pipeline"], help="found audio -> segmented, twice-transcribed, filtered, tokenized data"
    )
    s.add_argument("source", help="a folder of recordings or a manifest")
    s.add_argument("-o", "--output", required=True)
    s.add_argument(
        "--stage",
        action="append",
        choices=("segment", "transcribe", "tokenize", "report"),
        help="run only these stages (repeatable; default: all, in order)",
    )
    s.add_argument("--config", default=None, help="YAML of CurationConfig (vad, asr_a, asr_b, threshold, ...)")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set asr_b=pocketsphinx --set vad.max_duration=20",
    )
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_curate)
