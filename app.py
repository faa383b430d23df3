"""audiotok web demo: what the tokenizers do, in a minute.

    python app.py [--port 7860] [--share] [--model-dir DIR]

Models load lazily on first use. Every model variable takes what the CLI's ``--model`` takes, through the one
registry (a bundled name, a path in our or the official formats, an official name, a hub id ``org/name[:file]``).
The codec is the bundled default unless ``--model-dir``/``AUDIOTOK_CODEC`` names another (``AUDIOTOK_CODEC_CONFIG``:
an official WavTokenizer .ckpt's YAML when not found beside it). The semantic tab uses the bundled ``semantic`` or
``AUDIOTOK_S3`` (e.g. ``speech_tokenizer_v2_25hz``; a state dict ``.pt`` with ``AUDIOTOK_S3_NAME=<official name>``).
The ASR tab compares a Whisper model with and without an adapter: the bundled ``whisper-synth`` and its child-domain
S2-LoRA adapter, or ``AUDIOTOK_WHISPER`` and ``AUDIOTOK_ASR_ADAPTER``. The TTS tab: the bundled ``tts`` or
``AUDIOTOK_TTS``. Binds to 127.0.0.1 unless ``--host`` says otherwise; ``--share`` is opt-in.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from audiotok import registry

MAX_SECONDS = 60.0  # longer uploads are refused with a message (the demo runs on CPUs too)


class DemoError(Exception):
    """A message for the user (shown in the page, never a stack trace)."""


# ------------------------------------------------------------------------------------------------------ models
def codec_choices() -> list[str]:
    """The codecs the codec tab offers: ``AUDIOTOK_CODEC`` when set, else the bundled ones (``codec`` = 75
    tokens/s, ``codec-40`` = 40 tokens/s when installed)."""
    if os.environ.get("AUDIOTOK_CODEC"):
        return ["custom"]
    names = sorted(b.name for b in registry.installed() if b.model_type == "audiotok-codec")
    return names or ["codec"]


@lru_cache(maxsize=4)
def get_codec(name: str | None = None):
    from audiotok.codec import Codec

    path = os.environ.get("AUDIOTOK_CODEC") or name
    try:
        return Codec.from_pretrained(path, config=os.environ.get("AUDIOTOK_CODEC_CONFIG"))
    except (FileNotFoundError, ValueError) as err:
        raise DemoError(f"Cannot load the codec: {err}") from None


@lru_cache(maxsize=1)
def get_semantic_asr():
    """The semantic tokenizer's own ASR model (reads its tokens), or None: ``AUDIOTOK_S3_ASR`` or bundled."""
    from audiotok.checkpoint import load_model

    path = os.environ.get("AUDIOTOK_S3_ASR") or registry.ASSETS / "semantic" / "asr.safetensors"
    return load_model(path) if Path(path).is_file() else None


@lru_cache(maxsize=1)
def get_semantic():
    from audiotok.semantic import SemanticTokenizer

    path = os.environ.get("AUDIOTOK_S3")
    if not path and "semantic" in {b.name for b in registry.installed()}:
        path = "semantic"
    if not path:
        raise DemoError(
            "No semantic tokenizer configured: start the app with AUDIOTOK_S3=<name, path or hub id>, e.g. "
            "speech_tokenizer_v2_25hz (a state dict .pt also needs AUDIOTOK_S3_NAME=<its official name>)."
        )
    try:
        return SemanticTokenizer.from_pretrained(path, official=os.environ.get("AUDIOTOK_S3_NAME"))
    except (FileNotFoundError, ValueError) as err:
        raise DemoError(f"Cannot load the semantic tokenizer: {err}") from None


@lru_cache(maxsize=1)
def get_asr():
    """(base Whisper, the same Whisper with its adapter merged or None, adapter name)."""
    from asr.adapters import load_adapted
    from audiotok.whisper import load_whisper

    base = os.environ.get("AUDIOTOK_WHISPER") or "whisper-synth"
    adapter = os.environ.get("AUDIOTOK_ASR_ADAPTER") or registry.ASSETS / registry.BUNDLED["child-s2lora"].path
    try:
        plain = load_whisper(base)
    except registry.ModelNotFound as err:
        raise DemoError(
            f"No Whisper model: {err}. Start the app with AUDIOTOK_WHISPER=<Whisper name, .pt, .safetensors or hub id>."
        ) from None
    except (FileNotFoundError, ValueError) as err:
        raise DemoError(f"Cannot load the ASR models: {err}") from None
    try:
        adapted = load_adapted(base, adapter) if Path(adapter).is_file() else None
    except (FileNotFoundError, ValueError) as err:
        raise DemoError(f"Cannot load the ASR models: {err}") from None
    return plain, adapted, Path(adapter).name


