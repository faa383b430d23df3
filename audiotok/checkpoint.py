"""Self-describing checkpoints: one ``.safetensors`` file whose header holds ``model_type``, the config as JSON
and a ``format_version``; loading rebuilds the model from that config and loads the weights strictly.

Models in the suite have a ``config`` dataclass attribute and class attributes ``model_type`` and ``config_class``; the map from
``model_type`` to class, bundled names and the loader by name are in :mod:`audiotok.registry`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
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
    meta = read_metadata(path) if meta is None else meta
    state = _load_tensors(path)
    for key, n_rows in _header_json(path, meta, "compact_rows").items():
        rows, kept = state.pop(key + ".rows", None), state.get(key)
        if rows is None or kept is None or rows.dim() != 1 or rows.is_floating_point() or len(rows) != len(kept):
            raise CheckpointError(f"{path}: compact_rows names {key!r}, but its kept rows and their indices differ")
        if not isinstance(n_rows, int) or (len(rows) and not (0 <= int(rows.min()) and int(rows.max()) < n_rows)):
            raise CheckpointError(f"{path}: compact_rows of {key!r}: {n_rows!r} rows do not hold its row indices")
        state[key] = kept.new_zeros((n_rows, *kept.shape[1:])).index_copy_(0, rows.long(), kept)
    if "shared_tensors" in meta:
        other, keys = _shared_file(path, meta)
        other_state = _load_tensors(other)
        missing = sorted(k for k in keys.values() if k not in other_state)
        if missing:
            raise CheckpointError(f"{path}: its shared tensors {missing[:3]} are not in {other}")
        state.update({key: other_state[k].clone() for key, k in keys.items()})
    return state


def _load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({err})") from None


def _header_json(path: str | os.PathLike, meta: dict[str, str], field: str) -> dict:
    """A JSON object of the header (``{}`` when absent)."""
    try:
        value = json.loads(meta.get(field, "{}"))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: header field {field!r} is not JSON ({err})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: header field {field!r} is not a JSON object")
    return value


def _shared_file(path: str | os.PathLike, meta: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """The sibling file that holds a bundled checkpoint's shared tensors, and its key map (ours -> its)."""
    shared = _header_json(path, meta, "shared_tensors")
    name, keys = shared.get("file"), shared.get("keys")
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise CheckpointError(f"{path}: shared_tensors must name a file in the same folder, not {name!r}")
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise CheckpointError(f"{path}: shared_tensors has no key map")
    other = Path(path).parent / name
    if not other.is_file():
        raise CheckpointError(f"{path}: its shared tensors live in {other}, which is missing")
    return other, keys


