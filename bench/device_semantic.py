"""The ``semantic`` benchmark: tokens/s of our semantic tokenizer against the ``s3tokenizer`` package's batch
path, same random weights and mixed-length clips.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from device_core import Context, require
from device_measure import best_time, clip_lengths, n_params, noise_clips, precision, precisions


def tiny_s3_config(name: str):
    """A tiny architecture of ``name``'s version (the smoke run's)."""
    from audiotok.semantic import OFFICIAL

    return replace(OFFICIAL[name], dim=64, n_heads=2, n_layers=1, codebook_size=64 if "v1" in name else 6561)


def bench_semantic(ctx: Context) -> None:
    """Tokens/s of our tokenizer vs the ``s3tokenizer`` package's batch path (a log-mel per utterance, its
    ``padding``, one ``quantize``; with and without its SDPA attention), same random weights, mixed lengths,
    front end included; tokens compared with the package's at fp32."""
    require("s3tokenizer", "the s3tokenizer peer (`pip install s3tokenizer==0.3.0`)")
    from semantic import build_pair, reference_model, reference_runner, same_tokens

    s, rec = ctx.sizes, ctx.rec
    torch.manual_seed(0)
    config = tiny_s3_config(s.semantic_name) if s.semantic_tiny else None
    ref, ours = build_pair(s.semantic_name, ctx.device, config)
    ref_sdpa = reference_model(s.semantic_name, ctx.device, ours.config, use_sdpa=True)
    ref_sdpa.load_state_dict(ref.state_dict())
    wavs = noise_clips(clip_lengths(s.semantic_batch, s.semantic_seconds, 16000, seed=2), seed=3)
    audio_s = sum(len(w) for w in wavs) / 16000
    rec.summary.update(
        {"architecture": s.semantic_name + (" (tiny)" if config else ""), "params_m": n_params(ours)}
        | {"batch": len(wavs), "audio_s": audio_s, "clip_seconds": list(s.semantic_seconds)}
    )
    runners = {
        "s3tokenizer (peer)": reference_runner(ref, wavs, ctx.device, ours.config.n_mels),
        "s3tokenizer, use_sdpa": reference_runner(ref_sdpa, wavs, ctx.device, ours.config.n_mels),
        "audiotok": lambda: ours.encode(wavs),
    }
    baseline = None
    for mode in precisions(ctx):
        with precision(mode):
            peer_t = None
            for label, run in runners.items():
                t, out = best_time(run, s.repeats, ctx.sync)
                baseline = baseline or out
                peer_t = peer_t or t
                same, rate = same_tokens(out, baseline)
                n_tokens = int(out[1].sum())
                rec.row(
                    precision=mode,
                    implementation=label,
                    seconds=t,
                    tokens_per_s=n_tokens / t,
                    x_realtime=audio_s / t,
                    speedup_vs_peer=peer_t / t,
                    same_tokens_as_fp32_peer=same,
                    token_mismatch=rate,
                )
