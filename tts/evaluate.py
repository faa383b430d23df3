"""``audiotok eval-tts``: intelligibility, speaker similarity and speed of the TTS, offline and streaming.

For each test utterance (held-out sentences; its text and speaker), the TTS speaks the text with a prompt: another
recording of the same speaker (its audio and transcript) from the prompt manifest. Measured:

* **intelligibility**: WER and CER of the synthesized speech as judged by pocketsphinx (independent, trained on
  real speech), next to the judge's rates on the corpus recordings of the same sentences and voices (the floor a
  perfect TTS of these voices would reach) and on the recordings scored against *another* test sentence (chance:
  what speech without the right words scores; CER stays graded where WER saturates near 100%); optionally also by a
  Whisper model of the suite;
* **speaker similarity** (the suite's x-vector model, cosine): prompt vs. synthesized, next to prompt vs. the real
  recording of the same speaker (same-speaker reference) and vs. a recording of another speaker;
* **speed**: real-time factor, and first-chunk latency when streaming;
* both ways: ``offline`` (whole utterance) and ``stream`` (chunked LM -> flow -> vocoder), CosyVoice 2 Table 8 in
  miniature; and two ceilings that locate the losses: ``resynthesis`` (the recording's own semantic tokens through
  the flow and vocoder, no LM) and ``vocoder`` (the recording's own mel through the vocoder).
"""

from __future__ import annotations

import os
import time

import torch
from tqdm import tqdm

from audiotok.audio import load, resample
from audiotok.data.manifest import Utterance, even_share, read_manifest
from audiotok.whisper import error_rates


def pick_prompts(tests: list[Utterance], pool: list[Utterance]) -> dict[str, Utterance]:
    """For each test utterance, the first utterance of the same speaker in ``pool`` (another recording) that is long
    enough to be a prompt (:data:`tts.inputs.MIN_PROMPT_SECONDS`)."""
    from tts.inputs import MIN_PROMPT_SECONDS

    by_speaker: dict[str, list[Utterance]] = {}
    for u in pool:
        if u.text and u.duration >= MIN_PROMPT_SECONDS:
            by_speaker.setdefault(u.speaker or "", []).append(u)
    out = {}
    for u in tests:
        cands = [p for p in by_speaker.get(u.speaker or "", []) if p.id != u.id]
        if cands:
            out[u.id] = cands[0]
    return out


def _load(u: Utterance, sr: int) -> torch.Tensor:
    w, s = load(u.audio, start=u.start, end=u.end, mono=True)
    return resample(w, s, sr)


