"""Build the synthetic corpus: plan (voice, sentence, split) for every utterance, synthesise, write manifests.

Layout of ``OUT``::

    wavs/<speaker>/<id>.wav      24 kHz mono 16-bit (engines run at 16-32 kHz: nothing above ~8-11 kHz)
    wavs/<speaker>/<id>.txt      the transcript (LibriTTS-style side-car, so `audiotok prepare` can re-index)
    train.jsonl valid.jsonl test.jsonl all.jsonl
    corpus.json                  seed, voices and their split, counts, and the "synthetic" flag

Every utterance records the ``phonemes`` of its text (Hibari's G2P, :func:`audiotok.data.synth.neural.phonemize`,
when ``hibari-tts`` is installed) and, for a neural voice, its speaking ``speed``. Utterances are made in an
interleaved order (a stable hash of the id) and the manifests are rewritten every ``flush_every`` utterances, so a
partial build is a balanced, usable corpus (``corpus.json`` says ``"complete": false``) while it grows.

Splits: ``train`` = train voices x train sentences; ``valid`` = train voices x held-out sentences (TTS
intelligibility); ``test`` = held-out voices x held-out test sentences. The plan is a pure function of the config,
synthesis is deterministic, and existing wavs are kept, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audiotok import audio
from audiotok.data.manifest import Utterance, write_manifest
from audiotok.data.synth.neural import MissingEngine, phonemize, synthesize_neural
from audiotok.data.synth.text_sources import load_sentences, text_split
from audiotok.data.synth.voices import INTELLIGIBLE, NEURAL_ENGINES, NEURAL_SPEED, Voice, is_test_voice, list_voices
from audiotok.utils import stable_hash

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000
MEAN_SECONDS_PER_UTTERANCE = 2.8  # measured on the adult corpus (2.85 s); only used to plan how many to make


@dataclass(frozen=True)
class CorpusConfig:
    """What to build."""

    out_dir: str
    minutes: float = 30.0  # approximate total audio
    seed: int = 0
    domain: str = "adult"  # "adult" or "child"
    n_espeak: int = 16  # espeak-ng accent x variant speakers
    main_voice_weight: int = 4  # flite/festival/mbrola/pico voices get this many shares, espeak voices one
    valid_percent: int = 10  # share of train-voice utterances that use held-out (valid) sentences
    min_words: int = 4
    max_words: int = 20
    jobs: int = 2  # engine processes in parallel
    sample_rate: int = SAMPLE_RATE
    neural: bool = False  # add the neural voices (corpus v2): Kokoro packs + blends, Hibari heart, Piper joe
    kokoro_weight: int = 2  # shares of each Kokoro pack or blend
    single_neural_weight: int = 8  # shares of Hibari heart and of Piper joe (one voice each)
    flush_every: int = 500  # rewrite the manifests after this many utterances


@dataclass(frozen=True)
class PlannedUtterance:
    id: str
    voice: Voice
    text: str
    split: str


def plan_corpus(config: CorpusConfig, voices: list[Voice] | None = None) -> list[PlannedUtterance]:
    """Decide every utterance: a pure function of the config (and the installed voices)."""
    voices = voices if voices is not None else list_voices(config.domain, config.n_espeak, config.seed, config.neural)
    if not voices:
        raise RuntimeError("no TTS engine found: install flite, festival and espeak-ng (make setup does)")
    sentences = load_sentences(config.min_words, config.max_words)
    pools = {s: [x for x in sentences if text_split(x) == s] for s in ("train", "valid", "test")}
    share = {"espeak": 1, "kokoro": config.kokoro_weight, "hibari": config.single_neural_weight}
    share["piper"] = config.single_neural_weight
    weights = np.array([share.get(v.engine, config.main_voice_weight) for v in voices], dtype=float)
    total = max(len(voices), int(round(config.minutes * 60 / MEAN_SECONDS_PER_UTTERANCE)))
    counts = np.maximum(1, np.round(weights / weights.sum() * total)).astype(int)
    plan = []
    for voice, n in zip(voices, counts, strict=True):
        rng = np.random.default_rng(stable_hash("plan", config.seed, voice.name) % 2**63)
        held_out = is_test_voice(voice)
        picks = {s: iter(rng.permutation(len(pools[s])).tolist()) for s in pools}
        for k in range(int(n)):
            if held_out:
                split = "test"
            else:
                # the first one is always train, so every train voice is in train
                split = "valid" if rng.random() < config.valid_percent / 100 and k > 0 else "train"
            plan.append(PlannedUtterance(f"{voice.name}_{k:05d}", voice, pools[split][next(picks[split])], split))
    return plan


def utterance_speed(utt_id: str, voice: Voice) -> float:
    """The speaking rate of one utterance: uniform in :data:`NEURAL_SPEED` for neural voices (stable per id)."""
    if not voice.neural:
        return 1.0
    lo, hi = NEURAL_SPEED
    return round(lo + (hi - lo) * (stable_hash("speed", utt_id) % 10_000) / 9_999, 3)


def synthesize(voice: Voice, text: str, sample_rate: int = SAMPLE_RATE, workdir: str | None = None, speed: float = 1.0):
    """Run the engine (and sox effects) for one sentence; returns mono float32 ``(T,)`` at ``sample_rate`` and
    the engine's native rate. ``speed`` applies to the neural engines."""
    if voice.neural:
        wav, native_rate = synthesize_neural(voice.engine, voice.voice, text, speed)
        return _finish(torch.from_numpy(wav), native_rate, sample_rate), native_rate
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        raw = Path(tmp) / "raw.wav"
        cmd, stdin = voice.command(text, raw)
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0 or not raw.exists():
            raise RuntimeError(f"{voice.name}: {' '.join(cmd[:3])} failed: {res.stderr.strip()[:300]}")
        effects = voice.sox_effects()
        if effects:
            shifted = Path(tmp) / "fx.wav"
            res = subprocess.run(["sox", str(raw), str(shifted), *effects], capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise RuntimeError(f"{voice.name}: sox {' '.join(effects)} failed: {res.stderr.strip()[:300]}")
            raw = shifted
        wav, native_rate = audio.load(raw, mono=True)
    return _finish(wav, native_rate, sample_rate), native_rate


def _finish(wav: torch.Tensor, native_rate: int, sample_rate: int) -> torch.Tensor:
    wav = audio.trim_silence(wav, native_rate)
    wav = audio.resample(wav, native_rate, sample_rate)
    return audio.peak_normalize(wav, -1.0)


def _phonemes(text: str) -> str | None:
    try:
        return phonemize(text)
    except MissingEngine:
        return None


def _make(item: PlannedUtterance, out_dir: Path, sample_rate: int) -> Utterance:
    wav_path = out_dir / "wavs" / item.voice.name / f"{item.id}.wav"
    txt_path = wav_path.with_suffix(".txt")
    meta_path = wav_path.with_suffix(".json")
    text = item.text
    if wav_path.exists() and txt_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        # the side-car says what the audio says: a resumed build keeps it even when the text front end (or the
        # sentence sources) changed since, so manifest and audio never disagree (its split is that of its own text)
        text = txt_path.read_text().strip()
    else:
        speed = utterance_speed(item.id, item.voice)
        wav, native_rate = synthesize(item.voice, item.text, sample_rate, speed=speed)
        audio.save(wav_path, wav, sample_rate)
        txt_path.write_text(item.text + "\n")
        meta = {"n_samples": int(wav.shape[-1]), "native_sample_rate": native_rate, "phonemes": _phonemes(item.text)}
        if item.voice.neural:
            meta["speed"] = speed
        meta_path.write_text(json.dumps(meta))
    extra = {k: meta[k] for k in ("phonemes", "speed") if meta.get(k) is not None}
    return Utterance(
        id=item.id,
        audio=str(wav_path),
        duration=meta["n_samples"] / sample_rate,
        sample_rate=sample_rate,
        text=text,
        speaker=item.voice.name,
        language="en",
        extra={
            "split": item.split,
            "engine": item.voice.engine,
            "domain": item.voice.domain,
            "native_sample_rate": meta["native_sample_rate"],
            "gender": item.voice.gender,
            "synthetic": True,
            **extra,
        },
    )


def build_corpus(config: CorpusConfig, progress: bool = True) -> dict:
    """Build (or resume) the corpus in ``config.out_dir``; returns the summary written to ``corpus.json``."""
    t0 = time.time()
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    voices = list_voices(config.domain, config.n_espeak, config.seed, neural=config.neural)
    plan = plan_corpus(config, voices)
    # interleaved: a partial build holds every voice in proportion
    order = sorted(range(len(plan)), key=lambda i: stable_hash("order", plan[i].id))
    results: list[Utterance | None] = [None] * len(plan)
    failures: list[str] = []
    bar = tqdm(total=len(plan), desc=f"synth-corpus {config.domain}", unit="utt", disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, config.jobs)) as pool:
        for start in range(0, len(order), max(1, config.flush_every)):
            chunk = order[start : start + max(1, config.flush_every)]
            futures = {pool.submit(_make, plan[i], out_dir, config.sample_rate): i for i in chunk}
            for fut in futures:
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except RuntimeError as err:  # one engine failing on one sentence must not sink the corpus
                    failures.append(f"{plan[i].id}: {err}")
                    log.warning("%s", err)
                bar.update(1)
            done = start + len(chunk) >= len(order)
            summary = _write_corpus(out_dir, config, voices, results, failures, time.time() - t0, complete=done)
    bar.close()
    return summary


