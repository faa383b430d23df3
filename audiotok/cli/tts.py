"""Text-to-speech commands: ``synthesize``, ``eval-tts`` (the ``tts`` package is imported inside the handlers)."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from audiotok.cli.common import add_speakers, report, speakers

if TYPE_CHECKING:
    from audiotok.cli.common import Subparsers


def cmd_synthesize(args: argparse.Namespace) -> int:
    """Bad input (no text, nothing speakable, an unreadable or unusable prompt) is a ``ValueError`` or an
    ``AudioError``, which :func:`audiotok.cli.main` reports as one ``error:`` line (exit code 2); what the TTS
    changes to make an input usable (characters dropped, a long prompt trimmed) is one ``warning:`` line each."""
    from tts.inputs import TTSInputWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", TTSInputWarning)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, TTSInputWarning):
                print(f"audiotok synthesize: warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        return _synthesize(args)


def read_text_file(path: str | Path, what: str = "text file") -> str:
    """A UTF-8 text file (a byte-order mark is skipped), or a ``ValueError`` saying why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: the {what} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read the {what} ({err.strerror or err})") from None


def _synthesize(args: argparse.Namespace) -> int:
    import torch

    from audiotok import audio
    from tts.inputs import TTSInputWarning, check_prompt, prepare_prompt_text, prepare_text
    from tts.pipeline import TTS, SynthesisOptions
    from tts.sampling import SamplingConfig

    text = read_text_file(args.text[1:]) if args.text.startswith("@") else args.text
    if not text.strip() and not args.lines:
        raise ValueError("nothing to say: give the text, @FILE or --lines FILE")
    if args.prompt_text and not args.prompt:
        raise ValueError("--prompt-text needs --prompt (the audio it is the transcript of)")
    if args.prompt and not (args.prompt_text or "").strip():
        raise ValueError("--prompt needs --prompt-text (what the prompt audio says)")
    if not args.lines and Path(args.output).suffix.lower() not in (".wav", ".flac", ".ogg", ".mp3"):
        raise ValueError(f"{args.output}: the output must be a .wav, .flac, .ogg or .mp3 file")
    lines = None
    if args.lines:
        lines = [(n, line.strip()) for n, line in enumerate(read_text_file(args.lines).splitlines(), 1)]
        lines = [(n, line) for n, line in lines if line]
        if not lines:
            raise ValueError(f"{args.lines}: nothing to say (no non-empty lines)")
    prompt, prompt_sr = (None, None)
    if args.prompt:
        prompt, prompt_sr = audio.load(args.prompt, mono=True)  # AudioError names the file and the reason
    # the same checks as the TTS's, before the model loads (its warnings come once, from the synthesis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TTSInputWarning)
        if prompt is not None:
            check_prompt(prompt, prompt_sr, prompt_sr)
            prepare_prompt_text(args.prompt_text, True)
        for n, line in lines or []:
            try:
                prepare_text(line, args.max_chars)
            except ValueError as err:
                raise ValueError(f"{args.lines}, line {n}: {err}") from None
        if lines is None:
            prepare_text(text, args.max_chars)
    tts = TTS.from_pretrained(args.model, device=args.device)
    options = SynthesisOptions(
        sampling=SamplingConfig(method=args.sampling, max_ratio=args.max_ratio),
        n_steps=args.steps,
        cfg_strength=args.cfg,
        seed=args.seed,
        max_chars=args.max_chars,
        sentence_pause=args.pause,
    )
    if lines is not None:  # batch synthesis: one wav per non-empty line of a text file, resumable
        from tqdm import tqdm

        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        for i, (_, line) in enumerate(tqdm(lines, desc="synthesize", unit="line")):
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
    s = sub.add_parser(
        "synthesize",
        help="text -> speech with the token TTS (LM -> flow -> vocoder)",
        description="Text -> speech. The text is normalised (numbers, abbreviations, symbols spelled out; characters "
        "that cannot be spoken, such as other scripts, emoji and control characters, are dropped with a warning) and "
        "synthesized sentence by sentence, with --pause seconds of silence between sentences. A prompt must be 1 to "
        "30 s of speech (longer ones are trimmed to their first 30 s with a warning); any sample rate. Bad input is "
        "an error (exit code 2).",
    )
    s.add_argument("text", nargs="?", default="", help="the text, or @FILE to read it from a UTF-8 file")
    s.add_argument("-o", "--output", required=True, help="output .wav (a folder with --lines)")
    s.add_argument("--lines", default=None, help="a text file: synthesize each line into OUTPUT/00000.wav, ...")
    s.add_argument("--model", default=None, help="TTS folder with pipeline.json (default: bundled)")
    s.add_argument("--prompt", default=None, help="prompt audio (1 to 30 s of speech) for zero-shot voice continuation")
    s.add_argument("--prompt-text", default=None, help="what the prompt audio says")
    s.add_argument("--stream", action="store_true", help="synthesize chunk by chunk (reports first-chunk latency)")
    s.add_argument("--sampling", choices=("ras", "topk"), default="ras")
    s.add_argument("--steps", type=int, default=10, help="flow ODE steps")
    s.add_argument("--max-ratio", type=float, default=20.0, help="most speech tokens per text token")
    s.add_argument("--cfg", type=float, default=0.7, help="classifier-free guidance strength")
    s.add_argument("--pause", type=float, default=0.2, help="seconds of silence between sentences")
    s.add_argument(
        "--max-chars", type=int, default=200, help="longest text chunk the LM gets (longer sentences are cut)"
    )
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
    return report(result, format_report(result), args.output)


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
