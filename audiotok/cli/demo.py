"""The ``demo`` command: the suite's main job, end to end, on a small synthetic corpus and the bundled models."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from audiotok.cli.common import Subparsers


def cmd_demo(args: argparse.Namespace) -> int:
    """What exists so far, end to end: corpus -> manifest -> batched features -> summary."""
    from audiotok.data.extract import extract_features
    from audiotok.data.manifest import read_manifest
    from audiotok.data.synth import CorpusConfig, build_corpus

    data = Path(args.data_dir)
    t0 = time.time()
    if not (data / "corpus.json").exists():
        print(f"[demo] building a {args.minutes:g}-minute synthetic corpus in {data} ...")
        build_corpus(CorpusConfig(out_dir=str(data), minutes=args.minutes, seed=0), progress=not args.quiet)
    corpus = json.loads((data / "corpus.json").read_text())
    print(
        f"[demo] synthetic corpus: {len(corpus['voices'])} voices; "
        + ", ".join(f"{k} {v['utterances']} utt / {v['hours'] * 60:.1f} min" for k, v in corpus["splits"].items())
    )
    valid = read_manifest(data / "valid.jsonl")
    print(f"[demo] manifest {data / 'valid.jsonl'}: {len(valid)} utterances")
    for feature in ("whisper-80", "vocos", "cosyvoice2", "fbank"):
        s = extract_features(data / "all.jsonl", feature=feature, batch_seconds=60, device=args.device, progress=False)
        print(
            f"[demo] {feature:<11} {s['utterances']} utt, {s['hours'] * 60:.1f} min of audio -> {s['frames']} frames "
            f"x {s['n_bins']} bins (mean {s['mean']:.2f}, std {s['std']:.2f}) in {s['wall_seconds']:.1f} s "
            f"= {s['audio_hours_per_second'] * 3600:.0f}x realtime on {s['device']}"
        )
    _demo_codec(data, args)
    _demo_tts(data, args)
    print(f"[demo] done in {time.time() - t0:.1f} s (all audio is synthetic)")
    return 0


def _demo_codec(data: Path, args: argparse.Namespace) -> None:
    """Encode and decode held-out utterances with the bundled codec; print rates and metrics."""
    from audiotok import audio
    from audiotok.codec import Codec
    from audiotok.codec.evaluate import evaluate_codec, format_table
    from audiotok.data.manifest import read_manifest

    try:
        codec = Codec.from_pretrained(device=args.device)
    except FileNotFoundError as err:
        print(f"[demo] codec: {err}")
        return
    test = read_manifest(data / "test.jsonl")
    u = test[0]
    wav, sample_rate = audio.load(u.audio)
    wav = audio.prepare_for_model(wav, sample_rate, codec.sample_rate)
    codes, code_lens = codec.encode(wav)
    rec = codec.reconstruct(wav)
    out = data / "demo-out" / f"{u.id}.reconstructed.wav"
    audio.save(out, rec[0], codec.sample_rate)
    print(
        f"[demo] codec: {u.id} ({u.speaker}, held-out voice), {wav.shape[-1] / sample_rate:.2f} s -> "
        f"{int(code_lens[0])} tokens from one {codec.codebook_size}-code book "
        f"({codec.frame_rate:g} tokens/s, {codec.frame_rate * 12 / 1000:.2f} kbps) -> {out}"
    )
    print(f"[demo] codec: first tokens {codes[0, :12].tolist()}")
    result = evaluate_codec(codec, data / "test.jsonl", limit=args.eval_utterances, progress=False)
    print(f"[demo] codec on {result['utterances']} held-out synthetic utterances:")
    print(format_table(result))


def _demo_tts(data: Path, args: argparse.Namespace) -> None:
    """Say a held-out sentence with the bundled TTS (text -> LM -> semantic tokens -> flow -> mel -> vocoder)."""
    from audiotok import audio, registry
    from audiotok.data.manifest import read_manifest
    from tts.pipeline import TTS

    if "tts" not in {b.name for b in registry.installed()}:
        print("[demo] tts: no bundled TTS installed")
        return
    tts = TTS.from_pretrained("tts", device=args.device)
    # a held-out sentence (held-out voices' if the corpus is too small to hold sentences out)
    u = next(u for split in ("valid", "test", "all") for u in read_manifest(data / f"{split}.jsonl") if u.text)
    t0 = time.time()
    wav = tts.synthesize(u.text)
    elapsed, seconds = time.time() - t0, len(wav) / tts.sample_rate
    out = data / "demo-out" / f"{u.id}.tts.wav"
    audio.save(out, wav, tts.sample_rate)
    rtf = elapsed / max(seconds, 1e-9)
    print(f"[demo] tts: {u.text!r} -> {seconds:.2f} s of audio in {elapsed:.2f} s (RTF {rtf:.2f}) -> {out}")


def register(sub: Subparsers) -> None:
    """Add ``demo``."""
    s = sub.add_parser("demo", help="run the suite's main job on the bundled defaults")
    s.add_argument("--data-dir", default="data/synth-demo", help="where the demo corpus lives")
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--eval-utterances", type=int, default=20, help="held-out utterances scored by the demo")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_demo)
