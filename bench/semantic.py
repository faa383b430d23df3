"""Semantic tokenizer speed: ours vs. the `s3tokenizer` package's model with the same (random) weights.

Reports tokens/s and hours of audio per second for batch 1 and 32 of 10 s clips (front end included: ours
batched on the device, the reference per utterance as its README shows), and checks both give the same tokens.

    python bench/semantic.py [--name speech_tokenizer_v2_25hz] [--device cuda] [--batches 1 32]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from common import device_sync, timed

from audiotok.semantic import OFFICIAL, S3Config, SemanticTokenizer


def reference_model(name: str, device: str, config: S3Config | None = None, use_sdpa: bool = False):
    """The ``s3tokenizer`` package's model of the official architecture ``name`` (or of ``config``, a smaller one
    of the same version), random weights, on ``device``, in eval mode."""
    import s3tokenizer

    cfg = config or OFFICIAL[name]
    module = s3tokenizer.model_v2 if cfg.version == "v2" else s3tokenizer.model
    ref_cfg = module.ModelConfig(
        n_mels=cfg.n_mels,
        n_audio_ctx=cfg.n_ctx,
        n_audio_state=cfg.dim,
        n_audio_head=cfg.n_heads,
        n_audio_layer=cfg.n_layers,
        n_codebook_size=cfg.codebook_size,
        use_sdpa=use_sdpa,
    )
    if cfg.version == "v2":
        ref = module.S3TokenizerV2(name, ref_cfg)
    else:
        ref = module.S3Tokenizer(name, ref_cfg)
        ref.quantizer._codebook.embed.normal_()
    return ref.to(device).eval()


def build_pair(name: str, device: str, config: S3Config | None = None, use_sdpa: bool = False):
    """(reference model, ours) of ``name`` (or ``config``), the same random weights in both, on ``device``."""
    ref = reference_model(name, device, config, use_sdpa)
    ours = SemanticTokenizer(config or OFFICIAL[name])
    ours.load_official_state_dict(ref.state_dict())
    return ref, ours.to(device).eval()


def reference_runner(ref, wavs: list[torch.Tensor], device: str, n_mels: int = 128) -> Callable:
    """The package's batch path: a log-mel per utterance, ``s3tokenizer.padding``, one ``quantize`` call."""
    import s3tokenizer

    def run():
        mels = [s3tokenizer.log_mel_spectrogram(w.to(device), n_mels=n_mels) for w in wavs]
        mel, lens = s3tokenizer.padding(mels)
        with torch.inference_mode():
            return ref.quantize(mel.to(device), lens.to(device))

    return run


def same_tokens(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> tuple[bool, float]:
    """(identical?, fraction of valid token positions that differ) of two ``(codes, code_lens)`` results."""
    (ca, la), (cb, lb) = (a[0].cpu().long(), a[1].cpu().long()), (b[0].cpu().long(), b[1].cpu().long())
    if not torch.equal(la, lb):
        return False, 1.0
    L = min(ca.shape[1], cb.shape[1])
    valid = torch.arange(L)[None] < la[:, None]
    differ = int(((ca[:, :L] != cb[:, :L]) & valid).sum())
    return differ == 0, differ / max(int(valid.sum()), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="speech_tokenizer_v2_25hz", choices=sorted(OFFICIAL))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    ref, ours = build_pair(args.name, args.device)
    sync = device_sync(args.device)
    print(
        f"{args.name}, {args.seconds:g} s clips, device {args.device}, {torch.get_num_threads()} threads, "
        f"random weights; front end included"
    )
    print("| batch | implementation | seconds | tokens/s | audio h/s | same tokens |")
    print("|---|---|---|---|---|---|")
    for batch in args.batches:
        wavs = [0.1 * torch.randn(int(args.seconds * 16000)) for _ in range(batch)]
        run_ref = reference_runner(ref, wavs, args.device, ours.config.n_mels)

        def run_ours(wavs=wavs):
            return ours.encode(wavs)

        t_ref, t_ours = timed(run_ref, args.repeats, sync), timed(run_ours, args.repeats, sync)
        out_ours = run_ours()
        same, _ = same_tokens(run_ref(), out_ours)
        n_tokens = int(out_ours[1].sum())
        hours = batch * args.seconds / 3600
        for label, t in (("s3tokenizer 0.3.0", t_ref), ("audiotok", t_ours)):
            print(f"| {batch} | {label} | {t:.3f} | {n_tokens / t:.0f} | {hours / t:.4f} | {same} |")


if __name__ == "__main__":
    main()
