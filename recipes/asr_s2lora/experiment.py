"""The S2-LoRA experiment in miniature: zero-shot, full FT, BitFit, LoRA, AdaLoRA and S2-LoRA on one base model.

1. Splits the ``child`` synthetic corpus by voice family and speaker: the adaptation set and in-domain test come
   from ``adapt_engines`` (train voices / held-out test voices), the out-of-domain set is every utterance of the
   ``ood_engines`` family, which adaptation never sees. The adult held-out test voices show what the base domain
   keeps (forgetting).
2. Adapts the base with each method (``recipes/asr_s2lora/adapt.py``, same data and loop; validation WER on
   held-out sentences of the adaptation voices picks the checkpoint), merges the adapter and measures WER.
3. Writes ``results.md`` / ``results.json`` (trainable parameters, WERs), the learned rank distributions of S2-LoRA
   and AdaLoRA (``ranks.md``, ``ranks.png``) and each method's adapter.

    python recipes/asr_s2lora/experiment.py --config recipes/asr_s2lora/configs/synth.yaml

Resumable: finished methods are skipped, unfinished ones resume from their ``last.pt``. All data are synthetic.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from asr.adapters import Adapter, load_adapted
from asr.report import rank_heatmap, rank_table
from asr.training import AdaptConfig, adapt_task
from audiotok.config import apply_overrides, config_from_args, from_dict, save_config
from audiotok.data.manifest import read_manifest, write_manifest
from audiotok.whisper import evaluate_manifest, load_whisper, word_error_rate
from audiotok.whisper.training import train


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
    batch_size: int = 32


def build_sets(cfg: ExperimentConfig, out: Path) -> dict[str, Path]:
    """The experiment's manifests (absolute audio paths) under ``out/data``."""
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
    paths = {}
    for name, utts in sets.items():
        if not utts:
            raise ValueError(f"the {name} set is empty: check child={cfg.child} and the engine lists")
        paths[name] = out / "data" / f"{name}.jsonl"
        write_manifest(paths[name], utts)
    if cfg.adult_test:
        paths["test_adult"] = Path(cfg.adult_test)
    return paths


def measure(model, sets: dict[str, Path], cfg: ExperimentConfig) -> dict:
    out = {}
    for name in ("test_in", "test_ood", "test_adult"):
        if name in sets:
            r = evaluate_manifest(model, sets[name], limit=cfg.n_eval, batch_size=cfg.batch_size)
            key = name.removeprefix("test_")
            out[f"wer_{key}"], out[f"n_{key}"] = r.wer, r.n
            out[f"cer_{key}"] = word_error_rate(r.refs, r.hyps, unit="char")
    return out


def run(cfg: ExperimentConfig) -> dict:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "experiment.yaml")
    sets = build_sets(cfg, out)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    n_base = sum(p.numel() for p in load_whisper(cfg.base).parameters())
    if "zero-shot" not in results:
        results["zero-shot"] = {"trainable": 0, **measure(load_whisper(cfg.base).eval(), sets, cfg)}
        results_path.write_text(json.dumps(results, indent=1))
    ranks = {}
    for method in cfg.methods:
        run_dir = out / method
        data = apply_overrides(
            {
                **cfg.adapt,
                "base": cfg.base,
                "out_dir": str(run_dir),
                "data": {**cfg.adapt.get("data", {}), "train": str(sets["adapt"]), "valid": str(sets["valid"])},
            },
            [f"adapter.method={method.split('-')[0]}", *cfg.methods[method]],
        )
        acfg = from_dict(AdaptConfig, data)
        best = run_dir / "best" / "adapter.safetensors"
        adapter_path = best if best.exists() else run_dir / "adapter.safetensors"
        if method not in results:
            t0 = time.time()
            train(acfg, task_builder=adapt_task)
            adapter_path = best if best.exists() else run_dir / "adapter.safetensors"
            model = load_adapted(cfg.base, adapter_path)
            n_train = sum(v.numel() for v in _tensors(adapter_path))
            chosen = json.loads((best.parent / "metrics.json").read_text()) if best.exists() else {}
            results[method] = {
                "trainable": n_train,
                "train_minutes": round((time.time() - t0) / 60, 1),
                "selected_step": chosen.get("step", acfg.loop.max_steps),
                "valid_wer": chosen.get("wer"),
                "valid_cer": chosen.get("cer"),
                **measure(model, sets, cfg),
            }
            results_path.write_text(json.dumps(results, indent=1))
        if method.split("-")[0] in ("s2lora", "adalora"):
            # the rank pattern at the end of training (AdaLoRA's budget reaches its target only in its final phase)
            ranks[method] = Adapter.load(load_whisper(cfg.base), run_dir / "adapter.safetensors").ranks()
    write_report(results, ranks, n_base, cfg, out)
    return results


def _tensors(path: Path):
    from safetensors.torch import load_file

    return load_file(str(path)).values()


def write_report(results: dict, ranks: dict, n_base: int, cfg: ExperimentConfig, out: Path) -> None:
    cols = [("in", "in-domain child WER"), ("ood", "out-of-domain child WER"), ("adult", "adult WER")]
    cols = [(k, t) for k, t in cols if any(f"wer_{k}" in r for r in results.values())]
    lines = [
        "All data are synthetic (Debian TTS voices; `child` = pitch-shifted, faster voices). "
        f"Base: `{cfg.base}` ({n_base:,} parameters).",
        "",
        "| method | trainable params | % of base | " + " | ".join(t for _, t in cols) + " |",
        "|---|---:|---:|" + "---:|" * len(cols),
    ]
    for method in ("zero-shot", *cfg.methods):
        r = results.get(method)
        if r is None:
            continue
        wers = " | ".join(_rate(r, k) for k, _ in cols)
        lines.append(f"| {method} | {r['trainable']:,} | {100 * r['trainable'] / n_base:.3f} | {wers} |")
    sizes = {k: results["zero-shot"].get(f"n_{k}") for k, _ in cols}
    lines += ["", "Test utterances: " + ", ".join(f"{k} {n}" for k, n in sizes.items()) + "."]
    if any(f"cer_{k}" in r for r in results.values() for k, _ in cols):
        lines[-1] += " Each cell: WER % (CER % in brackets), greedy decoding, Whisper's English normaliser."
    (out / "results.md").write_text("\n".join(lines) + "\n")
    if ranks:
        text = []
        for method, r in ranks.items():
            text += [f"## {method}: non-zero rank coefficients per matrix", "", rank_table(r), ""]
        (out / "ranks.md").write_text("\n".join(text))
        rank_heatmap(ranks, out / "ranks.png")
    print((out / "results.md").read_text())


def _rate(r: dict, key: str) -> str:
    if f"wer_{key}" not in r:
        return ""
    cer = f" ({100 * r[f'cer_{key}']:.1f})" if f"cer_{key}" in r else ""
    return f"{100 * r[f'wer_{key}']:.1f}{cer}"


def main(argv: list[str] | None = None) -> dict:
    return run(config_from_args(ExperimentConfig, argv, __doc__))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
