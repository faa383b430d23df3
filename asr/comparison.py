"""Per-run result files of an adaptation experiment and the comparison table built from them alone.

A result file (``<results_dir>/<run>.json``) holds one finished run: ``method`` (the table row), ``seed`` (None
for a deterministic run such as zero-shot decoding), ``n_base``, ``trainable``, ``sets`` (set name -> ``{"n",
"sha256"}`` of the utterance ids it used, :func:`set_digest`) and ``tests`` (test key -> ``{"wer", "cer", "n",
"ids", "refs", "hyps"}``, the last three per utterance, aligned), plus whatever else the recipe records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from asr.stats import mean_std, paired_bootstrap, utterance_errors
from audiotok.utils import atomic_path


def set_digest(ids: Sequence[str]) -> dict:
    """``{"n": number of utterances, "sha256": of the sorted ids, one per line}``: which utterances a set holds."""
    return {"n": len(ids), "sha256": hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()}


def load_results(folder: Path) -> dict[str, dict]:
    """Run name -> its result file ``folder/<run>.json`` (hidden temporaries skipped; {} without the folder)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if not p.name.startswith(".")}


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` atomically, and only when it differs (a run with nothing to do leaves the files as they were)."""
    if not (path.exists() and path.read_text() == text):
        with atomic_path(path) as tmp:
            tmp.write_text(text)


def check_sets(results: dict[str, dict], expected: dict | None, where: Path) -> None:
    """Refuse result files measured on other data sets than ``expected`` (set name -> digest, this build), or,
    when None, than each other: a different corpus slice must not land silently in the same table."""
    against = "this build" if expected is not None else "the other result files"
    for name, r in results.items():
        expected = r["sets"] if expected is None else expected
        for s in sorted(set(expected) | set(r["sets"])):
            mine, theirs = r["sets"].get(s), expected.get(s)
            if mine != theirs:
                raise ValueError(
                    f"{where / name}.json was measured on another {s} set ({_describe(mine)}) than {against} "
                    f"({_describe(theirs)}): a different corpus slice cannot join this table. Point results_dir "
                    "at a new folder, or rebuild the same data (the same corpus, n_adapt and n_eval)."
                )


def _describe(digest: dict | None) -> str:
    return "none" if digest is None else f"{digest['n']} utterances, sha256 {digest['sha256'][:12]}"


def by_method(results: dict[str, dict]) -> dict[str, dict]:
    """Method -> {seed -> result}, seeds ascending (None, a deterministic run, first)."""
    out: dict[str, dict] = {}
    for name in sorted(results, key=lambda n: -1 if results[n]["seed"] is None else results[n]["seed"]):
        out.setdefault(results[name]["method"], {})[results[name]["seed"]] = results[name]
    return out


def seed_cell(values: Sequence[float]) -> str:
    """A rate (fraction) in %: ``57.3`` for one seed, ``57.3 ± 1.2 (3)`` (mean ± sample std (seeds)) for several."""
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    m, s = mean_std(values)
    return f"{100 * m:.1f} ± {100 * s:.1f} ({len(values)})"


def paired_delta(runs: dict, base: dict, key: str = "in", n: int = 10000) -> tuple[float, float, float, int] | None:
    """(delta, lo, hi, seed pairs): the WER of ``runs`` (seed -> result) minus that of ``base`` on test ``key``
    (fractions), with the paired bootstrap 95% CI over its utterances. Seed k pairs with base seed k for every
    seed both have (a deterministic run, seed None, pairs with every base seed); the per-utterance errors are
    summed over the pairs, so delta compares seed-averaged WERs. None without a pair."""
    fixed = list(runs) == [None]
    seeds = list(base) if fixed else [s for s in runs if s in base]
    if not seeds:
        return None
    errors_a = errors_b = lens = 0
    for s in seeds:
        a, b = runs[None if fixed else s]["tests"][key], base[s]["tests"][key]
        if a["ids"] != b["ids"]:
            raise ValueError(f"the {key} test utterances differ between the runs compared")
        (ea, words), (eb, _) = utterance_errors(a["refs"], a["hyps"]), utterance_errors(b["refs"], b["hyps"])
        errors_a, errors_b, lens = errors_a + ea, errors_b + eb, lens + words
    return (*paired_bootstrap(errors_a, errors_b, lens, n=n), len(seeds))


def comparison_table(
    results: dict[str, dict],
    order: Sequence[str],
    columns: dict[str, str],
    baseline: str = "lora",
    baseline_title: str | None = None,
) -> list[str]:
    """Markdown lines: one row per method in ``order`` (then any other method found) with trainable parameters,
    % of the base, WER per test key of ``columns`` (key -> title) over the seeds present, the paired-bootstrap
    difference to ``baseline`` on the first key in WER points; then the same table for CER."""
    groups = by_method(results)
    rows = [m for m in order if m in groups] + [m for m in groups if m not in order]
    keys = [k for k in columns if all(k in r["tests"] for r in results.values())]
    n_base = next(iter(results.values()))["n_base"]
    head = f"| method | trainable params | % of base | {' | '.join(columns[k] + ' WER' for k in keys)} |"
    lines = [
        head + f" Δ {columns[keys[0]]} vs {baseline_title or baseline} [95% CI] |",
        "|---|---:|---:|" + "---:|" * (len(keys) + 1),
    ]
    for m in rows:
        runs, first = groups[m], next(iter(groups[m].values()))
        wers = " | ".join(seed_cell([r["tests"][k]["wer"] for r in runs.values()]) for k in keys)
        d = None if m == baseline or baseline not in groups else paired_delta(runs, groups[baseline], keys[0])
        delta = "reference" if m == baseline else _delta_cell(d)
        share = 100 * first["trainable"] / n_base
        lines.append(f"| {m} | {first['trainable']:,} | {share:.3f} | {wers} | {delta} |")
    lines += ["", "| method | " + " | ".join(columns[k] + " CER" for k in keys) + " |", "|---|" + "---:|" * len(keys)]
    for m in rows:
        cers = (seed_cell([r["tests"][k]["cer"] for r in groups[m].values()]) for k in keys)
        lines.append(f"| {m} | " + " | ".join(cers) + " |")
    return lines


def _delta_cell(d: tuple[float, float, float, int] | None) -> str:
    if d is None:
        return ""
    return f"{100 * d[0]:+.1f} [{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]" + (f" ({d[3]})" if d[3] > 1 else "")


def relative_cut(results: dict[str, dict], method: str, reference: str, key: str = "in") -> tuple[float, float, int]:
    """(reference WER, method's mean WER over its seeds, seeds) on test ``key``: the cut is 1 - second / first."""
    groups = by_method(results)
    a = mean_std([r["tests"][key]["wer"] for r in groups[reference].values()])[0]
    b = mean_std([r["tests"][key]["wer"] for r in groups[method].values()])[0]
    return a, b, len(groups[method])


def summary(r: dict) -> dict:
    """A result without its per-utterance lists, test metrics flattened (``wer_in``, ``cer_in``, ``n_in``, ...)."""
    out = {k: v for k, v in r.items() if k not in ("tests", "sets", "ranks")}
    for key, t in r["tests"].items():
        out.update({f"wer_{key}": t["wer"], f"cer_{key}": t["cer"], f"n_{key}": t["n"]})
    return out
