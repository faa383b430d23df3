"""The text-to-semantic-token LM (CosyVoice 2 / TouchTTS design): a stock decoder-only LLM from ``transformers``
whose vocabulary holds text BPE, a few specials and one token per speech code — no text encoder, no speaker
embedding. It saves as a standard model directory (``config.json``, ``model.safetensors``, ``tokenizer.json``) that
``AutoModelForCausalLM.from_pretrained`` loads, so LLM inference engines can serve it.

Sequence (unified layout)::

    [prompt text + target text] <|audio_bos|> [prompt speech] -> target speech <|audio_eos|>

with the loss on the target speech tokens and ``<|audio_eos|>`` only. Zero-shot voice continuation: give a prompt
utterance's text and tokens. Generation is KV-cached and batched (left padding), samples with repetition-aware
sampling (RAS, :mod:`tts.sampling`) or plain top-k/top-p, keeps the output between ``min_ratio`` and ``max_ratio``
times the text length (EOS masked before the minimum) and stops a run of one repeated token.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from tts.sampling import SamplingConfig, sample_batch, sample_next
from tts.tokenizer import TTSTokenizer

IGNORE = -100
CONFIG_FILE = "audiotok_tts_lm.json"


@dataclass
class TTSLMConfig:
    arch: str = "qwen2"  # "qwen2" or "llama" (transformers architectures built from a config)
    hidden_size: int = 256
    intermediate_size: int = 1024
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    max_position: int = 2048
    rope_theta: float = 10000.0
    tie_embeddings: bool = True  # output head = input embedding (as Qwen2.5-0.5B; halves the small model's size)
    n_speech: int = 6561  # the semantic tokenizer's codebook
    tokenizer: str = "semantic"  # the semantic tokenizer whose codes this LM speaks (name or path, informative)
    layout: str = "unified"  # "unified" (text, then speech) or "bistream" (CosyVoice 2: interleaved N:M)
    bistream_ratio: tuple[int, int] = (5, 15)  # text tokens : speech tokens per group
    extra: dict = field(default_factory=dict)


def lm_config(name: str) -> TTSLMConfig:
    """``small`` (256-d x 4, the benchmarks' small shape; the bundled default is narrower, 192-d:
    ``recipes/tts/configs/lm-small.yaml``), ``qwen2.5-0.5b`` (the paper-scale shape), ``tiny`` (tests)."""
    if name == "small":
        return TTSLMConfig()
    if name == "qwen2.5-0.5b":
        return TTSLMConfig(
            hidden_size=896,
            intermediate_size=4864,
            num_layers=24,
            num_heads=14,
            num_kv_heads=2,
            max_position=4096,
            rope_theta=1e6,
        )
    if name == "tiny":
        return TTSLMConfig(
            hidden_size=64,
            intermediate_size=128,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            max_position=512,
            n_speech=64,
        )
    raise ValueError(f"unknown TTS LM config {name!r}; known: small, qwen2.5-0.5b, tiny")


def build_hf_model(cfg: TTSLMConfig, vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings,
    )
    if cfg.arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**kwargs))
    if cfg.arch == "llama":
        return LlamaForCausalLM(LlamaConfig(**kwargs))
    raise ValueError(f"arch must be 'qwen2' or 'llama', got {cfg.arch!r}")


@dataclass
class Example:
    """One training/inference item: ids of the (prompt + target) text, prompt speech codes, target speech codes."""

    text: list[int]
    prompt_codes: list[int] = field(default_factory=list)
    target_codes: list[int] = field(default_factory=list)


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
    """Loss and speech-token accuracy of a :class:`SpeechLoss` (or its DDP/FSDP wrapper) on a :meth:`TTSLM.collate`
    batch."""
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids", "labels")}
    ce, acc = objective(**inputs)
    return ce, {"acc": acc}


class TTSLM(nn.Module):
    """The HF causal LM plus its tokenizer and the layout logic."""

    def __init__(self, config: TTSLMConfig, tokenizer: TTSTokenizer, model=None):
        super().__init__()
        self.config, self.tokenizer, self.vocab = config, tokenizer, tokenizer.vocab
        if self.vocab.n_speech != config.n_speech:
            raise ValueError(f"tokenizer has {self.vocab.n_speech} speech tokens, config {config.n_speech}")
        self.model = model if model is not None else build_hf_model(config, self.vocab.size)

    @classmethod
    def from_llm(cls, folder: str | os.PathLike, config: TTSLMConfig | None = None) -> TTSLM:
        """Start from a local pretrained LLM directory (e.g. a downloaded Qwen2.5-0.5B): its weights and its own
        tokenizer, extended with our specials and speech tokens (embeddings resized; new rows initialised by
        transformers). ``config`` supplies ``n_speech`` and the layout; the architecture is the LLM's."""
        from transformers import AutoModelForCausalLM

        cfg = config or TTSLMConfig()
        tok = TTSTokenizer.from_llm(folder, cfg.n_speech)
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
        model.resize_token_embeddings(tok.vocab.size)
        mc = model.config
        cfg = replace(
            cfg,
            arch=mc.model_type,
            hidden_size=mc.hidden_size,
            intermediate_size=mc.intermediate_size,
            num_layers=mc.num_hidden_layers,
            num_heads=mc.num_attention_heads,
            num_kv_heads=getattr(mc, "num_key_value_heads", mc.num_attention_heads),
            max_position=mc.max_position_embeddings,
            extra={**cfg.extra, "init_from": str(folder)},
        )
        return cls(cfg, tok, model)

    # ------------------------------------------------------------------------------------------------ layout
    def sequence(self, ex: Example) -> tuple[list[int], list[int]]:
        """(input ids, labels): labels are the next token on target-speech positions and -100 elsewhere."""
        if self.config.layout == "bistream":
            return self.bistream_sequence(ex)
        v = self.vocab
        target = [v.speech_offset + c for c in ex.target_codes] + [v.audio_eos]
        ids = ex.text + [v.audio_bos] + [v.speech_offset + c for c in ex.prompt_codes] + target
        n_context = len(ids) - len(target)
        labels = [IGNORE] * (n_context - 1) + target + [IGNORE]
        return ids, labels[: len(ids)]

    def bistream_sequence(self, ex: Example) -> tuple[list[int], list[int]]:
        """CosyVoice 2's bistream layout: N text tokens, then M speech tokens, and so on; once the text is used up,
        ``<|audio_bos|>`` (turn of speech) and the remaining speech, then ``<|audio_eos|>``. Where the next input
        would be text, the label is ``<|fill|>`` (the model asks for more text). Prompt speech is never a label."""
        v = self.vocab
        n, m = self.config.bistream_ratio
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

    @torch.no_grad()
    def generate_bistream(
        self,
        text_chunks: Iterable[list[int]],
        prompt_codes: list[int] | None = None,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
    ) -> list[int]:
        """Speech codes while the text arrives in pieces (``text_chunks``: lists of text ids, e.g. from an LLM's
        stream), in the bistream layout: the model reads N text tokens, speaks until it asks for more text with
        ``<|fill|>`` (or has spoken M), and after the text ends speaks until ``<|audio_eos|>``. Prompt codes are
        forced into the first speech slots. The result does not depend on how the text is cut into chunks."""
        sampling = sampling or SamplingConfig()
        v, device = self.vocab, next(self.model.parameters()).device
        n, m = self.config.bistream_ratio
        gen = torch.Generator().manual_seed(seed)
        chunks, pending = iter(text_chunks), []
        state = {"text_done": False, "n_text": 0, "past": None}
        forced = list(prompt_codes or [])

        def pull() -> None:
            nxt = next(chunks, None)
            if nxt is None:
                state["text_done"] = True
            else:
                pending.extend(nxt)

        def take_group() -> tuple[list[int], bool]:
            """The next N text tokens, and whether they are the last (looking ahead one chunk to know)."""
            while len(pending) < n and not state["text_done"]:
                pull()
            group = pending[:n]
            del pending[:n]
            while not pending and not state["text_done"]:
                pull()
            state["n_text"] += len(group)
            return group, state["text_done"] and not pending

        def feed(tokens: list[int]) -> torch.Tensor:
            res = self.model(
                input_ids=torch.tensor([tokens], device=device), past_key_values=state["past"], use_cache=True
            )
            state["past"] = res.past_key_values
            return res.logits[0, -1].float().cpu()

        group, turn = take_group()
        logits = feed(group + [v.audio_bos] if turn else group)
        out, in_group = [], 0
        while True:
            if forced:
                token = v.speech_offset + forced.pop(0)
            else:
                row = torch.full_like(logits, float("-inf"))
                row[v.speech_offset :] = logits[v.speech_offset :]
                if turn and len(out) >= int(sampling.min_ratio * max(state["n_text"], 1)):
                    row[v.audio_eos] = logits[v.audio_eos]
                if not turn:
                    row[v.fill] = logits[v.fill]
                token = sample_next(row, out, sampling, gen)
            if token == v.audio_eos:
                break
            if token == v.fill:  # the model asks for more text: it follows the last speech token directly
                group, turn = take_group()
                logits, in_group = feed(group + [v.audio_bos] if turn else group), 0
                continue
            out.append(token - v.speech_offset)
            in_group += 1
            if len(out) >= int(sampling.max_ratio * max(state["n_text"], 1)) and turn:
                break
            if not turn and in_group >= m:  # a full speech group: text comes next whatever the model says
                group, turn = take_group()
                logits, in_group = feed([token] + group + ([v.audio_bos] if turn else [])), 0
                continue
            run = out[-sampling.max_run :] if sampling.max_run else []
            if turn and len(run) == sampling.max_run and len(set(run)) == 1:
                break
            logits = feed([token])
        return out

    def collate(self, examples: list[Example], pack_tokens: int = 0) -> dict[str, torch.Tensor]:
        """Right-padded batch: ``input_ids``, ``attention_mask``, ``labels`` (B, L) — one sequence per row; or, with
        ``pack_tokens``, sequences packed first-fit into rows of at most that many tokens (see :func:`pack`)."""
        seqs = [self.sequence(e) for e in examples]
        if pack_tokens:
            return pack(seqs, pack_tokens, self.vocab.pad)
        L = max(len(s) for s, _ in seqs)
        ids = torch.full((len(seqs), L), self.vocab.pad, dtype=torch.long)
        labels = torch.full((len(seqs), L), IGNORE, dtype=torch.long)
        mask = torch.zeros(len(seqs), L, dtype=torch.long)
        for i, (s, lab) in enumerate(seqs):
            ids[i, : len(s)], labels[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), torch.tensor(lab), 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean cross-entropy over speech positions, and their next-token accuracy (padded or packed batches)."""
        return lm_loss(self.objective(), batch)

    def objective(self) -> SpeechLoss:
        """The training loss module over this LM's weights (see :class:`SpeechLoss`)."""
        return SpeechLoss(self.model, self.vocab.text_size)

    # ------------------------------------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        texts: list[list[int]],
        prompt_codes: list[list[int]] | None = None,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
        target_text_lens: list[int] | None = None,
    ) -> list[list[int]]:
        """Speech codes for each item (``texts``: ids of prompt + target text; ``target_text_lens``: how many of
        them are the target's, which sets the length bounds — default all). Item ``i`` samples with its own
        generator seeded ``seed + i``, so a batch gives what one-by-one calls with those seeds give."""
        outputs: list[list[int]] = [[] for _ in texts]
        for step in self.generate_steps(texts, prompt_codes, sampling, seed, target_text_lens):
            for i, code in enumerate(step):
                if code is not None:
                    outputs[i].append(code)
        return outputs

    @torch.no_grad()
    def generate_steps(
        self,
        texts: list[list[int]],
        prompt_codes: list[list[int]] | None = None,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
        target_text_lens: list[int] | None = None,
    ) -> Iterator[list[int | None]]:
        """:meth:`generate` one step at a time: yields, per step, each item's new speech code (None once the
        item is finished) — what streaming synthesis consumes."""
        sampling = sampling or SamplingConfig()
        prompt_codes = prompt_codes or [[] for _ in texts]
        v, device = self.vocab, next(self.model.parameters()).device
        contexts = [
            t + [v.audio_bos] + [v.speech_offset + c for c in p] for t, p in zip(texts, prompt_codes, strict=True)
        ]
        n_text = [max(1, n) for n in (target_text_lens or [len(t) for t in texts])]
        min_len = [int(sampling.min_ratio * n) for n in n_text]
        max_len = [max(m + 1, int(sampling.max_ratio * n)) for m, n in zip(min_len, n_text, strict=True)]
        B, L = len(contexts), max(len(c) for c in contexts)
        ids = torch.full((B, L), v.pad, dtype=torch.long)
        mask = torch.zeros(B, L, dtype=torch.long)
        for i, c in enumerate(contexts):  # left padding
            ids[i, L - len(c) :], mask[i, L - len(c) :] = torch.tensor(c), 1
        ids, mask = ids.to(device), mask.to(device)
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
                    run = outputs[i][-sampling.max_run :] if sampling.max_run else []
                    if len(run) == sampling.max_run and len(set(run)) == 1:
                        done[i] = True  # a stuck loop: one token repeated max_run times
                new.append(token - v.speech_offset if token != v.audio_eos else None)
                nxt.append(token)
            yield new
            step_ids = torch.tensor(nxt, device=device)[:, None]
            mask = torch.cat([mask, (step_ids != v.pad).long()], 1)
            position = position[:, -1:] + 1

    # -------------------------------------------------------------------------------------------------- I/O
    def save_pretrained(self, folder: str | os.PathLike, state_dict: dict | None = None) -> Path:
        """A standard HF model directory (+ our layout file); ``state_dict``: the HF model's weights to write
        instead of its own (e.g. gathered from FSDP shards)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder), state_dict=state_dict)
        self.tokenizer.save(folder)
        (folder / CONFIG_FILE).write_text(json.dumps({"format_version": "1", "config": asdict(self.config)}, indent=1))
        return folder

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> TTSLM:
        """A TTS LM folder (standard HF layout + ``audiotok_tts_lm.json``), through :mod:`audiotok.registry`."""
        from audiotok.registry import load

        return load(name_or_path, "tts-lm", device=device)

    @classmethod
    def load_resolved(cls, resolved, device: str | torch.device = "cpu") -> TTSLM:
        from transformers import AutoModelForCausalLM

        from audiotok.config import from_dict

        folder = Path(resolved.path)
        meta = json.loads((folder / CONFIG_FILE).read_text())
        cfg = from_dict(TTSLMConfig, meta["config"])
        tok = TTSTokenizer.from_pretrained(folder, cfg.n_speech)
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        return cls(cfg, tok, model).to(device).eval()
