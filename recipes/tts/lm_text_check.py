"""Does a trained TTS LM read its text? Teacher-forced held-out loss with each utterance's own text vs. with another
utterance's text (the next one of the list). Equal losses: the LM ignores the text (an unconditional speech LM).

    python recipes/tts/lm_text_check.py audiotok/assets/tts/lm runs/tts-lm/tokens-valid.jsonl \\
        --manifest data/synth-adult/valid.jsonl -n 128

``tokens``: token-cache rows (``<out_dir>/tokens-valid.jsonl`` of the LM recipe); ``--manifest`` takes the first
``n`` of them in the manifest's order (a cache imported before 2026-12-01 is in ``audiotok encode``'s order).
"""

from __future__ import annotations

import argparse
import sys

from audiotok.data.manifest import read_manifest
from tts.data import read_tokens
from tts.lm import TTSLM
from tts.lm_metrics import teacher_forced_metrics


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lm", help="the LM's HF directory")
    p.add_argument("tokens", help="token-cache JSONL (id, text, codes)")
    p.add_argument("--manifest", default=None, help="order the rows as this manifest does")
    p.add_argument("-n", type=int, default=128, help="how many utterances")
    args = p.parse_args(argv)
    rows = read_tokens(args.tokens)
    if args.manifest:
        by_id = {r["id"]: r for r in rows}
        rows = [by_id[u.id] for u in read_manifest(args.manifest) if u.id in by_id]
    rows = rows[: args.n]
    if len(rows) < 2:
        raise SystemExit("need at least two utterances")
    lm = TTSLM.from_pretrained(args.lm).eval()
    net = lm.objective()
    texts = [r["text"] for r in rows]
    swapped = [dict(r, text=texts[(i + 1) % len(rows)]) for i, r in enumerate(rows)]
    result = {
        "utterances": len(rows),
        "own_text": teacher_forced_metrics(lm, net, rows, len(rows), "cpu"),
        "other_text": teacher_forced_metrics(lm, net, swapped, len(rows), "cpu"),
    }
    for k in ("own_text", "other_text"):
        print(f"{k}: loss {result[k]['loss']:.3f} nats/token, accuracy {result[k]['acc']:.3f}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
