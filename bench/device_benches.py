"""The benchmarks of ``bench/device.sh`` (driven by ``bench/device.py``): each figure against its peer in the same
run, same weights, built from the other ``bench/`` modules where they have the piece.

Every benchmark is a function ``(ctx: Context) -> None`` that adds rows to ``ctx.rec`` as it measures (so a run
stopped at its time cap keeps what it finished) and may raise :class:`Skip` when its peer cannot run here. Sizes
come from :data:`FULL` (the GPU run) or :data:`QUICK` (the CPU smoke run: tiny random models, seconds).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # the sibling benchmarks import each other as top-level modules
    sys.path.insert(0, str(BENCH_DIR))

from common import device_sync  # noqa: E402


class Skip(Exception):
    """The benchmark cannot run here (a peer package is missing, a bundled asset is absent): recorded as skipped."""


@dataclass(frozen=True)
class Sizes:
    """Every size knob of the run (see :data:`FULL` and :data:`QUICK`)."""

    # codec: ours at a named config vs the one-by-one loop, and EnCodec
    codec_config: str = "wavtokenizer-75"
    codec_clips: int = 64
    codec_seconds: float = 10.0
    codec_batches: tuple[int, ...] = (1, 16, 64)
    codec_kmeans_iters: int = 10
    # semantic: an official architecture (or a tiny one of the same version) on mixed lengths
    semantic_name: str = "speech_tokenizer_v1_25hz"
    semantic_tiny: bool = False
    semantic_batch: int = 32
    semantic_seconds: tuple[float, float] = (2.0, 15.0)
    # features: files of mixed lengths, batched in length order
    feature_files: int = 64
    feature_seconds: tuple[float, float] = (2.0, 15.0)
    feature_batch: int = 16
    # TTS streaming
    tts_tokens: int = 100
    tts_steps: int = 10
    tts_concurrency: tuple[int, ...] = (1, 8)
    tts_tiny: bool = False
    # training steps
    train_tiny: bool = False
    train_warmup: int = 1
    train_steps: int = 3
    codec_train_batches: tuple[int, ...] = (40, 16, 4)  # tried in turn until one fits in memory
    codec_train_seconds: float = 3.0
    semantic_train_batch: int = 8
    lm_train_batch: int = 16
    lm_train_speech: int = 450
    flow_train_batch: int = 8
    flow_train_tokens: int = 250
    # repeats of timed passes (best of)
    repeats: int = 2
    copy_mib: int = 1024


FULL = Sizes()
QUICK = Sizes(
    codec_config="tiny",
    codec_clips=4,
    codec_seconds=0.5,
    codec_batches=(1, 2, 4),
    codec_kmeans_iters=2,
    semantic_tiny=True,
    semantic_batch=3,
    semantic_seconds=(0.3, 1.0),
    feature_files=4,
    feature_seconds=(0.3, 1.0),
    feature_batch=2,
    tts_tokens=10,
    tts_steps=2,
    tts_concurrency=(1, 2),
    tts_tiny=True,
    train_tiny=True,
    train_warmup=1,
    train_steps=1,
    codec_train_batches=(2,),
    codec_train_seconds=0.5,
    semantic_train_batch=2,
    lm_train_batch=2,
    lm_train_speech=20,
    flow_train_batch=2,
    flow_train_tokens=20,
    repeats=1,
    copy_mib=16,
)


@dataclass
class Recorder:
    """One benchmark's results, rewritten to ``path`` (JSON) after every change."""

    name: str
    path: Path | None = None
    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    status: str = "running"
    reason: str | None = None
    seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def row(self, **values) -> dict:
        """Add one table row (floats rounded for reading) and print it."""
        row = {k: _rounded(v) for k, v in values.items()}
        self.rows.append(row)
        print(f"[{self.name}] " + ", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        self.flush()
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.flush()

    def finish(self, status: str, reason: str | None = None) -> None:
        self.status, self.reason = status, reason
        self.flush()

    def as_dict(self) -> dict:
        self.seconds = time.perf_counter() - self.started
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "rows": self.rows,
            "summary": self.summary,
            "notes": self.notes,
        }

    def flush(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=1))
        os.replace(tmp, self.path)


