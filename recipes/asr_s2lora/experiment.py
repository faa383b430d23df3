"""The S2-LoRA experiment in miniature: zero-shot, full FT, BitFit, LoRA, AdaLoRA and S2-LoRA on one base model.

1. Splits the ``child`` synthetic corpus by voice family and speaker: the adaptation set (its first ``n_adapt``
   utterances) and in-domain test come from ``adapt_engines`` (train voices / held-out test voices), the
   out-of-domain set is every utterance of the ``ood_engines`` family, which adaptation never sees. The adult
   held-out test voices show what the base domain keeps (forgetting).
2. Adapts the base with each method at ``seeds[0]``, then the ``seeded_methods`` at the other seeds (the seed sets
   the initialisation and the batch order: every method of one seed sees the same batches); validation WER on
   held-out sentences of the adaptation voices picks the checkpoint; merges the adapter and measures WER.
3. Each finished run writes ``results_dir/<run>.json`` (``zero-shot``, ``lora``, ``lora-seed1``, ...): its
   parameters, WERs, the per-utterance references and hypotheses, the learned ranks, and the size and sha256 of
   each data set. ``results.md`` (mean ± std over seeds, a paired bootstrap CI of each method's in-domain WER
   difference to LoRA), ``ranks.md``/``ranks.png`` are regenerated from those files alone.

    python recipes/asr_s2lora/experiment.py --config recipes/asr_s2lora/configs/synth.yaml
    python recipes/asr_s2lora/experiment.py --config recipes/asr_s2lora/configs/synth.yaml report=true

Resumable: a run whose result file exists is skipped (point ``results_dir`` at a folder in the repository and
a later session on a fresh machine skips what an earlier one finished); an unfinished run resumes from its
``last.pt`` in ``out_dir``. Result files measured on other data sets are refused. All data are synthetic.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from asr.adapters import Adapter, load_adapted
from asr.comparison import (
    by_method,
    check_sets,
    comparison_table,
    load_results,
    relative_cut,
    set_digest,
    summary,
    write_if_changed,
)
from asr.report import rank_heatmap, rank_table
from asr.training import AdaptConfig, adapt_task
from audiotok.config import apply_overrides, config_from_args, from_dict, save_config
from audiotok.data.manifest import read_manifest, write_manifest
from audiotok.whisper import evaluate_manifest, load_whisper, word_error_rate
from audiotok.whisper.training import WhisperData, train

TESTS = {"test_in": "in", "test_ood": "ood", "test_adult": "adult"}  # set name -> key in the result files
COLUMNS = {"in": "in-domain", "ood": "out-of-domain", "adult": "adult"}
BASELINE = "lora"  # the method every other is compared with (paired bootstrap on the in-domain test)


@dataclass
class ExperimentConfig:
    base: str = "runs/whisper-synth/whisper.pt"
    child: str = "data/synth-child"  # audiotok synth-corpus data/synth-child --domain child
    adult_test: str | None = "data/synth-adult/test.jsonl"  # base domain, held-out voices
    adapt_engines: list[str] = field(default_factory=lambda: ["espeak", "flite"])
    ood_engines: list[str] = field(default_factory=lambda: ["festival"])
    out_dir: str = "runs/asr_s2lora"
    adapt: dict = field(default_factory=dict)  # AdaptConfig fields shared by every method
    # run name -> list of "a.b=v" overrides of ``adapt``; the adapter method is the name up to its first "-"
    # (e.g. "s2lora-shape" runs S2-LoRA with its own overrides), rows of the table in this order
    methods: dict = field(default_factory=dict)
    n_eval: int | None = None  # utterances per test set (None: all)
    n_adapt: int | None = None  # the adaptation set: its first N utterances in manifest order (None: all)
    seeds: list[int] = field(default_factory=lambda: [0])  # every method runs seeds[0] ...
    seeded_methods: list[str] = field(default_factory=list)  # ... these also run every other seed
    results_dir: str | None = None  # one <run>.json per finished run (None: <out_dir>/results)
    report: bool = False  # only regenerate results.md & co. from the result files (no data, no model)
    batch_size: int = 32


def planned_runs(cfg: ExperimentConfig) -> list[tuple[str, str, int]]:
    """(run name, method, seed) in training order: every method at ``seeds[0]``, then the other seeds of the
    ``seeded_methods``. The run name is the method at seed 0, ``<method>-seed<k>`` otherwise."""
    unknown = sorted(set(cfg.seeded_methods) - set(cfg.methods))
    if unknown:
        raise ValueError(f"seeded_methods {unknown} are not in methods {list(cfg.methods)}")
    seeds = list(dict.fromkeys(cfg.seeds))
    return [
        (m if s == 0 else f"{m}-seed{s}", m, s)
        for k, s in enumerate(seeds)
        for m in cfg.methods
        if k == 0 or m in cfg.seeded_methods
    ]


def build_sets(cfg: ExperimentConfig, out: Path) -> dict[str, Path]:
    """The experiment's manifests (absolute audio paths) under ``out/data``: the first ``n_adapt`` adaptation
    utterances and the first ``adapt.data.n_valid`` validation ones (those the training loop validates on)."""
    child = Path(cfg.child)
    split = {s: read_manifest(child / f"{s}.jsonl") for s in ("train", "valid", "test")}

    def engine(u):
        return u.extra.get("engine")

    sets = {
        "adapt": [u for u in split["train"] if engine(u) in cfg.adapt_engines],
        "valid": [u for u in split["valid"] if engine(u) in cfg.adapt_engines],
        "test_in": [u for u in split["test"] if engine(u) in cfg.adapt_engines],
        "test_ood": [u for s in split.values() for u in s if engine(u) in cfg.ood_engines],
    }
    if cfg.n_adapt is not None:
        if len(sets["adapt"]) < cfg.n_adapt:
            raise ValueError(
                f"n_adapt={cfg.n_adapt} but {cfg.child} holds only {len(sets['adapt'])} adaptation utterances: "
                "build more of the corpus (it is generated in a fixed order), or lower n_adapt with a new results_dir"
            )
        sets["adapt"] = sets["adapt"][: cfg.n_adapt]
    # validation reads the first n_valid: the rest would change the set's digest as the corpus grows, not the runs
    sets["valid"] = sets["valid"][: cfg.adapt.get("data", {}).get("n_valid", WhisperData().n_valid)]
    paths = {}
    for name, utts in sets.items():
        if not utts:
            raise ValueError(f"the {name} set is empty: check child={cfg.child} and the engine lists")
        paths[name] = out / "data" / f"{name}.jsonl"
        write_manifest(paths[name], utts)
    if cfg.adult_test:
        paths["test_adult"] = Path(cfg.adult_test)
    return paths


def set_ids(path: Path, name: str, cfg: ExperimentConfig) -> list[str]:
    """Utterance ids a set contributes: the adaptation and validation manifests as written, a test set as
    evaluated (utterances with text, the first ``n_eval``; the order of ``evaluate_manifest``'s results)."""
    utts = read_manifest(path)
    return [u.id for u in utts if u.text][: cfg.n_eval] if name in TESTS else [u.id for u in utts]


def set_digests(sets: dict[str, Path], cfg: ExperimentConfig) -> dict[str, dict]:
    """{set name: {"n", "sha256"}} of the utterances each set contributes (:func:`set_ids`)."""
    return {name: set_digest(set_ids(path, name, cfg)) for name, path in sets.items()}


def measure(model, sets: dict[str, Path], cfg: ExperimentConfig) -> dict[str, dict]:
    """{test key: {"wer", "cer", "n", "ids", "refs", "hyps"}}, the last three per utterance, aligned."""
    out = {}
    for name, key in TESTS.items():
        if name in sets:
            r = evaluate_manifest(model, sets[name], limit=cfg.n_eval, batch_size=cfg.batch_size)
            cer = word_error_rate(r.refs, r.hyps, unit="char")
            ids = set_ids(sets[name], name, cfg)
            out[key] = {"wer": r.wer, "cer": cer, "n": r.n, "ids": ids, "refs": r.refs, "hyps": r.hyps}
    return out


def results_dir(cfg: ExperimentConfig) -> Path:
    return Path(cfg.results_dir) if cfg.results_dir else Path(cfg.out_dir) / "results"


def run(cfg: ExperimentConfig) -> dict:
    out, folder = Path(cfg.out_dir), results_dir(cfg)
    if cfg.report:
        results = load_results(folder)
        check_sets(results, None, folder)
        return write_report(results, cfg)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "experiment.yaml")
    sets = build_sets(cfg, out)
    digests = set_digests(sets, cfg)
    results = load_results(folder)
    check_sets(results, digests, folder)

    def finish(name: str, result: dict) -> None:
        results[name] = {**result, "sets": digests}
        write_if_changed(folder / f"{name}.json", json.dumps(results[name], indent=1) + "\n")

    if "zero-shot" not in results:
        model = load_whisper(cfg.base).eval()
        n_base, tests = sum(p.numel() for p in model.parameters()), measure(model, sets, cfg)
        # greedy decoding: one deterministic run, seed None
        finish("zero-shot", {"method": "zero-shot", "seed": None, "n_base": n_base, "trainable": 0, "tests": tests})
    for name, method, seed in planned_runs(cfg):
        if name in results:
            continue
        run_dir = out / name
        data = {
            **cfg.adapt,
            "base": cfg.base,
            "out_dir": str(run_dir),
            "seed": seed,
            "data": {**cfg.adapt.get("data", {}), "train": str(sets["adapt"]), "valid": str(sets["valid"])},
        }
        acfg = from_dict(
            AdaptConfig, apply_overrides(data, [f"adapter.method={method.split('-')[0]}", *cfg.methods[method]])
        )
        t0 = time.time()
        train(acfg, task_builder=adapt_task)  # resumes from run_dir/last.pt
        best = run_dir / "best" / "adapter.safetensors"
        adapter_path = best if best.exists() else run_dir / "adapter.safetensors"
        model = load_adapted(cfg.base, adapter_path)
        chosen = json.loads((best.parent / "metrics.json").read_text()) if best.exists() else {}
        result = {
            "method": method,
            "seed": seed,
            "n_base": sum(p.numel() for p in model.parameters()),
            "trainable": sum(v.numel() for v in _tensors(adapter_path)),
            "train_minutes": round((time.time() - t0) / 60, 1),  # of this session (a resumed run: its last part)
            "selected_step": chosen.get("step", acfg.loop.max_steps),
            "valid_wer": chosen.get("wer"),
            "valid_cer": chosen.get("cer"),
            "overrides": cfg.methods[method],
            "tests": measure(model, sets, cfg),
        }
        if acfg.adapter.method in ("s2lora", "adalora"):
            # the rank pattern at the end of training (AdaLoRA's budget reaches its target only in its final phase)
            result["ranks"] = Adapter.load(load_whisper(cfg.base), run_dir / "adapter.safetensors").ranks()
        finish(name, result)
    return write_report(results, cfg)