def asr_compare(path: str | None) -> dict:
    """Transcripts of one upload by the base Whisper and by the adapted one."""
    from audiotok.whisper import transcribe_audio

    plain, adapted, name = get_asr()
    wav = load_upload(path, 16000)
    out = {"base": transcribe_audio(plain, [wav])[0] or "(nothing recognised)"}
    if adapted is None:
        out["adapted"] = "No adapter configured (AUDIOTOK_ASR_ADAPTER=<adapter .safetensors>)."
    else:
        out["adapted"] = transcribe_audio(adapted, [wav])[0] or "(nothing recognised)"
    out["message"] = f"Base Whisper vs. the same model with `{name}` merged (no extra inference cost)."
    return out


@lru_cache(maxsize=1)
def get_tts():
    from tts.pipeline import TTS

    spec = os.environ.get("AUDIOTOK_TTS") or "tts"
    try:
        return TTS.from_pretrained(spec)
    except registry.ModelNotFound as err:
        raise DemoError(
            f"No TTS model: {err}. Start the app with AUDIOTOK_TTS=<TTS folder with pipeline.json, or its hub id> "
            "(recipes/tts/assemble.py makes one)."
        ) from None
    except (FileNotFoundError, ValueError) as err:
        raise DemoError(f"Cannot load the TTS: {err}") from None


MAX_TEXT = 500  # characters


def _tts_inputs(text: str | None, prompt_path: str | None, prompt_text: str | None, seed, steps, sampling):
    from tts.pipeline import SynthesisOptions
    from tts.sampling import SamplingConfig

    tts = get_tts()
    if not text or not text.strip():
        raise DemoError("Please type some text to speak.")
    if len(text) > MAX_TEXT:
        raise DemoError(f"The text is {len(text)} characters long; the demo takes up to {MAX_TEXT}.")
    prompt = None
    if prompt_path:
        if not prompt_text or not prompt_text.strip():
            raise DemoError("A prompt recording needs its transcript (what it says).")
        prompt = load_upload(prompt_path, tts.sample_rate)[0]
    opts = SynthesisOptions(sampling=SamplingConfig(method=sampling or "ras"), n_steps=int(steps), seed=int(seed))
    return tts, text, prompt, prompt_text if prompt is not None else None, opts


def tts_synthesize(text, prompt_path=None, prompt_text=None, seed=0, steps=10, sampling="ras") -> dict:
    """Text (and an optional voice prompt) -> speech, all at once."""
    tts, text, prompt, prompt_text, opts = _tts_inputs(text, prompt_path, prompt_text, seed, steps, sampling)
    try:
        wav = tts.synthesize(text, prompt, tts.sample_rate, prompt_text, opts)
    except ValueError as err:  # bad text or prompt (tts.inputs): the message says what to change
        raise DemoError(str(err)) from None
    seconds = len(wav) / tts.sample_rate
    return {"message": f"{seconds:.2f} s of speech.", "audio": (tts.sample_rate, wav.numpy())}


def tts_stream(text, prompt_path=None, prompt_text=None, seed=0, steps=10, sampling="ras"):
    """The same, chunk by chunk as the models produce them (for a streaming audio player)."""
    tts, text, prompt, prompt_text, opts = _tts_inputs(text, prompt_path, prompt_text, seed, steps, sampling)
    try:
        chunks = tts.stream(text, prompt, tts.sample_rate, prompt_text, opts)
    except ValueError as err:
        raise DemoError(str(err)) from None
    for chunk in chunks:
        yield tts.sample_rate, chunk.numpy()


def load_upload(path: str | None, target_rate: int) -> torch.Tensor:
    """An uploaded file -> mono (T,) at ``target_rate``, or a :class:`DemoError` saying what is wrong."""
    from audiotok import audio

    if not path:
        raise DemoError("Please upload or record some audio first.")
    try:
        wav, sample_rate = audio.load(path)
    except audio.AudioError as err:
        raise DemoError(f"This file cannot be used: {err.reason}.") from None
    seconds = wav.shape[-1] / sample_rate
    if seconds > MAX_SECONDS:
        raise DemoError(f"The audio is {seconds:.0f} s long; the demo takes up to {MAX_SECONDS:.0f} s.")
    if seconds < 0.05:
        raise DemoError("The audio is shorter than 50 ms.")
    return audio.prepare_for_model(wav, sample_rate, target_rate)


