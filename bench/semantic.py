"""Semantic tokenizer speed: ours vs. the `s3tokenizer` package's model with the same (random) weights.

Reports tokens/s and hours of audio per second for batch 1 and 32 of 10 s clips (front end included: ours
batched on the device, the reference per utterance as its README shows), and checks both give the same tokens.

    python bench/semantic.py [--name speech_tokenizer_v2_25hz] [--device cuda] [--batches 1 32]
"""

from __future__ import annotations

import argparse

import torch
from common import timed

from audiotok.semantic import OFFICIAL, SemanticTokenizer


def main() -> None:
    import s3tokenizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="speech_tokenizer_v2_25hz", choices=sorted(OFFICIAL))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    if "v2" in args.name:
        ref = s3tokenizer.model_v2.S3TokenizerV2(args.name)
    else:
        ref = s3tokenizer.model.S3Tokenizer(args.name)
        ref.quantizer._codebook.embed.normal_()
    ref = ref.to(args.device).eval()
    ours = SemanticTokenizer(OFFICIAL[args.name])
    ours.load_official_state_dict(ref.state_dict())
    ours = ours.to(args.device).eval()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    print(
        f"{args.name}, {args.seconds:g} s clips, device {args.device}, {torch.get_num_threads()} threads, "
        f"random weights; front end included"
    )
    print("| batch | implementation | seconds | tokens/s | audio h/s | same tokens |")
    print("|---|---|---|---|---|---|")
    for batch in args.batches:
        wavs = [0.1 * torch.randn(int(args.seconds * 16000)) for _ in range(batch)]

        def run_ref(wavs=wavs):
            mels = [s3tokenizer.log_mel_spectrogram(w.to(args.device)) for w in wavs]
            mel, lens = s3tokenizer.padding(mels)
            with torch.inference_mode():
                return ref.quantize(mel.to(args.device), lens.to(args.device))

        def run_ours(wavs=wavs):
            return ours.encode(wavs)

        t_ref, t_ours = timed(run_ref, args.repeats, sync), timed(run_ours, args.repeats, sync)
        (c_ref, l_ref), (c_ours, l_ours) = run_ref(), run_ours()
        same = bool(torch.equal(c_ref.cpu().long(), c_ours.cpu()) and torch.equal(l_ref.cpu().long(), l_ours.cpu()))
        n_tokens = int(l_ours.sum())
        hours = batch * args.seconds / 3600
        for label, t in (("s3tokenizer 0.3.0", t_ref), ("audiotok", t_ours)):
            print(f"| {batch} | {label} | {t:.3f} | {n_tokens / t:.0f} | {hours / t:.4f} | {same} |")


if __name__ == "__main__":
    main()
