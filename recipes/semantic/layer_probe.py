"""Where and how to put the quantizer: the ASR loss of a Whisper read through the tokens at the start of
fine-tuning (nothing trained yet).

Per insertion block k (FSQ from the features' principal directions, or VQ by cosine k-means):

    python recipes/semantic/layer_probe.py --whisper base --manifest data/corpus-v2/valid.jsonl \
        --utterances 48 [--quantizer fsq] -o docs/results/layer-probe.json

At one block, the path from it to the decoder taken apart (unchanged; 2x pooled; + CosyVoice's extra positional
encoding; each quantizer with and without Whisper's own positions taken out before it and put back after), the
quantizers fitted on ``--fit-manifest`` audio (training utterances, not the evaluated ones):

    python recipes/semantic/layer_probe.py --whisper base --manifest data/corpus-v2/valid.jsonl --block 3 \
        --fit-manifest data/corpus-v2/train.jsonl --fit-utterances 400

Prints teacher-forced ASR losses in nats per token. The blocks above are untrained for their new input, so this
ranks how much each path keeps of what they read, not the end result.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import torch

from audiotok.audio import load, resample
from audiotok.data.dataset import pad_sequences
from audiotok.data.manifest import read_manifest
from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR
from audiotok.whisper import SAMPLE_RATE, WhisperFrontend, asr_loss, load_whisper
from audiotok.whisper.model import with_audio_context


def mel_batches(front: WhisperFrontend, manifest: str, n: int, seconds: float, size: int = 8) -> list:
    """[(mel (B, n_mels, frames), audio_lens (B,), texts)] for the first n utterances of a manifest up to seconds."""
    utts = [u for u in read_manifest(manifest) if u.text and u.duration <= seconds][:n]
    batches = []
    for i in range(0, len(utts), size):
        chunk = utts[i : i + size]
        wav, lens = pad_sequences([resample(*load(u.audio, mono=True), SAMPLE_RATE) for u in chunk])
        batches.append((front(wav, lens), lens, [u.text for u in chunk]))
    return batches


def probe_config(whisper, k: int, quantizer: str, **kw) -> SupervisedConfig:
    return SupervisedConfig(quantize_after=k, quantizer=quantizer, **kw).with_whisper_dims(whisper)


@torch.no_grad()
def fit_quantizer(model: SupervisedTokenizerASR, batches: list) -> None:
    """Start the quantizer from the (unpadded) quantizer inputs of these batches."""
    hop = 320 * model.config.pool
    feats = []
    for mel, lens, _ in batches:
        h = model.tokenize_hidden(mel).float()
        frames = torch.div(lens + hop - 1, hop, rounding_mode="floor").clamp(max=h.shape[1])
        feats += [h[b, : int(frames[b])] for b in range(len(h))]
    x = torch.cat(feats)
    model.quantizer.init_from(x)
    model.eval()


@torch.no_grad()
def loss_through(model: SupervisedTokenizerASR, batches: list, quantize: bool = True) -> float:
    """Mean ASR loss with the decoder reading the path from block k (through the quantizer, or only pooled)."""
    total = 0.0
    for mel, _, texts in batches:
        h = model.tokenize_hidden(mel)
        q = model.quantizer(h)[0] if quantize else h
        total += float(asr_loss(model.whisper, mel, texts, model.decode_tokens_to_features(q)))
    return total / len(batches)


def by_block(whisper, batches: list, quantizer: str) -> dict:
    results = {}
    for k in range(1, whisper.dims.n_audio_layer):
        model = SupervisedTokenizerASR(probe_config(whisper, k, quantizer), whisper)
        fit_quantizer(model, batches)
        results[k] = loss_through(model, batches)
        print(f"quantizer after block {k}: ASR loss through the tokens {results[k]:.3f}", flush=True)
    return results


def at_block(whisper, batches: list, fit: list, k: int, only: list[str] | None = None) -> dict:
    """The paths from block k (all, or those named in ``only``) -> their ASR losses."""
    results = {}
    base = probe_config(whisper, k, "fsq", extra_position_scale=0.0)
    for name, cfg in (("pooled", base), ("pooled + extra positions", replace(base, extra_position_scale=1.0))):
        if only and name not in only:
            continue
        results[name] = loss_through(SupervisedTokenizerASR(cfg, whisper), batches, quantize=False)
        print(f"{name}: {results[name]:.3f}", flush=True)
    for quantizer in ("fsq", "vq"):
        for positions in (False, True):
            name = f"{quantizer}" + (" (positions out and back in)" if positions else "")
            if only and name not in only:
                continue
            model = SupervisedTokenizerASR(replace(base, quantizer=quantizer, whisper_positions=positions), whisper)
            fit_quantizer(model, fit)
            results[name] = loss_through(model, batches)
            print(f"{name}: {results[name]:.3f}", flush=True)
    return results


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--whisper", default="base")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--manifest", required=True)
    p.add_argument("--utterances", type=int, default=48)
    p.add_argument("--quantizer", default="fsq", choices=("fsq", "vq"))
    p.add_argument("--block", type=int, default=None, help="take the path apart at this block")
    p.add_argument("--fit-manifest", default=None, help="--block: fit the quantizers on this audio")
    p.add_argument("--fit-utterances", type=int, default=400)
    p.add_argument("--only", nargs="+", default=None, help="--block: only these paths (names as printed)")
    p.add_argument("-o", "--output", default=None)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    whisper = with_audio_context(load_whisper(args.whisper), args.seconds).eval()
    front = WhisperFrontend(whisper.dims)
    batches = mel_batches(front, args.manifest, args.utterances, args.seconds)
    results = {"whisper": args.whisper, "utterances": sum(len(t) for *_, t in batches)}
    with torch.no_grad():
        results["unquantized"] = sum(float(asr_loss(whisper, m, t)) for m, _, t in batches) / len(batches)
    print(f"unquantized ASR loss {results['unquantized']:.3f}")
    if args.block is None:
        results["by_block"] = by_block(whisper, batches, args.quantizer)
    else:
        if not args.fit_manifest:
            p.error("--block needs --fit-manifest (the quantizers are fitted on other audio than they are scored on)")
        fit = mel_batches(front, args.fit_manifest, args.fit_utterances, args.seconds)
        results["block"] = args.block
        results["fit_utterances"] = sum(len(t) for *_, t in fit)
        results["at_block"] = at_block(whisper, batches, fit, args.block, args.only)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