# ---------------------------------------------------------------------------------------------------- handlers
def codec_roundtrip(path: str | None, model: str | None = None) -> dict:
    """Upload -> tokens -> reconstruction, with everything the codec tab shows (``model``: a codec_choices())."""
    from audiotok.metrics import reconstruction_metrics
    from audiotok.nn.losses import MelLoss
    from audiotok.viz import spectrogram_image, tokens_image

    codec = get_codec(model)
    wav = load_upload(path, codec.sample_rate)
    codes, code_lens = codec.encode(wav)
    rec = codec.reconstruct(wav)[0]
    seconds = wav.shape[-1] / codec.sample_rate
    bits = math.log2(codec.codebook_size)
    mel = MelLoss(codec.sample_rate).mel
    m_in, m_out = mel(wav)[0][0], mel(rec)[0][0]
    vmin, vmax = float(np.percentile(m_in.numpy(), 2)), float(m_in.max())
    metrics = reconstruction_metrics(wav, rec, codec.sample_rate)
    n = int(code_lens[0])
    summary = (
        f"**{n} tokens** for {seconds:.2f} s of audio from one {codec.codebook_size}-code book: "
        f"**{n / seconds:.1f} tokens/s**, **{codec.frame_rate * bits / 1000:.2f} kbps** "
        f"({bits:.0f} bits per token).\n\nFirst tokens: `{codes[0, :24].tolist()}`"
    )
    table = (
        "| PESQ (wb) | STOI | mel distance | SI-SNR (dB) |\n|---|---|---|---|\n"
        f"| {metrics['pesq']:.2f} | {metrics['stoi']:.3f} | {metrics['mel_distance']:.3f} | "
        f"{metrics['si_snr']:.1f} |"
    )
    return {
        "summary": summary,
        "tokens_image": tokens_image(codes[0, :n], codec.codebook_size),
        "spectrograms": np.concatenate(
            [
                spectrogram_image(m_in, vmin=vmin, vmax=vmax),
                np.full((200, 8, 3), 255, np.uint8),
                spectrogram_image(m_out, vmin=vmin, vmax=vmax),
            ],
            axis=1,
        ),
        "metrics": table,
        "original": (codec.sample_rate, wav.numpy()),
        "reconstruction": (codec.sample_rate, rec.numpy()),
    }


def semantic_tokens(path: str | None) -> dict:
    from audiotok.codec.quantizer import codebook_usage
    from audiotok.viz import tokens_image

    tok = get_semantic()
    wav = load_upload(path, tok.sample_rate)
    codes, lens = tok.encode([wav])
    n = int(lens[0])
    usage = codebook_usage(codes[:, :n], tok.codebook_size)
    asr = get_semantic_asr()
    if asr is None:
        transcript = "No ASR model for these tokens (start the app with AUDIOTOK_S3_ASR=<the recipe's model>)."
    else:
        from audiotok.whisper import transcribe_audio

        transcript = transcribe_audio(asr.whisper, [wav], tok.sample_rate, decode=asr.transcribe_from_tokens)[0]
    return {
        "summary": (
            f"**{n} semantic tokens** ({tok.frame_rate:g} tokens/s, {tok.codebook_size} codes); "
            f"{usage['used'] * tok.codebook_size:.0f} distinct codes, perplexity {usage['perplexity']:.0f}"
            f".\n\nFirst tokens: `{codes[0, :24].tolist()}`"
        ),
        "tokens_image": tokens_image(codes[0, :n], tok.codebook_size),
        "transcript": transcript,
    }


def batch_tokens(paths: list[str] | None) -> dict:
    """Several uploads -> a zip of token files (and failed.jsonl if any file was bad)."""
    from audiotok.batch import EncodeOptions, InputItem, encode_items

    if not paths:
        raise DemoError("Please upload one or more audio files.")
    codec = get_codec()
    out = Path(tempfile.mkdtemp(prefix="audiotok-batch-"))
    items = [InputItem(p, Path(p).stem) for p in paths]
    summary = encode_items(codec, "codec", items, EncodeOptions(out=str(out / "tokens"), n_workers=0, progress=False))
    if summary.ok == 0:
        raise DemoError(
            "None of the files could be encoded: "
            + "; ".join(f"{Path(f['path']).name}: {f['reason']}" for f in summary.failures)
        )
    archive = out / "tokens.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted((out / "tokens").rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(out / "tokens"))
    message = f"{summary.ok} file(s) encoded" + (
        f", {summary.failed} failed (see failed.jsonl)" if summary.failed else ""
    )
    return {"message": message, "zip": str(archive)}


