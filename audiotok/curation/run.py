"""``audiotok curate RAW -o OUT``: segment -> transcribe twice -> keep what agrees -> tokenize -> report.

TouchTTS's claim is that S3-style tokens are robust to noise, so a TTS corpus needs no denoising, diarization or
punctuation models. Stages (each resumable, each also runnable alone with ``--stage``):

1. ``segment``: energy VAD cuts every input recording into 2-30 s utterances (``OUT/segments/<input>.jsonl``);
2. ``transcribe``: two different recognisers transcribe every utterance; it is kept when they agree within
   ``threshold`` (``OUT/transcripts-rank<r>.jsonl``, appended, so a restart skips what is done);
3. ``tokenize``: the kept utterances' raw audio -> semantic tokens in WebDataset shards (``OUT/shards``), with the
   first recogniser's transcript and the source's speaker label;
4. ``report``: hours in / kept, retention, rejection reasons, a duration histogram (``OUT/report.{json,md,png}``).

Under ``torchrun`` every stage takes its share of the inputs (rank r of w: items r, r + w, ...).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from audiotok.audio import AUDIO_EXTENSIONS, info, load, resample
from audiotok.curation.filter import judge
from audiotok.curation.segment import VADConfig, estimate_snr, segment
from audiotok.data.manifest import Utterance, read_manifest, write_manifest
from audiotok.utils import atomic_path, stable_hash

STAGES = ("segment", "transcribe", "tokenize", "report")


@dataclass
class CurationConfig:
    vad: VADConfig = field(default_factory=VADConfig)
    asr_a: str = "whisper-synth"  # a Whisper checkpoint or bundled name
    asr_b: str = "pocketsphinx"  # "pocketsphinx", a Whisper checkpoint, or a semantic tokenizer's ASR model
    threshold: float = 0.15  # largest disagreement (normalised edit distance) that is kept
    unit: str = "char"
    tokenizer: str | None = "semantic"  # bundled name or checkpoint of the token model; None: no tokens
    batch_size: int = 16
    device: str = "cpu"


def list_inputs(source: str | os.PathLike) -> list[Utterance]:
    """A manifest, or a folder of audio files (the parent folder's name is the speaker label)."""
    source = Path(source)
    if source.is_file():
        return read_manifest(source)
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"{source}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) and not a manifest")
    out = []
    for p in files:
        meta = info(p)
        speaker = p.parent.name if p.parent != source else None
        out.append(Utterance(str(p.relative_to(source).with_suffix("")), str(p), meta.duration, speaker=speaker))
    return out


def _safe(name: str) -> str:
    return f"{stable_hash(name) % 16**8:08x}-{Path(name).name[:60]}"


def stage_segment(inputs: list[Utterance], out: Path, cfg: CurationConfig, rank: int = 0, world: int = 1) -> None:
    """Each input -> ``OUT/segments/<input>.jsonl`` (kept utterances; rejected ones under ``extra``)."""
    folder = out / "segments"
    folder.mkdir(parents=True, exist_ok=True)
    mine = inputs[rank::world]
    for u in tqdm(mine, desc="segment", unit="file", disable=rank != 0):
        target = folder / f"{_safe(u.id)}.jsonl"
        if target.exists():
            continue
        wav, sr = load(u.audio, start=u.start, end=u.end, mono=True)
        wav = resample(wav, sr, 16000)
        kept, rejected = segment(wav, 16000, cfg.vad)
        snr = round(estimate_snr(wav, 16000, cfg.vad), 1)
        offset = u.start or 0.0
        rows = [
            Utterance(
                f"{u.id}_{i:04d}",
                u.audio,
                round(b - a, 3),
                speaker=u.speaker,
                start=round(offset + a, 3),
                end=round(offset + b, 3),
                extra={"source": u.id, "snr_db": snr},
            )
            for i, (a, b) in enumerate(kept)
        ]
        meta = {"source": u.id, "duration": u.duration, "snr_db": snr, "rejected": [list(r) for r in rejected]}
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps({"_input": meta}) + "\n" + "".join(json.dumps(r.to_dict()) + "\n" for r in rows))


