"""Training-step time of a character Whisper: the full 51,865-token output projection vs. the exact restricted
loss (77 character/task tokens plus one constant column; ``audiotok.whisper.restricted_cross_entropy``).

One forward + backward of encoder, decoder, CTC head and loss on random inputs, sized like the synth config's batch
(10 inputs of 6 s, 100 characters each; 256-d, 4+4 layers).

    python bench/whisper_step.py [--batch 10] [--chars 100] [--device cpu] [--repeats 3] [--bf16]

``--bf16`` times both under bf16 autocast (on a CPU only where it computes bf16 natively; see
``audiotok.train.distributed.bf16_autocast``).
"""

from __future__ import annotations

import argparse

import torch
from common import timed

from audiotok.train.distributed import bf16_autocast
from audiotok.whisper import char_training_vocab, new_whisper, restricted_cross_entropy, small_dims, tokenizer_for
from audiotok.whisper.loss import WhisperWithCTC


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--chars", type=int, default=100)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = new_whisper(small_dims(80, 6.0, 256, 4, 4, n_text_ctx=128))
    net = WhisperWithCTC(model).to(device)
    vocab = char_training_vocab(tokenizer_for(model)).to(device)
    mel = torch.randn(args.batch, 80, 2 * model.dims.n_audio_ctx, device=device)
    tokens = vocab[torch.randint(0, len(vocab), (args.batch, args.chars), device=device)]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step(restricted: bool):
        def run():
            with bf16_autocast(device, cuda=args.bf16, cpu=args.bf16):
                logits, log_probs = net(mel, tokens, vocab=vocab) if restricted else net(mel, tokens)
                if restricted:
                    ce = restricted_cross_entropy(logits, tokens, vocab, model.dims.n_vocab, 0.1)
                else:
                    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), tokens, label_smoothing=0.1)
            (ce + log_probs.mean()).backward()

        return run

    full = timed(step(False), args.repeats, sync)
    part = timed(step(True), args.repeats, sync)
    mode = f"device {device}" + (" bf16" if args.bf16 else "")
    print(f"{mode}: full projection {full:.3f} s/step, restricted {part:.3f} s/step ({full / part:.2f}x)")


if __name__ == "__main__":
    main()
