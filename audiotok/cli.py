"""The ``audiotok`` command: a thin argparse adapter over importable functions.

Subcommands import their heavy modules inside the handler, so ``audiotok --help`` is fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path


def _print_table(rows: list[tuple[str, object]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.4g}"
        print(f"  {k:<{width}}  {v}")


def cmd_synth_corpus(args: argparse.Namespace) -> int:
    from audiotok.data.synth import CorpusConfig, build_corpus

    config = CorpusConfig(
        out_dir=args.out,
        minutes=args.minutes,
        seed=args.seed,
        domain=args.domain,
        n_espeak=args.n_espeak,
        jobs=args.jobs,
        neural=args.neural,
    )
    summary = build_corpus(config, progress=not args.quiet)
    print(
        f"synthetic corpus ({args.domain}) in {args.out}: {len(summary['voices'])} voices, "
        f"{summary['build_seconds']} s to build"
    )
    for split, s in summary["splits"].items():
        print(
            f"  {split:<5}  {s['utterances']:>6} utterances  {s['hours'] * 60:7.1f} min  {len(s['speakers'])} speakers"
        )
    if summary["failures"]:
        print(f"  {len(summary['failures'])} utterances failed to synthesise (see corpus.json)")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from audiotok.data.manifest import manifest_summary, write_manifest
    from audiotok.data.prepare import prepare

    report = prepare(args.root, layout=args.layout, language=args.language, progress=not args.quiet)
    out = Path(args.output)
    n = write_manifest(out, report.utterances, relative_to=str(out.resolve().parent) if args.relative else None)
    s = manifest_summary(report.utterances)
    print(f"wrote {n} utterances ({s['hours']:.3f} h, {s['speakers']} speakers) to {out}")
    for path, reason in list(report.failed.items())[:20]:
        print(f"  skipped {path}: {reason}", file=sys.stderr)
    if report.failed:
        print(f"  {len(report.failed)} files skipped", file=sys.stderr)
    return 0 if n else 1


def cmd_stats(args: argparse.Namespace) -> int:
    from audiotok.data.manifest import iter_manifest, manifest_summary

    s = manifest_summary(iter_manifest(args.manifest))
    print(f"{args.manifest}:")
    _print_table(list(s.items()))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from audiotok.data.extract import extract_features

    s = extract_features(
        args.manifest,
        feature=args.feature,
        batch_seconds=args.batch_seconds,
        device=args.device,
        n_workers=args.workers,
        out_dir=args.output,
        limit=args.limit,
        progress=not args.quiet,
    )
    print(f"features '{s['feature']}' on {s['device']}:")
    _print_table(list(s.items()))
    return 0


def _load_codec(args: argparse.Namespace):
    from audiotok.codec import Codec

    return Codec.from_pretrained(args.model, config=getattr(args, "config", None), device=args.device)


def cmd_eval_codec(args: argparse.Namespace) -> int:
    from audiotok.codec.evaluate import evaluate_codec, format_table

    model = _load_codec(args)
    result = evaluate_codec(
        model,
        args.manifest,
        limit=args.limit,
        batch_seconds=args.batch_seconds,
        references=not args.no_references,
        progress=not args.quiet,
    )
    result["model"] = str(args.model or "bundled:codec")
    result["manifest"] = str(args.manifest)
    print(format_table(result))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.output}")
    return 0


def cmd_eval_semantic(args: argparse.Namespace) -> int:
    from audiotok.checkpoint import load_model
    from audiotok.codec.model import Codec
    from audiotok.semantic import SemanticTokenizer
    from audiotok.semantic.evaluate import evaluate_semantic, format_report
    from audiotok.whisper import load_whisper

    path = Path(args.model) if args.model else Path(__file__).parent / "assets" / "semantic" / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no semantic tokenizer there (train one: recipes/semantic/train.py)")
    tokenizer = SemanticTokenizer.from_pretrained(path, device=args.device)
    codec = None if args.codec == "none" else Codec.from_pretrained(args.codec, device=args.device)
    asr = load_model(args.asr, device=args.device) if args.asr else None
    reference = load_whisper(args.reference_asr, device=args.device) if args.reference_asr else None
    result = evaluate_semantic(
        tokenizer,
        args.manifest,
        codec,
        asr,
        reference,
        limit=args.limit,
        progress=not args.quiet,
        speakers=_speakers(args),
    )
    result["model"] = str(path)
    print(format_report(result))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.output}")
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from audiotok.config import load_config
    from audiotok.pipeline.run import STAGES, PipelineConfig, run_pipeline
    from audiotok.train import cleanup_distributed, setup_distributed

    overrides = [f"device={args.device}"] + args.set
    cfg = (
        load_config(PipelineConfig, args.config, overrides)
        if args.config
        else load_config(PipelineConfig, None, overrides)
    )
    info = setup_distributed(args.device)
    stages = args.stage or STAGES
    report = run_pipeline(args.source, args.output, cfg, stages, info.rank, info.world_size)
    if report is not None:
        print((Path(args.output) / "report.md").read_text())
    cleanup_distributed()
    return 0


def cmd_synthesize(args: argparse.Namespace) -> int:
    import torch

    from audiotok import audio
    from tts.pipeline import TTS, SynthesisOptions
    from tts.sampling import SamplingConfig

    tts = TTS.from_pretrained(args.model, device=args.device)
    text = Path(args.text[1:]).read_text() if args.text.startswith("@") else args.text
    if not text.strip() and not args.lines:
        raise ValueError("nothing to say: give the text, @FILE or --lines FILE")
    prompt, prompt_sr = (None, None)
    if args.prompt:
        prompt, prompt_sr = audio.load(args.prompt, mono=True)
        if not args.prompt_text:
            raise ValueError("--prompt needs --prompt-text (what the prompt audio says)")
    options = SynthesisOptions(
        sampling=SamplingConfig(method=args.sampling, max_ratio=args.max_ratio),
        n_steps=args.steps,
        cfg_strength=args.cfg,
        seed=args.seed,
    )
    if args.lines:  # batch synthesis: one wav per non-empty line of a text file, resumable
        from tqdm import tqdm

        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        lines = [line.strip() for line in Path(args.lines).read_text().splitlines() if line.strip()]
        for i, line in enumerate(tqdm(lines, desc="synthesize", unit="line")):
            target = out / f"{i:05d}.wav"
            if not target.exists():
                audio.save(target, tts.synthesize(line, prompt, prompt_sr, args.prompt_text, options), tts.sample_rate)
        print(f"{len(lines)} lines -> {out}", file=sys.stderr)
        return 0
    t0 = time.time()
    if args.stream:
        chunks, first = [], None
        for chunk in tts.stream(text, prompt, prompt_sr, args.prompt_text, options):
            first = first if first is not None else time.time() - t0
            chunks.append(chunk)
        wav = torch.cat(chunks) if chunks else torch.zeros(0)
        print(f"first chunk after {first or 0:.2f} s", file=sys.stderr)
    else:
        wav = tts.synthesize(text, prompt, prompt_sr, args.prompt_text, options)
    elapsed = time.time() - t0
    audio.save(args.output, wav, tts.sample_rate)
    seconds = len(wav) / tts.sample_rate
    print(f"{seconds:.2f} s of audio -> {args.output} (RTF {elapsed / max(seconds, 1e-9):.2f})", file=sys.stderr)
    return 0


def _add_speakers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speakers",
        default=None,
        help="comma-separated voices to evaluate (e.g. the ones pocketsphinx understands: "
        "flite-awb,flite-rms,flite-slt,festival-kal,festival-slt-hts); default: all",
    )


def _speakers(args: argparse.Namespace) -> list[str] | None:
    return args.speakers.split(",") if args.speakers else None


def cmd_eval_tts(args: argparse.Namespace) -> int:
    from audiotok.speaker import SpeakerEncoder
    from audiotok.whisper import load_whisper
    from tts.evaluate import evaluate_tts, format_report
    from tts.pipeline import TTS, SynthesisOptions
    from tts.sampling import SamplingConfig

    tts = TTS.from_pretrained(args.model, device=args.device)
    speaker = SpeakerEncoder.from_pretrained(args.speaker_model, device=args.device)
    judge = load_whisper(args.whisper, device=args.device) if args.whisper else None
    modes = {"both": ("offline", "stream"), "all": ("vocoder", "resynthesis", "offline", "stream")}.get(
        args.mode, (args.mode,)
    )
    result = evaluate_tts(
        tts,
        args.manifest,
        args.prompts,
        speaker,
        judge,
        args.limit,
        modes,
        SynthesisOptions(sampling=SamplingConfig(max_ratio=args.max_ratio), n_steps=args.steps, seed=args.seed),
        progress=not args.quiet,
        speakers=_speakers(args),
    )
    result["model"] = str(args.model or "tts")
    print(format_report(result))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=1))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from audiotok.codec import Codec

    model = Codec.from_pretrained(args.checkpoint, config=args.config)
    path = model.save(args.output, dtype=torch_dtype(args.dtype))
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {model.frame_rate:g} tokens/s, {model.codebook_size} codes)"
    )
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    import os

    from audiotok.batch import EncodeOptions, collect_inputs, encode_items
    from audiotok.registry import load_tokenizer
    from audiotok.train import cleanup_distributed, setup_distributed

    info = setup_distributed(args.device)
    model, name = load_tokenizer(args.model, str(info.device), args.config, args.official)
    items = collect_inputs(args.inputs)
    batch_seconds = args.batch_seconds
    if batch_seconds is None:  # batching pays on GPUs; on CPUs one file at a time is faster (bench/cli.py)
        batch_seconds = 120.0 if info.device.type == "cuda" else 0.0
    opts = EncodeOptions(
        out=args.output,
        format=args.format,
        batch_seconds=batch_seconds,
        n_workers=args.workers,
        window_seconds=args.window_seconds,
        shard_size=args.shard_size,
        overwrite=args.overwrite,
        fail_fast=args.fail_fast,
        progress=not args.quiet and info.is_main,
        rank=info.rank,
        world_size=info.world_size,
    )
    if args.format == "jsonl" and info.world_size > 1:
        root, ext = os.path.splitext(args.output)
        opts.out = f"{root}.rank{info.rank}{ext}"
    summary = encode_items(model, name, items, opts)
    tag = f"[rank {info.rank}/{info.world_size}] " if info.distributed else ""
    print(f"{tag}encode: {summary.line()}")
    for f in summary.failures[:10]:
        print(f"{tag}  failed {f['path']}: {f['reason']}", file=sys.stderr)
    cleanup_distributed()
    return 1 if summary.failed else 0


def cmd_decode(args: argparse.Namespace) -> int:
    from audiotok.batch import decode_tokens
    from audiotok.registry import load_tokenizer

    model, name = load_tokenizer(args.model, args.device, args.config, args.official)
    if not hasattr(model, "decode"):
        raise ValueError(f"{name} is a semantic tokenizer: its tokens decode to speech through the TTS flow model")
    summary = decode_tokens(
        model, name, args.inputs, args.output, sample_rate=args.sample_rate, force=args.force, progress=not args.quiet
    )
    print(f"decode: {summary.line()}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from audiotok.batch import describe

    for path in args.files:
        d = describe(path)
        print(f"{path}: {d.pop('kind')}")
        _print_table([(k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in d.items()])
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    import torch

    from asr.adapters import load_adapted
    from audiotok.whisper import evaluate_manifest, transcribe_files

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_adapted(args.model, args.adapter, merge=True, device=device)
    opts = {"batch_size": args.batch_size, "beam_size": args.beam_size, "progress": not args.quiet}
    if len(args.files) == 1 and args.files[0].endswith(".jsonl"):
        res = evaluate_manifest(model, args.files[0], limit=args.limit, **opts)
        rows = [{"ref": r, "text": h} for r, h in zip(res.refs, res.hyps, strict=True)]
        print(f"WER {res.wer:.4f} over {res.n} utterances of {args.files[0]}", file=sys.stderr)
    else:
        files = [str(f) for f in args.files][: args.limit]
        rows = [{"audio": f, "text": t} for f, t in zip(files, transcribe_files(model, files, **opts), strict=True)]
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"wrote {len(rows)} transcripts -> {args.out}", file=sys.stderr)
    else:
        for r in rows:
            print(f"{r.get('audio', r.get('ref'))}\t{r['text']}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from audiotok import registry

    print("bundled (load by name with --model NAME):")
    for b in registry.installed():
        path = registry.bundled_path(b.name)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
        print(f"  {b.name:<14} {size / 1e6:6.1f} MB  {b.about}")
    if not registry.installed():
        print("  (none installed)")
    print("architectures (build with audiotok.codec.codec_config(NAME); train with recipes/codec):")
    print("  wavtokenizer-75, wavtokenizer-40 (the released small configs), small-75, tiny")
    print("official checkpoints (local files):")
    print("  WavTokenizer .ckpt + its YAML:        --model WavTokenizer_small_320_24k_4096.ckpt --config X.yaml")
    print("  S3Tokenizer state dict (s3tokenizer's onnx2torch output): --model FILE.pt --official NAME, NAME one of")
    print("    speech_tokenizer_v1 (50 Hz, VQ 4096), speech_tokenizer_v1_25hz, speech_tokenizer_v2_25hz (FSQ 6561)")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from audiotok.checkpoint import bundle

    dst = bundle(args.checkpoint, args.name, torch_dtype(args.dtype))
    print(f"{args.checkpoint} -> {dst} ({dst.stat().st_size / 1e6:.1f} MB); write {dst.parent / 'card.md'} next to it")
    return 0


def torch_dtype(name: str):
    import torch

    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audiotok", description="Audio and speech tokenization suite.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth-corpus", help="build the synthetic multi-speaker corpus with Debian TTS engines")
    s.add_argument("out", help="output folder")
    s.add_argument("--minutes", type=float, default=30.0, help="approximate total audio (default 30)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--domain", choices=("adult", "child"), default="adult")
    s.add_argument("--n-espeak", type=int, default=16, help="espeak-ng accent x variant speakers (default 16)")
    s.add_argument("--jobs", type=int, default=2, help="engine processes in parallel")
    s.add_argument(
        "--neural", action="store_true", help="add the neural voices (corpus v2: Kokoro packs + blends, Hibari, Piper)"
    )
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_synth_corpus)

    s = sub.add_parser("prepare", help="build a JSONL manifest from a corpus folder")
    s.add_argument("root", help="corpus folder (audio tree with side-cars, LJSpeech or LibriSpeech)")
    s.add_argument("-o", "--output", required=True, help="manifest path (.jsonl or .jsonl.gz)")
    s.add_argument("--layout", choices=("auto", "folder", "ljspeech", "librispeech"), default="auto")
    s.add_argument("--language", default=None)
    s.add_argument("--relative", action="store_true", help="write audio paths relative to the manifest")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("stats", help="summarise a manifest")
    s.add_argument("manifest")
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("features", help="batched feature extraction over a manifest")
    s.add_argument("manifest")
    s.add_argument(
        "--feature", default="whisper-80", choices=("whisper-80", "whisper-128", "vocos", "cosyvoice2", "fbank")
    )
    s.add_argument("--batch-seconds", type=float, default=60.0, help="padded seconds of audio per batch")
    s.add_argument("--device", default="cpu")
    s.add_argument("--workers", type=int, default=0, help="data loading processes")
    s.add_argument("-o", "--output", default=None, help="folder for <id>.safetensors feature files")
    s.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_features)

    s = sub.add_parser("demo", help="run the suite's main job on the bundled defaults")
    s.add_argument("--data-dir", default="data/synth-demo", help="where the demo corpus lives")
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--eval-utterances", type=int, default=20, help="held-out utterances scored by the demo")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("eval-codec", help="reconstruction metrics of a codec over a manifest (held-out speakers)")
    s.add_argument("manifest")
    s.add_argument(
        "--model", default=None, help="checkpoint (.safetensors, folder, or official .ckpt); default: bundled"
    )
    s.add_argument("--config", default=None, help="YAML of an official WavTokenizer .ckpt")
    s.add_argument("--limit", type=int, default=None)
    s.add_argument("--batch-seconds", type=float, default=60.0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--no-references", action="store_true", help="skip the lower/upper bound reference points")
    s.add_argument("-o", "--output", default=None, help="write the result as JSON")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_eval_codec)

    s = sub.add_parser("eval-semantic", help="content, robustness and speaker leakage of semantic vs codec tokens")
    s.add_argument("manifest", help="held-out speakers, e.g. data/synth/test.jsonl")
    s.add_argument("--model", default=None, help="semantic tokenizer .safetensors (default: bundled)")
    s.add_argument("--asr", default=None, help="the tokenizer's own ASR model (recipe's model.safetensors): WER")
    s.add_argument("--reference-asr", default=None, help="an unquantized Whisper (.pt/.safetensors) to compare")
    s.add_argument("--codec", default=None, help="codec checkpoint to compare (default: bundled; 'none' to skip)")
    s.add_argument("--limit", type=int, default=100)
    _add_speakers(s)
    s.add_argument("--device", default="cpu")
    s.add_argument("-o", "--output", default=None, help="write the result as JSON")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_eval_semantic)

    s = sub.add_parser("pipeline", help="raw recordings -> segmented, twice-transcribed, filtered, tokenized data")
    s.add_argument("source", help="a folder of recordings or a manifest")
    s.add_argument("-o", "--output", required=True)
    s.add_argument(
        "--stage",
        action="append",
        choices=("segment", "transcribe", "tokenize", "report"),
        help="run only these stages (repeatable; default: all, in order)",
    )
    s.add_argument("--config", default=None, help="YAML of PipelineConfig (vad, asr_a, asr_b, threshold, ...)")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set asr_b=pocketsphinx --set vad.max_duration=20",
    )
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_pipeline)

    s = sub.add_parser("synthesize", help="text -> speech with the token TTS (LM -> flow -> vocoder)")
    s.add_argument("text", nargs="?", default="", help="the text, or @FILE to read it from a file")
    s.add_argument("-o", "--output", required=True, help="output .wav (a folder with --lines)")
    s.add_argument("--lines", default=None, help="a text file: synthesize each line into OUTPUT/00000.wav, ...")
    s.add_argument("--model", default=None, help="TTS folder with pipeline.json (default: bundled)")
    s.add_argument("--prompt", default=None, help="prompt audio for zero-shot voice continuation")
    s.add_argument("--prompt-text", default=None, help="what the prompt audio says")
    s.add_argument("--stream", action="store_true", help="synthesize chunk by chunk (reports first-chunk latency)")
    s.add_argument("--sampling", choices=("ras", "topk"), default="ras")
    s.add_argument("--steps", type=int, default=10, help="flow ODE steps")
    s.add_argument("--max-ratio", type=float, default=20.0, help="most speech tokens per text token")
    s.add_argument("--cfg", type=float, default=0.7, help="classifier-free guidance strength")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_synthesize)

    s = sub.add_parser("eval-tts", help="intelligibility, speaker similarity and speed of the TTS (offline, stream)")
    s.add_argument("manifest", help="test utterances: held-out sentences of the voices, e.g. data/synth/valid.jsonl")
    s.add_argument("--prompts", required=True, help="manifest to take each speaker's prompt from (train split)")
    s.add_argument("--model", default=None, help="TTS folder (default: bundled)")
    s.add_argument("--speaker-model", default="speaker", help="speaker-embedding checkpoint or bundled name")
    s.add_argument("--whisper", default=None, help="a Whisper model as a second WER judge (e.g. whisper-synth)")
    s.add_argument(
        "--mode",
        choices=("offline", "stream", "resynthesis", "vocoder", "both", "all"),
        default="all",
        help="both: offline + stream; all: also resynthesis (the recording's own tokens -> flow -> vocoder, no LM) "
        "and vocoder (the recording's own mel -> vocoder)",
    )
    s.add_argument("--steps", type=int, default=10, help="flow ODE steps")
    s.add_argument("--max-ratio", type=float, default=20.0, help="most speech tokens per text token")
    _add_speakers(s)
    s.add_argument("--limit", type=int, default=50, help="about this many sentences, an even share of every voice")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("-o", "--output", default=None)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_eval_tts)

    s = sub.add_parser("encode", help="audio files/folders/manifests -> token files (resumable, batched)")
    s.add_argument("inputs", nargs="+", help="files, folders (recursive), manifests (.jsonl), or - for stdin paths")
    s.add_argument("-o", "--output", required=True, help="output folder (files, shards) or .jsonl path")
    s.add_argument("--model", default=None, help="bundled name or checkpoint path (default: the bundled codec)")
    s.add_argument("--config", default=None, help="YAML of an official WavTokenizer .ckpt")
    s.add_argument("--official", default=None, help="--model is an official S3Tokenizer state dict of this name")
    s.add_argument("--format", choices=("files", "jsonl", "shards"), default="files")
    s.add_argument("--device", default="cpu")
    s.add_argument(
        "--batch-seconds",
        type=float,
        default=None,
        help="padded audio seconds per batch (default: 120 on CUDA; 0 = one file per batch on CPU, "
        "which is faster there: bench/cli.py)",
    )
    s.add_argument("--workers", type=int, default=2, help="data loading processes")
    s.add_argument("--window-seconds", type=float, default=60.0, help="longer files are encoded in windows")
    s.add_argument("--shard-size", type=int, default=1000, help="items per shard (--format shards)")
    s.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    s.add_argument("--fail-fast", action="store_true", help="stop at the first bad file")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_encode)

    s = sub.add_parser("decode", help="token files/folders/jsonl/shards -> wav files")
    s.add_argument("inputs", nargs="+")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.add_argument("--model", default=None)
    s.add_argument("--config", default=None)
    s.add_argument("--official", default=None, help="--model is an official S3Tokenizer state dict of this name")
    s.add_argument("--sample-rate", type=int, default=None, help="resample the output (default: the model's)")
    s.add_argument("--force", action="store_true", help="decode tokens made by another model")
    s.add_argument("--device", default="cpu")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_decode)

    s = sub.add_parser("info", help="what a token file, shard or checkpoint is")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("models", help="list bundled and known models")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("bundle", help="install a trained checkpoint as a bundled default (fp16, by name)")
    s.add_argument("checkpoint", help="a .safetensors checkpoint of the suite")
    s.add_argument("name", help="the default's name: codec, semantic, whisper-synth, ...")
    s.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default="fp16")
    s.set_defaults(func=cmd_bundle)

    s = sub.add_parser("transcribe", help="transcribe audio (or a manifest, with WER) with a Whisper model + adapter")
    s.add_argument("files", nargs="+", help="audio files, or one .jsonl manifest (then WER is printed)")
    s.add_argument("--model", required=True, help="openai-whisper .pt or our Whisper .safetensors")
    s.add_argument("--adapter", default=None, help="an adapter .safetensors trained on that model (merged on load)")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--beam-size", type=int, default=None)
    s.add_argument("--limit", type=int, default=None, help="first N items only")
    s.add_argument("--device", default=None)
    s.add_argument("--out", default=None, help="write JSONL instead of printing")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_transcribe)

    s = sub.add_parser("export", help="convert an official WavTokenizer .ckpt + YAML into our checkpoint")
    s.add_argument("checkpoint")
    s.add_argument("--config", required=True, help="the release's YAML")
    s.add_argument("-o", "--output", required=True, help="output .safetensors")
    s.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    s.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from audiotok.audio import AudioError
    from audiotok.checkpoint import CheckpointError
    from audiotok.data.manifest import ManifestError
    from audiotok.tokens import TokenFileError

    try:
        return args.func(args)
    except (
        AudioError,
        ManifestError,
        CheckpointError,
        TokenFileError,
        FileNotFoundError,
        ValueError,
        RuntimeError,
    ) as err:
        print(f"audiotok {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
