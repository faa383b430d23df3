"""Speech-code generation from the TTS LM's HF causal model, KV-cached.

* :meth:`GenerationMixin.generate_steps` / :meth:`~GenerationMixin.generate`: the unified (prompt) layout, batched
  with left padding; each item samples with its own seeded generator, keeps its output between ``min_ratio`` and
  ``max_ratio`` times its text length (the end token masked before the minimum) and stops a run of one repeated
  token;
* :class:`BistreamGenerator` (:meth:`GenerationMixin.generate_bistream`): CosyVoice 2's bistream layout while the
  text arrives in pieces (e.g. from an LLM's stream).

:class:`GenerationMixin` gives :class:`~tts.lm.TTSLM` these as methods.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

from tts.sampling import SamplingConfig, sample_batch, sample_next

if TYPE_CHECKING:
    from tts.lm import TTSLMConfig
    from tts.tokenizer import Vocab


def _left_pad(contexts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) ids and attention mask of ``contexts``, padded on the left."""
    B, L = len(contexts), max(len(c) for c in contexts)
    ids = torch.full((B, L), pad, dtype=torch.long)
    mask = torch.zeros(B, L, dtype=torch.long)
    for i, c in enumerate(contexts):
        ids[i, L - len(c) :], mask[i, L - len(c) :] = torch.tensor(c), 1
    return ids, mask


def _stuck(history: list[int], max_run: int) -> bool:
    """Whether ``history`` ends in one token repeated ``max_run`` times (0: never)."""
    run = history[-max_run:] if max_run else []
    return len(run) == max_run and len(set(run)) == 1


class BistreamGenerator:
    """One bistream generation (:meth:`GenerationMixin.generate_bistream`), ``ratio`` = (N, M): the text read so
    far, the KV cache and the codes spoken. The model reads N text tokens, speaks until it asks for more text with
    ``<|fill|>`` (or has spoken M), and once the text has ended (the *turn* of speech, marked by ``<|audio_bos|>``)
    speaks until ``<|audio_eos|>``."""

    def __init__(
        self,
        model: nn.Module,
        vocab: Vocab,
        ratio: tuple[int, int],
        text_chunks: Iterable[list[int]],
        prompt_codes: list[int] | None = None,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
    ):
        self.model, self.vocab, (self.n, self.m) = model, vocab, ratio
        self.sampling = sampling or SamplingConfig()
        self.device = next(model.parameters()).device
        self.generator = torch.Generator().manual_seed(seed)
        self.chunks, self.pending = iter(text_chunks), []
        self.text_done, self.n_text, self.past = False, 0, None
        self.turn = False  # the text has ended: only speech and the end token from here on
        self.forced = list(prompt_codes or [])  # prompt codes, forced into the first speech slots
        self.out: list[int] = []

    # ------------------------------------------------------------------------------------------------- text
    def _pull(self) -> None:
        nxt = next(self.chunks, None)
        if nxt is None:
            self.text_done = True
        else:
            self.pending.extend(nxt)

    def take_group(self) -> tuple[list[int], bool]:
        """The next N text tokens, and whether they are the last (looking ahead one chunk to know)."""
        while len(self.pending) < self.n and not self.text_done:
            self._pull()
        group = self.pending[: self.n]
        del self.pending[: self.n]
        while not self.pending and not self.text_done:
            self._pull()
        self.n_text += len(group)
        return group, self.text_done and not self.pending

    # ------------------------------------------------------------------------------------------------ model
    def feed(self, tokens: list[int]) -> torch.Tensor:
        """Run ``tokens`` through the model (extending the KV cache); the last position's logits."""
        res = self.model(
            input_ids=torch.tensor([tokens], device=self.device), past_key_values=self.past, use_cache=True
        )
        self.past = res.past_key_values
        return res.logits[0, -1].float().cpu()

    def read_text(self, before: list[int]) -> torch.Tensor:
        """Feed ``before`` (a speech token not yet fed, or nothing), the next text group and, when it is the last,
        ``<|audio_bos|>``; the logits that follow."""
        group, self.turn = self.take_group()
        return self.feed(before + group + ([self.vocab.audio_bos] if self.turn else []))

    def next_token(self, logits: torch.Tensor) -> int:
        """A forced prompt code, or a draw among the speech tokens, ``<|fill|>`` before the turn and, after it,
        ``<|audio_eos|>`` once the minimum length is spoken."""
        v, s = self.vocab, self.sampling
        if self.forced:
            return v.speech_offset + self.forced.pop(0)
        row = torch.full_like(logits, float("-inf"))
        row[v.speech_offset :] = logits[v.speech_offset :]
        if self.turn and len(self.out) >= int(s.min_ratio * max(self.n_text, 1)):
            row[v.audio_eos] = logits[v.audio_eos]
        if not self.turn:
            row[v.fill] = logits[v.fill]
        return sample_next(row, self.out, s, self.generator)

    # -------------------------------------------------------------------------------------------------- run
    @torch.no_grad()
    def run(self) -> list[int]:
        """The speech codes, generated to the end."""
        v, s = self.vocab, self.sampling
        logits, in_group = self.read_text([]), 0
        while True:
            token = self.next_token(logits)
            if token == v.audio_eos:
                break
            if token == v.fill:  # the model asks for more text: it follows the last speech token directly
                logits, in_group = self.read_text([]), 0
                continue
            self.out.append(token - v.speech_offset)
            in_group += 1
            if self.turn and len(self.out) >= int(s.max_ratio * max(self.n_text, 1)):
                break
            if not self.turn and in_group >= self.m:  # a full speech group: text comes next whatever the model says
                logits, in_group = self.read_text([token]), 0
                continue
            if self.turn and _stuck(self.out, s.max_run):
                break
            logits = self.feed([token])
        return self.out


