"""TouchTTS's data claim in miniature: transcript agreement keeps more usable data than a clean-only filter.

1. Builds a raw corpus with known truth from held-out voices of the synthetic corpus
   (:mod:`audiotok.curation.rawcorpus`: long recordings, noise at 30/20/10/5 dB SNR, tones, time-reversed decoys).
2. Runs ``audiotok curate`` on it (segment, transcribe twice, report).
3. Compares three filters (and looser agreement thresholds, ``sweep``) on the same segments: **agreement**
   (TouchTTS: keep when the two recognisers agree), **clean-only** (keep segments whose recording's estimated SNR
   is at least ``snr_min``; the first recogniser's transcript) and **both**. For each: hours kept, retention, WER of the kept transcripts against the truth, and
   the share of kept audio that is decoy or tone.

    python recipes/curation/experiment.py --config recipes/curation/configs/synth.yaml

Writes ``OUT/results.md``/``results.json``. All data are synthetic.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from audiotok.config import config_from_args, save_config
from audiotok.curation.rawcorpus import RawCorpusConfig, build_raw_corpus, score_kept
from audiotok.curation.run import CurationConfig, read_segments, read_transcripts, run_curation
from audiotok.data.manifest import even_share, read_manifest, write_manifest


@dataclass
class PipelineExperimentConfig:
    source: str = "data/synth-adult/test.jsonl"  # held-out voices
    speakers: list[str] = field(default_factory=list)  # only these voices of the source (empty: all)
    n_utterances: int | None = None  # about this many of them, an even share of every voice (None: all)
    raw: RawCorpusConfig = field(default_factory=RawCorpusConfig)
    pipeline: CurationConfig = field(default_factory=CurationConfig)
    snr_min: float = 20.0  # the clean-only filter's threshold on the estimated SNR (dB)
    # looser agreement thresholds also reported (the pipeline's transcripts are reused; only the filter changes)
    sweep: list[float] = field(default_factory=list)
    out_dir: str = "runs/pipeline"


def run(cfg: PipelineExperimentConfig) -> dict:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "experiment.yaml")
    raw = out / "raw"
    if not (raw / "truth.jsonl").exists():
        source = cfg.source
        if cfg.speakers or cfg.n_utterances:
            utts = [u for u in read_manifest(cfg.source) if not cfg.speakers or u.speaker in cfg.speakers]
            source = out / "source.jsonl"
            write_manifest(source, even_share(utts, cfg.n_utterances)[: cfg.n_utterances])
        build_raw_corpus(source, raw, cfg.raw)
    work = out / "pipeline"
    report = run_curation(raw, work, cfg.pipeline, ("segment", "transcribe", "report"))
    segments, _ = read_segments(work)
    judged = read_transcripts(work)
    filters = {
        "agreement (TouchTTS)": lambda u, j: j["keep"],
        f"clean-only (SNR >= {cfg.snr_min:g} dB)": lambda u, j: u.extra["snr_db"] >= cfg.snr_min,
        "both": lambda u, j: j["keep"] and u.extra["snr_db"] >= cfg.snr_min,
    }
    for t in cfg.sweep:
        filters[f"agreement, threshold {t:g}"] = lambda u, j, t=t: (
            j["keep"] or (j.get("reason") == "disagree" and j["score"] <= t)
        )
    results = {"hours_in": report["hours_in"], "filters": {}}
    for name, keep in filters.items():
        kept = []
        for u in segments:
            j = judged.get(u.id)
            if j and keep(u, j):
                u.text = j["text_a"]
                kept.append(u)
        path = out / f"kept-{len(results['filters'])}.jsonl"
        write_manifest(path, kept)
        hours = sum(u.duration for u in kept) / 3600
        results["filters"][name] = {
            "manifest": path.name,
            "hours": hours,
            "retention": hours / report["hours_in"],
            **score_kept(path, raw / "truth.jsonl"),
        }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    lines = [
        f"Raw corpus: {report['inputs']} recordings, {report['hours_in']:.2f} h, made from `{cfg.source}` "
        "(synthetic voices; noise, tones and time-reversed decoys added). Recognisers: "
        f"`{cfg.pipeline.asr_a}` and `{cfg.pipeline.asr_b}`, agreement threshold {cfg.pipeline.threshold:g} "
        f"({cfg.pipeline.unit}).",
        "",
        "| filter | hours kept | retention | WER of kept transcripts vs truth | decoy/tone share of kept audio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results["filters"].items():
        lines.append(
            f"| {name} | {r['hours']:.3f} | {100 * r['retention']:.1f}% | {100 * r['wer_vs_truth']:.1f}% "
            f"| {100 * r['junk_share']:.1f}% |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print((out / "results.md").read_text())
    return results


def main(argv: list[str] | None = None) -> dict:
    return run(config_from_args(PipelineExperimentConfig, argv, __doc__))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
