"""Which domain to adapt to: zero-shot WER of real Whisper models on candidate synthetic domains.

S2-LoRA's claim is about adapting a pretrained Whisper to a domain it is bad at; this measures, for each candidate,
how bad. A candidate is a corpus directory (``train``/``valid``/``test`` manifests: e.g. ``audiotok synth-corpus
data/synth-child --domain child``) or a transform of the source corpus (white noise at an SNR, a pass band, a speed
change that moves tempo and pitch together). Scored on each candidate's ``test`` split (held-out voices and
sentences), greedy decoding, Whisper's English normaliser.

    python recipes/asr_s2lora/domains.py --config recipes/asr_s2lora/configs/domains.yaml

``materialize=NAME`` then writes that transformed domain as a corpus directory (wav files and the three
manifests) that ``experiment.py`` takes as its ``child`` corpus. All data are synthetic.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from audiotok.audio import load, resample, save
from audiotok.config import config_from_args, save_config
from audiotok.data.augment import add_noise, band_limit, change_speed
from audiotok.data.manifest import even_share, read_manifest, write_manifest
from audiotok.whisper import SAMPLE_RATE, evaluate_manifest, load_whisper, word_error_rate


@dataclass
class Transform:
    """One transformed domain: each field None leaves that part unchanged."""

    snr_db: float | None = None  # white Gaussian noise at this signal-to-noise ratio
    band_hz: list[float] | None = None  # (low, high) pass band
    speed: float | None = None  # tempo and pitch together (1.3: 1.3x faster and higher)


@dataclass
class DomainSearchConfig:
    source: str = "data/corpus-v2"  # the corpus the transforms apply to
    transforms: dict[str, Transform] = field(default_factory=dict)
    corpora: dict[str, str] = field(default_factory=dict)  # name -> corpus directory scored as it is
    models: list[str] = field(default_factory=lambda: ["tiny.en", "base"])
    engines: list[str] = field(default_factory=list)  # only these voice families (empty: all)
    n_eval: int = 100  # test utterances per domain
    batch_size: int = 16
    seed: int = 0
    out_dir: str = "runs/asr_s2lora-domains"
    materialize: str | None = None  # write this transform of ``source`` as a corpus under out_dir/NAME


def perturb_fn(t: Transform, seed: int):
    """``perturb(wav (T,) at 16 kHz, index) -> wav``: the transform, its noise drawn from (seed, index)."""

    def perturb(wav: torch.Tensor, index: int) -> torch.Tensor:
        x, n = wav[None], torch.tensor([wav.shape[-1]])
        if t.speed:
            x, n = change_speed(x, n, torch.tensor([t.speed]), SAMPLE_RATE)
        if t.band_hz:
            x = band_limit(x, torch.tensor([t.band_hz]), SAMPLE_RATE)
        if t.snr_db is not None:
            g = torch.Generator().manual_seed(seed * 1_000_003 + index)
            x = add_noise(x, n, torch.tensor([t.snr_db]), generator=g)
        return x[0, : int(n)]

    return perturb


def family(u) -> str | None:
    return u.extra.get("engine")


def test_manifest(corpus: str | Path, engines: list[str], out: Path, name: str, limit: int) -> Path:
    """About ``limit`` utterances of the corpus' test split, an even share of every voice (only ``engines`` when
    given), as a manifest under ``out``."""
    utts = [u for u in read_manifest(Path(corpus) / "test.jsonl") if u.text]
    if engines:
        utts = [u for u in utts if family(u) in engines]
    if not utts:
        raise ValueError(f"{corpus}: no test utterances of engines {engines}")
    path = out / "data" / f"{name}.jsonl"
    write_manifest(path, even_share(utts, limit)[:limit])
    return path


def score(cfg: DomainSearchConfig) -> dict:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    source_test = test_manifest(cfg.source, cfg.engines, out, "source", cfg.n_eval)
    domains = {"clean (source)": (source_test, None)}
    domains |= {name: (source_test, perturb_fn(t, cfg.seed)) for name, t in cfg.transforms.items()}
    domains |= {name: (test_manifest(path, [], out, name, cfg.n_eval), None) for name, path in cfg.corpora.items()}
    for model_name in cfg.models:
        model = None
        for name, (manifest, perturb) in domains.items():
            key = f"{model_name} | {name}"
            if key in results:
                continue
            model = model or load_whisper(model_name).eval()
            r = evaluate_manifest(model, manifest, limit=cfg.n_eval, perturb=perturb, batch_size=cfg.batch_size)
            engines = [family(u) for u in read_manifest(manifest) if u.text][: r.n]
            by_engine = {}
            for e in sorted(set(map(str, engines))):
                idx = [i for i, x in enumerate(engines) if str(x) == e]
                by_engine[e] = word_error_rate([r.refs[i] for i in idx], [r.hyps[i] for i in idx])
            results[key] = {
                "wer": r.wer,
                "cer": word_error_rate(r.refs, r.hyps, unit="char"),
                "n": r.n,
                "wer_by_engine": by_engine,
                "hyps": r.hyps,
            }
            results_path.write_text(json.dumps(results, indent=1))
            print(f"{key}: WER {100 * r.wer:.1f}% (n={r.n})", flush=True)
    write_report(results, cfg, list(domains), out)
    return results


def write_report(results: dict, cfg: DomainSearchConfig, domains: list[str], out: Path) -> None:
    lines = [
        f"Zero-shot WER % (CER %) of real Whisper on candidate domains, test splits of `{cfg.source}` and the "
        "listed corpora (held-out voices and sentences), greedy decoding. All speech synthetic.",
        "",
        "| domain | " + " | ".join(cfg.models) + " |",
        "|---|" + "---:|" * len(cfg.models),
    ]
    for name in domains:
        cells = []
        for m in cfg.models:
            r = results.get(f"{m} | {name}")
            cells.append(f"{100 * r['wer']:.1f} ({100 * r['cer']:.1f})" if r else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    n = {r["n"] for r in results.values()}
    lines += ["", f"Utterances per cell: {', '.join(map(str, sorted(n)))}.", "", "WER % by voice family:", ""]
    engines = sorted({e for r in results.values() for e in r.get("wer_by_engine", {})})
    lines += ["| model | domain | " + " | ".join(engines) + " |", "|---|---|" + "---:|" * len(engines)]
    for m in cfg.models:
        for name in domains:
            r = results.get(f"{m} | {name}")
            if r and "wer_by_engine" in r:
                cells = [f"{100 * r['wer_by_engine'][e]:.0f}" if e in r["wer_by_engine"] else "" for e in engines]
                lines.append(f"| {m} | {name} | " + " | ".join(cells) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print((out / "results.md").read_text())


def materialize(cfg: DomainSearchConfig, name: str) -> Path:
    """Write transform ``name`` of the source corpus (all three splits, ``engines`` only) as a corpus directory."""
    if name not in cfg.transforms:
        raise ValueError(f"materialize={name!r}: not one of the transforms {sorted(cfg.transforms)}")
    perturb = perturb_fn(cfg.transforms[name], cfg.seed)
    root = Path(cfg.out_dir) / name
    for split in ("train", "valid", "test"):
        utts = [u for u in read_manifest(Path(cfg.source) / f"{split}.jsonl") if u.text]
        if cfg.engines:
            utts = [u for u in utts if family(u) in cfg.engines]
        done = []
        for k, u in enumerate(utts):
            path = root / "wavs" / split / f"{k:06d}.wav"
            if path.exists():  # resumed: written by an earlier call
                n = load(path, mono=True)[0].shape[-1]
            else:
                w, sr = load(u.audio, mono=True)
                w = perturb(resample(w, sr, SAMPLE_RATE), k)
                path.parent.mkdir(parents=True, exist_ok=True)
                save(path, w, SAMPLE_RATE)
                n = w.shape[-1]
            fields = {"audio": str(path.resolve()), "duration": n / SAMPLE_RATE, "sample_rate": SAMPLE_RATE}
            done.append(type(u)(**{**u.__dict__, **fields, "start": None, "end": None}))
        write_manifest(root / f"{split}.jsonl", done)
    return root


def main(argv: list[str] | None = None) -> dict:
    cfg = config_from_args(DomainSearchConfig, argv, __doc__)
    if cfg.materialize:
        return {"corpus": str(materialize(cfg, cfg.materialize))}
    return score(cfg)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
