"""The suite's one English TTS text front end: numbers to words, symbols out, plain ASCII, single spaces.

Used by the synthetic-corpus generator (so the engines and the transcripts agree on what is said) and by the
TTS. WER uses Whisper's ``EnglishTextNormalizer`` instead (see ``audiotok.whisper``), which is a scoring
normaliser, not a front end.

What :func:`normalize_text` spells out: cardinals (``1,000`` -> "one thousand", ``-5`` -> "minus five"), years
(``1984``, ``1990s``), ordinals (``21st``), decimals (``3.14`` -> "three point one four"), currency (``$5``,
``$3.50``, ``$0.99``, ``$5 million``, ``€``, ``£``, ``¥``), percentages, times (``3:30``, ``3:05 pm``, ``15:00``),
vulgar fractions (``½``), degrees (``°``/``°C``/``°F``), the symbols ``& % + = @ # ×`` and common abbreviations
(``Mr.``, ``Dr.``, ``e.g.``, ``No. 5``, dotted acronyms such as ``U.S.`` -> "U S"). Accents are stripped and the
Latin letters without an ASCII decomposition are transliterated (``ß`` -> "ss", ``ø`` -> "o"). Everything else
that is not ASCII — other scripts, emoji, control characters — is dropped silently here; the TTS warns about it
(:func:`unspeakable_characters` says which ones).
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
    "mt": "mount",
    "ft": "fort",
    "approx": "approximately",
    "dept": "department",
    "inc": "incorporated",
    "ltd": "limited",
    "ave": "avenue",
    "blvd": "boulevard",
}
# abbreviations that often end a sentence: their period is kept there (end of text, or a capital follows)
_SENTENCE_FINAL_ABBREVIATIONS = {"etc", "inc", "ltd", "jr", "sr"}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number "}
# applied after NFKD, before everything that is not ASCII is dropped
_UNICODE = {
    "\u2019": "'",
    "\u2018": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2014": " -- ",  # em dash: a break, like ASCII "--"
    "\u2013": "-",  # en dash: ranges
    "\u2212": "-",  # minus sign
    "\u00d7": " times ",
    "\u00b0C": " degrees celsius ",
    "\u00b0F": " degrees fahrenheit ",
    "\u00b0": " degrees ",
    "\u00df": "ss",
    "\u00e6": "ae",
    "\u00c6": "AE",
    "\u0153": "oe",
    "\u0152": "OE",
    "\u00f8": "o",
    "\u00d8": "O",
    "\u0142": "l",
    "\u0141": "L",
    "\u0111": "d",
    "\u0110": "D",
    "\u00f0": "d",
    "\u00d0": "D",
    "\u00fe": "th",
    "\u00de": "Th",
    "\u0131": "i",
}
_CURRENCIES = {  # symbol: (one, many, one subunit, many subunits)
    "$": ("dollar", "dollars", "cent", "cents"),
    "\u20ac": ("euro", "euros", "cent", "cents"),
    "\u00a3": ("pound", "pounds", "penny", "pence"),
    "\u00a5": ("yen", "yen", None, None),
}
_FRACTION_NAMES = {2: ("half", "halves"), 4: ("quarter", "quarters")}
_FRACTION_SLASH = "\u2044"  # NFKD of the vulgar fractions: ½ -> 1⁄2
_KEPT = {*_CURRENCIES, _FRACTION_SLASH}  # non-ASCII characters the expansions below read


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


def _plural(words: str) -> str:
    """``"nineteen ninety" -> "nineteen nineties"`` (the 1990s), ``"six" -> "sixes"``."""
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + ("es" if last.endswith(("x", "s")) else "s")
    return f"{head} {last}" if head else last


def _money(whole: str, frac: str | None, symbol: str, scale: str | None) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[symbol]
    if scale:  # "$2.5 million" -> "two point five million dollars"
        return _plain_number(whole, frac) + f" {scale} {many}"
    n = int(whole or 0)
    if frac is None or sub_one is None:
        words = _plain_number(whole, frac)
        return words + " " + (one if n == 1 and frac is None else many)
    cents = int((frac + "00")[:2])
    cents_words = f"{number_to_words(cents)} {sub_one if cents == 1 else sub_many}"
    if n == 0:
        return cents_words if cents else f"zero {many}"
    main = f"{number_to_words(n)} {one if n == 1 else many}"
    return main + (f" and {cents_words}" if cents else "")


def _plain_number(whole: str, frac: str | None) -> str:
    words = number_to_words(int(whole or 0))
    if frac is None:
        return words
    return words + " point " + " ".join(_ONES[int(d)] for d in frac)


def _expand_number(m: re.Match) -> str:
    sign, symbol, whole, frac, suffix, scale = m.group("sign", "cur", "int", "frac", "suffix", "scale")
    whole = whole.replace(",", "")
    suffix = (suffix or "").lower()
    minus = "minus " if sign else ""
    if symbol:
        return f" {minus}{_money(whole, frac, symbol, scale)} "
    if suffix in ("st", "nd", "rd", "th") and frac is None:
        return f" {minus}{ordinal_to_words(int(whole))} "
    if frac is not None:
        words = _plain_number(whole, frac)
    elif 1100 <= int(whole) <= 2099 and m.group("int").isdigit() and len(whole) == 4 and not sign and not scale:
        words = year_to_words(int(whole))
    else:
        words = number_to_words(int(whole))
    if suffix == "s" and frac is None:  # the 1990s, the 80s
        words = _plural(words)
    return f" {minus}{words}{' ' + scale if scale else ''} "


def _expand_time(m: re.Match) -> str:
    hours, minutes, meridiem = int(m.group("h")), int(m.group("m")), m.group("ampm")
    if hours > 24 or minutes > 59:
        return m.group(0).replace(":", " ")  # not a time: read as two numbers
    words = number_to_words(hours)
    if minutes:
        words += (" oh " if minutes < 10 else " ") + number_to_words(minutes)
    elif not meridiem:
        words += " o'clock" if hours <= 12 else " hundred"  # 15:00 -> "fifteen hundred"
    if meridiem:
        words += " " + meridiem[0].lower() + " m" + _final_period(m)
    return f" {words} "


def _expand_meridiem(m: re.Match) -> str:  # "3 pm", "11 a.m."
    return f" {number_to_words(int(m.group('h')))} {m.group('ampm')[0].lower()} m{_final_period(m)} "


def _final_period(m: re.Match) -> str:
    """A period the match swallowed that also ends the sentence (end of text, or a capital follows)."""
    if not m.group(0).endswith("."):
        return ""
    return "." if re.match(r"\s*(?:$|[A-Z\"'])", m.string[m.end() :]) else ""


def _expand_fraction(m: re.Match) -> str:
    num, den = int(m.group(1)), int(m.group(2))
    if den in _FRACTION_NAMES:
        name = _FRACTION_NAMES[den][num != 1]
    elif 3 <= den <= 10:
        name = ordinal_to_words(den) + ("s" if num != 1 else "")
    else:
        return f" {number_to_words(num)} over {number_to_words(den)} "
    return f" {number_to_words(num)} {name} "


def _expand_abbreviation(m: re.Match) -> str:
    key = m.group(1).lower()
    return _ABBREVIATIONS[key] + (_final_period(m) if key in _SENTENCE_FINAL_ABBREVIATIONS else "")


def _expand_acronym(m: re.Match) -> str:  # "U.S.A." -> "U S A"
    letters = m.group(0).replace(".", " ").split()
    return " ".join(letters) + ("." if re.match(r"\s*$", m.string[m.end() :]) else "")


_CURRENCY_CLASS = "[" + re.escape("".join(_CURRENCIES)) + "]"
_NUMBER_RE = re.compile(
    r"(?P<sign>(?<![\w.,])-)?(?P<cur>" + _CURRENCY_CLASS + r")?"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.(?P<frac>\d+))?"
    r"(?P<suffix>st\b|nd\b|rd\b|th\b|s\b)?"
    r"(?:\s+(?P<scale>thousand|million|billion|trillion)\b)?",
    flags=re.IGNORECASE,
)
_TIME_RE = re.compile(
    r"(?<![:\d])\b(?P<h>\d{1,2}):(?P<m>\d{2})(?![:\d])(?:\s*(?P<ampm>[ap]\.?m\b\.?))?", flags=re.IGNORECASE
)
_MERIDIEM_RE = re.compile(r"\b(?P<h>1[0-2]|0?[1-9])\s*(?P<ampm>[ap]\.?m\b\.?)", flags=re.IGNORECASE)
_FRACTION_RE = re.compile(r"(\d{1,2})" + _FRACTION_SLASH + r"(\d{1,2})")
_VULGAR_RE = re.compile(r"(\d?)([\u00bc-\u00be\u2150-\u215e])")  # "1½" -> "1 and 1⁄2"
_ABBREV_RE = re.compile(r"\b(" + "|".join(_ABBREVIATIONS) + r")\.", flags=re.IGNORECASE)
_NUMBER_SIGN_RE = re.compile(r"\bno\.(?=\s*\d)", flags=re.IGNORECASE)  # "No. 5" (but "I said no." stays)
_LATIN_ABBREV_RE = re.compile(r"\b(e\.\s?g|i\.\s?e)\.", flags=re.IGNORECASE)
_ACRONYM_RE = re.compile(r"\b(?:[A-Za-z]\.){2,}")


def _unicode_to_ascii_candidates(text: str) -> str:
    """NFKD plus the replacements of :data:`_UNICODE` (what the ASCII filter then sees)."""
    text = _VULGAR_RE.sub(
        lambda m: (m.group(1) + " and " if m.group(1) else " ") + unicodedata.normalize("NFKD", m.group(2)) + " ", text
    )
    text = unicodedata.normalize("NFKD", text)
    for src, dst in _UNICODE.items():
        text = text.replace(src, dst)
    return text


def unspeakable_characters(text: str) -> list[str]:
    """The characters of ``text`` that :func:`normalize_text` drops without reading them: other scripts than
    Latin, emoji and other non-ASCII symbols, and control characters (each once, in order of appearance).

    Not listed: accents (they are stripped, the letter stays), white space, invisible format characters (zero-width
    joiners, the byte-order mark, soft hyphens), and ASCII punctuation the front end reads as a pause or a space."""
    out: dict[str, None] = {}
    for c in _unicode_to_ascii_candidates(text):
        if c.isspace() or (" " <= c <= "~") or c in _KEPT:
            continue
        category = unicodedata.category(c)
        if category.startswith("M") or category == "Cf":
            continue
        out[c] = None
    return list(out)


def normalize_text(text: str) -> str:
    """Normalise English text for speech: ASCII, numbers/abbreviations/symbols spelled out, no other symbols.

    Keeps letters, apostrophes inside words, and ``. , ? ! -`` as prosody marks; collapses white space.
    """
    text = _unicode_to_ascii_candidates(text)
    text = "".join(c for c in text if c.isascii() or c in _KEPT)
    text = _LATIN_ABBREV_RE.sub(lambda m: " for example " if m.group(1)[0] in "eE" else " that is ", text)
    text = _TIME_RE.sub(_expand_time, text)
    text = _MERIDIEM_RE.sub(_expand_meridiem, text)
    text = _ACRONYM_RE.sub(_expand_acronym, text)
    text = _NUMBER_SIGN_RE.sub("number", text)
    text = _ABBREV_RE.sub(_expand_abbreviation, text)
    text = _FRACTION_RE.sub(_expand_fraction, text)
    text = _NUMBER_RE.sub(_expand_number, text)
    text = "".join(c for c in text if c.isascii())
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
