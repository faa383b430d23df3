"""Flow decoder speed: our LLM-architecture backbone (transformers Qwen2 stack) vs. a plain-PyTorch estimator of
equal parameter count (``nn.TransformerEncoder``, pre-LN, GELU MLP, sinusoidal positions), inside the same flow
(same projections, masks, CFG and solver), random weights. Sizes default to CosyVoice 2's flow estimator
(71.3 M parameters): 768-d x 10 layers each.

Reports one network evaluation (conditional + unconditional batch for CFG) and a whole 10-step synthesis of
``--seconds`` of audio (50 mel frames/s).

    python bench/tts_flow.py [--hidden 768 --layers 10] [--seconds 10] [--steps 10] [--device cuda]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from types import SimpleNamespace

import torch
from common import timed
from torch import nn

from tts.flow import FlowConfig, FlowDecoder, flow_config


class PlainBackbone(nn.Module):
    """``nn.TransformerEncoder`` with the call signature of the HF stack the flow uses."""

    def __init__(self, hidden: int, layers: int, heads: int, ff: int):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            hidden, heads, ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.hidden = hidden

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor):
        T = inputs_embeds.shape[1]
        pos = torch.arange(T, device=inputs_embeds.device)[:, None]
        div = torch.exp(-math.log(10000.0) * torch.arange(0, self.hidden, 2, device=pos.device) / self.hidden)
        pe = torch.zeros(T, self.hidden, device=pos.device)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        heads = self.encoder.layers[0].self_attn.num_heads
        mask = ~attention_mask.expand(-1, heads, -1, -1).reshape(-1, T, T)  # True = blocked, per head
        return SimpleNamespace(last_hidden_state=self.encoder(inputs_embeds + pe, mask=mask))


def cosyvoice2_flow_config(hidden: int = 768, layers: int = 10, heads: int = 12) -> FlowConfig:
    """The flow at CosyVoice 2's estimator size (768-d x 10 layers, 71 M parameters in the backbone)."""
    return replace(
        flow_config("small"),
        hidden_size=hidden,
        intermediate_size=8 * hidden // 3,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=heads,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    cfg = cosyvoice2_flow_config(args.hidden, args.layers, args.heads)
    torch.manual_seed(0)
    ours = FlowDecoder(cfg).to(args.device).eval()
    plain = FlowDecoder(cfg).to(args.device).eval()
    plain.backbone = PlainBackbone(args.hidden, args.layers, args.heads, 4 * args.hidden).to(args.device).eval()
    L = int(args.seconds * 25)
    tokens = torch.randint(0, cfg.n_speech, (1, L), device=args.device)
    lens = torch.tensor([L], device=args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    print(f"device {args.device}; {args.seconds:g} s of audio = {2 * L} mel frames; CFG batch 2; {args.steps} steps")
    print("| backbone | backbone params | one evaluation (s) | whole synthesis (s) | RTF |")
    print("|---|---|---|---|---|")
    for name, model in (("ours: transformers Qwen2 stack", ours), ("plain PyTorch nn.TransformerEncoder", plain)):
        n = sum(p.numel() for p in model.backbone.parameters()) / 1e6
        mu = model.token_condition(tokens, lens)
        x = torch.randn(2, 2 * L, cfg.n_mels, device=args.device)
        t = torch.full((2,), 0.5, device=args.device)

        def one(model=model, x=x, t=t, mu=mu):
            with torch.no_grad():
                model.velocity(
                    x, t, torch.cat([mu, mu]), torch.zeros_like(x), None, torch.cat([lens, lens]) * 2, "full"
                )

        def whole(model=model):
            model.synthesize(tokens, lens, n_steps=args.steps)

        t_one = timed(one, args.repeats, sync)
        t_all = timed(whole, args.repeats, sync)
        print(f"| {name} | {n:.1f} M | {t_one:.3f} | {t_all:.2f} | {t_all / args.seconds:.3f} |")


if __name__ == "__main__":
    main()
