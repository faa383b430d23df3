"""Codec speed: encode/decode real-time factor and peak memory, ours vs. peer codecs, random weights.

Models: our full-size WavTokenizer configs (75 and 40 tokens/s), the bundled default, EnCodec 24 kHz (`encodec`,
1.5 kbps = 2 codebooks) and DAC 24 kHz (`descript-audio-codec`, 32 codebooks). Inputs: 10 s clips, batch 1 and
16. Each (model, batch) runs in its own process so peak memory is its own (CPU: peak RSS growth; CUDA: peak
allocated). RTF = seconds of compute / seconds of audio (lower is faster).

    make bench-codec        # installs encodec / DAC (with --no-deps for DAC's audiotools), then runs this
    python bench/codec.py [--device cuda] [--batches 1 16] [--budget 300]
    python bench/codec.py --models bundled encodec-24k --batches 1 --threads 1 2   # CPU, 1 and 2 threads
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch

MODELS = ("ours-75", "ours-40", "bundled", "encodec-24k", "dac-24k")
SECONDS = 10.0
SAMPLE_RATE = 24000


def ours_codec(config: str, device: str, init_wav: torch.Tensor | None = None, kmeans_iters: int = 10):
    """Our codec at a named config (``audiotok.codec.codec_config``), random weights, on ``device`` in eval mode.
    With ``init_wav`` (B, T) the codebook is a short k-means over its latents (so codes vary and comparing them
    means something); without, the codebook is left as built (all zeros: every frame gets code 0)."""
    from audiotok.codec import Codec, codec_config

    model = Codec(codec_config(config)).to(device).eval()
    if init_wav is not None:
        with torch.inference_mode():
            z, lens = model.latents(
                init_wav.to(device), torch.full((init_wav.shape[0],), init_wav.shape[1], device=device)
            )
        model.quantizer.init_from_latents(z.transpose(1, 2).reshape(-1, z.shape[1]).clone(), kmeans_iters)
    model.quantizer.vq._codebook.initted.fill_(True)
    return model


def build(name: str, device: str):
    """Return (encode_fn, decode_fn) taking/returning tensors on ``device``."""
    if name.startswith("ours") or name == "bundled":
        from audiotok.codec import Codec

        if name == "bundled":
            model = Codec.from_pretrained().to(device).eval()
            model.quantizer.vq._codebook.initted.fill_(True)
        else:
            model = ours_codec("wavtokenizer-75" if name == "ours-75" else "wavtokenizer-40", device)
        return (lambda x: model.encode(x)), (lambda c: model.decode(*c))
    if name == "encodec-24k":
        from encodec import EncodecModel

        model = EncodecModel.encodec_model_24khz(pretrained=False)
        model.set_target_bandwidth(1.5)
        model = model.to(device).eval()
        return (lambda x: model.encode(x[:, None])), (lambda frames: model.decode(frames))
    if name == "dac-24k":
        import dac

        model = (
            dac.DAC(
                encoder_dim=64,
                encoder_rates=[2, 4, 5, 8],
                decoder_dim=1536,
                decoder_rates=[8, 5, 4, 2],
                n_codebooks=32,
                codebook_size=1024,
                codebook_dim=8,
                sample_rate=24000,
            )
            .to(device)
            .eval()
        )

        def encode(x):
            return model.encode(x[:, None])[1]

        def decode(codes):
            return model.decode(model.quantizer.from_codes(codes)[0])

        return encode, decode
    raise ValueError(name)


def run_one(name: str, batch: int, device: str, repeats: int, threads: int | None = None) -> dict:
    """Time encode and decode (best of ``repeats`` after a warm-up) and measure peak memory; ``threads``: CPU
    threads for torch (default: torch's own choice)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    encode, decode = build(name, device)
    x = 0.1 * torch.randn(batch, int(SECONDS * SAMPLE_RATE), device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    timings = {"encode": math.inf, "decode": math.inf}
    with torch.inference_mode():
        for i in range(repeats + 1):
            t = time.perf_counter()
            codes = encode(x)
            sync()
            t_enc = time.perf_counter() - t
            t = time.perf_counter()
            decode(codes)
            sync()
            t_dec = time.perf_counter() - t
            if i > 0 or repeats == 0:  # first pass is the warm-up
                timings = {"encode": min(timings["encode"], t_enc), "decode": min(timings["decode"], t_dec)}
    audio_seconds = batch * SECONDS
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024  # ru_maxrss is in KiB
    return {
        "model": name,
        "batch": batch,
        "device": device,
        "threads": torch.get_num_threads(),
        "encode_rtf": timings["encode"] / audio_seconds,
        "decode_rtf": timings["decode"] / audio_seconds,
        "peak_mb": peak_mb,
        "seconds": timings["encode"] + timings["decode"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--budget", type=float, default=240.0, help="skip a run whose estimated time exceeds this (s)")
    ap.add_argument("--threads", nargs="+", type=int, default=[0], help="CPU threads per run (0: torch's default)")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.device, args.repeats, args.threads[0])))
        return
    rows = []
    for name, threads in ((n, t) for n in args.models for t in args.threads):
        per_batch1 = None
        for batch in sorted(args.batches):
            estimate = per_batch1 * batch * 2 if per_batch1 else 0.0  # batch 16: a warm-up and one timed pass
            if estimate > args.budget:
                rows.append(
                    {"model": name, "batch": batch, "threads": threads, "skipped": f"est. {estimate:.0f} s > budget"}
                )
                continue
            res = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    name,
                    str(batch),
                    "--device",
                    args.device,
                    "--repeats",
                    str(args.repeats if batch == 1 else 1),
                    "--threads",
                    str(threads),
                ],
                capture_output=True,
                text=True,
            )
            if res.returncode != 0:
                err = res.stderr.strip().splitlines()[-1][:80]
                rows.append({"model": name, "batch": batch, "threads": threads, "skipped": err})
                continue
            row = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(row)
            if batch == 1:
                per_batch1 = row["seconds"]
    ref = "ours-75" if any(r["model"] == "ours-75" for r in rows) else rows[0]["model"]
    base = {(r["batch"], r["threads"]): r for r in rows if r["model"] == ref and "skipped" not in r}
    print(
        f"Codec speed, {SECONDS:g} s clips of noise at 24 kHz, device {args.device} (random weights but the bundled "
        f"one); RTF = compute time / audio time; ratio = RTF / RTF of {ref} at that batch and thread count"
    )
    print("| model | batch | CPU threads | encode RTF | decode RTF | total RTF | ratio | peak memory (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['model']} | {r['batch']} | {r['threads'] or 'default'} | skipped: {r['skipped']} | | | | |")
            continue
        total = r["encode_rtf"] + r["decode_rtf"]
        b = base.get((r["batch"], r["threads"]))
        ratio = total / (b["encode_rtf"] + b["decode_rtf"]) if b else float("nan")
        print(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {r['encode_rtf']:.4f} | {r['decode_rtf']:.4f} | {total:.4f} | "
            f"{ratio:.2f}x | {r['peak_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