class GenerationMixin:
    """The generation methods of :class:`~tts.lm.TTSLM`: they use its ``model`` (the HF causal LM), ``vocab`` and
    ``config.bistream_ratio``."""

    model: nn.Module
    vocab: Vocab
    config: TTSLMConfig

    @torch.no_grad()
    def generate_steps(
        self,
        texts: list[list[int]],
        prompt_codes: list[list[int]] | None = None,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
        target_text_lens: list[int] | None = None,
    ) -> Iterator[list[int | None]]:
        """:meth:`generate` one step at a time: yields, per step, each item's new speech code (None once the item
        is finished) — what streaming synthesis consumes."""
        sampling = sampling or SamplingConfig()
        prompt_codes = prompt_codes or [[] for _ in texts]
        v, device = self.vocab, next(self.model.parameters()).device
        contexts = [
            t + [v.audio_bos] + [v.speech_offset + c for c in p] for t, p in zip(texts, prompt_codes, strict=True)
        ]
        n_text = [max(1, n) for n in (target_text_lens or [len(t) for t in texts])]
        min_len = [int(sampling.min_ratio * n) for n in n_text]
        max_len = [max(m + 1, int(sampling.max_ratio * n)) for m, n in zip(min_len, n_text, strict=True)]
        ids, mask = _left_pad(contexts, v.pad)
        ids, mask = ids.to(device), mask.to(device)
        B = len(contexts)
        gens = [torch.Generator().manual_seed(seed + i) for i in range(B)]
        outputs: list[list[int]] = [[] for _ in range(B)]
        done = [False] * B
        position = (mask.cumsum(-1) - 1).clamp_min(0)
        past, step_ids = None, ids
        while not all(done):
            out = self.model(
                input_ids=step_ids, attention_mask=mask, position_ids=position, past_key_values=past, use_cache=True
            )
            past = out.past_key_values
            logits = out.logits[:, -1].float().cpu()
            # only speech tokens and the end token may come out
            allowed = torch.full_like(logits, float("-inf"))
            allowed[:, v.speech_offset :] = 0
            allowed[:, v.audio_eos] = 0
            logits = logits + allowed
            early = torch.tensor([len(o) < m for o, m in zip(outputs, min_len, strict=True)])
            logits[early, v.audio_eos] = float("-inf")  # no end before the minimum length
            live = [i for i in range(B) if not done[i]]
            drawn = dict(
                zip(
                    live,
                    sample_batch(logits[live], [outputs[i] for i in live], sampling, [gens[i] for i in live]),
                    strict=True,
                )
            )
            nxt, new = [], []
            for i in range(B):
                if done[i]:
                    nxt.append(v.pad)
                    new.append(None)
                    continue
                token = drawn[i]
                if token == v.audio_eos or len(outputs[i]) + 1 >= max_len[i]:
                    done[i] = True
                if token != v.audio_eos:
                    outputs[i].append(token)
                    if _stuck(outputs[i], sampling.max_run):
                        done[i] = True  # a stuck loop: one token repeated max_run times
                new.append(token - v.speech_offset if token != v.audio_eos else None)
                nxt.append(token)
            yield new
            step_ids = torch.tensor(nxt, device=device)[:, None]
            mask = torch.cat([mask, (step_ids != v.pad).long()], 1)
            position = position[:, -1:] + 1

    def generate(
        self,
        texts: list[list[int]],
        prompt_codes: list[list[int]] | None = None,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
        target_text_lens: list[int] | None = None,
    ) -> list[list[int]]:
        """Speech codes for each item, unified layout (``texts``: ids of prompt + target text;
        ``target_text_lens``: how many of them are the target's, which sets the length bounds — default all). Item
        ``i`` samples with its own generator seeded ``seed + i``, so a batch gives what one-by-one calls with those
        seeds give."""
        outputs: list[list[int]] = [[] for _ in texts]
        for step in self.generate_steps(texts, prompt_codes, sampling, seed, target_text_lens):
            for i, code in enumerate(step):
                if code is not None:
                    outputs[i].append(code)
        return outputs

    def generate_bistream(
        self,
        text_chunks: Iterable[list[int]],
        prompt_codes: list[int] | None = None,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
    ) -> list[int]:
        """Speech codes while the text arrives in pieces (``text_chunks``: lists of text ids, e.g. from an LLM's
        stream), in the bistream layout (:class:`BistreamGenerator`). Prompt codes are forced into the first speech
        slots. The result does not depend on how the text is cut into chunks."""
        ratio = self.config.bistream_ratio
        return BistreamGenerator(self.model, self.vocab, ratio, text_chunks, prompt_codes, sampling, seed).run()
