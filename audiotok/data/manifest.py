"""JSONL manifests: one utterance per line, optionally gzip-compressed.

Fields: ``id``, ``audio`` (path, relative paths resolve against the manifest's folder), ``duration`` (s),
``sample_rate``, ``text``, ``speaker``, ``language``, optional ``start``/``end`` (s, for segments of a longer
file) and a free ``extra`` dict. Reading is lazy (:func:`iter_manifest`) and every error names the file and line.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from audiotok.utils import atomic_path


class ManifestError(ValueError):
    """A manifest line that is not a valid utterance; the message names the file and line."""


@dataclass
class Utterance:
    """One manifest entry."""

    id: str
    audio: str
    duration: float
    sample_rate: int | None = None
    text: str | None = None
    speaker: str | None = None
    language: str | None = None
    start: float | None = None
    end: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None and not (k == "extra" and not v)}

    @classmethod
    def from_dict(cls, d: dict) -> Utterance:
        """Validate and build; raises ``ValueError`` with the reason."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown field(s) {unknown} (put free data under 'extra')")
        for key in ("id", "audio", "duration"):
            if key not in d:
                raise ValueError(f"missing required field '{key}'")
        if not isinstance(d["id"], str) or not d["id"]:
            raise ValueError("'id' must be a non-empty string")
        if not isinstance(d["audio"], str) or not d["audio"]:
            raise ValueError("'audio' must be a non-empty path string")
        for key in ("duration", "start", "end"):
            v = d.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
                raise ValueError(f"'{key}' must be a non-negative number, got {v!r}")
        if d.get("start") is not None and d.get("end") is not None and d["end"] <= d["start"]:
            raise ValueError(f"'end' ({d['end']}) must be after 'start' ({d['start']})")
        sr = d.get("sample_rate")
        if sr is not None and (isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0):
            raise ValueError(f"'sample_rate' must be a positive integer, got {sr!r}")
        for key in ("text", "speaker", "language"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise ValueError(f"'{key}' must be a string")
        if not isinstance(d.get("extra", {}), dict):
            raise ValueError("'extra' must be an object")
        return cls(**{**d, "duration": float(d["duration"]), "extra": dict(d.get("extra") or {})})


def _open_text(path: Path, mode: str) -> io.TextIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def iter_manifest(path: str | os.PathLike, resolve_paths: bool = True) -> Iterator[Utterance]:
    """Yield the utterances of a JSONL(.gz) manifest lazily, validating each line.

    Blank lines are skipped. With ``resolve_paths``, relative ``audio`` paths are made absolute against the
    manifest's folder.

    Raises:
        ManifestError: naming ``path:line`` and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    base = path.resolve().parent
    seen: set[str] = set()
    with _open_text(path, "r") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}:{lineno}: invalid JSON ({err.msg} at column {err.colno})") from None
            try:
                utt = Utterance.from_dict(d)
            except ValueError as err:
                raise ManifestError(f"{path}:{lineno}: {err}") from None
            if utt.id in seen:
                raise ManifestError(f"{path}:{lineno}: duplicate id {utt.id!r}")
            seen.add(utt.id)
            if resolve_paths and not os.path.isabs(utt.audio):
                utt.audio = str(base / utt.audio)
            yield utt


def read_manifest(path: str | os.PathLike, resolve_paths: bool = True) -> list[Utterance]:
    """All utterances of a manifest as a list (see :func:`iter_manifest`)."""
    return list(iter_manifest(path, resolve_paths))


def even_share(utts: list[Utterance], limit: int | None, min_per_speaker: int = 1) -> list[Utterance]:
    """About ``limit`` utterances as an even share of every speaker: the first ``ceil(limit / speakers)`` (at least
    ``min_per_speaker``) of each, in manifest order; a plain ``[:limit]`` of a manifest sorted by speaker would keep
    only its first voices. ``limit=None``: all of them."""
    if limit is None:
        return list(utts)
    by_speaker: dict[str, list[Utterance]] = {}
    for u in utts:
        by_speaker.setdefault(u.speaker or "", []).append(u)
    per = max(min_per_speaker, -(-limit // max(len(by_speaker), 1)))
    keep = {id(u) for group in by_speaker.values() for u in group[:per]}
    return [u for u in utts if id(u) in keep]


def write_manifest(
    path: str | os.PathLike, utterances: Iterable[Utterance | dict], relative_to: str | None = None
) -> int:
    """Write utterances as JSONL (gzip when ``path`` ends in ``.gz``), atomically. Returns the line count.

    With ``relative_to`` (a folder), audio paths below it are written relative to it.
    """
    n = 0
    with atomic_path(path) as tmp, _open_text(tmp, "w") as f:
        for u in utterances:
            d = u.to_dict() if isinstance(u, Utterance) else Utterance.from_dict(u).to_dict()
            if relative_to is not None:
                rel = os.path.relpath(d["audio"], relative_to)
                if not rel.startswith(".."):
                    d["audio"] = rel
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
            n += 1
    return n


def manifest_summary(utterances: Iterable[Utterance]) -> dict:
    """Counts, hours and speakers of a set of utterances."""
    n, seconds, speakers, with_text = 0, 0.0, set(), 0
    durations = []
    for u in utterances:
        n += 1
        seconds += u.duration
        durations.append(u.duration)
        with_text += u.text is not None
        if u.speaker is not None:
            speakers.add(u.speaker)
    durations.sort()
    return {
        "utterances": n,
        "hours": seconds / 3600.0,
        "speakers": len(speakers),
        "with_text": with_text,
        "min_duration": durations[0] if durations else 0.0,
        "median_duration": durations[len(durations) // 2] if durations else 0.0,
        "max_duration": durations[-1] if durations else 0.0,
    }
