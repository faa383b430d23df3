"""Which voices speak English intelligibly: each candidate voice says the same held-out sentences, Whisper judges.

    python recipes/corpus/voice_check.py --sentences 12 --judge tiny.en [--voices kokoro-jf_alpha,piper-joe]

Sentences come from the corpus text's *test* split (never trained on), the same for every voice; the neural
voices speak at rate 1.0. Prints WER / CER per voice (Whisper's English normaliser) and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from audiotok.data.synth.corpus import synthesize
from audiotok.data.synth.text_sources import load_sentences, text_split
from audiotok.data.synth.voices import list_voices
from audiotok.utils import stable_hash
from audiotok.whisper import error_rates, load_whisper, transcribe_audio


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sentences", type=int, default=12)
    p.add_argument("--judge", default="tiny.en", help="a Whisper name or checkpoint")
    p.add_argument("--voices", default=None, help="comma-separated voice names (default: every neural voice)")
    p.add_argument("-o", "--output", default=None, help="JSON results")
    args = p.parse_args(argv)
    voices = list_voices("adult", n_espeak=0, neural=True)
    wanted = args.voices.split(",") if args.voices else None
    voices = [v for v in voices if (v.name in wanted if wanted else v.neural and "+" not in v.voice)]
    pool = [s for s in load_sentences() if text_split(s) == "test"]
    rng = np.random.default_rng(stable_hash("voice-check") % 2**63)
    texts = [pool[i] for i in rng.choice(len(pool), args.sentences, replace=False)]
    judge = load_whisper(args.judge)
    results = {}
    for v in voices:
        wavs = [synthesize(v, t, 16000)[0] for t in texts]
        hyps = transcribe_audio(judge, wavs, sample_rate=16000)
        results[v.name] = error_rates(texts, hyps)
        print(f"{v.name:<40} WER {results[v.name]['wer']:.3f}  CER {results[v.name]['cer']:.3f}", flush=True)
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"judge": args.judge, "sentences": texts, "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