def evaluate_tts(
    tts,
    manifest: str | os.PathLike,
    prompt_manifest: str | os.PathLike,
    speaker_model,
    whisper_model=None,
    limit: int | None = 50,
    modes: tuple[str, ...] = ("offline", "stream"),
    options=None,
    progress: bool = True,
    speakers: list[str] | None = None,
) -> dict:
    """``limit``: about this many test sentences, an even share of every voice; ``speakers``: only these voices."""
    from audiotok.sphinx import recognize
    from audiotok.whisper import transcribe_audio

    tests = [u for u in read_manifest(manifest) if u.text and (speakers is None or u.speaker in speakers)]
    prompts = pick_prompts(tests, read_manifest(prompt_manifest))
    tests = even_share([u for u in tests if u.id in prompts], limit)
    if not tests:
        raise ValueError("no test utterance has a prompt of the same speaker in the prompt manifest")
    sr = tts.sample_rate
    real = [_load(u, sr) for u in tests]
    prompt_audio = [_load(prompts[u.id], sr) for u in tests]
    refs = [u.text for u in tests]
    result: dict = {"utterances": len(tests), "manifest": str(manifest)}
    judges = {"sphinx": lambda wavs: recognize(wavs, sr)}
    if whisper_model is not None:
        judges["whisper"] = lambda wavs: transcribe_audio(whisper_model, wavs, sr)
    result["recordings"], result["chance"] = {}, {}
    shifted = refs[1:] + refs[:1]  # each recording scored against the next test sentence
    for judge, recognize_fn in judges.items():
        hyps = recognize_fn(real)
        result["recordings"].update(_rates(refs, hyps, judge))
        result["chance"].update(_rates(shifted, hyps, judge))
    # different-speaker reference: each prompt against the next test item of another speaker
    others = [next((r for r, v in zip(real, tests, strict=True) if v.speaker != u.speaker), None) for u in tests]
    pairs = [(p, o) for p, o in zip(prompt_audio, others, strict=True) if o is not None]
    result["recordings"]["similarity_same_speaker"] = float(speaker_model.similarity(prompt_audio, real, sr).mean())
    if pairs:
        sims = speaker_model.similarity([p for p, _ in pairs], [o for _, o in pairs], sr)
        result["recordings"]["similarity_other_speaker"] = float(sims.mean())
    for mode in modes:
        outs, compute, first = [], 0.0, []
        for u, p in tqdm(list(zip(tests, prompt_audio, strict=True)), desc=f"tts {mode}", disable=not progress):
            t0 = time.perf_counter()
            ptext = prompts[u.id].text
            if mode == "vocoder":
                wav = tts.copy_synthesis(real[len(outs)], sr)
            elif mode == "resynthesis":
                wav = tts.resynthesize(real[len(outs)], sr, p, sr, options)
            elif mode == "stream":
                chunks = []
                for c in tts.stream(u.text, p, sr, ptext, options):
                    if not chunks:
                        first.append(time.perf_counter() - t0)
                    chunks.append(c)
                wav = torch.cat(chunks) if chunks else torch.zeros(0)
            else:
                wav = tts.synthesize(u.text, p, sr, ptext, options)
            compute += time.perf_counter() - t0
            outs.append(wav if len(wav) else torch.zeros(sr // 10))
        seconds = sum(len(w) for w in outs) / sr
        entry = {
            "similarity": float(speaker_model.similarity(prompt_audio, outs, sr).mean()),
            "rtf": compute / max(seconds, 1e-9),
            "audio_seconds": seconds,
        }
        for judge, recognize_fn in judges.items():
            entry.update(_rates(refs, recognize_fn(outs), judge))
        if first:
            entry["first_chunk_s"] = sum(first) / len(first)
        result[mode] = entry
    return result


def _rates(refs: list[str], hyps: list[str], judge: str) -> dict[str, float]:
    return {f"{k}_{judge}": v for k, v in error_rates(refs, hyps).items()}


def format_report(result: dict) -> str:
    rec = result["recordings"]
    lines = [f"{result['utterances']} held-out sentences of {result['manifest']} (synthetic voices)", ""]
    lines.append("| | WER / CER (pocketsphinx) | WER / CER (whisper) | similarity to prompt | RTF | first chunk (s) |")
    lines.append("|---|---:|---:|---:|---:|---:|")

    def rates(e: dict, judge: str) -> str:
        if f"wer_{judge}" not in e:
            return ""
        return f"{100 * e[f'wer_{judge}']:.1f}% / {100 * e[f'cer_{judge}']:.1f}%"

    lines.append(
        f"| corpus recordings | {rates(rec, 'sphinx')} | {rates(rec, 'whisper')} "
        f"| {rec['similarity_same_speaker']:.3f} (same speaker) | | |"
    )
    if "chance" in result:
        ch = result["chance"]
        lines.append(
            f"| chance: a recording scored against another sentence | {rates(ch, 'sphinx')} | {rates(ch, 'whisper')} | | | |"
        )
    if "similarity_other_speaker" in rec:
        lines.append(f"| another speaker's recording | | | {rec['similarity_other_speaker']:.3f} | | |")
    labels = {"vocoder": "vocoder on the recording's mel", "resynthesis": "resynthesis (real tokens, no LM)"}
    for mode in ("vocoder", "resynthesis", "offline", "stream"):
        if mode in result:
            e = result[mode]
            first = f"{e['first_chunk_s']:.2f}" if "first_chunk_s" in e else ""
            name = labels.get(mode, f"TTS, {mode}")
            lines.append(
                f"| {name} | {rates(e, 'sphinx')} | {rates(e, 'whisper')} | {e['similarity']:.3f} "
                f"| {e['rtf']:.2f} | {first} |"
            )
    return "\n".join(lines)
