"""Where to put the quantizer: the ASR loss of a Whisper read through the tokens, for each insertion block k, at the
start of fine-tuning (FSQ from the features' principal directions; nothing trained yet).

    python recipes/semantic/layer_probe.py --whisper base --seconds 10 --manifest data/corpus-v2/valid.jsonl \
        --utterances 48 [--quantizer fsq] -o docs/results/layer-probe.json

Prints, per k, the teacher-forced ASR loss (nats per token) through the quantizer and without it; the blocks above
the quantizer are untrained for their new input, so this ranks how much each position's features survive the
8-dimension rounding, not the end result.
"""

from __future__ import annotations

import argparse
import json

import torch

from audiotok.audio import load, resample
from audiotok.data.dataset import pad_sequences
from audiotok.data.manifest import read_manifest
from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR
from audiotok.whisper import SAMPLE_RATE, WhisperFrontend, asr_loss, load_whisper
from audiotok.whisper.model import with_audio_context


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--whisper", default="base")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--manifest", required=True)
    p.add_argument("--utterances", type=int, default=48)
    p.add_argument("--quantizer", default="fsq", choices=("fsq", "vq"))
    p.add_argument("-o", "--output", default=None)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    whisper = with_audio_context(load_whisper(args.whisper), args.seconds).eval()
    front = WhisperFrontend(whisper.dims)
    utts = [u for u in read_manifest(args.manifest) if u.text and u.duration <= args.seconds][: args.utterances]
    batches = []
    for i in range(0, len(utts), 8):
        chunk = utts[i : i + 8]
        wavs = [resample(*load(u.audio, mono=True), SAMPLE_RATE) for u in chunk]
        wav, lens = pad_sequences(wavs)
        batches.append((front(wav, lens), [u.text for u in chunk]))
    d = whisper.dims
    results = {"whisper": args.whisper, "utterances": len(utts), "by_block": {}}
    with torch.no_grad():
        plain = sum(float(asr_loss(whisper, mel, texts)) for mel, texts in batches) / len(batches)
    results["unquantized"] = plain
    print(f"unquantized ASR loss {plain:.3f}")
    for k in range(1, d.n_audio_layer):
        cfg = SupervisedConfig(
            n_mels=d.n_mels,
            seconds=args.seconds,
            n_state=d.n_audio_state,
            n_head=d.n_audio_head,
            n_layer=d.n_audio_layer,
            n_text_ctx=d.n_text_ctx,
            n_text_layer=d.n_text_layer,
            quantize_after=k,
            quantizer=args.quantizer,
        )
        model = SupervisedTokenizerASR(cfg, whisper)
        with torch.no_grad():
            h = torch.cat([model.tokenize_hidden(mel) for mel, _ in batches], 1)
            model.quantizer.init_from(h if args.quantizer == "fsq" else h.flatten(0, 1))
            model.eval()
            loss = sum(float(model(mel, texts)["asr"]) for mel, texts in batches) / len(batches)
        results["by_block"][k] = loss
        print(f"quantizer after block {k}: ASR loss through the tokens {loss:.3f}", flush=True)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
