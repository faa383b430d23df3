"""TTS LM generation throughput: speech tokens/s at batch 1 and 16, for the paper-scale shape (Qwen2.5-0.5B:
896-d, 24 layers, random weights) and the small default's shape, KV-cached, RAS sampling, fixed output length.

    python bench/tts_lm.py [--configs small qwen2.5-0.5b] [--batches 1 16] [--tokens 100] [--device cuda]
"""

from __future__ import annotations

import argparse

import torch
from common import timed

from tts.lm import TTSLM, lm_config
from tts.sampling import SamplingConfig
from tts.tokenizer import TTSTokenizer

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs far away into the woods."


def bench_tokenizer(n_speech: int = 6561, text_vocab_size: int = 300) -> TTSTokenizer:
    """A text BPE trained on :data:`TEXT` plus ``n_speech`` speech tokens (the vocabulary the benchmarks use)."""
    return TTSTokenizer.build([TEXT] * 50, n_speech=n_speech, text_vocab_size=text_vocab_size)


def fixed_length_sampling(n_tokens: int, n_text: int) -> SamplingConfig:
    """RAS sampling that emits exactly ``n_tokens`` speech tokens for ``n_text`` text tokens: no end token before
    the minimum, the maximum right after it, no loop stop."""
    ratio = n_tokens / n_text
    return SamplingConfig(min_ratio=ratio, max_ratio=ratio, max_run=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["small", "qwen2.5-0.5b"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    ap.add_argument("--tokens", type=int, default=100, help="speech tokens generated per item")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    tok = bench_tokenizer()
    text = tok.encode_text(TEXT)
    sampling = fixed_length_sampling(args.tokens, len(text))
    print(f"device {args.device}; {args.tokens} speech tokens per item; prompt {len(text)} text tokens")
    print("| config | params | batch | speech tokens/s | s per batch |")
    print("|---|---|---|---|---|")
    for name in args.configs:
        torch.manual_seed(0)
        lm = TTSLM(lm_config(name), tok).to(args.device).eval()
        n_params = sum(p.numel() for p in lm.parameters()) / 1e6
        for b in args.batches:
            seconds = timed(lambda b=b, lm=lm: lm.generate([text] * b, sampling=sampling), args.repeats)
            print(f"| {name} | {n_params:.0f} M | {b} | {b * args.tokens / seconds:.0f} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
