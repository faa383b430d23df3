from __future__ import annotations

import pytest

from audiotok.text import normalize_text, number_to_words, ordinal_to_words, year_to_words


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (101, "one hundred one"),
        (2024, "two thousand twenty four"),
        (1_000_001, "one million one"),
    ],
)
def test_numbers(n, words):
    assert number_to_words(n) == words


def test_ordinals_and_years():
    assert ordinal_to_words(21) == "twenty first" and ordinal_to_words(12) == "twelfth"
    assert ordinal_to_words(30) == "thirtieth"
    assert year_to_words(1984) == "nineteen eighty four" and year_to_words(1905) == "nineteen oh five"
    assert year_to_words(2005) == "two thousand five" and year_to_words(1900) == "nineteen hundred"


@pytest.mark.parametrize(
    "raw, norm",
    [
        (
            "Mr. Smith paid $3.50 for 21 apples in 1984.",
            "mister Smith paid three dollars and fifty cents for twenty one apples in nineteen eighty four.",
        ),
        ("It's 100% true -- really!!", "It's one hundred percent true really!"),
        ("The 2nd café, naïve & “quoted”.", "The second cafe, naive and quoted."),
        ("pi is 3.14", "pi is three point one four"),
        ("   spaces\tand\nlines  ", "spaces and lines"),
        ("a well-known <b>tag</b> {x}", "a well-known b tag b x"),
    ],
)
def test_normalize(raw, norm):
    assert normalize_text(raw) == norm