# ---------------------------------------------------------------------------------------------------- the page
def build_ui():
    import gradio as gr

    def guarded(fn, keys):
        """Run a handler; a DemoError becomes a message in the first output (the rest cleared)."""

        def run(*args):
            try:
                out = fn(*args)
            except DemoError as err:
                return [f"**Error:** {err}"] + [None] * (len(keys) - 1)
            except Exception as err:  # never a stack trace in the page
                return [f"**Error:** something went wrong ({type(err).__name__}: {err})"] + [None] * (len(keys) - 1)
            return [out[k] for k in keys]

        return run

    with gr.Blocks(title="audiotok") as demo:
        gr.Markdown(
            "# audiotok\nSpeech in, discrete tokens out, and back. All bundled models are trained on a "
            "**synthetic** corpus (Debian TTS voices), so expect robotic quality on real speech."
        )
        with gr.Tab("Codec"):
            with gr.Row():
                inp = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio", elem_id="codec-in")
                with gr.Column():
                    choices = codec_choices()
                    model = gr.Dropdown(choices, value=choices[0], label="Codec (tokens/s)", elem_id="codec-model")
                    btn = gr.Button("Encode and decode", variant="primary", elem_id="codec-run")
                    summary = gr.Markdown(elem_id="codec-summary")
                    metrics = gr.Markdown(elem_id="codec-metrics")
            tokens = gr.Image(label="Token ids over time", elem_id="codec-tokens")
            spec = gr.Image(label="Mel spectrograms: original | reconstruction", elem_id="codec-spec")
            with gr.Row():
                orig = gr.Audio(label="Original (24 kHz mono)", elem_id="codec-orig")
                rec = gr.Audio(label="Reconstruction", elem_id="codec-rec")
            btn.click(
                guarded(
                    codec_roundtrip,
                    ["summary", "metrics", "tokens_image", "spectrograms", "original", "reconstruction"],
                ),
                inputs=[inp, model],
                outputs=[summary, metrics, tokens, spec, orig, rec],
            )
        with gr.Tab("Semantic"):
            s_inp = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
            s_btn = gr.Button("Tokenize", variant="primary")
            s_sum = gr.Markdown()
            s_img = gr.Image(label="Semantic token ids over time")
            s_txt = gr.Textbox(label="The tokenizer's own ASR, reading the tokens")
            s_btn.click(
                guarded(semantic_tokens, ["summary", "tokens_image", "transcript"]),
                inputs=s_inp,
                outputs=[s_sum, s_img, s_txt],
            )
        with gr.Tab("TTS"):
            gr.Markdown(
                "The bundled `tts` is small and CPU-trained on synthetic voices: it speaks in the prompt's voice but "
                "does not say the words yet (its card and the README have the numbers)."
            )
            t_text = gr.Textbox(label="Text", lines=3)
            with gr.Row():
                t_prompt = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Voice prompt (optional)")
                t_prompt_text = gr.Textbox(label="What the prompt says")
            with gr.Row():
                t_seed = gr.Number(value=0, precision=0, label="Seed")
                t_steps = gr.Slider(2, 32, value=10, step=1, label="Flow steps")
                t_sampling = gr.Radio(["ras", "topk"], value="ras", label="Sampling")
            with gr.Row():
                t_btn = gr.Button("Synthesize", variant="primary")
                t_stream_btn = gr.Button("Stream")
            t_msg = gr.Markdown()
            t_audio = gr.Audio(label="Speech")
            t_stream = gr.Audio(label="Streamed speech", streaming=True, autoplay=True)
            inputs = [t_text, t_prompt, t_prompt_text, t_seed, t_steps, t_sampling]
            t_btn.click(guarded(tts_synthesize, ["message", "audio"]), inputs=inputs, outputs=[t_msg, t_audio])

            def stream_or_message(*args):
                try:
                    yield from tts_stream(*args)
                except DemoError as err:
                    raise gr.Error(str(err)) from None

            t_stream_btn.click(stream_or_message, inputs=inputs, outputs=t_stream)
        with gr.Tab("ASR"):
            a_inp = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech")
            a_btn = gr.Button("Transcribe", variant="primary")
            a_msg = gr.Markdown()
            with gr.Row():
                a_base = gr.Textbox(label="Base Whisper")
                a_adapted = gr.Textbox(label="With the adapter (S2-LoRA)")
            a_btn.click(
                guarded(asr_compare, ["message", "base", "adapted"]), inputs=a_inp, outputs=[a_msg, a_base, a_adapted]
            )
        with gr.Tab("Batch"):
            b_inp = gr.File(file_count="multiple", label="Audio files")
            b_btn = gr.Button("Encode all", variant="primary")
            b_msg = gr.Markdown()
            b_out = gr.File(label="Token files (zip)")
            b_btn.click(guarded(batch_tokens, ["message", "zip"]), inputs=b_inp, outputs=[b_msg, b_out])
    return demo


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--share", action="store_true", help="create a public gradio link (off by default)")
    ap.add_argument("--model-dir", default=None, help="codec checkpoint (file or folder) instead of the bundled one")
    args = ap.parse_args(argv)
    if args.model_dir:
        os.environ["AUDIOTOK_CODEC"] = args.model_dir
    build_ui().launch(server_name=args.host, server_port=args.port, share=args.share, show_error=False)


if __name__ == "__main__":
    main()
