"""The TTS LM's training objective: cross-entropy on the labelled (speech) positions of an HF causal LM."""

from __future__ import annotations

import torch
from torch import nn

from tts.lm_layout import IGNORE


class SpeechLoss(nn.Module):
    """The training objective on an HF causal LM: cross-entropy over the labelled (speech) positions only, with the
    softmax over the rows generation may emit (the specials and the speech tokens, ``first_row`` on) — generation
    masks every text row, so the text rows' logits are never computed (on the small LM about 40% of the output
    layer, and the output layer only at the labelled positions). Holds no parameters of its own: wrap *this* in
    DDP/FSDP so that the wrapper's forward sees the whole computation. Returns (loss, accuracy)."""

    def __init__(self, model: nn.Module, first_row: int):
        super().__init__()
        self.model, self.first_row = model, first_row

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) ids/labels, a (B, L) padding or (B, 1, L, L) packing mask -> scalar loss and accuracy."""
        h = self.model.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
        ).last_hidden_state
        valid = labels != IGNORE
        head = self.model.get_output_embeddings()
        bias = None if head.bias is None else head.bias[self.first_row :]
        logits = nn.functional.linear(h[valid], head.weight[self.first_row :], bias).float()
        target = labels[valid] - self.first_row
        return nn.functional.cross_entropy(logits, target), (logits.detach().argmax(-1) == target).float().mean()


def lm_loss(objective: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and speech-token accuracy of a :class:`SpeechLoss` (or its DDP/FSDP wrapper) on a
    :meth:`~tts.lm.TTSLM.collate` batch."""
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids", "labels")}
    ce, acc = objective(**inputs)
    return ce, {"acc": acc}
