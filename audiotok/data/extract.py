"""Run a feature transform over a manifest in duration-bounded batches on a device (``audiotok features``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from audiotok.data.dataset import AudioDataset, audio_loader
from audiotok.data.features import build_features
from audiotok.utils import atomic_path


def extract_features(
    manifest: str | os.PathLike,
    feature: str = "whisper-80",
    batch_seconds: float = 60.0,
    device: str = "cpu",
    n_workers: int = 0,
    out_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Compute ``feature`` for every utterance of ``manifest``; optionally write ``<out_dir>/<id>.safetensors``
    (tensor ``feats`` of shape ``(n_mels, N)``). Returns a summary with counts, hours, throughput and feature
    statistics over valid frames."""
    transform = build_features(feature).to(device)
    dataset = AudioDataset(manifest, sample_rate=transform.config.sample_rate, on_error="skip")
    if limit is not None:
        dataset.utterances = dataset.utterances[:limit]
    loader = audio_loader(dataset, max_seconds=batch_seconds, shuffle=False, n_workers=n_workers)
    total_seconds = sum(dataset.durations)
    n_items = n_frames = 0
    s1 = s2 = 0.0
    compute_seconds = 0.0
    t0 = time.perf_counter()
    bar = tqdm(
        total=total_seconds,
        unit="s",
        desc=f"features {feature}",
        disable=not progress,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}, {postfix}]",
    )
    for batch in loader:
        if not batch["ids"]:
            continue
        t = time.perf_counter()
        wav = batch["audio"].to(device, non_blocking=True)
        feats, feats_lens = transform(wav, batch["audio_lens"].to(device))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        compute_seconds += time.perf_counter() - t
        mask = torch.arange(feats.shape[-1], device=feats.device)[None, :] < feats_lens[:, None]
        valid = feats.transpose(1, 2)[mask]
        s1 += valid.double().sum().item()
        s2 += valid.double().pow(2).sum().item()
        n_frames += int(feats_lens.sum())
        n_items += len(batch["ids"])
        if out_dir is not None:
            for i, utt_id in enumerate(batch["ids"]):
                path = Path(out_dir) / f"{utt_id}.safetensors"
                with atomic_path(path) as tmp:
                    save_file(
                        {"feats": feats[i, :, : feats_lens[i]].cpu().contiguous()},
                        str(tmp),
                        metadata={"feature": feature, "id": utt_id},
                    )
        seconds = float(batch["audio_lens"].sum()) / transform.config.sample_rate
        bar.set_postfix_str(f"{n_items} utt, {seconds / max(compute_seconds, 1e-9):.0f}x realtime compute")
        bar.update(seconds)
    bar.close()
    wall = time.perf_counter() - t0
    n_values = max(1, n_frames * feats.shape[1]) if n_items else 1
    mean = s1 / n_values
    return {
        "feature": feature,
        "device": device,
        "utterances": n_items,
        "skipped": len(dataset) - n_items,
        "hours": total_seconds / 3600,
        "frames": n_frames,
        "frame_rate": transform.frame_rate,
        "n_bins": int(feats.shape[1]) if n_items else 0,
        "mean": mean,
        "std": max(0.0, s2 / n_values - mean**2) ** 0.5,
        "wall_seconds": wall,
        "compute_seconds": compute_seconds,
        "audio_hours_per_second": total_seconds / 3600 / max(wall, 1e-9),
    }
