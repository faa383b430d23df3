"""Sentences from offline text that Debian packages ship: ``fortunes``/``fortunes-min`` and ``wordnet-base``.

All text goes through :func:`audiotok.text.normalize_text`. The list is sorted and de-duplicated, so it is the
same on every machine with the same packages; :func:`text_split` assigns each sentence to train/valid/test by a
stable hash of its text, so a held-out sentence can never appear in train, whatever the seed.
"""

from __future__ import annotations

import re
from pathlib import Path

from audiotok.text import normalize_text, word_count
from audiotok.utils import stable_hash

FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
# collections that are mostly IRC logs, code or pictures
_FORTUNE_DENYLIST = {"art", "ascii-art", "debian", "knghtbrd", "linuxcookie", "perl", "translate-me"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _keep(sentence: str, min_words: int, max_words: int) -> bool:
    n = word_count(sentence)
    if not min_words <= n <= max_words:
        return False
    if not re.match(r"^[A-Za-z]", sentence) or sentence.count("'") > 3:
        return False
    # chat-log debris: "WildTHing", "guys. so", "commit,PP"
    if re.search(r"[A-Za-z][A-Z]|[.?!] [a-z]|[,.?!][A-Za-z]", sentence):
        return False
    letters = re.sub(r"[^A-Za-z]", "", sentence)
    # shouting, acronyms and leftovers of formatting make poor speech
    return sum(c.isupper() for c in letters) <= max(3, len(letters) // 8)


def fortune_sentences(root: Path = FORTUNES_DIR) -> list[str]:
    """Sentences of the fortune cookie files (the ``off/`` collection is not used)."""
    out: list[str] = []
    if not root.is_dir():
        return out
    for path in sorted(p for p in root.iterdir() if p.is_file() and not p.suffix and p.name not in _FORTUNE_DENYLIST):
        text = path.read_text(encoding="latin-1")
        for entry in text.split("\n%\n"):
            lines = [ln for ln in entry.splitlines() if not ln.lstrip().startswith(("--", "-- ", "\t\t"))]
            if any(re.match(r"^\s*[A-Z][A-Za-z ]*:", ln) for ln in lines):  # dialogue/quotes with speaker tags
                continue
            out.extend(_SENTENCE_END.split(" ".join(ln.strip() for ln in lines)))
    return out


def wordnet_sentences(root: Path = WORDNET_DIR) -> list[str]:
    """Usage examples (the double-quoted parts of glosses) of WordNet's data files."""
    out: list[str] = []
    for part in ("noun", "verb", "adj", "adv"):
        path = root / f"data.{part}"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            out.extend(re.findall(r'"([^"]+)"', line.split("|", 1)[1]))
    return out


def load_sentences(min_words: int = 4, max_words: int = 20) -> list[str]:
    """Normalised, filtered, sorted unique sentences from every installed source."""
    raw = fortune_sentences() + wordnet_sentences()
    kept = set()
    for s in raw:
        s = normalize_text(s)
        if s and s[-1] not in ".?!":
            s += "."
        if _keep(s, min_words, max_words):
            kept.add(s[0].upper() + s[1:])
    if not kept:
        raise RuntimeError(
            "no sentences found: install Debian's fortunes, fortunes-min and wordnet-base (make setup does)"
        )
    return sorted(kept)


def text_split(sentence: str, valid_percent: int = 10, test_percent: int = 10) -> str:
    """``"train"``, ``"valid"`` or ``"test"`` for a sentence, from a stable hash of its lower-cased words."""
    key = " ".join(re.findall(r"[a-z']+", sentence.lower()))
    bucket = stable_hash("text-split", key) % 100
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + valid_percent:
        return "valid"
    return "train"
