"""What semantic tokens keep and what they drop (``audiotok eval-semantic``), next to the acoustic codec's tokens.

* **content** (CosyVoice Table 5 in miniature): WER of the tokenizer's own ASR decoder reading the quantized
  tokens, next to the WER of an unquantized ASR model (``whisper-synth``, the model the tokenizer started from);
* **codebook**: share of codes used and perplexity on the manifest;
* **robustness** (TouchTTS's claim): agreement of the tokens of clean audio with those of the same audio with
  white noise at 20/10/5 dB SNR and with speed perturbation (resampling, 0.9x and 1.1x), as ``1 - normalised
  edit distance`` (sequences of different lengths compare too; 1 = identical);
* **speaker leakage**: a linear probe (multinomial logistic regression) predicting the speaker from an utterance's
  bag of tokens, trained on half of each speaker's utterances and scored on the other half; chance = 1 / speakers.

Every tokenizer follows the suite's protocol: ``codes, code_lens = tok.encode(list_of_wavs, sample_rate=sr)``.
Evaluate on held-out speakers (the synthetic corpus' ``test.jsonl``); the numbers are then "synthetic".
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch
import torch.nn.functional as F
from rapidfuzz.distance import Levenshtein
from tqdm import tqdm

from audiotok.audio import load, resample
from audiotok.codec.quantizer import codebook_usage
from audiotok.data.augment import change_speed
from audiotok.data.manifest import Utterance, even_share, read_manifest

SAMPLE_RATE = 16000
SNRS = (20.0, 10.0, 5.0)
SPEEDS = (0.9, 1.1)


def add_noise(wav: torch.Tensor, snr_db: float, seed: int) -> torch.Tensor:
    """White Gaussian noise at ``snr_db`` relative to the signal's mean power (seeded)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(wav.shape, generator=g)
    power = wav.pow(2).mean().clamp_min(1e-10)
    return wav + noise * torch.sqrt(power / 10 ** (snr_db / 10))


def agreement(a: list[int], b: list[int]) -> float:
    """``1 - edit distance / max(len)``: 1 for identical sequences, 0 for nothing in common."""
    n = max(len(a), len(b))
    return 1.0 - Levenshtein.distance(a, b) / n if n else 1.0


def _speed(wav: torch.Tensor, factor: float) -> torch.Tensor:
    """One (T,) waveform at 16 kHz made ``factor`` times faster (:func:`audiotok.data.augment.change_speed`)."""
    fast, _ = change_speed(wav[None], torch.tensor([len(wav)]), torch.tensor([factor]), SAMPLE_RATE)
    return fast[0]


def _tokens(tokenizer, wavs: list[torch.Tensor], batch_size: int) -> list[list[int]]:
    out = []
    for i in range(0, len(wavs), batch_size):
        codes, lens = tokenizer.encode(wavs[i : i + batch_size], sample_rate=SAMPLE_RATE)
        out += [c[: int(n)].tolist() for c, n in zip(codes.cpu(), lens.cpu(), strict=True)]
    return out


def robustness(tokenizer, wavs: list[torch.Tensor], batch_size: int = 16, seed: int = 0) -> dict[str, float]:
    """Mean token agreement between clean audio and each perturbation (keys ``noise_20db``, ``speed_0.9``...)."""
    clean = _tokens(tokenizer, wavs, batch_size)
    out = {}
    for snr in SNRS:
        noisy = _tokens(tokenizer, [add_noise(w, snr, seed + i) for i, w in enumerate(wavs)], batch_size)
        out[f"noise_{snr:g}db"] = sum(map(agreement, clean, noisy)) / len(wavs)
    for speed in SPEEDS:
        fast = _tokens(tokenizer, [_speed(w, speed) for w in wavs], batch_size)
        out[f"speed_{speed:g}"] = sum(map(agreement, clean, fast)) / len(wavs)
    return out


def bag_of_tokens(tokens: list[list[int]], codebook_size: int) -> torch.Tensor:
    """(N, codebook_size) normalised code histograms."""
    x = torch.zeros(len(tokens), codebook_size)
    for i, t in enumerate(tokens):
        if t:
            x[i] = torch.bincount(torch.tensor(t), minlength=codebook_size)[:codebook_size].float() / len(t)
    return x


