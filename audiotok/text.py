"""The suite's one English TTS text front end: numbers to words, symbols out, plain ASCII, single spaces.

Used by the synthetic-corpus generator (so the engines and the transcripts agree on what is said) and by the
TTS. WER uses Whisper's ``EnglishTextNormalizer`` instead (see ``audiotok.whisper``), which is a scoring
normaliser, not a front end.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}

_ABBREVIATIONS = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miss",
    "dr": "doctor",
    "st": "saint",
    "jr": "junior",
    "sr": "senior",
    "prof": "professor",
    "capt": "captain",
    "gen": "general",
    "lt": "lieutenant",
    "col": "colonel",
    "vs": "versus",
    "etc": "et cetera",
    "no": "number",
    "mt": "mount",
    "ft": "fort",
}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number "}


def number_to_words(n: int) -> str:
    """Cardinal English words for a non-negative integer: ``1984 -> "one thousand nine hundred eighty four"``."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            words = number_to_words(head) + " " + name
            return words if rest == 0 else words + " " + number_to_words(rest)
    raise AssertionError("unreachable")


def ordinal_to_words(n: int) -> str:
    """``21 -> "twenty first"``."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_to_words(n: int) -> str:
    """Years read in pairs: ``1984 -> "nineteen eighty four"``, ``2005 -> "two thousand five"``."""
    if 2000 <= n <= 2009 or n % 1000 == 0 or not 1100 <= n <= 2099:
        return number_to_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return number_to_words(high) + " hundred"
    return number_to_words(high) + (" oh " if low < 10 else " ") + number_to_words(low)


def _expand_number(m: re.Match) -> str:
    text = m.group(0)
    currency = text[0] == "$"
    if currency:
        text = text[1:]
    text = text.replace(",", "")
    ordinal = re.match(r"^(\d+)(st|nd|rd|th)$", text, flags=re.IGNORECASE)
    if ordinal:
        return " " + ordinal_to_words(int(ordinal.group(1))) + " "
    if "." in text:
        whole, frac = text.split(".", 1)
        words = number_to_words(int(whole or 0))
        if currency:
            cents = int((frac + "00")[:2])
            out = words + " dollars" + (f" and {number_to_words(cents)} cents" if cents else "")
            return " " + out + " "
        return " " + words + " point " + " ".join(_ONES[int(d)] for d in frac) + " "
    n = int(text)
    if currency:
        return " " + number_to_words(n) + (" dollar" if n == 1 else " dollars") + " "
    if 1100 <= n <= 2099 and len(text) == 4:
        return " " + year_to_words(n) + " "
    return " " + number_to_words(n) + " "


_NUMBER_RE = re.compile(r"\$?\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th)?", flags=re.IGNORECASE)
_ABBREV_RE = re.compile(r"\b(" + "|".join(_ABBREVIATIONS) + r")\.", flags=re.IGNORECASE)


def normalize_text(text: str) -> str:
    """Normalise English text for speech: ASCII, numbers/abbreviations/symbols spelled out, no other symbols.

    Keeps letters, apostrophes inside words, and ``. , ? ! -`` as prosody marks; collapses white space.
    """
    text = unicodedata.normalize("NFKD", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = text.encode("ascii", "ignore").decode()
    text = _ABBREV_RE.sub(lambda m: _ABBREVIATIONS[m.group(1).lower()], text)
    text = _NUMBER_RE.sub(_expand_number, text)
    for sym, words in _SYMBOLS.items():
        text = text.replace(sym, words)
    text = re.sub(r"[;:]", ",", text)
    text = re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])", " ", text)  # quotes, but not apostrophes in words
    text = re.sub(r"[^A-Za-z'.,?!\- ]+", " ", text)
    text = re.sub(r"\s*-+\s*", lambda m: "-" if m.group(0) == "-" else " ", text)
    text = re.sub(r"\s+([.,?!])", r"\1", text)
    text = re.sub(r"([.,?!])[.,?!]+", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip(" ,-")
    return text


def word_count(text: str) -> int:
    return len(re.findall(r"[A-Za-z']+", text))
