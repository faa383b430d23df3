"""Initialisation helpers."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


@torch.no_grad()
def data_dependent_init(module: nn.Module, run: Callable[[], object]) -> None:
    """Weight-norm style data-dependent initialisation (Salimans & Kingma, 2016): conv by conv, in order, rescale
    the weight (the weight-norm gain ``g`` when parametrised) and shift the bias so that the conv's output on the
    batch that ``run()`` feeds has zero mean and unit standard deviation per channel.

    Why: with PyTorch's default init every SEANet conv shrinks its input's variance about threefold, so a fresh
    encoder's latents vary by ~1e-3 over time; the decoder then learns the average spectrum and ignores them (a
    measured collapse on CPU-size batches). After this init the latents carry the input from the first step.
    """
    for conv in [m for m in module.modules() if isinstance(m, nn.Conv1d)]:
        stats: dict[str, torch.Tensor] = {}

        def hook(_mod, _inp, out, stats=stats):
            stats["mean"] = out.mean(dim=(0, 2))
            stats["std"] = out.std(dim=(0, 2)).clamp_min(1e-8)

        handle = conv.register_forward_hook(hook)
        run()
        handle.remove()
        scale = stats["std"][:, None, None]
        if hasattr(conv, "parametrizations") and "weight" in conv.parametrizations:
            conv.parametrizations.weight.original0.div_(scale)
        else:
            conv.weight.div_(scale)
        if conv.bias is not None:
            conv.bias.sub_(stats["mean"]).div_(stats["std"])