def speaker_probe(
    features: torch.Tensor, speakers: list[str], steps: int = 500, weight_decay: float = 1e-2, seed: int = 0
) -> dict[str, float]:
    """Accuracy of a linear speaker classifier on (N, D) utterance features: even-indexed utterances of each
    speaker train it, odd-indexed ones test it. Features are standardised on the training half."""
    names = sorted(set(speakers))
    y = torch.tensor([names.index(s) for s in speakers])
    seen: dict[str, int] = defaultdict(int)
    train = torch.zeros(len(speakers), dtype=torch.bool)
    for i, s in enumerate(speakers):
        train[i] = seen[s] % 2 == 0
        seen[s] += 1
    mean, std = features[train].mean(0), features[train].std(0).clamp_min(1e-6)
    x = (features - mean) / std
    torch.manual_seed(seed)
    probe = torch.nn.Linear(x.shape[1], len(names))
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=weight_decay)
    for _ in range(steps):
        loss = F.cross_entropy(probe(x[train]), y[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (probe(x[~train]).argmax(-1) == y[~train]).float().mean().item()
    return {"accuracy": acc, "chance": 1.0 / len(names), "speakers": len(names), "test_utterances": int((~train).sum())}


def _load_16k(utts: list[Utterance]) -> list[torch.Tensor]:
    wavs = []
    for u in utts:
        w, sr = load(u.audio, mono=True)
        wavs.append(resample(w, sr, SAMPLE_RATE))
    return wavs


def content_error_rates(
    asr_model, utts: list[Utterance], wavs: list[torch.Tensor], batch_size: int = 16
) -> dict[str, float]:
    """WER and CER of a :class:`~audiotok.semantic.supervised.SupervisedTokenizerASR` decoding from its quantized
    tokens."""
    from audiotok.whisper import error_rates, transcribe_audio

    hyps = transcribe_audio(asr_model.whisper, wavs, batch_size=batch_size, decode=asr_model.transcribe_from_tokens)
    return error_rates([u.text for u in utts], hyps)


def evaluate_semantic(
    tokenizer,
    manifest: str | os.PathLike,
    codec=None,
    asr_model=None,
    reference_asr=None,
    limit: int | None = 100,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = True,
    speakers: list[str] | None = None,
) -> dict:
    """All of the module docstring's measures for ``tokenizer`` (and ``codec`` for comparison) on ``manifest``
    (``speakers``: only these voices). ``asr_model``: the tokenizer's own ASR model (content WER);
    ``reference_asr``: an unquantized Whisper."""
    from audiotok.whisper import error_rates, transcribe_audio

    utts = even_share([u for u in read_manifest(manifest) if speakers is None or u.speaker in speakers], limit)
    wavs = _load_16k(utts)
    systems = {"semantic": tokenizer, **({"codec": codec} if codec is not None else {})}
    result: dict = {"manifest": str(manifest), "utterances": len(utts)}
    steps = tqdm(total=len(systems) * 2 + 2, desc="eval-semantic", disable=not progress)
    if asr_model is not None and all(u.text for u in utts):
        rates = content_error_rates(asr_model, utts, wavs, batch_size)
        result["wer_from_tokens"], result["cer_from_tokens"] = rates["wer"], rates["cer"]
    steps.update()
    if reference_asr is not None and all(u.text for u in utts):
        hyps = transcribe_audio(reference_asr, wavs, batch_size=batch_size)
        rates = error_rates([u.text for u in utts], hyps)
        result["wer_unquantized"], result["cer_unquantized"] = rates["wer"], rates["cer"]
    steps.update()
    for name, tok in systems.items():
        tokens = _tokens(tok, wavs, batch_size)
        size = int(tok.codebook_size)
        lens = [len(t) for t in tokens]
        flat = torch.tensor([c for t in tokens for c in t])
        entry = {
            "codebook_size": size,
            "tokens_per_second": sum(lens) / sum(len(w) / SAMPLE_RATE for w in wavs),
            "codebook": codebook_usage(flat, size),
            "probe": speaker_probe(bag_of_tokens(tokens, size), [u.speaker or "?" for u in utts], seed=seed),
        }
        steps.update()
        entry["robustness"] = robustness(tok, wavs, batch_size, seed)
        steps.update()
        result[name] = entry
    steps.close()
    return result


def format_report(result: dict) -> str:
    """A plain-text table of :func:`evaluate_semantic`'s result."""
    lines = [f"{result['utterances']} utterances of {result['manifest']}"]
    for key, label in (
        ("wer_from_tokens", "WER from tokens"),
        ("cer_from_tokens", "CER from tokens"),
        ("wer_unquantized", "WER unquantized ASR"),
        ("cer_unquantized", "CER unquantized ASR"),
    ):
        if key in result:
            lines.append(f"  {label:<28} {100 * result[key]:.1f}%")
    names = [n for n in ("semantic", "codec") if n in result]
    lines.append(f"  {'':<28} " + " ".join(f"{n:>9}" for n in names))
    rows = [
        ("tokens/s", lambda e: f"{e['tokens_per_second']:.1f}"),
        ("codes used", lambda e: f"{e['codebook']['used']:.3f}"),
    ]
    rows.append(("perplexity", lambda e: f"{e['codebook']['perplexity']:.0f}"))
    for k in result[names[0]]["robustness"]:
        rows.append((f"agreement {k}", lambda e, k=k: f"{e['robustness'][k]:.3f}"))
    rows.append(("speaker probe accuracy", lambda e: f"{e['probe']['accuracy']:.3f}"))
    rows.append(("  (chance)", lambda e: f"{e['probe']['chance']:.3f}"))
    for label, fn in rows:
        lines.append(f"  {label:<28} " + " ".join(f"{fn(result[n]):>9}" for n in names))
    return "\n".join(lines)
