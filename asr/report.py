"""Learned rank distributions of adapters: a per-layer x module-type table and a heat-map PNG."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from asr.adapters import TARGETS

_NAME = re.compile(r"(encoder|decoder)\.blocks\.(\d+)\.(.+)")


def rank_grid(ranks: dict[str, int]) -> tuple[list[str], list[str], np.ndarray]:
    """(row labels = module types, column labels = ``enc0``.. ``dec0``.., ranks with NaN where not adapted)."""
    cells = {}
    for name, r in ranks.items():
        part, layer, target = _NAME.fullmatch(name).groups()
        cells[(target, f"{part[:3]}{int(layer)}")] = r
    rows = [t for t in TARGETS if any(k[0] == t for k in cells)]
    layers = {c for _, c in cells}
    cols = sorted(layers, key=lambda c: (c[:3] != "enc", int(c[3:])))
    grid = np.full((len(rows), len(cols)), np.nan)
    for (t, c), r in cells.items():
        grid[rows.index(t), cols.index(c)] = r
    return rows, cols, grid


def rank_table(ranks: dict[str, int]) -> str:
    """Markdown table of ranks: module types as rows, layers as columns, with row and column totals."""
    rows, cols, grid = rank_grid(ranks)
    lines = ["| module | " + " | ".join(cols) + " | total |", "|---" * (len(cols) + 2) + "|"]
    for i, r in enumerate(rows):
        vals = ["" if np.isnan(v) else str(int(v)) for v in grid[i]]
        lines.append(f"| {r} | " + " | ".join(vals) + f" | {int(np.nansum(grid[i]))} |")
    lines.append("| total | " + " | ".join(str(int(v)) for v in np.nansum(grid, 0)) + f" | {int(np.nansum(grid))} |")
    return "\n".join(lines)


def rank_heatmap(panels: dict[str, dict[str, int]], path: str | os.PathLike, cell: int = 22) -> Path:
    """One heat-map per method (title -> ranks), stacked vertically, each scaled to its own maximum rank."""
    from PIL import Image, ImageDraw

    from audiotok.viz import colormap

    label_w, title_h = 140, 18
    blocks = []
    for title, ranks in panels.items():
        rows, cols, grid = rank_grid(ranks)
        vmax = max(np.nanmax(grid), 1)
        img = Image.new("RGB", (label_w + cell * len(cols) + 4, title_h * 2 + cell * len(rows) + 6), "white")
        d = ImageDraw.Draw(img)
        d.text((4, 2), f"{title} (max rank {int(vmax)})", fill="black")
        for j, c in enumerate(cols):
            d.text((label_w + j * cell + 2, title_h), c[0] + c[3:], fill="black")  # e0.., d0..
        for i, r in enumerate(rows):
            y = title_h * 2 + i * cell
            d.text((4, y + 5), r, fill="black")
            for j in range(len(cols)):
                x0 = label_w + j * cell
                if np.isnan(grid[i, j]):
                    d.rectangle([x0, y, x0 + cell - 2, y + cell - 2], fill=(230, 230, 230))
                    continue
                rgb = tuple(int(v) for v in colormap(np.array(grid[i, j] / vmax)))
                d.rectangle([x0, y, x0 + cell - 2, y + cell - 2], fill=rgb)
                d.text((x0 + 4, y + 5), str(int(grid[i, j])), fill="white" if grid[i, j] < 0.6 * vmax else "black")
        blocks.append(img)
    out = Image.new("RGB", (max(b.width for b in blocks), sum(b.height for b in blocks)), "white")
    y = 0
    for b in blocks:
        out.paste(b, (0, y))
        y += b.height
    path = Path(path)
    out.save(path)
    return path