def declared_shapes(path: str | os.PathLike, meta: dict[str, str]) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor :func:`load_state` would return, from the headers alone (nothing is read or
    allocated): compacted rows at their full count, shared tensors as the sibling file declares them."""

    def header_shapes(file: str | os.PathLike) -> dict[str, tuple[int, ...]]:
        try:
            with safe_open(str(file), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(f"{file}: not a safetensors checkpoint ({err})") from None

    shapes = header_shapes(path)
    for key, n_rows in _header_json(path, meta, "compact_rows").items():
        shapes.pop(key + ".rows", None)
        if key in shapes and shapes[key]:
            shapes[key] = (n_rows, *shapes[key][1:])
    if "shared_tensors" in meta:
        other, keys = _shared_file(path, meta)
        theirs = header_shapes(other)
        shapes.update({key: theirs.get(k, ()) for key, k in keys.items()})
    return shapes


def skeleton_shapes(
    path: str | os.PathLike, what: str, build: Callable[[], nn.Module], n_tensors: int
) -> dict[str, tuple] | None:
    """The state-dict shapes of the model ``build()`` makes from ``path``'s config, built on the meta device: no
    memory is allocated, so a config from a file cannot ask for terabytes, and the build stops once it has made
    far more modules and tensors than the file's ``n_tensors`` (a layer count of 10^9 is not a hang). None when
    the model has an op that cannot run there (the strict load checks the weights then)."""
    import threading

    from torch.nn.modules import module as nn_module

    budget, owner = 16 * n_tensors + 1024, threading.get_ident()

    class TooLarge(Exception):
        pass

    def count(*_) -> None:
        nonlocal budget
        if threading.get_ident() == owner:
            budget -= 1
            if budget < 0:
                raise TooLarge

    hooks = [
        nn_module.register_module_module_registration_hook(count),
        nn_module.register_module_parameter_registration_hook(count),
        nn_module.register_module_buffer_registration_hook(count),
    ]
    try:
        with torch.device("meta"):
            model = build()
    except TooLarge:
        raise CheckpointError(f"{path}: its config builds {what} far larger than its {n_tensors} tensors") from None
    except NotImplementedError:  # an op without a meta kernel, e.g. openai-whisper's sparse alignment heads
        return None
    except Exception as err:  # an impossible or negative size: building it for real would fail after allocating
        raise CheckpointError(f"{path}: its config does not build {what} ({err})") from None
    finally:
        for hook in hooks:
            hook.remove()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_fits(path: str | os.PathLike, what: str, expected: dict[str, tuple], found: dict[str, tuple]) -> None:
    """Raise :class:`CheckpointError` unless ``found`` has exactly ``expected``'s tensors and shapes."""
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    wrong = [
        f"{k} {list(found[k])} (expected {list(expected[k])})"
        for k in expected
        if k in found and tuple(found[k]) != tuple(expected[k])
    ]
    if missing or unexpected or wrong:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else ""]
        parts.append(f"shapes {', '.join(wrong[:3])}" if wrong else "")
        raise CheckpointError(f"{path}: weights do not fit {what}: " + "; ".join(p for p in parts if p))


def real_tensors(state: object, path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """``state`` (what a torch checkpoint holds under its weights key) if it is a dict of real tensors, else a
    :class:`CheckpointError` saying the file is not ``what``."""
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) and not v.is_complex() for v in state.values()
    ):
        raise CheckpointError(f"{path}: not {what} (no state dict of real tensors)")
    return state


def load_pickled(path: str | os.PathLike, map_location: str | torch.device = "cpu", numpy_arrays: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors, containers and plain values, never code (a pickle that
    names any other callable is refused). ``numpy_arrays``: also numpy arrays, as training states hold in their
    RNG. Any failure is a :class:`CheckpointError` naming the file."""
    import numpy as np

    allowed = []
    if numpy_arrays:  # plain numeric arrays: an array's items are unpickled by the same restricted unpickler
        core = np._core if hasattr(np, "_core") else np.core
        codes = np.typecodes["AllInteger"] + np.typecodes["AllFloat"] + "?"
        allowed = [core.multiarray._reconstruct, np.ndarray, np.dtype, *{type(np.dtype(c)) for c in codes}]
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as err:  # a zip, a pickle or a storage that does not read; or a refused global
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if refused:
            raise CheckpointError(f"{path}: refused: its pickle calls {refused[1]} (only weights are loaded)") from None
        # torch's weights-only message opens with advice to load unsafely: keep only what went wrong
        text = str(err).split("WeightsUnpickler error:")[-1].strip()
        why = (text.splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({why})") from None


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
    try:
        config = from_dict(cls.config_class, json.loads(meta["config"]))
    except (KeyError, TypeError, ValueError) as err:  # ConfigError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{path}: no valid {cls.__name__} config in the header ({err})") from None
    # the config comes from the file: check it against the weights before it allocates anything
    declared = declared_shapes(path, meta)
    expected = skeleton_shapes(path, f"a {cls.__name__}", lambda: cls(config), len(declared))
    if expected is not None:
        check_fits(path, cls.__name__, expected, declared)
    try:
        model = cls(config)
    except (ValueError, TypeError, RuntimeError, ArithmeticError) as err:
        raise CheckpointError(f"{path}: its config does not build a {cls.__name__} ({err})") from None
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_state(path, meta).items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit {cls.__name__}: {err}") from None
    return model.to(device).eval()
