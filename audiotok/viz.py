"""Small, dependency-free renderings for the demo: spectrograms and token sequences as RGB arrays."""

from __future__ import annotations

import numpy as np
import torch

# viridis at 6 stops (interpolated linearly)
_STOPS = np.array(
    [[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]], dtype=np.float64
)


def colormap(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB (..., 3)."""
    x = np.clip(np.nan_to_num(x), 0.0, 1.0) * (len(_STOPS) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_STOPS) - 2)
    frac = (x - lo)[..., None]
    return (_STOPS[lo] * (1 - frac) + _STOPS[lo + 1] * frac).astype(np.uint8)


def spectrogram_image(
    log_mel: torch.Tensor, height: int = 200, vmin: float | None = None, vmax: float | None = None
) -> np.ndarray:
    """(n_mels, T) log-mel -> (height, T, 3) image, low frequencies at the bottom."""
    x = log_mel.detach().float().cpu().numpy()
    vmin = np.percentile(x, 2) if vmin is None else vmin
    vmax = x.max() if vmax is None else vmax
    img = colormap((x - vmin) / max(vmax - vmin, 1e-6))[::-1]
    rows = np.linspace(0, img.shape[0] - 1, height).round().astype(int)
    return np.ascontiguousarray(img[rows])


def tokens_image(codes: torch.Tensor, codebook_size: int, height: int = 160, dot: int = 2) -> np.ndarray:
    """A code-id-over-time plot: (height, L * dot, 3), one dot per token."""
    c = codes.detach().cpu().numpy().reshape(-1)
    width = max(1, len(c) * dot)
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    ys = (height - 1 - (c / max(codebook_size - 1, 1)) * (height - 1)).round().astype(int)
    colors = colormap(np.linspace(0, 1, max(len(c), 1)))
    for i, y in enumerate(ys):
        img[max(0, y - 1) : y + 2, i * dot : (i + 1) * dot] = colors[i]
    return img
