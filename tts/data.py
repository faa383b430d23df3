"""Training data of the TTS LM: utterances with their semantic tokens, paired into prompt/target examples.

* the **token cache** (``tokens-<split>.jsonl``): one line per utterance in the project's token JSONL format
  (:func:`audiotok.tokens.to_json_line`: ``id``, ``codes``, ``format_version`` and the tokenizer's identity) plus
  the utterance's ``speaker``, ``text``, ``audio``, ``start``, ``end``. :func:`extract_tokens` writes it for a
  manifest (resumable), tokenizing the audio in batches on the device with the semantic tokenizer;
  :func:`import_encoded` writes it from ``audiotok encode`` output; :func:`read_tokens` reads it (refusing lines of
  another format version or of another tokenizer);
* :class:`PairDataset` turns each utterance into an :class:`~tts.lm_layout.Example`: with probability
  ``prompt_prob`` another utterance of the same speaker becomes the prompt (its text first, its tokens after
  ``<|audio_bos|>``), which teaches zero-shot voice continuation;
* batches are bucketed by sequence length under a padded-token budget (:class:`DurationBatchSampler` with token
  counts in place of seconds).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from audiotok.audio import load, resample
from audiotok.data.manifest import Utterance, read_manifest
from audiotok.tokens import (
    TOKEN_FORMAT_VERSION,
    TokenFileError,
    TokenizerId,
    TokenRecord,
    from_json_line,
    iter_token_inputs,
    model_identity,
    to_json_line,
)
from tts.lm_layout import Example
from tts.tokenizer import TTSTokenizer


def cache_line(u: Utterance, record: TokenRecord) -> str:
    """One token-cache line: ``record`` as the project's token JSONL line for ``u.id``, plus ``u``'s speaker, text
    and audio segment (the fields the TTS recipes read)."""
    row = json.loads(to_json_line(u.id, record))
    row.update(speaker=u.speaker, text=u.text, audio=u.audio, start=u.start, end=u.end)
    return json.dumps(row)


def _stale(where: str | os.PathLike, why: str) -> TokenFileError:
    """The error for a token cache of the older, unversioned format (rows without the tokenizer's identity)."""
    return TokenFileError(
        f"{where}: {why}. A TTS token cache from before it took the project's token format (format_version "
        f"{TOKEN_FORMAT_VERSION}, with the tokenizer's identity)? Delete the cache (in a recipe's run folder: "
        "tokens.json and tokens-*.jsonl*); it is rebuilt on the next run"
    )


def read_tokens(path: str | os.PathLike) -> list[dict]:
    """The rows of a token cache (dicts: ``id``, ``codes``, ``speaker``, ``text``, ``audio``, ``start``, ``end``
    and the tokenizer identity fields). Every line must be a token line of this format version, and all of one
    tokenizer."""
    path = Path(path)
    rows, first = [], None
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise _stale(str(path), f"not a token cache ({err})") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            _, rec = from_json_line(line, f"{path}:{n}")
        except (KeyError, ValueError) as err:  # TokenFileError and JSONDecodeError are ValueErrors
            raise _stale(f"{path}:{n}", f"not a token line ({err})") from None
        first = first or rec.model
        if rec.model.model_sha256 != first.model_sha256:
            raise TokenFileError(
                f"{path}:{n}: tokens of {rec.model.tokenizer} ({rec.model.model_sha256[:12]}) among tokens of "
                f"{first.tokenizer} ({first.model_sha256[:12]})"
            )
        rows.append(json.loads(line))
    return rows


def extract_tokens(
    manifest: str | os.PathLike,
    tokenizer,
    out: str | os.PathLike,
    batch_size: int = 16,
    progress: bool = True,
    name: str | None = None,
) -> Path:
    """Append token-cache lines (:func:`cache_line`) to ``out`` for the manifest's utterances not yet in it.
    ``name``: the tokenizer's name that the lines record (as :func:`audiotok.registry.load_tokenizer` gives it;
    default the tokenizer's class name). Refuses to extend a cache made by another tokenizer."""
    out = Path(out)
    ident = model_identity(tokenizer, name or type(tokenizer).__name__)
    rows = read_tokens(out) if out.exists() else []
    if rows and rows[0]["model_sha256"] != ident.model_sha256:
        raise TokenFileError(f"{out}: holds tokens of {rows[0]['tokenizer']}, not of {ident.tokenizer}; delete it")
    done = {r["id"] for r in rows}
    todo = [u for u in read_manifest(manifest) if u.text and u.id not in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for i in tqdm(range(0, len(todo), batch_size), desc="tokens", disable=not progress):
            chunk = todo[i : i + batch_size]
            wavs = []
            for u in chunk:
                w, sr = load(u.audio, start=u.start, end=u.end, mono=True)
                wavs.append(resample(w, sr, tokenizer.sample_rate))
            codes, lens = tokenizer.encode(wavs, sample_rate=tokenizer.sample_rate)
            for u, w, c, n in zip(chunk, wavs, codes, lens, strict=True):
                record = TokenRecord(c[: int(n)].cpu().numpy(), ident, len(w), u.audio)
                f.write(cache_line(u, record) + "\n")
            f.flush()
    return out


def import_encoded(encoded: str | os.PathLike, manifest: str | os.PathLike, out: str | os.PathLike) -> TokenizerId:
    """Token-cache lines (as :func:`extract_tokens` writes them) from an ``audiotok encode`` output — JSONL,
    WebDataset shards or token files — joined by utterance id with ``manifest`` (text, speaker). Returns the
    tokenizer's identity from the token files. Rows are written in the manifest's order, as :func:`extract_tokens`
    writes them (``audiotok encode`` writes its length-sorted batches' order), so that a recipe's first ``n_valid``
    utterances do not depend on where the tokens came from."""
    utts = {u.id: u for u in read_manifest(manifest) if u.text}
    lines, ident = {}, None
    for key, rec in tqdm(iter_token_inputs([str(encoded)]), desc="import tokens", unit="file"):
        u = utts.get(Path(key).name)
        if u is None:
            continue
        ident = ident or rec.model
        if rec.model.model_sha256 != ident.model_sha256:
            m = rec.model
            raise ValueError(f"{encoded}: {key} was made by another tokenizer ({m.tokenizer} {m.model_sha256[:12]})")
        lines[u.id] = cache_line(u, rec)
    if ident is None:
        raise ValueError(f"{encoded}: no token file matches an utterance of {manifest}")
    Path(out).write_text("".join(lines[i] + "\n" for i in utts if i in lines))
    return ident


@dataclass
class TokenSplits:
    """The data splits of a TTS recipe (its ``data`` config extends this)."""

    train: str = "data/synth-adult/train.jsonl"
    valid: str = "data/synth-adult/valid.jsonl"
    # optional: the splits' semantic tokens precomputed with `audiotok encode MANIFEST --model <semantic_tokenizer>`
    # (.jsonl, shards folder or token files; joined with the manifest by utterance id) instead of tokenizing here
    train_tokens: str | None = None
    valid_tokens: str | None = None


def cache_tokens(semantic_tokenizer: str, splits: TokenSplits, out: str | os.PathLike, n_speech: int) -> dict:
    """Tokenize each split's manifest once into ``out/tokens-<split>.jsonl`` (resumable; ``.done`` marks a finished
    split) — or import its ``<split>_tokens``, tokens precomputed with ``audiotok encode`` by the same tokenizer —
    and record the tokenizer's identity (:class:`~audiotok.tokens.TokenizerId`: name, weights hash, frame rate,
    codebook size...) in ``out/tokens.json``, which is returned. Raises if the model's ``n_speech`` differs from the
    codebook (e.g. a VQ 4096 tokenizer with a 6561 config), if the precomputed tokens come from another tokenizer
    than ``semantic_tokenizer``, or if ``out`` holds a cache of the older, unversioned format."""
    from audiotok.registry import load_tokenizer

    out = Path(out)
    manifests = {"train": splits.train, "valid": splits.valid}
    encoded = {"train": splits.train_tokens, "valid": splits.valid_tokens}
    info_path = out / "tokens.json"
    if info_path.exists() and "model_sha256" not in json.loads(info_path.read_text()):
        raise _stale(info_path, "no tokenizer identity")
    if not all((out / f"tokens-{s}.jsonl.done").exists() for s in manifests) or not info_path.exists():
        semantic, name = load_tokenizer(semantic_tokenizer)
        ident = model_identity(semantic, name)
        info_path.write_text(json.dumps(asdict(ident)))
        if semantic.codebook_size != n_speech:  # before hours of tokenizing
            raise ValueError(
                f"{semantic_tokenizer} has {semantic.codebook_size} codes; the model is configured for {n_speech} "
                f"speech tokens (set n_speech={semantic.codebook_size})"
            )
        for split, manifest in manifests.items():
            target = out / f"tokens-{split}.jsonl"
            if (out / f"{target.name}.done").exists():
                continue
            if encoded.get(split):
                got = import_encoded(encoded[split], manifest, target)
                if got.model_sha256 != ident.model_sha256:
                    raise ValueError(
                        f"{encoded[split]} was encoded by {got.tokenizer} ({got.model_sha256[:12]}), not by "
                        f"{semantic_tokenizer} ({ident.model_sha256[:12]}), whose tokens the TTS reads at inference"
                    )
            else:
                extract_tokens(manifest, semantic, target, name=name)
            (out / f"{target.name}.done").touch()
    info = json.loads(info_path.read_text())
    if info.get("codebook_size", n_speech) != n_speech:
        raise ValueError(f"the tokens in {out} come from a {info['codebook_size']}-code tokenizer, not {n_speech}")
    return info


class PairDataset(Dataset):
    """Examples from token records; item ``i`` targets record ``i``. Prompts are drawn reproducibly from
    ``(seed, epoch, i)``: call :meth:`set_epoch` each epoch."""

    def __init__(self, records: list[dict], tokenizer: TTSTokenizer, prompt_prob: float = 0.5, seed: int = 0):
        self.records, self.tok, self.prompt_prob, self.seed, self.epoch = records, tokenizer, prompt_prob, seed, 0
        self.by_speaker: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            self.by_speaker.setdefault(r.get("speaker") or "", []).append(i)
        self.text_ids = [tokenizer.encode_text(r["text"]) for r in records]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def lengths(self) -> list[int]:
        """Sequence length of each item without a prompt (for bucketing)."""
        return [len(t) + len(r["codes"]) + 2 for t, r in zip(self.text_ids, self.records, strict=True)]

    def __getitem__(self, i: int) -> Example:
        r = self.records[i]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 7919 + i)
        others = [j for j in self.by_speaker[r.get("speaker") or ""] if j != i]
        if others and float(torch.rand(1, generator=g)) < self.prompt_prob:
            p = others[int(torch.randint(len(others), (1,), generator=g))]
            return Example(self.text_ids[p] + self.text_ids[i], self.records[p]["codes"], r["codes"])
        return Example(self.text_ids[i], [], r["codes"])


class TokenMelDataset(Dataset):
    """(tokens, 24 kHz audio) pairs for the flow: each record's audio trimmed to whole tokens (``hop * ratio``
    samples each) and, when longer than ``max_tokens``, a random aligned crop (reproducible from seed, epoch)."""

    def __init__(self, records: list[dict], sample_rate: int, samples_per_token: int, max_tokens: int, seed: int = 0):
        self.records = [r for r in records if r["codes"]]
        self.sr, self.unit, self.max_tokens, self.seed, self.epoch = sample_rate, samples_per_token, max_tokens, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def lengths(self) -> list[int]:
        return [min(len(r["codes"]), self.max_tokens) for r in self.records]

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        wav, sr = load(r["audio"], start=r.get("start"), end=r.get("end"), mono=True)
        wav = resample(wav, sr, self.sr)
        n = min(len(r["codes"]), len(wav) // self.unit)
        start = 0
        if n > self.max_tokens:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 7919 + i)
            start = int(torch.randint(0, n - self.max_tokens + 1, (1,), generator=g))
            n = self.max_tokens
        codes = torch.tensor(r["codes"][start : start + n])
        return {"codes": codes, "audio": wav[start * self.unit : (start + n) * self.unit]}


def collate_token_mel(items: list[dict]) -> dict:
    from audiotok.data.dataset import pad_sequences

    codes, code_lens = pad_sequences([x["codes"] for x in items])
    audio, audio_lens = pad_sequences([x["audio"] for x in items])
    return {"codes": codes.long(), "code_lens": code_lens, "audio": audio, "audio_lens": audio_lens}
