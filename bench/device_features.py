"""The ``features`` benchmark: Whisper log-mel and CosyVoice 2 mel on the device against librosa per file on the
CPU, and against the memory-bandwidth bound.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from device_core import Context, Skip, require
from device_measure import best_time, clip_lengths, copy_bandwidth, noise_clips

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
