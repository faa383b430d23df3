"""Statistics for comparing ASR systems on the same test utterances: per-utterance word errors, corpus WER as summed
errors over summed reference words, a paired bootstrap CI of a WER difference, and mean ± std over seeds.

Errors are counted by the suite's one scorer (:func:`audiotok.whisper.word_error_rate`, Whisper's English
normaliser, jiwer's alignment), one utterance at a time, so that ``corpus_wer(*utterance_errors(refs, hyps))``
equals ``word_error_rate(refs, hyps)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from audiotok.whisper.text import normalize, word_error_rate


def utterance_errors(refs: Sequence[str], hyps: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(errors, ref_lens), both (N,) int: the word errors (substitutions + deletions + insertions) of each
    utterance and the number of words of its normalised reference. An utterance whose normalised reference is
    empty counts 0 errors over 0 words (the corpus scorer skips it too)."""
    errors, lens = np.zeros(len(refs), dtype=np.int64), np.zeros(len(refs), dtype=np.int64)
    for i, (r, h) in enumerate(zip(refs, hyps, strict=True)):
        n = len(normalize(r).split())
        if n:
            lens[i], errors[i] = n, round(word_error_rate([r], [h]) * n)
    return errors, lens


def corpus_wer(errors: np.ndarray, ref_lens: np.ndarray) -> float:
    """Corpus WER (a fraction): summed errors (N,) over summed reference words (N,); NaN without words."""
    total = int(np.sum(ref_lens))
    return float(np.sum(errors)) / total if total else float("nan")


def paired_bootstrap(
    errors_a: np.ndarray, errors_b: np.ndarray, ref_lens: np.ndarray, n: int = 10000, seed: int = 0
) -> tuple[float, float, float]:
    """(delta, lo, hi): the corpus WER of system a minus that of system b (fractions) on the same N utterances
    (``errors_*`` and ``ref_lens`` are (N,), aligned), with the 95% percentile interval over ``n`` resamples
    of the utterances drawn with replacement (one draw serves both systems: the pairing). Deterministic for a
    ``seed``. A resample without reference words counts a difference of 0."""
    a, b, lens = (np.asarray(x, dtype=np.float64) for x in (errors_a, errors_b, ref_lens))
    if not (a.shape == b.shape == lens.shape and a.ndim == 1 and len(a)):
        raise ValueError(
            f"paired_bootstrap needs three aligned non-empty (N,) arrays, got {a.shape, b.shape, lens.shape}"
        )
    diff = a - b
    rng = np.random.default_rng(seed)
    deltas = np.empty(n)
    chunk = max(1, 2_000_000 // len(a))  # bounds the (chunk, N) index array
    for start in range(0, n, chunk):
        idx = rng.integers(0, len(a), size=(min(chunk, n - start), len(a)))
        words = lens[idx].sum(1)
        deltas[start : start + len(idx)] = np.divide(diff[idx].sum(1), words, out=np.zeros(len(idx)), where=words > 0)
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return corpus_wer(a, lens) - corpus_wer(b, lens), float(lo), float(hi)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation, ddof 1) of per-seed values; the std is NaN for a single value."""
    x = np.asarray(values, dtype=np.float64)
    if not len(x):
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan
