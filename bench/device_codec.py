"""The codec benchmarks: our codec's batched encode/decode against the one-by-one loop (``codec``), and EnCodec
on the same clips and batches (``codec-encodec``).
"""

from __future__ import annotations

import time

import torch
from device_core import Context, package_version, require
from device_measure import best_time, mismatch, n_params, noise_clips, precision, precisions


def codec_clip_batch(ctx: Context) -> list[torch.Tensor]:
    s = ctx.sizes
    n = int(s.codec_seconds * 24000)
    return [c.to(ctx.device) for c in noise_clips([n] * s.codec_clips, seed=1)]


def one_by_one(ctx: Context, encode, decode, clips: list[torch.Tensor]) -> tuple[float, float, list]:
    """The reference's loop: one clip per call. -> (encode s, decode s, codes per clip)."""
    codes, t_enc, t_dec = [], 0.0, 0.0
    for clip in clips:
        t = time.perf_counter()
        c = encode(clip[None])
        ctx.sync()
        t_enc += time.perf_counter() - t
        t = time.perf_counter()
        decode(c)
        ctx.sync()
        t_dec += time.perf_counter() - t
        codes.append(c)
    return t_enc, t_dec, codes


def batched(ctx: Context, encode, decode, clips: list[torch.Tensor], batch: int) -> tuple[float, float, list]:
    """All clips in batches of ``batch`` (best of ``repeats`` passes after a warm-up; one pass at batch 1, whose
    many calls average themselves). -> (encode s, decode s, codes per batch)."""
    stacks = [torch.stack(clips[i : i + batch]) for i in range(0, len(clips), batch)]
    repeats = 1 if batch == 1 else ctx.sizes.repeats
    t_enc, codes = best_time(lambda: [encode(x) for x in stacks], repeats, ctx.sync)
    t_dec, _ = best_time(lambda: [decode(c) for c in codes], repeats, ctx.sync)
    return t_enc, t_dec, codes


def throughput_row(audio_s: float, t_enc: float, t_dec: float) -> dict:
    """Seconds of audio per second of compute (x real time) for encode, decode and both."""
    return {
        "encode_s": t_enc,
        "decode_s": t_dec,
        "encode_x_realtime": audio_s / t_enc,
        "decode_x_realtime": audio_s / t_dec,
        "total_x_realtime": audio_s / (t_enc + t_dec),
    }


def bench_codec(ctx: Context) -> None:
    """Our codec's batched encode/decode (B = 1, 16, 64) vs the reference's one-by-one loop, same weights and
    clips, fp32 and TF32; codes compared with the loop's (mismatch = fraction of code positions that differ)."""
    from codec import ours_codec

    s, rec = ctx.sizes, ctx.rec
    clips = codec_clip_batch(ctx)
    model = ours_codec(s.codec_config, ctx.device, torch.stack(clips[: min(8, len(clips))]), s.codec_kmeans_iters)
    rec.summary.update({"model": s.codec_config, "params_m": n_params(model), "clips": len(clips)})
    rec.summary["seconds_per_clip"] = s.codec_seconds
    audio_s = len(clips) * s.codec_seconds

    def encode(x):
        return model.encode(x)[0]

    def decode(c):
        return model.decode(c)[0]

    fp32_loop = None
    for mode in precisions(ctx):
        with precision(mode):
            encode(clips[0][None])  # warm-up of the B=1 kernels
            ctx.reset_peak()
            t_enc, t_dec, loop_codes = one_by_one(ctx, encode, decode, clips)
            loop_codes = [c[0] for c in loop_codes]
            fp32_loop = fp32_loop or loop_codes
            loop_total = t_enc + t_dec
            rec.row(
                precision=mode,
                mode="one-by-one loop (peer)",
                batch=1,
                **throughput_row(audio_s, t_enc, t_dec),
                speedup_vs_loop=1.0,
                code_mismatch_vs_loop=0.0,
                code_mismatch_vs_fp32_loop=mismatch(loop_codes, fp32_loop),
                peak_mib=ctx.peak_mib(),
            )
            for b in s.codec_batches:
                ctx.reset_peak()
                b_enc, b_dec, codes = batched(ctx, encode, decode, clips, b)
                per_clip = [c for batch in codes for c in batch]
                rec.row(
                    precision=mode,
                    mode="batched",
                    batch=b,
                    **throughput_row(audio_s, b_enc, b_dec),
                    speedup_vs_loop=loop_total / (b_enc + b_dec),
                    code_mismatch_vs_loop=mismatch(per_clip, loop_codes),
                    code_mismatch_vs_fp32_loop=mismatch(per_clip, fp32_loop),
                    peak_mib=ctx.peak_mib(),
                )


def bench_encodec(ctx: Context) -> None:
    """EnCodec 24 kHz at 1.5 kbps (the ``encodec`` package, random init) on the same clips and batches."""
    require("encodec", "the EnCodec peer (`pip install encodec==0.1.1`)")
    from codec import build

    s, rec = ctx.sizes, ctx.rec
    clips = codec_clip_batch(ctx)
    torch.manual_seed(0)
    encode, decode = build("encodec-24k", ctx.device)
    rec.summary.update({"model": "EnCodec 24 kHz, 1.5 kbps", "package": package_version("encodec")})
    audio_s = len(clips) * s.codec_seconds
    for mode in precisions(ctx):
        with precision(mode):
            for b in s.codec_batches:
                ctx.reset_peak()
                t_enc, t_dec, _ = batched(ctx, encode, decode, clips, b)
                rec.row(precision=mode, batch=b, **throughput_row(audio_s, t_enc, t_dec), peak_mib=ctx.peak_mib())