def _rounded(v):
    if isinstance(v, float):
        return round(v, 6) if abs(v) < 1 else round(v, 4 if abs(v) < 1000 else 1)
    return v


@dataclass
class Context:
    """What a benchmark is given: the device, the sizes and its recorder."""

    device: str
    sizes: Sizes
    rec: Recorder
    quick: bool = False

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def sync(self) -> Callable[[], None]:
        return device_sync(self.device)

    def peak_mib(self) -> float | None:
        """Peak CUDA memory allocated since the last :meth:`reset_peak` (None on a CPU)."""
        return torch.cuda.max_memory_allocated() / 2**20 if self.cuda else None

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()


# --------------------------------------------------------------------------------------------------------- helpers
PRECISIONS = ("fp32", "tf32")


@contextlib.contextmanager
def precision(mode: str) -> Iterator[None]:
    """fp32 (TF32 off for matmuls and cuDNN convolutions) or tf32 (both on); restored afterwards."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    on = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def precisions(ctx: Context) -> tuple[str, ...]:
    """Both modes on CUDA; on a CPU TF32 does not exist, so fp32 alone."""
    return PRECISIONS if ctx.cuda else ("fp32",)


def clip_lengths(n: int, seconds: tuple[float, float], sample_rate: int, seed: int) -> list[int]:
    """``n`` lengths in samples drawn uniformly from ``seconds`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = seconds
    return [int(sample_rate * (lo + (hi - lo) * float(u))) for u in torch.rand(n, generator=g)]


def noise_clips(lengths: list[int], seed: int, scale: float = 0.1) -> list[torch.Tensor]:
    """Gaussian noise clips (CPU float32) of the given lengths."""
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(n, generator=g) for n in lengths]


def best_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> tuple[float, object]:
    """(best wall time of ``repeats`` calls after one warm-up, the last call's result)."""
    out = fn()
    sync()
    best = math.inf
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best, out


def mismatch(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Fraction of code positions that differ between two lists of per-clip code vectors."""
    differ = total = 0
    for x, y in zip(a, b, strict=True):
        n = min(len(x), len(y))
        differ += int((x[:n] != y[:n]).sum()) + abs(len(x) - len(y))
        total += max(len(x), len(y))
    return differ / max(total, 1)


def n_params(*modules: torch.nn.Module) -> float:
    """Parameters in millions."""
    return sum(p.numel() for m in modules for p in m.parameters()) / 1e6


def copy_bandwidth(device: str, mib: int) -> float:
    """Device-to-device copy bandwidth in GB/s, counting bytes read and written (best of 5)."""
    n = mib * 2**20 // 4
    x = torch.empty(n, device=device).uniform_()
    y = torch.empty_like(x)
    t, _ = best_time(lambda: y.copy_(x), 5, device_sync(device))
    return 2 * x.numel() * 4 / t / 1e9


def package_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def require(module: str, what: str) -> None:
    """Raise :class:`Skip` when ``module`` cannot be imported."""
    try:
        __import__(module)
    except Exception as e:  # noqa: BLE001 (any import failure means the peer cannot run)
        raise Skip(f"{what}: `import {module}` failed ({type(e).__name__}: {e})") from e


# ------------------------------------------------------------------------------------------------------------- env
PACKAGES = (
    "torch",
    "torchaudio",
    "transformers",
    "numpy",
    "openai-whisper",
    "vector-quantize-pytorch",
    "s3tokenizer",
    "encodec",
    "librosa",
    "soundfile",
)


def nvidia_driver() -> str | None:
    """The NVIDIA driver's version as ``nvidia-smi`` reports it (None where it cannot)."""
    import subprocess

    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def bench_env(ctx: Context) -> None:
    """The machine and software, and two reference speeds the other figures are read against."""
    s, rec = ctx.sizes, ctx.rec
    rec.summary.update(
        {
            "device": ctx.device,
            "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "packages": {p: package_version(p) for p in PACKAGES},
        }
    )
    if ctx.cuda:
        props = torch.cuda.get_device_properties(0)
        rec.summary.update(
            {
                "gpu": props.name,
                "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "sm_count": props.multi_processor_count,
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "driver": nvidia_driver(),
            }
        )
    rec.flush()
    rec.row(measure="device-to-device copy (read + write)", value=copy_bandwidth(ctx.device, s.copy_mib), unit="GB/s")
    n = 8192 if ctx.cuda else 256
    for dtype, label in ((torch.bfloat16, "bf16"), (torch.float32, "tf32" if ctx.cuda else "fp32")):
        a = torch.randn(n, n, device=ctx.device, dtype=dtype)
        with precision("tf32"):
            t, _ = best_time(lambda a=a: a @ a, 5, ctx.sync)
        rec.row(measure=f"{n}x{n}x{n} {label} matmul", value=2 * n**3 / t / 1e12, unit="TFLOP/s")


# ----------------------------------------------------------------------------------------------------------- codec
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


# -------------------------------------------------------------------------------------------------------- semantic
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


# -------------------------------------------------------------------------------------------------------- features
FEATURES = (("whisper-80", 16000), ("cosyvoice2", 24000))


def librosa_fn(name: str) -> Callable:
    """The per-file librosa reference of feature ``name``."""
    from features import librosa_cosyvoice_filters, librosa_cosyvoice_mel, librosa_whisper_filters, librosa_whisper_mel

    if name == "whisper-80":
        filters = librosa_whisper_filters()
        return lambda w: librosa_whisper_mel(w, filters)
    filters = librosa_cosyvoice_filters()
    return lambda w: librosa_cosyvoice_mel(w, filters)


def length_sorted_batches(wavs: list[torch.Tensor], size: int, device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Padded batches of ``size`` files in length order (little padding), on ``device``."""
    from audiotok.data.dataset import pad_sequences

    order = sorted(range(len(wavs)), key=lambda i: len(wavs[i]))
    groups = [order[i : i + size] for i in range(0, len(order), size)]
    return [tuple(t.to(device) for t in pad_sequences([wavs[i] for i in g])) for g in groups]


def feature_bytes(mel, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Bytes a batched extraction must at least move: read the padded audio, write the padded features (fp32)."""
    total = 0
    for audio, _ in batches:
        frames = int(mel.num_frames(torch.tensor([audio.shape[1]]))[0])
        total += 4 * audio.numel() + 4 * audio.shape[0] * mel.config.n_mels * frames
    return total


def bench_features(ctx: Context) -> None:
    """Whisper log-mel and CosyVoice 2 mel on the device (batched, and file by file) vs librosa per file on the
    CPU; and vs the memory-bandwidth bound: the bytes a batched pass must move over the measured copy bandwidth."""
    from audiotok.data.features import MelSpectrogram

    s, rec = ctx.sizes, ctx.rec
    bandwidth = copy_bandwidth(ctx.device, s.copy_mib)
    has_librosa = True
    try:
        require("librosa", "the librosa peer")
    except Skip as e:
        has_librosa = False
        rec.note(f"librosa rows skipped: {e}")
    rec.summary.update({"files": s.feature_files, "copy_gb_per_s": bandwidth, "cpu_threads": torch.get_num_threads()})
    for name, sr in FEATURES:
        mel = MelSpectrogram(name).to(ctx.device)
        wavs = noise_clips(clip_lengths(s.feature_files, s.feature_seconds, sr, seed=4), seed=5)
        hours = sum(len(w) for w in wavs) / sr / 3600
        peer_t = None
        if has_librosa:
            ref = librosa_fn(name)
            np_wavs = [w.numpy() for w in wavs]
            peer_t, _ = best_time(lambda ref=ref, np_wavs=np_wavs: [ref(w) for w in np_wavs], 1, lambda: None)
            rec.row(feature=name, method="librosa per file, CPU (peer)", seconds=peer_t, audio_h_per_s=hours / peer_t)
        on_device = [w.to(ctx.device) for w in wavs]
        with torch.inference_mode():
            t_file, _ = best_time(lambda mel=mel, d=on_device: [mel(w) for w in d], s.repeats, ctx.sync)
            batches = length_sorted_batches(wavs, s.feature_batch, ctx.device)
            t_batch, _ = best_time(lambda mel=mel, b=batches: [mel(a, n) for a, n in b], s.repeats, ctx.sync)
        moved = feature_bytes(mel, batches)
        bound = moved / (bandwidth * 1e9)
        for method, t in ((f"audiotok per file, {ctx.device}", t_file), (f"audiotok batched, {ctx.device}", t_batch)):
            rec.row(
                feature=name,
                method=method,
                seconds=t,
                audio_h_per_s=hours / t,
                speedup_vs_librosa=peer_t / t if peer_t else None,
                bytes_moved_mb=moved / 1e6 if "batched" in method else None,
                bandwidth_bound_s=bound if "batched" in method else None,
                fraction_of_bound=bound / t if "batched" in method else None,
            )
        if has_librosa:
            with torch.inference_mode():
                ours = mel(on_device[0])[0][0].float().cpu().numpy()
            rec.note(f"{name}: max |audiotok - librosa| on file 0 = {abs(ours - ref(wavs[0].numpy())).max():.2e}")


# ------------------------------------------------------------------------------------------------------------- TTS
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


# -------------------------------------------------------------------------------------------------------- training
def amp_context(ctx: Context):
    """bf16 autocast on CUDA, as the recipes train there; fp32 on a CPU."""
    from audiotok.train.distributed import bf16_autocast

    return bf16_autocast(torch.device(ctx.device), cuda=True, cpu=False)


def time_steps(ctx: Context, step: Callable[[], None]) -> float:
    """Mean seconds per training step after ``train_warmup`` untimed ones."""
    for _ in range(ctx.sizes.train_warmup):
        step()
    ctx.sync()
    t = time.perf_counter()
    for _ in range(ctx.sizes.train_steps):
        step()
    ctx.sync()
    return (time.perf_counter() - t) / ctx.sizes.train_steps


def step_row(ctx: Context, model: str, params_m: float, batch: str, items: int, seconds: float) -> None:
    ctx.rec.row(
        model=model,
        params_m=params_m,
        batch=batch,
        precision="bf16 autocast" if ctx.cuda else "fp32",
        s_per_step=seconds,
        items_per_s=items / seconds,
        peak_mib=ctx.peak_mib(),
    )


def codec_gan_step(ctx: Context, model, discs, batch: int, seconds: float) -> Callable[[], None]:
    """One discriminator + generator step of the codec recipe's GAN loop (``audiotok.train.gan``) on noise."""
    from audiotok.codec.discriminators import RELEASED_LOSS_WEIGHTS as weights
    from audiotok.nn.losses import MelLoss, discriminator_objective, generator_adversarial_terms

    opt_g, opt_d = torch.optim.AdamW(model.parameters(), 2e-4), torch.optim.AdamW(discs.parameters(), 2e-4)
    mel_loss, amp = MelLoss(model.sample_rate).to(ctx.device), amp_context(ctx)
    wav = 0.1 * torch.randn(batch, int(seconds * model.sample_rate), device=ctx.device)
    lens = torch.full((batch,), wav.shape[1], device=ctx.device)
    cond = torch.zeros(1, dtype=torch.long, device=ctx.device)

    def step() -> None:
        with amp:
            out = model(wav, lens, cond)
        fake = out["audio"].float()[:, : wav.shape[1]]
        loss_d = discriminator_objective(discs, wav, fake, cond, amp)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        terms = {"mel": mel_loss(fake, wav, lens), "commit": out["commit"]}
        terms.update(generator_adversarial_terms(discs, wav, fake, cond, amp))
        loss_g = sum(weights.get(k, 0.0) * v.float() for k, v in terms.items())
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    return step


def bench_train_codec(ctx: Context) -> None:
    """Generator + discriminator step of the codec at full size (wavtokenizer-75 with MPD, MRD and DAC
    discriminators, 3 s segments; the largest of the batch sizes that fits)."""
    from audiotok.codec import Codec, codec_config
    from audiotok.codec.discriminators import DiscriminatorConfig, Discriminators

    s, tiny = ctx.sizes, ctx.sizes.train_tiny
    torch.manual_seed(0)
    model = Codec(codec_config("tiny" if tiny else "wavtokenizer-75")).to(ctx.device).train()
    cb = model.quantizer.vq._codebook
    cb.embed.data.normal_()
    cb.initted.data.fill_(True)
    disc_cfg = DiscriminatorConfig(
        periods=(2, 3), mpd_channels=(4, 8, 8), resolutions=((512, 128, 512),), mrd_channels=4, dac_fft_sizes=(512,)
    )
    discs = Discriminators(disc_cfg if tiny else DiscriminatorConfig(dac_fft_sizes=(2048, 1024, 512)))
    discs = discs.to(ctx.device).train()
    for batch in s.codec_train_batches:
        ctx.reset_peak()
        try:
            t = time_steps(ctx, codec_gan_step(ctx, model, discs, batch, s.codec_train_seconds))
        except torch.cuda.OutOfMemoryError:
            ctx.rec.note(f"batch {batch} x {s.codec_train_seconds:g} s: out of memory")
            continue
        label = f"{batch} x {s.codec_train_seconds:g} s"
        step_row(
            ctx, "codec " + ("tiny" if tiny else "wavtokenizer-75 + discs"), n_params(model, discs), label, batch, t
        )
        return


def bench_train_semantic(ctx: Context) -> None:
    """Step of the supervised semantic tokenizer at Whisper-base size (512-d, 6+6 layers, FSQ after block 3,
    10 s inputs, ASR loss through the quantizer)."""
    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR

    s, tiny = ctx.sizes, ctx.sizes.train_tiny
    torch.manual_seed(0)
    cfg = (
        SupervisedConfig(n_mels=80, seconds=2.0, n_state=32, n_head=2, n_layer=2, n_text_ctx=64, quantize_after=1)
        if tiny
        else SupervisedConfig(n_mels=80, seconds=10.0, n_state=512, n_head=8, n_layer=6, quantize_after=3)
    )
    model = SupervisedTokenizerASR(cfg).to(ctx.device).train()
    opt, amp = torch.optim.AdamW(model.parameters(), 1e-4), amp_context(ctx)
    b = s.semantic_train_batch
    mel = torch.randn(b, cfg.n_mels, 2 * cfg.dims().n_audio_ctx, device=ctx.device)
    texts = ["the quick brown fox jumps over the lazy dog and runs far away into the woods"] * b

    def step() -> None:
        with amp:
            out = model(mel, texts)
            loss = out["asr"] + out["commit"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ctx.reset_peak()
    label = "semantic " + ("tiny" if tiny else "whisper-base size")
    step_row(ctx, label, n_params(model), f"{b} x {cfg.seconds:g} s", b, time_steps(ctx, step))


def bench_train_lm(ctx: Context) -> None:
    """Step of the TTS LM at the Qwen2.5-0.5B shape (about 8,000 tokens a batch, as ``lm-small.yaml``)."""
    from tts_lm import bench_tokenizer

    from tts.lm import TTSLM, Example, lm_config, lm_loss

    s, tiny = ctx.sizes, ctx.sizes.train_tiny
    torch.manual_seed(0)
    cfg = lm_config("tiny" if tiny else "qwen2.5-0.5b")
    lm = TTSLM(cfg, bench_tokenizer(n_speech=cfg.n_speech)).to(ctx.device).train()
    objective, opt, amp = lm.objective(), torch.optim.AdamW(lm.parameters(), 5e-4), amp_context(ctx)
    g = torch.Generator().manual_seed(0)
    text = lm.tokenizer.encode_text("the quick brown fox jumps over the lazy dog")
    examples = [
        Example(text=text, target_codes=torch.randint(cfg.n_speech, (s.lm_train_speech,), generator=g).tolist())
        for _ in range(s.lm_train_batch)
    ]
    batch = {k: v.to(ctx.device) for k, v in lm.collate(examples).items()}

    def step() -> None:
        with amp:
            loss, _ = lm_loss(objective, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ctx.reset_peak()
    n_tokens = int(batch["attention_mask"].sum())
    shape = f"{len(examples)} x {batch['input_ids'].shape[1]} tokens"
    step_row(ctx, "tts lm " + cfg_name(tiny, "qwen2.5-0.5b"), n_params(lm), shape, n_tokens, time_steps(ctx, step))
    ctx.rec.note("items_per_s of the LM and flow rows count tokens")


def bench_train_flow(ctx: Context) -> None:
    """Step of the flow at CosyVoice 2's estimator size (768-d x 10, 2,000 tokens a batch, as ``flow-small.yaml``)."""
    from tts_flow import cosyvoice2_flow_config

    from tts.flow import FlowDecoder, flow_config

    s, tiny = ctx.sizes, ctx.sizes.train_tiny
    torch.manual_seed(0)
    flow = FlowDecoder(flow_config("tiny") if tiny else cosyvoice2_flow_config()).to(ctx.device).train()
    c, opt, amp = flow.config, torch.optim.AdamW(flow.parameters(), 3e-4), amp_context(ctx)
    b, L = s.flow_train_batch, s.flow_train_tokens
    tokens = torch.randint(c.n_speech, (b, L), device=ctx.device)
    token_lens = torch.full((b,), L, device=ctx.device)
    mel = torch.randn(b, L * c.ratio, c.n_mels, device=ctx.device)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        with amp:
            loss, _ = flow.loss(mel, token_lens * c.ratio, tokens, token_lens, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ctx.reset_peak()
    step_row(
        ctx, "tts flow " + cfg_name(tiny, "768x10"), n_params(flow), f"{b} x {L} tokens", b * L, time_steps(ctx, step)
    )


def cfg_name(tiny: bool, full: str) -> str:
    return "tiny" if tiny else full


# ---------------------------------------------------------------------------------------------------------- table
# name -> benchmark, in the order bench/device.py's SPECS runs them (titles, peers and caps are there)
FUNCTIONS: dict[str, Callable[[Context], None]] = {
    "env": bench_env,
    "codec": bench_codec,
    "codec-encodec": bench_encodec,
    "semantic": bench_semantic,
    "features": bench_features,
    "tts-bundled": bench_tts_bundled,
    "tts-full": bench_tts_full,
    "train-codec": bench_train_codec,
    "train-semantic": bench_train_semantic,
    "train-lm": bench_train_lm,
    "train-flow": bench_train_flow,
}


def run_benchmark(name: str, device: str, quick: bool, part: Path | None) -> Recorder:
    """Run one benchmark here, in this process; its outcome (ok / skipped / failed) is in the returned recorder
    (and in ``part``, rewritten as it goes)."""
    import traceback

    rec = Recorder(name, part)
    ctx = Context(device=resolve_device(device), sizes=QUICK if quick else FULL, rec=rec, quick=quick)
    rec.flush()
    threads = torch.get_num_threads()
    if quick:  # tiny ops on a shared CPU: a second spinning thread makes timings erratic (10-100x) and slow
        torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        FUNCTIONS[name](ctx)
    except Skip as e:
        rec.finish("skipped", str(e))
    except Exception as e:  # noqa: BLE001 (recorded; the run goes on with the next benchmark)
        traceback.print_exc()
        rec.finish("failed", f"{type(e).__name__}: {e}"[:500])
    else:
        rec.finish("ok")
    finally:
        torch.set_num_threads(threads)
    return rec


def resolve_device(device: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
