"""Reconstruction evaluation of a codec over a manifest (``audiotok eval-codec``).

Scores every utterance with PESQ-WB, STOI, mel distance, multi-resolution STFT distance and SI-SNR, and reports
tokens/s, bitrate and codebook usage. Two reference points make the numbers readable:

* ``lower bound``: the decoder fed one constant code (the most frequent one) for the whole utterance;
* ``upper bound``: the same decoder fed the encoder's unquantized latents (what the quantizer costs).

Evaluate on held-out speakers only (the synthetic corpus' ``test.jsonl``).
"""

from __future__ import annotations

import math
import os
import time

import torch
from tqdm import tqdm

from audiotok.codec.model import Codec
from audiotok.codec.quantizer import codebook_usage
from audiotok.data.dataset import AudioDataset, audio_loader
from audiotok.data.manifest import even_share
from audiotok.metrics import mean_metrics, reconstruction_metrics
from audiotok.nn.masks import sequence_mask

METRICS = ("pesq", "stoi", "mel_distance", "stft_distance", "si_snr")
# input conditions of real recordings (the degraded input is also the reference: a codec reproduces what it gets)
CONDITIONS = {
    "clean": {},
    "telephone": {"band": (300.0, 3400.0)},
    "8k": {"band": (0.0, 4000.0)},
    "16k": {"band": (0.0, 8000.0)},
    "noisy": {"snr_db": 20.0},
    "reverb": {"rt60": 0.4},
}


def degrade(wav: torch.Tensor, lens: torch.Tensor, condition: str, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """``wav`` (B, T) under one of :data:`CONDITIONS` (deterministic for a ``seed``); padding stays zero."""
    from audiotok.data.augment import add_noise, add_reverb, band_limit, synthetic_rir

    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    c, g = CONDITIONS[condition], torch.Generator().manual_seed(seed)
    if "band" in c:
        wav = band_limit(wav, torch.tensor([c["band"]] * wav.shape[0]), sample_rate)
    if "snr_db" in c:
        wav = add_noise(wav, lens, torch.full((wav.shape[0],), c["snr_db"]), generator=g)
    if "rt60" in c:
        rir = synthetic_rir(c["rt60"], sample_rate, g).to(wav.device)
        wav = add_reverb(wav, [rir] * wav.shape[0], torch.full((wav.shape[0],), 0.4))
    return wav * sequence_mask(lens, wav.shape[-1]).to(wav)


@torch.inference_mode()
def evaluate_codec(
    model: Codec,
    manifest: str | os.PathLike,
    limit: int | None = None,
    batch_seconds: float = 60.0,
    references: bool = True,
    progress: bool = True,
    skip_per_speaker: int = 0,
    condition: str = "clean",
) -> dict:
    """Scores of ``model`` on ``manifest`` (and of the two reference points when ``references``) under
    ``condition``: about ``limit`` utterances as an even share of every speaker, after leaving out the first
    ``skip_per_speaker`` of each (the ones a training run validated on)."""
    model.eval()
    dataset = AudioDataset(manifest, sample_rate=model.sample_rate, on_error="skip")
    seen: dict[str, int] = {}
    kept = []
    for u in dataset.utterances:
        seen[u.speaker or ""] = seen.get(u.speaker or "", 0) + 1
        if seen[u.speaker or ""] > skip_per_speaker:
            kept.append(u)
    dataset.utterances = even_share(kept, limit)
    loader = audio_loader(dataset, max_seconds=batch_seconds, shuffle=False)
    rows = {"codec": [], "lower_bound": [], "upper_bound": []}
    all_codes = []
    seconds, t_codec = 0.0, 0.0
    bar = tqdm(total=len(dataset), unit="utt", desc="eval-codec", disable=not progress)
    for batch in loader:
        wav, lens = batch["audio"].to(model.device), batch["audio_lens"].to(model.device)
        if condition != "clean":
            wav = degrade(wav, lens, condition, model.sample_rate, seed=len(all_codes))
        t = time.perf_counter()
        codes, code_lens = model.encode(wav, lens)
        rec, _ = model.decode(codes, code_lens, lengths=lens)
        t_codec += time.perf_counter() - t
        outputs = {"codec": rec}
        if references:
            z, _ = model.latents(wav, lens)
            outputs["upper_bound"] = model.decode_latents(z, code_lens)
            valid = sequence_mask(code_lens, codes.shape[-1])
            counts = torch.bincount(codes[valid], minlength=model.codebook_size)
            constant = torch.full_like(codes, int(counts.argmax()))
            outputs["lower_bound"] = model.decode(constant, code_lens, lengths=lens)[0]
        for i in range(wav.shape[0]):
            ref = wav[i, : lens[i]].cpu()
            for name, out in outputs.items():
                rows[name].append(reconstruction_metrics(ref, out[i, : lens[i]].cpu(), model.sample_rate))
            all_codes.append(codes[i, : code_lens[i]].cpu())
        seconds += float(lens.sum()) / model.sample_rate
        bar.update(wav.shape[0])
    bar.close()
    usage = codebook_usage(torch.cat(all_codes), model.codebook_size) if all_codes else {}
    result = {
        "utterances": len(rows["codec"]),
        "condition": condition,
        "skip_per_speaker": skip_per_speaker,
        "speakers": len({u.speaker for u in dataset.utterances}),
        "hours": seconds / 3600,
        "sample_rate": model.sample_rate,
        "tokens_per_second": model.frame_rate,
        "bitrate_kbps": model.frame_rate * math.log2(model.codebook_size) / 1000,
        "codebook_size": model.codebook_size,
        "codebook": usage,
        "realtime_factor": t_codec / max(seconds, 1e-9),
        "codec": mean_metrics(rows["codec"]),
    }
    if references:
        result["lower_bound"] = mean_metrics(rows["lower_bound"])
        result["upper_bound"] = mean_metrics(rows["upper_bound"])
    return result


def format_table(result: dict) -> str:
    """A Markdown table of the metrics (rows: codec and reference points)."""
    names = [n for n in ("lower_bound", "codec", "upper_bound") if n in result]
    label = {
        "lower_bound": "lower bound (constant code)",
        "codec": "codec",
        "upper_bound": "upper bound (unquantized latents)",
    }
    lines = ["| | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for n in names:
        lines.append(f"| {label[n]} | " + " | ".join(f"{result[n][m]:.3f}" for m in METRICS) + " |")
    u = result.get("codebook", {})
    lines.append("")
    lines.append(
        f"{result['utterances']} utterances, {result['hours'] * 60:.1f} min; {result['tokens_per_second']:g} "
        f"tokens/s, {result['bitrate_kbps']:.2f} kbps; codebook used {u.get('used', 0) * 100:.1f}%, "
        f"perplexity {u.get('perplexity', 0):.0f} of {result['codebook_size']}; "
        f"encode+decode RTF {result['realtime_factor']:.3f}"
    )
    return "\n".join(lines)
