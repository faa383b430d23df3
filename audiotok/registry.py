"""The one model registry: every model type, every bundled name and its layout, and one loader.

``load(name_or_path, kind=None, device=..., revision=None, cache_dir=None)`` turns what a user types into a model.
What it is comes from a list of small resolvers tried in order (:data:`RESOLVERS`), each ``(Query) -> Resolved |
None`` (None: not mine; :class:`ModelNotFound`: mine, but it cannot be had — the message says why and what to do):

1. a bundled name (:data:`BUNDLED`: ``codec``, ``semantic``, ``tts``, ...), files under ``audiotok/assets/``;
2. a local file or folder: our safetensors (its header's ``model_type``), a TTS folder (``pipeline.json``), an HF LM
   folder of the TTS, a folder holding ``model.safetensors``, an official WavTokenizer ``.ckpt`` (its YAML: passed,
   beside it with the same stem, or built in for a released file), an S3Tokenizer ``.onnx``, an openai-whisper ``.pt``;
3. a Whisper name (``tiny.en``, ``base``, ...: :mod:`audiotok.whisper.pretrained`, packaged copies included);
4. an official S3Tokenizer name (``speech_tokenizer_v1``, ``speech_tokenizer_v1_25hz``, ``speech_tokenizer_v2_25hz``),
   from the ``s3tokenizer`` package's cache or its download (:mod:`audiotok.hubs`);
5. a Hugging Face hub id ``org/name`` or ``org/name:file`` (``revision=``, ``cache_dir=``; :mod:`audiotok.hubs`).

Every class's ``from_pretrained(name_or_path=None, device=..., revision=None, cache_dir=None)`` is the one of
:class:`Pretrained`, which calls :func:`load` with the class's ``kind``; with no name it loads the kind's default
(:data:`DEFAULTS`). The model classes live in :data:`MODEL_TYPES` as ``"module:Class"`` strings, imported on use —
so the core imports neither ``tts`` nor ``asr``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiotok.checkpoint import CheckpointError, read_metadata

ASSETS = Path(__file__).resolve().parent / "assets"

# model_type (in a checkpoint header) -> "module:Class"
MODEL_TYPES: dict[str, str] = {
    "audiotok-codec": "audiotok.codec.model:Codec",
    "audiotok-s3": "audiotok.semantic.s3:SemanticTokenizer",
    "audiotok-s3-asr": "audiotok.semantic.supervised:SupervisedTokenizerASR",
    "audiotok-speaker": "audiotok.speaker:SpeakerEncoder",
    "audiotok-tts-flow": "tts.flow:FlowDecoder",
    "audiotok-tts-vocoder": "tts.vocoder:Vocoder",
    "audiotok-tts-lm": "tts.lm:TTSLM",
    "audiotok-tts": "tts.pipeline:TTS",
    "openai-whisper": "whisper.model:Whisper",
    "audiotok-whisper-adapter": "asr.adapters:Adapter",
}
# kind (what a caller asks for) -> the model_types that satisfy it
KINDS: dict[str, tuple[str, ...]] = {
    "codec": ("audiotok-codec",),
    "semantic": ("audiotok-s3",),
    "tokenizer": ("audiotok-codec", "audiotok-s3"),  # anything `audiotok encode` can use
    "semantic-asr": ("audiotok-s3-asr",),
    "speaker": ("audiotok-speaker",),
    "flow": ("audiotok-tts-flow",),
    "vocoder": ("audiotok-tts-vocoder",),
    "tts-lm": ("audiotok-tts-lm",),
    "tts": ("audiotok-tts",),
    "whisper": ("openai-whisper",),
    "adapter": ("audiotok-whisper-adapter",),
}


@dataclass(frozen=True)
class Bundled:
    """A bundled default: ``path`` relative to :data:`ASSETS` (a file, or a folder for the TTS)."""

    name: str
    model_type: str
    path: str
    about: str


BUNDLED: dict[str, Bundled] = {
    b.name: b
    for b in (
        Bundled("codec", "audiotok-codec", "codec/model.safetensors", "acoustic codec, 75 tokens/s at 24 kHz"),
        Bundled("codec-40", "audiotok-codec", "codec-40/model.safetensors", "acoustic codec, 40 tokens/s at 24 kHz"),
        Bundled("semantic", "audiotok-s3", "semantic/model.safetensors", "semantic tokenizer, 25 Hz"),
        Bundled("speaker", "audiotok-speaker", "speaker/model.safetensors", "speaker embedding (x-vector)"),
        Bundled("tts", "audiotok-tts", "tts", "token TTS (LM + flow + vocoder)"),
        Bundled("whisper-synth", "openai-whisper", "whisper-synth/model.safetensors", "Whisper trained here"),
        Bundled(
            "child-s2lora",
            "audiotok-whisper-adapter",
            "whisper-synth/child-s2lora.safetensors",
            "S2-LoRA adapter of whisper-synth (synthetic child voices)",
        ),
    )
}
# the model a class loads with no argument
DEFAULTS: dict[str, str] = {
    "codec": "codec",
    "tokenizer": "codec",
    "semantic": "semantic",
    "speaker": "speaker",
    "tts": "tts",
    "whisper": "whisper-synth",
}


class ModelNotFound(FileNotFoundError, CheckpointError):
    """Nothing could be loaded for a name; the message says what was tried and what to do (a
    ``FileNotFoundError`` and a :class:`~audiotok.checkpoint.CheckpointError`)."""


@dataclass(frozen=True)
class Query:
    """What a resolver is asked: the string the user typed, the kind wanted, and where hub files come from."""

    spec: str
    kind: str | None = None
    revision: str | None = None  # a hub branch, tag or commit
    cache_dir: str | None = None  # the hub cache (or the s3tokenizer cache, for its names)


@dataclass
class Resolved:
    """What a name or path is: a local ``path`` holding a model of ``model_type``; ``name`` identifies it (token
    files record it); ``options`` go to the loader (e.g. an official checkpoint's YAML)."""

    path: Path
    model_type: str
    name: str
    source: str
    options: dict[str, Any] = field(default_factory=dict)


def installed() -> list[Bundled]:
    """The bundled models present in this installation: the known ones (:data:`BUNDLED`) and any other
    ``assets/<name>/model.safetensors`` that ``audiotok bundle`` installed."""
    known = [b for b in BUNDLED.values() if (ASSETS / b.path).exists()]
    taken = {b.path for b in BUNDLED.values()}
    extra = [
        Bundled(p.parent.name, read_metadata(p).get("model_type", "?"), str(p.relative_to(ASSETS)), "installed here")
        for p in sorted(ASSETS.glob("*/model.safetensors"))
        if str(p.relative_to(ASSETS)) not in taken and p.parent.name not in BUNDLED
    ]
    return known + extra


def bundled_path(name: str) -> Path:
    """The file or folder of a bundled model (raises :class:`ModelNotFound` when it is not installed)."""
    entry = BUNDLED.get(name) or next((b for b in installed() if b.name == name), None)
    path = ASSETS / (entry.path if entry else f"{name}/model.safetensors")
    if not path.exists():
        raise ModelNotFound(f"the bundled model {name!r} is not installed ({path} is missing)")
    return path


def _from_bundled(q: Query) -> Resolved | None:
    spec = q.spec
    if len(Path(spec).parts) != 1:  # a bundled name wins over a local folder of that name (use ./NAME for it)
        return None
    entry = BUNDLED.get(spec) or next((b for b in installed() if b.name == spec), None)
    if entry is None:
        return None
    return Resolved(bundled_path(spec), entry.model_type, spec, f"bundled ({entry.path})")


def model_type_of(path: Path) -> str | None:
    """What a local file or folder holds, from its header or layout; None when it is none of our formats."""
    if path.is_dir():
        if (path / "pipeline.json").is_file():
            return "audiotok-tts"
        if (path / "audiotok_tts_lm.json").is_file():
            return "audiotok-tts-lm"
        if (path / "model.safetensors").is_file():
            return model_type_of(path / "model.safetensors")
        return None
    if path.suffix == ".safetensors":
        return read_metadata(path).get("model_type") or None
    if path.suffix == ".ckpt":
        return "audiotok-codec"  # an official WavTokenizer checkpoint (needs its YAML)
    if path.suffix == ".onnx":
        return "audiotok-s3"  # an official S3Tokenizer release
    if path.suffix == ".pt":
        return "openai-whisper"
    return None


def _from_path(q: Query) -> Resolved | None:
    path = Path(q.spec).expanduser()
    return resolve_path(path) if path.exists() else None


def resolve_path(path: Path) -> Resolved:
    """What an existing local file or folder holds (an official ``.ckpt`` with its config when one is found)."""
    model_type = model_type_of(path)
    if model_type is None and path.is_dir():
        raise ModelNotFound(
            f"{path}: not a model folder (no pipeline.json of a TTS, audiotok_tts_lm.json of its LM, or "
            "model.safetensors)"
        )
    if model_type is None:
        raise CheckpointError(f"{path}: not a model this suite reads (no model_type header, no known layout)")
    if path.is_dir() and model_type not in ("audiotok-tts", "audiotok-tts-lm"):
        path = path / "model.safetensors"
    options = {}
    if path.suffix == ".ckpt":  # its YAML: the one with the same stem beside it, or a known release's
        from audiotok.codec.official import pick_config

        config = pick_config(path.name, [p.name for p in path.parent.glob(f"{path.stem}.y*ml")])
        if config is not None:
            options["config"] = path.parent / config if isinstance(config, str) else config
    return Resolved(path, model_type, path.stem if path.is_file() else path.name, "local path", options)


def _from_whisper_name(q: Query) -> Resolved | None:
    if q.kind not in (None, "whisper"):
        return None
    import whisper

    if q.spec not in whisper.available_models():
        return None
    return Resolved(Path(q.spec), "openai-whisper", q.spec, "whisper name", {"whisper_name": q.spec})


def _from_s3_name(q: Query) -> Resolved | None:
    from audiotok.hubs import resolve_s3_name  # imports nothing heavy until a name matches

    return resolve_s3_name(q)


def _from_hub(q: Query) -> Resolved | None:
    from audiotok.hubs import resolve_hub

    return resolve_hub(q)


RESOLVERS: list[Callable[[Query], Resolved | None]] = [
    _from_bundled,
    _from_path,
    _from_whisper_name,
    _from_s3_name,
    _from_hub,
]


def resolve(
    name_or_path: str | os.PathLike | None,
    kind: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Resolved:
    """What ``name_or_path`` is (None: ``kind``'s default), through :data:`RESOLVERS`; checks it is a ``kind``.
    ``revision`` and ``cache_dir`` apply to hub ids (``cache_dir`` also to the s3tokenizer names' downloads)."""
    if name_or_path is None:
        if kind not in DEFAULTS:
            raise ValueError(f"a {kind or 'model'} needs a name or path (no default)")
        name_or_path = DEFAULTS[kind]
    q = Query(str(name_or_path), kind, revision, str(cache_dir) if cache_dir is not None else None)
    for resolver in RESOLVERS:
        found = resolver(q)
        if found is not None:
            if kind is not None and found.model_type not in KINDS[kind]:
                raise CheckpointError(f"{q.spec}: holds a {found.model_type!r}, not a {kind} model")
            if revision is not None and not found.source.startswith("hub"):
                raise ValueError(f"revision={revision!r} applies to hub ids; {q.spec!r} is a {found.source}")
            return found
    names = ", ".join(b.name for b in installed())
    raise ModelNotFound(
        f"{q.spec!r} is not a bundled model ({names}), not an existing file or folder"
        + (", nor a Whisper name" if kind in (None, "whisper") else "")
        + ", nor a hub id (org/name): pass a path, or see `audiotok models`"
    )


def model_class(model_type: str) -> type:
    if model_type not in MODEL_TYPES:
        raise CheckpointError(f"unknown model_type {model_type!r}; known: {sorted(MODEL_TYPES)}")
    module, _, name = MODEL_TYPES[model_type].partition(":")
    return getattr(importlib.import_module(module), name)


def load(
    name_or_path: str | os.PathLike | None = None,
    kind: str | None = None,
    device: str = "cpu",
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    **options,
):
    """Load a model: ``name_or_path`` through :func:`resolve`, then the class's own file reader
    (``cls.load_resolved(resolved, device, **options)`` where a class has one, else
    :func:`audiotok.checkpoint.load_model`; Whisper models through :func:`audiotok.whisper.load_whisper`).
    ``options`` that are not None override what the resolver found (e.g. a WavTokenizer ``config``)."""
    resolved = resolve(name_or_path, kind, revision, cache_dir)
    resolved.options.update({k: v for k, v in options.items() if v is not None})
    if resolved.model_type == "openai-whisper":
        from audiotok.whisper import load_whisper

        return load_whisper(resolved.options.get("whisper_name") or resolved.path, device=device)
    if resolved.model_type == "audiotok-whisper-adapter":
        raise CheckpointError(f"{name_or_path}: an adapter; load it onto its base with asr.load_adapted")
    cls = model_class(resolved.model_type)
    if hasattr(cls, "load_resolved"):
        return cls.load_resolved(resolved, device=device, **resolved.options)
    from audiotok.checkpoint import load_model

    return load_model(resolved.path, cls, device=device)


def load_tokenizer(
    name_or_path: str | None = None,
    device: str = "cpu",
    config: str | None = None,
    official: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
):
    """``(model, name)`` for ``--model`` of ``audiotok encode``/``decode``: anything :func:`resolve` takes that is a
    codec or a semantic tokenizer (default: the bundled codec), an official WavTokenizer ``.ckpt`` with its YAML
    ``config``, or an official S3Tokenizer state dict with ``official`` (e.g. ``speech_tokenizer_v2_25hz``). The
    name is what token files record as their tokenizer: a local path as typed, else the bundled or official name,
    the checkpoint's stem or the hub id."""
    if official is not None:
        from audiotok.semantic import SemanticTokenizer

        model = SemanticTokenizer.from_pretrained(name_or_path, device, revision, cache_dir, official=official)
        return model, official
    resolved = resolve(name_or_path, "tokenizer", revision, cache_dir)
    if config is not None and resolved.model_type == "audiotok-codec":
        resolved.options["config"] = config
    model = model_class(resolved.model_type).load_resolved(resolved, device=device, **resolved.options)
    typed = resolved.source == "local path" and resolved.path.suffix not in (".ckpt", ".onnx")
    return model, str(name_or_path if typed else resolved.name)


class Pretrained:
    """The one ``from_pretrained`` of every model class: a class sets ``registry_kind`` (a key of :data:`KINDS`)
    and gets everything :func:`load` resolves: bundled names, local files in our or the official formats, official
    names and hub ids."""

    registry_kind: str

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        device: str | Any = "cpu",
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        **options,
    ):
        """Load ``name_or_path`` (None: the kind's default) onto ``device``; ``revision``/``cache_dir`` for hub ids.

        Raises:
            ModelNotFound: nothing could be loaded; the message says what was tried and what to do.
        """
        return load(name_or_path, cls.registry_kind, device=device, revision=revision, cache_dir=cache_dir, **options)