def _write_corpus(
    out_dir: Path,
    config: CorpusConfig,
    voices: list[Voice],
    results: list[Utterance | None],
    failures: list[str],
    seconds: float,
    complete: bool,
) -> dict:
    """Write the manifests (in plan order) and ``corpus.json`` for what has been made so far."""
    utts = [u for u in results if u is not None]
    by_split = {s: [u for u in utts if u.extra["split"] == s] for s in ("train", "valid", "test")}
    for split, items in by_split.items():
        write_manifest(out_dir / f"{split}.jsonl", items, relative_to=str(out_dir))
    write_manifest(out_dir / "all.jsonl", utts, relative_to=str(out_dir))
    hours = {}
    for u in utts:
        key = "neural" if u.extra["engine"] in NEURAL_ENGINES else "debian"
        hours[key] = hours.get(key, 0.0) + u.duration / 3600
    summary = {
        "synthetic": True,
        "complete": complete,
        "config": {k: v for k, v in asdict(config).items() if k != "out_dir"},
        "sample_rate": config.sample_rate,
        "hours": {k: round(v, 3) for k, v in hours.items()},
        "voices": [
            {
                **asdict(v),
                "split": "test" if is_test_voice(v) else "train",
                "intelligible": v.name.removeprefix("child-") in INTELLIGIBLE,
            }
            for v in voices
        ],
        "splits": {
            s: {
                "utterances": len(items),
                "hours": sum(u.duration for u in items) / 3600,
                "speakers": sorted({u.speaker for u in items}),
            }
            for s, items in by_split.items()
        },
        "failures": failures,
        "build_seconds": round(seconds, 1),
    }
    (out_dir / "corpus.json").write_text(json.dumps(summary, indent=1))
    return summary