def _tensors(path: Path):
    from safetensors.torch import load_file

    return load_file(str(path)).values()


def write_report(results: dict[str, dict], cfg: ExperimentConfig) -> dict:
    """``results.md``, ``ranks.md``/``ranks.png`` (in ``out_dir`` and ``results_dir``) and ``results.json`` (a
    summary without the per-utterance lists, in ``out_dir``) from the result files alone; returns that summary."""
    if "zero-shot" not in results:
        raise ValueError(f"no zero-shot result in {results_dir(cfg)}: run the experiment first")
    zero = results["zero-shot"]
    if "full" in {r["method"] for r in results.values()}:
        a, b, k = relative_cut(results, "full", "zero-shot")
        seeds = f", mean of {k} seeds" if k > 1 else ""
        verdict = "holds" if a - b >= 0.3 * a else "does not hold"
        head = f"full FT cuts in-domain WER by {100 * (a - b) / a:.1f}% relative (zero-shot {100 * a:.1f} -> "
        head += f"{100 * b:.1f}{seeds}): criterion >= 30% {verdict}."
    else:
        head = "full FT: not run yet (the criterion: a cut of the in-domain WER by >= 30% relative)."
    sizes = ", ".join(f"{COLUMNS[k]} {t['n']}" for k, t in zero["tests"].items())
    todo = [name for name, _, _ in planned_runs(cfg) if name not in results]
    lines = [
        head,
        "",
        "All data are synthetic (Debian TTS voices; `child` = pitch-shifted, faster voices). "
        f"Base: `{cfg.base}` ({zero['n_base']:,} parameters).",
        "",
        *comparison_table(results, ["zero-shot", *cfg.methods], COLUMNS, BASELINE, "LoRA"),
        "",
        f"Test utterances: {sizes}; adaptation utterances: {zero['sets']['adapt']['n']}. WER/CER %, greedy "
        "decoding, Whisper's English normaliser; a cell with several seeds is mean ± sample std (number of seeds). "
        "Δ: WER points of the method minus LoRA on the in-domain test, paired bootstrap over its utterances (10,000 "
        "resamples, 95% percentile interval). Seed k is paired with LoRA seed k for every seed both have (their "
        "number in brackets when more than one; zero-shot, deterministic, pairs with every LoRA seed): the errors "
        "are summed over the paired seeds, so Δ compares seed-averaged WERs.",
    ]
    if todo:
        lines += ["", "Runs still to do: " + ", ".join(todo) + "."]
    groups = by_method(results)
    ranks = {m: r["ranks"] for m, runs in groups.items() for r in list(runs.values())[:1] if r.get("ranks")}
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summaries = {name: summary(results[name]) for name in sorted(results)}  # one order, any session
    write_if_changed(out / "results.json", json.dumps(summaries, indent=1) + "\n")
    for folder in dict.fromkeys([out, results_dir(cfg)]):
        write_if_changed(folder / "results.md", "\n".join(lines) + "\n")
        if ranks:  # of each method's first seed
            text = [f"## {m}: non-zero rank coefficients per matrix\n\n{rank_table(r)}\n" for m, r in ranks.items()]
            write_if_changed(folder / "ranks.md", "\n".join(text))
            rank_heatmap(ranks, folder / "ranks.png")
    print("\n".join(lines))
    return summaries


def main(argv: list[str] | None = None) -> dict:
    return run(config_from_args(ExperimentConfig, argv, __doc__))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
