"""Helpers shared by the command modules: the table printer, JSON results, dtypes and the speakers option."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def print_table(rows: list[tuple[str, object]]) -> None:
    """Print ``key  value`` rows aligned on the longest key (floats to 4 significant digits)."""
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.4g}"
        print(f"  {k:<{width}}  {v}")


def report(result: dict, text: str, output: str | None) -> int:
    """Print a command's human-readable ``text``; write ``result`` as JSON to ``output`` when given. Returns 0."""
    print(text)
    if output:
        write_json(output, result)
        print(f"wrote {output}")
    return 0


def write_json(path: str | Path, obj: object) -> None:
    """Write a command's result as indented JSON, creating the parent folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=1))


def torch_dtype(name: str):
    """``fp32`` / ``fp16`` / ``bf16`` -> the torch dtype to save in (``None`` keeps fp32)."""
    import torch

    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def add_speakers(parser: argparse.ArgumentParser) -> None:
    """The ``--speakers`` option of the evaluation commands."""
    parser.add_argument(
        "--speakers",
        default=None,
        help="comma-separated voices to evaluate (e.g. the ones pocketsphinx understands: "
        "flite-awb,flite-rms,flite-slt,festival-kal,festival-slt-hts); default: all",
    )


def speakers(args: argparse.Namespace) -> list[str] | None:
    """The voices ``--speakers`` asked for, or ``None`` for all."""
    return args.speakers.split(",") if args.speakers else None
