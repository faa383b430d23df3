"""How the TTS LM's training and prompt sequences are laid out, and how they are batched.

* the **unified** (prompt) layout: ``[prompt text + target text] <|audio_bos|> [prompt speech] target speech
  <|audio_eos|>``, labels on the target speech and ``<|audio_eos|>`` only;
* CosyVoice 2's **bistream** layout: N text tokens, M speech tokens, and so on (5:15 by default), see
  :func:`bistream_sequence`;
* batches: right-padded rows (:func:`collate`), or sequences packed first-fit into rows (:func:`pack`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from tts.tokenizer import Vocab

IGNORE = -100  # the label of a position without a loss


@dataclass
class Example:
    """One training/inference item: ids of the (prompt + target) text, prompt speech codes, target speech codes."""

    text: list[int]
    prompt_codes: list[int] = field(default_factory=list)
    target_codes: list[int] = field(default_factory=list)


def unified_sequence(vocab: Vocab, ex: Example) -> tuple[list[int], list[int]]:
    """(input ids, labels) in the unified layout: labels are the next token on target-speech positions (and the
    end token after them), -100 elsewhere."""
    v = vocab
    target = [v.speech_offset + c for c in ex.target_codes] + [v.audio_eos]
    ids = ex.text + [v.audio_bos] + [v.speech_offset + c for c in ex.prompt_codes] + target
    n_context = len(ids) - len(target)
    labels = [IGNORE] * (n_context - 1) + target + [IGNORE]
    return ids, labels[: len(ids)]


def bistream_sequence(vocab: Vocab, ratio: tuple[int, int], ex: Example) -> tuple[list[int], list[int]]:
    """CosyVoice 2's bistream layout, ``ratio`` = (N, M): N text tokens, then M speech tokens, and so on; once the
    text is used up, ``<|audio_bos|>`` (turn of speech) and the remaining speech, then ``<|audio_eos|>``. Where the
    next input would be text, the label is ``<|fill|>`` (the model asks for more text). Prompt speech is never a
    label."""
    v = vocab
    n, m = ratio
    speech = [v.speech_offset + c for c in ex.prompt_codes + ex.target_codes]
    target_from = len(ex.prompt_codes)  # speech index where the target starts
    ids, sidx = [], []  # sidx: speech index of each position (-1 for text/specials)
    ti = si = 0
    while ti < len(ex.text):
        group = ex.text[ti : ti + n]
        ids += group
        sidx += [-1] * len(group)
        ti += len(group)
        if ti >= len(ex.text):
            break
        chunk = speech[si : si + m]
        ids += chunk
        sidx += list(range(si, si + len(chunk)))
        si += len(chunk)
    ids += [v.audio_bos, *speech[si:], v.audio_eos]
    sidx += [-1, *range(si, len(speech)), -1]
    labels = [IGNORE] * len(ids)
    for p in range(len(ids) - 1):
        nxt, here = ids[p + 1], sidx[p]
        if sidx[p + 1] >= target_from:
            labels[p] = nxt
        elif nxt == v.audio_eos:
            labels[p] = nxt
        elif here >= target_from and nxt < v.text_size:  # a target speech group ends, text follows
            labels[p] = v.fill
    return ids, labels


def collate(seqs: list[tuple[list[int], list[int]]], pad: int, pack_tokens: int = 0) -> dict[str, torch.Tensor]:
    """(ids, labels) pairs -> a right-padded batch: ``input_ids``, ``attention_mask``, ``labels`` (B, L) — one
    sequence per row; or, with ``pack_tokens``, sequences packed first-fit into rows of at most that many tokens
    (see :func:`pack`)."""
    if pack_tokens:
        return pack(seqs, pack_tokens, pad)
    L = max(len(s) for s, _ in seqs)
    ids = torch.full((len(seqs), L), pad, dtype=torch.long)
    labels = torch.full((len(seqs), L), IGNORE, dtype=torch.long)
    mask = torch.zeros(len(seqs), L, dtype=torch.long)
    for i, (s, lab) in enumerate(seqs):
        ids[i, : len(s)], labels[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), torch.tensor(lab), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pack(seqs: list[tuple[list[int], list[int]]], max_tokens: int, pad: int) -> dict[str, torch.Tensor]:
    """Sequence packing: (ids, labels) pairs placed first-fit, in order, into rows of at most ``max_tokens`` (a
    longer sequence gets a row of its own). Returns ``input_ids``, ``labels``, ``position_ids`` (restarting at 0 for
    each sequence) (R, L) and a (R, 1, L, L) bool ``attention_mask``: causal inside a sequence, nothing across
    sequences, so a packed row computes exactly what its sequences compute alone."""
    rows: list[list[int]] = []  # indices into seqs
    used: list[int] = []
    for i, (ids, _) in enumerate(seqs):
        row = next((r for r in range(len(rows)) if used[r] + len(ids) <= max_tokens), None)
        if row is None:
            row = len(rows)
            rows.append([])
            used.append(0)
        rows[row].append(i)
        used[row] += len(ids)
    R, L = len(rows), max(used)
    input_ids = torch.full((R, L), pad, dtype=torch.long)
    labels = torch.full((R, L), IGNORE, dtype=torch.long)
    positions = torch.zeros(R, L, dtype=torch.long)
    segment = torch.full((R, L), -1, dtype=torch.long)
    for r, members in enumerate(rows):
        start = 0
        for k, i in enumerate(members):
            ids, lab = seqs[i]
            end = start + len(ids)
            input_ids[r, start:end], labels[r, start:end] = torch.tensor(ids), torch.tensor(lab)
            positions[r, start:end], segment[r, start:end] = torch.arange(len(ids)), k
            start = end
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, None, :] >= 0)
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    mask = (same & causal)[:, None] | torch.eye(L, dtype=torch.bool)  # padding rows see themselves
    return {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions, "labels": labels}
