"""The TTS LM's vocabulary: a byte-level BPE for text plus specials and one token per speech code, as one stock
Hugging Face fast tokenizer (``tokenizer.json``) so that LLM engines can serve the model with it.

Layout of ids: ``[text (the BPE's or a pretrained LLM's own vocabulary)] [<|tts_eos|> <|tts_pad|> <|audio_bos|>
<|audio_eos|> <|fill|>] [<|s_0|> ... <|s_{n-1}|>]``: our tokens are appended after the text vocabulary, so a
pretrained LLM's tokenizer keeps its own ids. Text goes through the suite's TTS front end (:func:`audiotok.text.normalize_text`:
numbers and symbols to words) before the BPE.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from audiotok.text import normalize_text

SPECIALS = ("<|tts_eos|>", "<|tts_pad|>", "<|audio_bos|>", "<|audio_eos|>", "<|fill|>")


def train_text_bpe(sentences: list[str], vocab_size: int = 4000):
    """A byte-level BPE (``tokenizers.Tokenizer``) trained on normalised ``sentences``; offline and fast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator((normalize_text(s) for s in sentences), trainer)
    return tok


@dataclass
class Vocab:
    """Where the parts of the vocabulary are (see the module docstring)."""

    text_size: int
    n_speech: int

    @property
    def eos(self) -> int:  # text end (unused in speech)
        return self.text_size

    @property
    def pad(self) -> int:
        return self.text_size + 1

    @property
    def audio_bos(self) -> int:
        return self.text_size + 2

    @property
    def audio_eos(self) -> int:
        return self.text_size + 3

    @property
    def fill(self) -> int:
        return self.text_size + 4

    @property
    def speech_offset(self) -> int:
        return self.text_size + len(SPECIALS)

    @property
    def size(self) -> int:
        return self.speech_offset + self.n_speech


class TTSTokenizer:
    """Text -> ids and speech codes <-> ids, backed by a ``PreTrainedTokenizerFast`` saved as ``tokenizer.json``."""

    def __init__(self, hf_tokenizer, n_speech: int):
        self.hf = hf_tokenizer
        text_size = hf_tokenizer.convert_tokens_to_ids(SPECIALS[0])
        self.vocab = Vocab(text_size, n_speech)
        if len(hf_tokenizer) != self.vocab.size:
            raise ValueError(f"tokenizer has {len(hf_tokenizer)} ids, expected {self.vocab.size} for its layout")

    @classmethod
    def build(cls, sentences: list[str], n_speech: int, text_vocab_size: int = 4000) -> TTSTokenizer:
        """A new text BPE trained on ``sentences``, extended with our specials and speech tokens."""
        from transformers import PreTrainedTokenizerFast

        return cls.extend(
            PreTrainedTokenizerFast(tokenizer_object=train_text_bpe(sentences, text_vocab_size)), n_speech
        )

    @classmethod
    def extend(cls, hf_tokenizer, n_speech: int) -> TTSTokenizer:
        """Append our specials and one token per speech code to a text tokenizer (ours, or a pretrained LLM's)."""
        text_size = len(hf_tokenizer)
        hf_tokenizer.add_special_tokens(
            {"eos_token": SPECIALS[0], "pad_token": SPECIALS[1], "additional_special_tokens": list(SPECIALS[2:])},
            replace_extra_special_tokens=True,
        )
        hf_tokenizer.add_tokens([f"<|s_{i}|>" for i in range(n_speech)], special_tokens=True)
        if hf_tokenizer.convert_tokens_to_ids(SPECIALS[0]) != text_size:
            raise ValueError("the text tokenizer already holds the TTS special tokens")
        return cls(hf_tokenizer, n_speech)

    @classmethod
    def from_llm(cls, folder: str | os.PathLike, n_speech: int) -> TTSTokenizer:
        """A local pretrained LLM's tokenizer, extended (no downloads: ``folder`` is a local directory)."""
        from transformers import AutoTokenizer

        return cls.extend(AutoTokenizer.from_pretrained(str(folder), local_files_only=True), n_speech)

    def save(self, folder: str | os.PathLike) -> None:
        self.hf.save_pretrained(str(folder))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, n_speech: int) -> TTSTokenizer:
        from transformers import PreTrainedTokenizerFast

        return cls(PreTrainedTokenizerFast.from_pretrained(str(Path(folder))), n_speech)

    def encode_text(self, text: str) -> list[int]:
        return self.hf.encode(normalize_text(text), add_special_tokens=False)

    def speech_ids(self, codes) -> list[int]:
        return [self.vocab.speech_offset + int(c) for c in codes]

    def codes(self, ids) -> list[int]:
        off = self.vocab.speech_offset
        return [int(i) - off for i in ids if off <= int(i) < off + self.vocab.n_speech]
