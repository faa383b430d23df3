"""Teacher-forced metrics of the TTS LM on held-out token-cache rows (validation during training, comparisons)."""

from __future__ import annotations

import torch

from tts.data import PairDataset
from tts.lm import TTSLM, lm_loss


def teacher_forced_metrics(
    lm: TTSLM, net: torch.nn.Module, records: list[dict], n_valid: int, device, seed: int = 0
) -> dict:
    """Loss (nats per speech token) and speech-token accuracy without prompts, teacher-forced, on the first
    ``n_valid`` of ``records`` (token-cache rows), through ``net`` (the training objective, ``lm.objective()``;
    sharded under FSDP, where its forward is a collective run by every rank)."""
    data = PairDataset(records[:n_valid], lm.tokenizer, prompt_prob=0.0, seed=seed)
    total, acc, n = 0.0, 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), 16):
            batch = lm.collate([data[j] for j in range(i, min(i + 16, len(data)))])
            loss, logs = lm_loss(net, {k: v.to(device) for k, v in batch.items()})
            total, acc, n = total + float(loss), acc + float(logs["acc"]), n + 1
    return {"loss": total / max(n, 1), "acc": acc / max(n, 1)}
