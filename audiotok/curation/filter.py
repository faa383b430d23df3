"""Keep an utterance when two independent transcripts of it agree (TouchTTS's filter, no other models needed)."""

from __future__ import annotations

from rapidfuzz.distance import Levenshtein

from audiotok.whisper import normalize


def disagreement(a: str, b: str, unit: str = "char") -> float:
    """Symmetric error rate between two transcripts after Whisper's English normalisation: edit distance over
    characters (``unit="char"``, spaces removed) or words, divided by the longer length. 0 = identical."""
    if unit not in ("char", "word"):
        raise ValueError(f"unit must be 'char' or 'word', got {unit!r}")
    x, y = normalize(a), normalize(b)
    if unit == "char":
        x, y = list(x.replace(" ", "")), list(y.replace(" ", ""))
    else:
        x, y = x.split(), y.split()
    n = max(len(x), len(y))
    return Levenshtein.distance(x, y) / n if n else 0.0


def judge(a: str, b: str, threshold: float = 0.15, unit: str = "char") -> tuple[bool, str, float]:
    """(keep, reason, score): ``no_speech`` when either transcript is empty, ``disagree`` above ``threshold``."""
    if not normalize(a).strip() or not normalize(b).strip():
        return False, "no_speech", 1.0
    score = disagreement(a, b, unit)
    return (True, "kept", score) if score <= threshold else (False, "disagree", score)
