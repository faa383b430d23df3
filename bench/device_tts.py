"""The TTS benchmarks: ``TTS.stream`` first-chunk latency and RTF at several concurrencies, of the bundled
default (``tts-bundled``) and at full size with random weights (``tts-full``).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import replace

import torch
from device_core import Context, Skip
from device_measure import n_params


def full_size_tts(device: str):
    """Random weights at full size: the Qwen2.5-0.5B-shaped LM, CosyVoice 2's flow estimator size (768-d x 10),
    a Vocos vocoder at the original Vocos size (512-d x 8), KV cache on."""
    from tts_flow import cosyvoice2_flow_config
    from tts_lm import bench_tokenizer

    from audiotok.nn.vocos import VocosConfig
    from tts.flow import FlowDecoder
    from tts.lm import TTSLM, lm_config
    from tts.pipeline import TTS
    from tts.vocoder import Vocoder, VocoderConfig

    torch.manual_seed(0)
    lm = TTSLM(lm_config("qwen2.5-0.5b"), bench_tokenizer())
    flow = FlowDecoder(cosyvoice2_flow_config())
    backbone = VocosConfig(
        input_dim=80, dim=512, intermediate_dim=1536, n_layers=8, n_cond_embeddings=0, attention=False, dropout=0.0
    )
    vocoder = Vocoder(VocoderConfig(backbone=backbone))
    return TTS(lm.to(device).eval(), flow.to(device).eval(), vocoder.to(device).eval(), None)


def tiny_tts(device: str):
    """The smoke run's TTS: the ``tiny`` LM, flow and vocoder, random weights."""
    from tts_lm import bench_tokenizer

    from audiotok.data.features import cosyvoice2_mel
    from tts.flow import FlowDecoder, flow_config
    from tts.lm import TTSLM, lm_config
    from tts.pipeline import TTS
    from tts.vocoder import Vocoder, vocoder_config

    torch.manual_seed(0)
    lm = TTSLM(lm_config("tiny"), bench_tokenizer(n_speech=64))
    flow, vocoder = FlowDecoder(flow_config("tiny")), Vocoder(vocoder_config("tiny"))
    mel = replace(cosyvoice2_mel(), n_mels=flow.config.n_mels)
    return TTS(lm.to(device).eval(), flow.to(device).eval(), vocoder.to(device).eval(), None, mel)


def stream_options(tts, n_tokens: int, n_steps: int):
    """Synthesis options that make the LM emit exactly ``n_tokens`` speech tokens for the benchmark text."""
    from tts_lm import TEXT, fixed_length_sampling

    from tts.inputs import prepare_text
    from tts.pipeline import SynthesisOptions

    n_text = len(tts.lm.tokenizer.encode_text(prepare_text(TEXT)[0]))
    return SynthesisOptions(sampling=fixed_length_sampling(n_tokens, n_text), n_steps=n_steps)


def one_stream(tts, options) -> dict:
    """Run one ``TTS.stream`` to the end; a chunk counts as ready once it is on the CPU."""
    from tts_lm import TEXT

    t0 = time.perf_counter()
    first, samples = None, 0
    for chunk in tts.stream(TEXT, options=options):
        samples += chunk.cpu().numel()
        first = first if first is not None else time.perf_counter() - t0
    total = time.perf_counter() - t0
    audio = samples / tts.sample_rate
    return {"first_s": first if first is not None else math.nan, "total_s": total, "audio_s": audio}


def concurrent_streams(tts, options, n: int) -> tuple[list[dict], float]:
    """``n`` streams started together in threads (a server's concurrent requests). -> (per stream, wall s)."""
    results: list[dict | BaseException] = [None] * n  # type: ignore[list-item]
    barrier = threading.Barrier(n)

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = one_stream(tts, options)
        except BaseException as e:  # noqa: BLE001 (re-raised in the caller's thread)
            results[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results, wall  # type: ignore[return-value]


def stream_rows(ctx: Context, tts, label: str) -> None:
    s, rec = ctx.sizes, ctx.rec
    options = stream_options(tts, s.tts_tokens, s.tts_steps)
    one_stream(tts, options)  # warm-up
    rec.summary.update(
        {"params_m": n_params(tts.lm, tts.flow, tts.vocoder), "speech_tokens": s.tts_tokens, "flow_steps": s.tts_steps}
    )
    for c in s.tts_concurrency:
        ctx.reset_peak()
        streams, wall = concurrent_streams(tts, options, c)
        first = [r["first_s"] * 1000 for r in streams]
        audio = sum(r["audio_s"] for r in streams)
        rec.row(
            model=label,
            concurrency=c,
            first_chunk_ms_mean=statistics.fmean(first),
            first_chunk_ms_max=max(first),
            rtf_per_stream=statistics.fmean(r["total_s"] / r["audio_s"] for r in streams),
            rtf_aggregate=wall / audio,
            audio_s_per_stream=audio / c,
            kv_cache=True,
            peak_mib=ctx.peak_mib(),
        )


def bench_tts_bundled(ctx: Context) -> None:
    """``TTS.stream`` of the bundled default: first-chunk latency and RTF at concurrency 1 and 8."""
    from tts.pipeline import TTS

    try:
        tts = TTS.from_pretrained(device=ctx.device)
    except (FileNotFoundError, OSError) as e:
        raise Skip(f"the bundled TTS could not be loaded: {e}") from e
    stream_rows(ctx, tts, "bundled tts")


def bench_tts_full(ctx: Context) -> None:
    """``TTS.stream`` at full size (random weights; tiny in the smoke run)."""
    tiny = ctx.sizes.tts_tiny
    tts = tiny_tts(ctx.device) if tiny else full_size_tts(ctx.device)
    stream_rows(ctx, tts, "tiny (smoke)" if tiny else "full size: qwen2.5-0.5b LM, 768x10 flow, vocos 512x8")
