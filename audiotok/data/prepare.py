"""Build manifests from common corpus layouts. Durations come from file headers, not from decoding.

Layouts:
  * ``folder``: any tree of audio files, with optional side-car transcripts ``x.normalized.txt`` (LibriTTS),
    ``x.txt`` or ``x.lab`` next to ``x.wav``; the speaker is the first folder under the root (None when flat).
  * ``ljspeech``: ``metadata.csv`` (``id|text|normalized text``) and ``wavs/<id>.wav``; one speaker.
  * ``librispeech``: ``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` with ``<utt> TEXT`` lines and
    ``<utt>.flac`` beside it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from audiotok import audio
from audiotok.audio import AUDIO_EXTENSIONS, AudioError
from audiotok.data.manifest import Utterance

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "folder", "ljspeech", "librispeech")
SIDECAR_SUFFIXES = (".normalized.txt", ".txt", ".lab")


@dataclass
class PrepareReport:
    """What prepare found: kept utterances and the files it could not use (path -> reason)."""

    utterances: list[Utterance] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def detect_layout(root: str | os.PathLike) -> str:
    """Guess the layout of a corpus folder."""
    root = Path(root)
    if (root / "metadata.csv").is_file() and (root / "wavs").is_dir():
        return "ljspeech"
    if next(root.glob("*/*/*.trans.txt"), None) is not None:
        return "librispeech"
    return "folder"


def find_audio(root: str | os.PathLike) -> list[Path]:
    """Audio files below ``root`` (recursive, by extension), sorted."""
    root = Path(root)
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )


def read_sidecar(path: Path) -> str | None:
    """The transcript next to an audio file, if any (first side-car suffix found wins)."""
    stem = path.with_suffix("")
    for suffix in SIDECAR_SUFFIXES:
        candidate = stem.parent / (stem.name + suffix)
        if candidate.is_file():
            return " ".join(candidate.read_text(encoding="utf-8", errors="replace").split())
    return None


def _folder_items(root: Path) -> Iterator[tuple[str, Path, str | None, str | None]]:
    for path in find_audio(root):
        rel = path.relative_to(root)
        speaker = rel.parts[0] if len(rel.parts) > 1 else None
        utt_id = str(rel.with_suffix("")).replace(os.sep, "/")
        yield utt_id, path, read_sidecar(path), speaker


def _ljspeech_items(root: Path) -> Iterator[tuple[str, Path, str | None, str | None]]:
    with open(root / "metadata.csv", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.rstrip("\n").split("|")
            if len(parts) < 2:
                raise ValueError(f"{root / 'metadata.csv'}:{lineno}: expected 'id|text[|normalized]'")
            text = parts[2] if len(parts) > 2 and parts[2] else parts[1]
            yield parts[0], root / "wavs" / f"{parts[0]}.wav", text, "LJ"


def _librispeech_items(root: Path) -> Iterator[tuple[str, Path, str | None, str | None]]:
    for trans in sorted(root.rglob("*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            utt_id, _, text = line.partition(" ")
            audio_path = next(
                (
                    trans.parent / f"{utt_id}{ext}"
                    for ext in (".flac", ".wav")
                    if (trans.parent / f"{utt_id}{ext}").is_file()
                ),
                trans.parent / f"{utt_id}.flac",
            )
            yield utt_id, audio_path, text.strip(), utt_id.split("-")[0]


def prepare(
    root: str | os.PathLike, layout: str = "auto", language: str | None = None, progress: bool = True
) -> PrepareReport:
    """Index a corpus folder; unreadable audio is reported in ``failed``, not raised."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "auto":
        layout = detect_layout(root)
    items = {"folder": _folder_items, "ljspeech": _ljspeech_items, "librispeech": _librispeech_items}[layout](root)
    report = PrepareReport()
    for utt_id, path, text, speaker in tqdm(items, desc=f"prepare ({layout})", unit="file", disable=not progress):
        try:
            header = audio.info(path)
        except AudioError as err:
            report.failed[str(path)] = err.reason
            continue
        if header.n_frames == 0:
            report.failed[str(path)] = "audio has zero samples"
            continue
        report.utterances.append(
            Utterance(
                id=utt_id,
                audio=str(path),
                duration=header.duration,
                sample_rate=header.sample_rate,
                text=text,
                speaker=speaker,
                language=language,
            )
        )
    return report
