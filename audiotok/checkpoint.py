"""Self-describing checkpoints: one ``.safetensors`` file whose header holds ``model_type``, the config as JSON
and a ``format_version``; loading rebuilds the model from that config and loads the weights strictly.

Models in the suite have a ``config`` dataclass attribute and class attributes ``model_type`` and ``config_class``; the map from
``model_type`` to class, bundled names and the loader by name are in :mod:`audiotok.registry`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from audiotok.config import from_dict, to_dict
from audiotok.utils import atomic_path

FORMAT_VERSION = "1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: unknown version or type, or weights that do not fit."""


def bundle(
    src: str | os.PathLike,
    name: str,
    dtype: torch.dtype = torch.float16,
    root: Path | None = None,
    filename: str = "model.safetensors",
    share_with: str | None = None,
) -> Path:
    """Install the safetensors checkpoint ``src`` as the bundled default ``name``: floating-point tensors cast to
    ``dtype``, header metadata kept, written to ``<root>/<name>/<filename>`` (``model.safetensors`` loads by name
    afterwards).

    A large matrix that is mostly zero rows (a character Whisper's 51,865-row token embedding keeps 77) is stored
    as its non-zero rows plus their indices (``<name>.rows``, header ``compact_rows``). ``share_with``: another file
    of the same folder (e.g. the tokenizer that holds the lower half of this ASR model); every tensor equal to one of
    its tensors is stored only there (header ``shared_tensors``: key -> its key). :func:`load_state` restores both
    exactly."""
    from safetensors.torch import load_file

    meta = read_metadata(src)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_file(str(src)).items()}
    if root is None:
        from audiotok.registry import ASSETS as root
    dst = Path(root) / name / filename
    if share_with:
        other = load_file(str(dst.parent / share_with))
        shared = {}
        for key, v in list(state.items()):
            match = next(
                (k for k, o in other.items() if o.shape == v.shape and o.dtype == v.dtype and torch.equal(o, v)), None
            )
            if match is not None:
                shared[key] = match
                del state[key]
        if shared:
            meta = {**meta, "shared_tensors": json.dumps({"file": share_with, "keys": shared})}
    compact = {}
    for key, v in list(state.items()):
        if v.is_floating_point() and v.dim() == 2 and v.numel() >= 1 << 20:
            rows = v.any(dim=1).nonzero().squeeze(1)
            if len(rows) < v.shape[0] // 2:
                state[key], state[key + ".rows"], compact[key] = v[rows], rows, v.shape[0]
    if compact:
        meta = {**meta, "compact_rows": json.dumps(compact)}
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=meta)
    return dst


def load_state(path: str | os.PathLike, meta: dict[str, str] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors checkpoint, with what :func:`bundle` compacted restored (zero rows, tensors
    stored in a sibling file). ``meta``: its header metadata when the caller has already read it."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    meta = read_metadata(path) if meta is None else meta
    for key, n_rows in json.loads(meta.get("compact_rows", "{}")).items():
        rows, kept = state.pop(key + ".rows"), state[key]
        state[key] = kept.new_zeros((n_rows, *kept.shape[1:])).index_copy_(0, rows, kept)
    if "shared_tensors" in meta:
        shared = json.loads(meta["shared_tensors"])
        other = Path(path).parent / shared["file"]
        if not other.is_file():
            raise CheckpointError(f"{path}: its shared tensors live in {other}, which is missing")
        other_state = load_file(str(other))
        state.update({key: other_state[k].clone() for key, k in shared["keys"].items()})
    return state


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header metadata of a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({err})") from None


def save_model(
    model: nn.Module, path: str | os.PathLike, dtype: torch.dtype | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s state_dict (optionally cast to ``dtype``) with its type and config in the header."""
    state = {
        k: v.detach().to(dtype if dtype and v.is_floating_point() else v.dtype).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    meta = {
        "format_version": FORMAT_VERSION,
        "model_type": type(model).model_type,
        "config": json.dumps(to_dict(model.config)),
    }
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra or {}).items()})
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def load_model(
    path: str | os.PathLike,
    cls: type[nn.Module] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Rebuild a model from a checkpoint written by :func:`save_model` (weights cast to ``dtype``)."""
    meta = read_metadata(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported format_version {meta.get('format_version')!r}")
    if cls is None:
        from audiotok.registry import model_class

        cls = model_class(meta.get("model_type", ""))
    if getattr(cls, "model_type", None) != meta.get("model_type"):
        raise CheckpointError(f"{path}: holds a {meta.get('model_type')!r}, not a {cls.model_type!r}")
    model = cls(from_dict(cls.config_class, json.loads(meta["config"])))
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_state(path, meta).items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit {cls.__name__}: {err}") from None
    return model.to(device).eval()
