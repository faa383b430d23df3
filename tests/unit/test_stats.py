"""Statistics for comparing ASR systems (asr.stats) and the per-run result files' set check (asr.comparison)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asr.comparison import check_sets, paired_delta, seed_cell, set_digest
from asr.stats import corpus_wer, mean_std, paired_bootstrap, utterance_errors
from audiotok.whisper import word_error_rate

REFS = ["the cat sat on the mat", "hello world", "a b c d"]
HYPS = ["the cat sat on mat", "hello there big world", "a b c d"]


def test_utterance_errors_and_corpus_wer_by_summed_errors():
    errors, lens = utterance_errors(REFS, HYPS)
    # 1 deletion; 1 substitution + 1 insertion ("hello there big world" vs "hello world"); exact
    assert errors.tolist() == [1, 2, 0] and lens.tolist() == [6, 2, 4]
    assert corpus_wer(errors, lens) == pytest.approx(3 / 12)  # not the mean of per-utterance WERs (1/6+1+0)/3
    assert corpus_wer(errors, lens) == pytest.approx(word_error_rate(REFS, HYPS))
    # the shared normaliser applies: case and punctuation do not count; an empty reference counts 0 of 0
    e, n = utterance_errors(["Hello, World!", ""], ["hello world", "spurious words"])
    assert e.tolist() == [0, 0] and n.tolist() == [2, 0]
    assert math.isnan(corpus_wer(np.zeros(2), np.zeros(2)))


def test_paired_bootstrap_of_identical_systems_is_zero():
    errors, lens = utterance_errors(REFS, HYPS)
    assert paired_bootstrap(errors, errors, lens, n=500) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_of_a_system_better_on_every_utterance_lies_below_zero():
    rng = np.random.default_rng(1)
    lens = rng.integers(3, 15, size=40)
    worse = rng.integers(1, 4, size=40)
    better = worse - rng.integers(1, 2, size=40)  # one error fewer everywhere
    delta, lo, hi = paired_bootstrap(better, worse, lens, n=2000)
    assert delta == pytest.approx(-40 / lens.sum())
    assert lo <= delta <= hi < 0


def test_paired_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(2)
    lens = rng.integers(3, 15, size=30)
    a, b = rng.integers(0, 5, size=30), rng.integers(0, 5, size=30)
    first = paired_bootstrap(a, b, lens, n=1000, seed=7)
    assert paired_bootstrap(a, b, lens, n=1000, seed=7) == first
    assert paired_bootstrap(a, b, lens, n=1000, seed=8) != first
    assert first[1] < first[0] < first[2]
    with pytest.raises(ValueError, match="aligned"):
        paired_bootstrap(a, b[:-1], lens)


def test_mean_and_sample_std_over_seeds():
    m, s = mean_std([0.5, 0.6, 0.7])
    assert m == pytest.approx(0.6) and s == pytest.approx(0.1)  # ddof 1
    m, s = mean_std([0.5])
    assert m == 0.5 and math.isnan(s)
    assert seed_cell([0.5]) == "50.0" and seed_cell([0.5, 0.6, 0.7]) == "60.0 ± 10.0 (3)"


def _run(hyps: list[str], seed: int | None) -> dict:
    return {"seed": seed, "tests": {"in": {"ids": ["u0", "u1", "u2"], "refs": REFS, "hyps": hyps}}}


def test_paired_delta_pairs_seeds_and_a_deterministic_run_with_every_seed():
    base = {0: _run(HYPS, 0), 1: _run(REFS, 1)}  # seed 0: 3 errors of 12 words; seed 1: none
    same = paired_delta({0: _run(HYPS, 0), 1: _run(REFS, 1)}, base, n=200)
    assert same == (0.0, 0.0, 0.0, 2)
    fixed = paired_delta({None: _run(HYPS, None)}, base, n=200)  # 6 errors of 24 words vs 3 of 24
    assert fixed[0] == pytest.approx(3 / 24) and fixed[3] == 2
    assert paired_delta({2: _run(HYPS, 2)}, base) is None


def test_result_files_on_other_data_are_refused_naming_the_set(tmp_path):
    sets = {"adapt": set_digest(["b", "a"]), "test_in": set_digest(["x"])}
    assert sets["adapt"] == set_digest(["a", "b"]) and sets["adapt"]["n"] == 2  # order does not matter
    check_sets({"lora": {"sets": sets}}, sets, tmp_path)
    other = {**sets, "adapt": set_digest(["a", "b", "c"])}
    with pytest.raises(ValueError, match="another adapt set .*3 utterances.*new folder"):
        check_sets({"lora": {"sets": other}}, sets, tmp_path)
    with pytest.raises(ValueError, match="the other result files"):
        check_sets({"full": {"sets": sets}, "lora": {"sets": other}}, None, tmp_path)