def read_segments(out: Path) -> tuple[list[Utterance], list[dict]]:
    """(all kept segments, per-input metadata) from ``OUT/segments``."""
    utts, inputs = [], []
    for f in sorted((out / "segments").glob("*.jsonl")):
        lines = f.read_text().splitlines()
        inputs.append(json.loads(lines[0])["_input"])
        utts += [Utterance.from_dict(json.loads(line)) for line in lines[1:]]
    return utts, inputs


def build_recognizer(spec: str, device: str = "cpu", batch_size: int = 16):
    """``spec`` -> a function (list of 16 kHz waveforms) -> transcripts."""
    if spec == "pocketsphinx":
        from audiotok.sphinx import recognize

        return recognize
    from audiotok import registry
    from audiotok.whisper import load_whisper, transcribe_audio

    if registry.resolve(spec).model_type == "audiotok-s3-asr":
        asr = registry.load(spec, "semantic-asr", device=device)
        return lambda wavs: transcribe_audio(
            asr.whisper, wavs, batch_size=batch_size, decode=asr.transcribe_from_tokens
        )
    model = load_whisper(spec, device=device)
    return lambda wavs: transcribe_audio(model, wavs, batch_size=batch_size)


def stage_transcribe(out: Path, cfg: CurationConfig, rank: int = 0, world: int = 1) -> None:
    """Transcribe each segment twice and judge the pair; appends to ``OUT/transcripts-rank<r>.jsonl``."""
    segments, _ = read_segments(out)
    target = out / f"transcripts-rank{rank}.jsonl"
    done = {json.loads(line)["id"] for line in target.read_text().splitlines()} if target.exists() else set()
    todo = [u for u in segments[rank::world] if u.id not in done]
    if not todo:
        return
    rec_a = build_recognizer(cfg.asr_a, cfg.device, cfg.batch_size)
    rec_b = build_recognizer(cfg.asr_b, cfg.device, cfg.batch_size)
    bar = tqdm(total=len(todo), desc="transcribe", unit="utt", disable=rank != 0)
    with target.open("a") as f:
        for i in range(0, len(todo), cfg.batch_size):
            chunk = todo[i : i + cfg.batch_size]
            wavs = []
            for u in chunk:
                w, sr = load(u.audio, start=u.start, end=u.end, mono=True)
                wavs.append(resample(w, sr, 16000))
            for u, a, b in zip(chunk, rec_a(wavs), rec_b(wavs), strict=True):
                keep, reason, score = judge(a, b, cfg.threshold, cfg.unit)
                row = {"id": u.id, "text_a": a, "text_b": b, "score": round(score, 4), "keep": keep, "reason": reason}
                f.write(json.dumps(row) + "\n")
            f.flush()
            bar.update(len(chunk))
    bar.close()


def read_transcripts(out: Path) -> dict[str, dict]:
    rows = {}
    for f in sorted(out.glob("transcripts-rank*.jsonl")):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            rows[row["id"]] = row
    return rows


def kept_manifest(out: Path) -> Path:
    """``OUT/kept.jsonl``: the kept segments with the first recogniser's transcript as text."""
    segments, _ = read_segments(out)
    judged = read_transcripts(out)
    kept = []
    for u in segments:
        row = judged.get(u.id)
        if row and row["keep"]:
            u.text = row["text_a"]
            u.extra["text_b"], u.extra["agreement_score"] = row["text_b"], row["score"]
            kept.append(u)
    write_manifest(out / "kept.jsonl", kept)
    return out / "kept.jsonl"


def stage_tokenize(out: Path, cfg: CurationConfig, rank: int = 0, world: int = 1) -> None:
    """The kept utterances' raw audio -> token shards in ``OUT/shards`` (transcript + speaker ride along)."""
    if cfg.tokenizer is None:
        return
    from audiotok.batch import EncodeOptions, collect_inputs, encode_items
    from audiotok.registry import load_tokenizer

    manifest = kept_manifest(out)
    model, name = load_tokenizer(cfg.tokenizer, device=cfg.device)
    opts = EncodeOptions(
        out=str(out / "shards"),
        format="shards",
        batch_seconds=120.0 if str(cfg.device).startswith("cuda") else 0.0,
        n_workers=0,
        rank=rank,
        world_size=world,
        progress=rank == 0,
    )
    encode_items(model, name, collect_inputs([str(manifest)]), opts)


