"""The last step of TouchTTS's data claim in miniature: does TTS trained on what a filter kept speak better?

For each chosen filter of an ``experiment.py`` run (its ``kept-*.jsonl``: the kept segments of the raw recordings,
with the first recogniser's transcripts), the base TTS's LM is fine-tuned for the same number of steps on that
data (``train_lm.py init_tts=...``: the segments' semantic tokens of the *raw* audio, as TouchTTS trains on it);
the base flow and vocoder are reused. Each LM, and the base LM untouched, then speaks the same held-out sentences
and the judges score them (``eval-tts``, offline mode). Each LM is also scored teacher-forced on the true semantic
tokens of every held-out sentence of those voices (loss in nats per speech token, token accuracy): a measure that
still ranks the LMs while the flow's output is too poor for the judges. Fewer hours retained should not win.

    python recipes/curation/tts_compare.py --config recipes/curation/configs/tts-compare.yaml

Writes ``OUT/results.md``/``results.json``; resumable (finished fine-tunes and evaluations are skipped). The base
TTS is a TTS folder (``tts`` = the bundled default). All data are synthetic.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from audiotok.config import config_from_args, save_config
from audiotok.registry import ASSETS
from tts.pipeline import PIPELINE_FILE, read_spec

JUDGE_VOICES = ["flite-awb", "flite-rms", "flite-slt", "festival-kal", "festival-slt-hts"]


@dataclass
class TTSCompareConfig:
    experiment: str = "runs/pipeline-judge"  # an experiment.py output folder (results.json + kept-*.jsonl)
    filters: list[str] = field(default_factory=lambda: ["agreement (TouchTTS)", "clean-only (SNR >= 20 dB)"])
    tts: str = "tts"  # the base TTS folder, or a bundled name
    steps: int = 300  # fine-tuning steps, the same for every filter
    lr: float = 1.0e-4
    batch_tokens: int = 4000
    eval_manifest: str = "data/synth-adult/valid.jsonl"  # held-out sentences of the judge's voices
    prompts: str = "data/synth-adult-10h/train.jsonl"
    speakers: list[str] = field(default_factory=lambda: list(JUDGE_VOICES))
    limit: int = 50
    flow_steps: int = 10
    max_ratio: float = 20.0  # most speech tokens per text token
    whisper: str | None = "whisper-synth"  # second judge (None: pocketsphinx only)
    speaker_model: str = "speaker"
    out_dir: str = "runs/pipeline-tts"
    device: str = "cpu"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def kept_manifests(experiment: Path) -> dict[str, dict]:
    """Filter name -> its results entry, with ``manifest`` (the kept-*.jsonl written in the filters' order)."""
    results = json.loads((experiment / "results.json").read_text())["filters"]
    return {
        name: {**r, "manifest": str(experiment / r.get("manifest", f"kept-{i}.jsonl"))}
        for i, (name, r) in enumerate(results.items())
    }


RECIPES = Path(__file__).resolve().parents[1]


def run_recipe(script: str, args: list[str]) -> None:
    """Run another recipe as its own process (recipes are scripts; none imports another)."""
    subprocess.run([sys.executable, str(RECIPES / script), *args], check=True)


def base_folder(name: str) -> Path:
    path = Path(name)
    return path if path.exists() or len(path.parts) > 1 else ASSETS / name


def fine_tune(cfg: TTSCompareConfig, base: Path, manifest: str, out: Path) -> Path:
    """The base LM fine-tuned on ``manifest`` for ``cfg.steps`` steps -> a TTS folder reusing the base flow and
    vocoder (its ``pipeline.json`` names them by absolute path)."""
    spec = read_spec(base)
    if not (out / "lm" / "done").exists():
        run_recipe(
            "tts/train_lm.py",
            [
                f"init_tts={spec['lm']}",
                f"data.train={manifest}",
                f"data.valid={manifest}",
                "data.n_valid=16",
                f"data.batch_tokens={cfg.batch_tokens}",
                f"semantic_tokenizer={spec['semantic']}",
                f"out_dir={out}",
                f"loop.max_steps={cfg.steps}",
                f"loop.lr={cfg.lr}",
                f"loop.warmup_steps={min(20, cfg.steps)}",
                f"loop.save_every={cfg.steps}",
                f"loop.valid_every={cfg.steps}",
                f"device={cfg.device}",
            ],
        )
        (out / "lm" / "done").touch()
    folder = out / "tts"
    folder.mkdir(exist_ok=True)
    (folder / PIPELINE_FILE).write_text(json.dumps({**spec, "lm": str((out / "lm").resolve())}, indent=1))
    return folder


def heldout_tokens(cfg: TTSCompareConfig, semantic: str, out: Path) -> list[dict]:
    """The held-out sentences of the judged voices as token-cache rows (tokenized once into ``out``)."""
    from audiotok.registry import load_tokenizer
    from tts.data import extract_tokens, read_tokens

    if not Path(f"{out}.done").exists():
        extract_tokens(cfg.eval_manifest, load_tokenizer(semantic)[0], out)
        Path(f"{out}.done").touch()
    return [r for r in read_tokens(out) if not cfg.speakers or r["speaker"] in cfg.speakers]


def score_lm(cfg: TTSCompareConfig, folder: Path, records: list[dict], out: Path) -> dict:
    """Teacher-forced held-out loss and token accuracy of a TTS folder's LM (:func:`tts.lm_metrics.teacher_forced_metrics`)."""
    if out.exists():
        return json.loads(out.read_text())
    from tts.lm import TTSLM
    from tts.lm_metrics import teacher_forced_metrics

    lm = TTSLM.from_pretrained(read_spec(folder)["lm"]).to(cfg.device).eval()
    result = {
        **teacher_forced_metrics(lm, lm.objective(), records, len(records), cfg.device),
        "utterances": len(records),
    }
    out.write_text(json.dumps(result, indent=1))
    return result


def evaluate(cfg: TTSCompareConfig, folder: Path, out: Path) -> dict:
    if out.exists():
        return json.loads(out.read_text())
    from audiotok.speaker import SpeakerEncoder
    from audiotok.whisper import load_whisper
    from tts.evaluate import evaluate_tts
    from tts.pipeline import TTS, SynthesisOptions
    from tts.sampling import SamplingConfig

    result = evaluate_tts(
        TTS.from_pretrained(folder, device=cfg.device),
        cfg.eval_manifest,
        cfg.prompts,
        SpeakerEncoder.from_pretrained(cfg.speaker_model, device=cfg.device),
        load_whisper(cfg.whisper, device=cfg.device) if cfg.whisper else None,
        limit=cfg.limit,
        modes=("offline",),
        options=SynthesisOptions(sampling=SamplingConfig(max_ratio=cfg.max_ratio), n_steps=cfg.flow_steps),
        speakers=cfg.speakers or None,
    )
    out.write_text(json.dumps(result, indent=1))
    return result


def run(cfg: TTSCompareConfig) -> dict:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "compare.yaml")
    base = base_folder(cfg.tts)
    if not (base / PIPELINE_FILE).is_file():
        raise FileNotFoundError(f"{base}: not a TTS folder (train the TTS defaults first: recipes/tts)")
    kept = kept_manifests(Path(cfg.experiment))
    missing = [f for f in cfg.filters if f not in kept]
    if missing:
        raise ValueError(f"filters not in {cfg.experiment}/results.json: {missing}; there: {list(kept)}")
    records = heldout_tokens(cfg, read_spec(base)["semantic"], out / "heldout-tokens.jsonl")
    rows = {
        "base TTS (no fine-tuning)": {
            "tts": evaluate(cfg, base, out / "base.json"),
            "lm": score_lm(cfg, base, records, out / "base-lm.json"),
        }
    }
    for name in cfg.filters:
        run_dir = out / slug(name)
        folder = fine_tune(cfg, base, kept[name]["manifest"], run_dir)
        rows[name] = {
            **kept[name],
            "tts": evaluate(cfg, folder, run_dir / "eval.json"),
            "lm": score_lm(cfg, folder, records, run_dir / "lm-heldout.json"),
        }
    base_eval = rows["base TTS (no fine-tuning)"]["tts"]
    rec = base_eval["recordings"]
    rec_whisper = f"{100 * rec['wer_whisper']:.1f}%" if "wer_whisper" in rec else ""
    lines = [
        f"Base TTS `{base}`; each LM fine-tuned {cfg.steps} steps (lr {cfg.lr:g}) on a filter's kept segments of "
        f"`{cfg.experiment}` (raw audio, first recogniser's transcripts); flow and vocoder reused. Judged on "
        f"{base_eval['utterances']} held-out sentences of `{cfg.eval_manifest}` (synthetic voices), offline; "
        f"LM loss / accuracy teacher-forced on the true tokens of all {len(records)} held-out sentences of those "
        "voices.",
        "",
        "| LM trained on | hours | WER of its transcripts | held-out LM loss | token acc. | TTS WER (pocketsphinx) "
        "| TTS WER (whisper) | similarity |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| (the corpus recordings of the test sentences) | | | | | {100 * rec['wer_sphinx']:.1f}% | {rec_whisper} | |",
    ]
    for name, r in rows.items():
        e = r["tts"]["offline"]
        hours = f"{r['hours']:.3f}" if "hours" in r else ""
        wer_t = f"{100 * r['wer_vs_truth']:.1f}%" if "wer_vs_truth" in r else ""
        wer_w = f"{100 * e['wer_whisper']:.1f}%" if "wer_whisper" in e else ""
        lm = f"{r['lm']['loss']:.3f} | {100 * r['lm']['acc']:.1f}%"
        lines.append(
            f"| {name} | {hours} | {wer_t} | {lm} | {100 * e['wer_sphinx']:.1f}% | {wer_w} | {e['similarity']:.3f} |"
        )
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print((out / "results.md").read_text())
    return rows


def main(argv: list[str] | None = None) -> dict:
    return run(config_from_args(TTSCompareConfig, argv, __doc__))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
