"""Put the three trained TTS parts into one model folder (``TTS.from_pretrained``; ``audiotok synthesize --model``).

    python recipes/tts/assemble.py --lm runs/tts-lm/lm --flow runs/tts-flow/flow.safetensors \\
        --vocoder runs/vocoder/vocoder.safetensors -o runs/tts [--dtype fp16] [--semantic semantic]

``-o audiotok/assets/tts --dtype fp16`` installs the bundled default ``tts`` (what ``audiotok synthesize`` and the
demo use without ``--model``). The parts must agree: the LM's and the flow's speech vocabularies are the semantic
tokenizer's codebook, and the vocoder reads the flow's mel.
"""

from __future__ import annotations

import argparse
import sys

import torch

from tts.flow import FlowDecoder
from tts.lm import TTSLM
from tts.pipeline import TTS
from tts.vocoder import Vocoder, vocoder_mel

DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lm", required=True, help="the LM's HF directory (train_lm.py writes <out_dir>/lm)")
    p.add_argument("--flow", required=True, help="flow .safetensors")
    p.add_argument("--vocoder", required=True, help="vocoder .safetensors")
    p.add_argument("--semantic", default="semantic", help="the semantic tokenizer the LM and flow were trained on")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    args = p.parse_args(argv)
    lm, flow = TTSLM.from_pretrained(args.lm), FlowDecoder.from_pretrained(args.flow)
    vocoder = Vocoder.from_pretrained(args.vocoder)
    if lm.config.n_speech != flow.config.n_speech:
        raise SystemExit(f"the LM speaks {lm.config.n_speech} speech tokens, the flow reads {flow.config.n_speech}")
    mel = vocoder_mel(vocoder.config)  # the mel the flow was trained to predict (train_flow.py)
    if flow.config.n_mels != mel.n_mels:
        raise SystemExit(f"the flow makes {flow.config.n_mels} mel bins, the vocoder reads {mel.n_mels}")
    tts = TTS(lm, flow, vocoder, semantic=None, mel=mel)
    folder = tts.save_pretrained(args.output, args.semantic, DTYPES[args.dtype])
    print(f"TTS model -> {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
