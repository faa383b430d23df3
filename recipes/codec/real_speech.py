"""Real recordings through the bundled codecs — for evaluation only, never training: reconstruction metrics,
what a Whisper judge hears in the original and in the decoded audio, and the speaker judge's similarity.

    OMP_NUM_THREADS=1 python recipes/codec/real_speech.py ~/.cache/audiotok/real-speech/jfk \
        [--out DIR] [--models codec codec-40] [--judge tiny.en] [--speaker-model speaker] [--no-judges]

``RECORDINGS`` is a folder of audio files with optional side-car transcripts (``x.txt`` beside ``x.wav``: the
``folder`` layout of ``audiotok prepare``). The script

1. writes ``OUT/manifest.jsonl`` (one line per file, at its own rate, with its sha256 under ``extra``);
2. scores every codec with :func:`audiotok.codec.evaluate.evaluate_codec` — all clips together (one clip per
   batch, with the lower/upper reference points) and each clip alone — in the clean condition and with no
   per-speaker skip (a few loose files have no held-out split);
3. decodes each clip (the codec's input: the file resampled to the codec's 24 kHz) and, unless ``--no-judges``,
   transcribes input and output with the Whisper judge — WER against the transcript where there is one, and of
   the decoded text against the original's — and takes the speaker judge's cosine similarity of output vs input
   (:meth:`audiotok.speaker.SpeakerEncoder.similarity`).

Prints a Markdown table, writes ``OUT/results.json`` and the decoded audio under ``OUT/decoded/<model>/``
(``--no-audio``: not). A ``SOURCE.md`` in the folder is copied into the results. Bundled codecs that are not
installed are reported as skipped. Keep the recordings and ``OUT`` outside the repository: they are not ours to
commit, and nothing here may train on them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from audiotok import audio
from audiotok.codec.evaluate import METRICS, evaluate_codec, format_table
from audiotok.codec.model import Codec
from audiotok.data.dataset import AudioDataset
from audiotok.data.manifest import Utterance, read_manifest, write_manifest
from audiotok.data.prepare import prepare
from audiotok.registry import BUNDLED, ModelNotFound
from audiotok.utils import sha256_file
from audiotok.whisper import transcribe_audio, word_error_rate

# every bundled acoustic codec, installed or not (those missing are reported as skipped)
DEFAULT_MODELS = tuple(name for name, b in BUNDLED.items() if b.model_type == "audiotok-codec")
ONE_CLIP_PER_BATCH = 1e-6  # evaluate_codec's batch_seconds: any clip is longer, so each is decoded alone, unpadded


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "clip"


def build_manifest(recordings: str | os.PathLike, out_dir: str | os.PathLike, language: str = "en") -> Path:
    """``OUT/manifest.jsonl`` of the audio files below ``recordings`` (side-car ``.txt`` transcripts as ``text``,
    the file's sha256 as ``extra.sha256``). Raises ``FileNotFoundError`` when no file is usable."""
    found = prepare(recordings, layout="folder", language=language, progress=False)
    for path, reason in found.failed.items():
        print(f"skipping {path}: {reason}")
    if not found.utterances:
        raise FileNotFoundError(f"{recordings}: no readable audio files")
    for u in found.utterances:
        u.extra["sha256"] = sha256_file(u.audio)
    path = Path(out_dir) / "manifest.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(path, found.utterances)
    return path


def load_codecs(names: list[str], device: str = "cpu") -> tuple[dict[str, Codec], dict[str, str]]:
    """The codecs that load, and the reason for each that does not (a bundled name not installed)."""
    models, skipped = {}, {}
    for name in names:
        try:
            models[name] = Codec.from_pretrained(name, device=device)
        except ModelNotFound as err:
            skipped[name] = str(err)
    return models, skipped


def _decode_all(model: Codec, manifest: Path) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each clip at the codec's rate (its input) and its encode -> decode, one clip at a time."""
    dataset = AudioDataset(manifest, sample_rate=model.sample_rate)
    refs, recs = [], []
    for i in range(len(dataset)):
        wav = dataset[i]["audio"]
        refs.append(wav)
        recs.append(model.reconstruct(wav[None].to(model.device))[0].cpu())
    return refs, recs


def _wer(refs: list[str | None], hyps: list[str]) -> float | None:
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    return word_error_rate([r for r, _ in pairs], [h for _, h in pairs]) if pairs else None


def run(
    manifest: str | os.PathLike,
    models: dict[str, Codec],
    out_dir: str | os.PathLike,
    whisper: Any = None,
    speaker: Any = None,
    save_audio: bool = True,
) -> dict:
    """Scores of ``models`` on the clips of ``manifest``; ``whisper`` (an openai-whisper model) and ``speaker`` (a
    :class:`~audiotok.speaker.SpeakerEncoder`) are the optional judges."""
    manifest, out_dir = Path(manifest), Path(out_dir)
    utts: list[Utterance] = read_manifest(manifest)
    texts = [u.text for u in utts]
    result: dict[str, Any] = {
        "evaluation_only": True,
        "manifest": str(manifest),
        "clips": [
            {"id": u.id, "duration": u.duration, "sample_rate": u.sample_rate, "text": u.text, **u.extra} for u in utts
        ],
        "models": {},
    }
    one_clip = {}
    for u in utts:
        one_clip[u.id] = out_dir / "clips" / f"{slug(u.id)}.jsonl"
        write_manifest(one_clip[u.id], [u])
    original: dict[str, Any] | None = None
    for name, model in models.items():
        overall = evaluate_codec(model, manifest, batch_seconds=ONE_CLIP_PER_BATCH, progress=False)
        clips = {
            u.id: evaluate_codec(
                model, one_clip[u.id], batch_seconds=ONE_CLIP_PER_BATCH, references=False, progress=False
            )["codec"]
            for u in utts
        }
        refs, recs = _decode_all(model, manifest)
        sr = model.sample_rate
        if save_audio:
            for u, rec in zip(utts, recs, strict=True):
                audio.save(out_dir / "decoded" / slug(name) / f"{slug(u.id)}.wav", rec, sr)
        entry: dict[str, Any] = {"eval": overall, "clips": clips}
        if whisper is not None:
            if original is None:  # the input is the same for every codec at the same rate
                hyps = transcribe_audio(whisper, refs, sample_rate=sr)
                original = {
                    "transcripts": dict(zip([u.id for u in utts], hyps, strict=True)),
                    "wer": {u.id: _wer([u.text], [h]) for u, h in zip(utts, hyps, strict=True)},
                    "wer_all": _wer(texts, hyps),
                }
            orig_hyps = list(original["transcripts"].values())
            hyps = transcribe_audio(whisper, recs, sample_rate=sr)
            for u, h, o in zip(utts, hyps, orig_hyps, strict=True):
                clips[u.id].update(
                    transcript=h, wer=_wer([u.text], [h]), wer_vs_original=word_error_rate([o], [h]) if o else None
                )
            entry["wer"] = _wer(texts, hyps)
            entry["wer_vs_original"] = _wer(orig_hyps, hyps)
        if speaker is not None:
            sims = speaker.similarity(refs, recs, sr)
            for u, s in zip(utts, sims.tolist(), strict=True):
                clips[u.id]["speaker_similarity"] = s
            entry["speaker_similarity"] = float(sims.mean())
            if len(refs) > 1 and "speaker_reference" not in result:  # originals vs each other: a reference
                pairs = [(i, j) for i in range(len(refs)) for j in range(i + 1, len(refs))]
                cross = speaker.similarity([refs[i] for i, _ in pairs], [refs[j] for _, j in pairs], sr)
                result["speaker_reference"] = {"original_vs_other_clips": float(cross.mean()), "pairs": len(pairs)}
        result["models"][name] = entry
    if original is not None:
        result["original"] = original
    return result


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "—" if x is None or x != x else format(x, fmt)


def format_results(result: dict) -> str:
    """A Markdown table (one row per codec and clip, then each codec over all clips) and the transcripts."""
    judged = "original" in result
    head = ["codec", "clip", "s", "PESQ-wb", "STOI", "mel dist", "MR-STFT", "SI-SNR (dB)"]
    if judged:
        head += ["WER original", "WER decoded", "decoded vs original text"]
    speaker = any("speaker_similarity" in e for e in result["models"].values())
    if speaker:
        head.append("speaker sim.")
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    clips = {c["id"]: c for c in result["clips"]}
    orig = result.get("original", {})
    for name, e in result["models"].items():
        rows = [(cid, clips[cid]["duration"], m, orig.get("wer", {}).get(cid), m) for cid, m in e["clips"].items()]
        if len(rows) > 1:
            total = sum(c["duration"] for c in result["clips"])
            rows.append(("**all**", total, e["eval"]["codec"], orig.get("wer_all"), e))
        for cid, dur, m, wer_orig, judge in rows:
            cells = [name, cid, f"{dur:.1f}"] + [_num(m[k], ".1f" if k == "si_snr" else ".3f") for k in METRICS]
            if judged:
                cells += [_num(wer_orig), _num(judge.get("wer")), _num(judge.get("wer_vs_original"))]
            if speaker:
                cells.append(_num(judge.get("speaker_similarity")))
            lines.append("| " + " | ".join(cells) + " |")
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"\n{name}: skipped ({reason})")
    if "speaker_reference" in result:
        r = result["speaker_reference"]
        lines.append(
            f"\nspeaker judge, originals vs each other ({r['pairs']} pairs): {r['original_vs_other_clips']:.3f}"
        )
    if judged:
        lines.append("\ntranscripts (true / original / decoded per codec):")
        for c in result["clips"]:
            lines.append(f"- {c['id']}: true: {c['text']!r}; original: {orig['transcripts'][c['id']]!r}")
            for name, e in result["models"].items():
                lines.append(f"  - {name}: {e['clips'][c['id']]['transcript']!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("recordings", help="a folder of audio files (+ side-car .txt transcripts); outside the repository")
    p.add_argument("--out", default=None, help="output folder (default: $AUDIOTOK_RUNS/real-speech/<folder name>)")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="codecs: bundled names or checkpoints")
    p.add_argument("--judge", default="tiny.en", help="Whisper judge: a name or checkpoint ('none': skip)")
    p.add_argument("--speaker-model", default="speaker", help="speaker judge ('none': skip)")
    p.add_argument("--no-judges", action="store_true", help="reconstruction metrics only (no Whisper, no speaker)")
    p.add_argument("--language", default="en")
    p.add_argument("--no-audio", action="store_true", help="do not write the decoded audio")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    recordings = Path(args.recordings).expanduser()
    out = Path(args.out or Path(os.environ.get("AUDIOTOK_RUNS", "runs")) / "real-speech" / recordings.name)
    manifest = build_manifest(recordings, out, args.language)
    models, skipped = load_codecs(args.models, args.device)
    whisper = speaker = None
    if not args.no_judges and args.judge != "none":
        from audiotok.whisper import load_whisper

        whisper = load_whisper(args.judge, device=args.device)
    if not args.no_judges and args.speaker_model != "none":
        from audiotok.speaker import SpeakerEncoder

        speaker = SpeakerEncoder.from_pretrained(args.speaker_model, device=args.device)
    result = run(manifest, models, out, whisper, speaker, save_audio=not args.no_audio)
    result.update(
        recordings=str(recordings),
        skipped=skipped,
        judges={
            "whisper": None if whisper is None else args.judge,
            "speaker": None if speaker is None else args.speaker_model,
        },
    )
    if (recordings / "SOURCE.md").is_file():
        result["source"] = (recordings / "SOURCE.md").read_text()
    for name, e in result["models"].items():
        print(f"## {name} (evaluate_codec, all clips)\n\n{format_table(e['eval'])}\n")
    print(format_results(result))
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out / 'results.json'}")
    return result


if __name__ == "__main__":
    main()
