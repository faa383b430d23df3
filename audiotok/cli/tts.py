"""Text-to-speech commands: ``synthesize``, ``eval-tts`` (the ``tts`` package is imported inside the handlers)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from audiotok.cli.common import add_speakers, speakers, write_json

if TYPE_CHECKING:
    from audiotok.cli.common import Subparsers


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


def _add_synthesize(sub: Subparsers) -> None:
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
        speakers=speakers(args),
    )
    result["model"] = str(args.model or "tts")
    print(format_report(result))
    if args.output:
        write_json(args.output, result)
    return 0


def _add_eval_tts(sub: Subparsers) -> None:
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
    add_speakers(s)
    s.add_argument("--limit", type=int, default=50, help="about this many sentences, an even share of every voice")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("-o", "--output", default=None)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_eval_tts)


def register(sub: Subparsers) -> None:
    """Add ``synthesize`` and ``eval-tts``."""
    _add_synthesize(sub)
    _add_eval_tts(sub)