def stage_report(out: Path) -> dict:
    """Hours in / kept, retention and rejection reasons as JSON + Markdown, and a duration histogram PNG."""
    segments, inputs = read_segments(out)
    judged = read_transcripts(out)
    hours_in = sum(m["duration"] for m in inputs) / 3600
    seg_hours = sum(u.duration for u in segments) / 3600
    reasons = {"too_short": sum(b - a for m in inputs for a, b, _ in m["rejected"]) / 3600}
    reasons["not_speech"] = max(0.0, hours_in - seg_hours - reasons["too_short"])
    kept = []
    for u in segments:
        row = judged.get(u.id)
        reason = row["reason"] if row else "not_transcribed"
        if reason == "kept":
            kept.append(u.duration)
        else:
            reasons[reason] = reasons.get(reason, 0.0) + u.duration / 3600
    report = {
        "inputs": len(inputs),
        "hours_in": hours_in,
        "hours_segmented": seg_hours,
        "hours_kept": sum(kept) / 3600,
        "retention": (sum(kept) / 3600) / hours_in if hours_in else 0.0,
        "utterances_segmented": len(segments),
        "utterances_kept": len(kept),
        "rejected_hours": reasons,
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    lines = [
        f"# Pipeline report: {out}",
        "",
        f"- inputs: {len(inputs)} recordings, {hours_in:.3f} h",
        f"- segmented: {len(segments)} utterances, {seg_hours:.3f} h",
        f"- kept: {len(kept)} utterances, {report['hours_kept']:.3f} h ({100 * report['retention']:.1f}% of the input)",
        "",
        "| rejected because | hours |",
        "|---|---:|",
        *[f"| {k} | {v:.3f} |" for k, v in reasons.items()],
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    duration_histogram([u.duration for u in segments], kept, out / "durations.png")
    return report


def duration_histogram(all_durations: list[float], kept: list[float], path: Path, bins: int = 28) -> Path:
    """Segment durations (grey) and kept ones (colour), 1 s bins from 2 to 30 s, as a PNG."""
    from PIL import Image, ImageDraw

    edges = torch.linspace(2.0, 30.0, bins + 1)
    h_all = torch.histogram(torch.tensor(all_durations or [0.0]).clamp(2, 30), edges).hist
    h_kept = torch.histogram(torch.tensor(kept or [0.0]).clamp(2, 30), edges).hist
    if not kept:
        h_kept.zero_()
    W, H, pad = 20 * bins + 60, 220, 30
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    top = max(float(h_all.max()), 1.0)
    for i in range(bins):
        x = pad + i * 20
        for hist, colour in ((h_all, (190, 190, 190)), (h_kept, (42, 120, 142))):
            y = H - pad - int((H - 2 * pad) * float(hist[i]) / top)
            d.rectangle([x, y, x + 17, H - pad], fill=colour)
        if i % 4 == 0:
            d.text((x, H - pad + 4), f"{edges[i]:.0f}s", fill="black")
    d.text((pad, 6), f"segment durations (grey: all {len(all_durations)}, blue: kept {len(kept)})", fill="black")
    img.save(path)
    return path


def run_curation(
    source: str | os.PathLike, out: str | os.PathLike, cfg: CurationConfig, stages=STAGES, rank: int = 0, world: int = 1
) -> dict | None:
    """Run ``stages`` in order (call on every rank under torchrun; the report is rank 0's)."""
    from audiotok.train import barrier

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if "segment" in stages:
        stage_segment(list_inputs(source), out, cfg, rank, world)
        barrier()
    if "transcribe" in stages:
        stage_transcribe(out, cfg, rank, world)
        barrier()
    if "tokenize" in stages:
        stage_tokenize(out, cfg, rank, world)
        barrier()
    if "report" in stages and rank == 0:
        return stage_report(out)
    return None
