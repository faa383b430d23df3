"""Batch tokenization of many files (``audiotok encode`` / ``audiotok decode``): resumable, atomic, sharded.

Inputs are files, folders (recursive), manifests, or ``-`` (paths on stdin). Files are batched by duration, read
in worker processes, encoded on the device, and written as token files mirroring the input tree (or JSONL, or
WebDataset shards). Every write is atomic; outputs that already exist for the same model are skipped; bad files
are reported per file (``failed.jsonl``) and the rest goes on. Under ``torchrun`` each rank takes a disjoint share.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from audiotok import audio
from audiotok.audio import AUDIO_EXTENSIONS, AudioError
from audiotok.data.dataset import pad_sequences
from audiotok.data.manifest import iter_manifest
from audiotok.data.sampler import DurationBatchSampler
from audiotok.tokens import (
    TOKEN_SUFFIX,
    ShardWriter,
    TokenFileError,
    TokenizerId,
    TokenRecord,
    from_json_line,
    iter_shard,
    iter_token_inputs,
    load_tokens,
    model_identity,
    read_token_header,
    save_tokens,
    to_json_line,
)
from audiotok.utils import atomic_path

FORMATS = ("files", "jsonl", "shards")


@dataclass
class InputItem:
    """One utterance to encode: where it is, and where its output goes (``rel``, without suffix)."""

    path: str
    rel: str
    start: float | None = None
    end: float | None = None
    text: str | None = None


@dataclass
class RunSummary:
    ok: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    wall: float = 0.0
    failures: list[dict] = field(default_factory=list)

    def line(self) -> str:
        hours = self.seconds / 3600
        rate = self.seconds / max(self.wall, 1e-9)
        return (
            f"{self.ok} ok, {self.skipped} skipped, {self.failed} failed; {hours:.3f} h of audio in "
            f"{self.wall:.1f} s ({rate:.0f}x realtime, {hours / max(self.wall, 1e-9) * 3600:.1f} h per hour)"
        )


# ---------------------------------------------------------------------------------------------------- inputs
def collect_inputs(inputs: Iterable[str], stdin=None) -> list[InputItem]:
    """Expand files, folders, manifests (``.jsonl``/``.jsonl.gz``) and ``-`` into items with output names."""
    items: list[InputItem] = []
    for spec in inputs:
        if spec == "-":
            for line in stdin or sys.stdin:
                if line.strip():
                    p = Path(line.strip())
                    items.append(InputItem(str(p), p.with_suffix("").name))
            continue
        p = Path(spec)
        if p.is_dir():
            for f in sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file()):
                items.append(InputItem(str(f), str(f.relative_to(p).with_suffix(""))))
        elif p.name.endswith((".jsonl", ".jsonl.gz")):
            for u in iter_manifest(p):
                items.append(InputItem(u.audio, u.id, u.start, u.end, u.text))
        else:  # a single file: missing or bad ones are reported when read
            items.append(InputItem(str(p), p.with_suffix("").name))
    seen: set[str] = set()
    for it in items:
        if it.rel in seen:
            raise ValueError(f"two inputs map to the same output name {it.rel!r}; encode them in separate runs")
        seen.add(it.rel)
    return items


class _AudioItems(Dataset):
    """Loads items as mono audio at the model's rate; bad files come back as the error message."""

    def __init__(self, items: list[InputItem], sample_rate: int):
        self.items, self.sample_rate = items, sample_rate

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        it = self.items[i]
        try:
            wav, sr = audio.load(it.path, start=it.start, end=it.end, mono=True)
            return i, audio.resample(wav, sr, self.sample_rate), None
        except AudioError as err:
            return i, None, err.reason


def _collate(batch):
    return batch


# ---------------------------------------------------------------------------------------------------- encode
@dataclass
class EncodeOptions:
    """Knobs of ``audiotok encode``."""

    out: str
    format: str = "files"  # "files" (mirrored tree), "jsonl" or "shards"
    batch_seconds: float = 120.0  # padded audio seconds per batch; <= 0: one file per batch (fastest on CPUs)
    n_workers: int = 2  # loading processes
    window_seconds: float = 60.0  # longer files are encoded in windows of this length...
    overlap_seconds: float = 2.0  # ...that overlap by this much on each side
    shard_size: int = 1000
    overwrite: bool = False
    fail_fast: bool = False
    progress: bool = True
    rank: int = 0
    world_size: int = 1


def encode_long(model, wav: torch.Tensor, window: float, overlap: float) -> torch.Tensor:
    """Codes (L,) of a long mono signal, encoded in windows that overlap by ``overlap`` seconds on each side;
    each window contributes its central frames. Windows start on frame boundaries."""
    hop, sr = model.hop_length, model.sample_rate
    n_frames = -(-wav.shape[-1] // hop)
    win = max(1, int(window * sr) // hop)
    ctx = int(overlap * sr) // hop
    codes = torch.empty(n_frames, dtype=torch.long)
    for start in range(0, n_frames, win):
        lo, hi = max(0, start - ctx), min(n_frames, start + win + ctx)
        c, _ = model.encode(wav[lo * hop : hi * hop])
        codes[start : min(n_frames, start + win)] = c[0, start - lo : start - lo + min(win, n_frames - start)].cpu()
    return codes


def _item_key(opts: EncodeOptions, item: InputItem) -> str:
    """The key an item's tokens are stored under: its relative name (jsonl) or a tar-safe form of it (shards)."""
    return item.rel if opts.format == "jsonl" else item.rel.replace("/", "__").replace(".", "_")


class TokenSink:
    """Where encoded items go, in one of :data:`FORMATS`: knows what is already there for this model, writes
    each item atomically (files) or appends it (jsonl, shards), and records per-file failures."""

    def __init__(self, opts: EncodeOptions, ident: TokenizerId):
        if opts.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}")
        self.opts, self.ident, self.out = opts, ident, Path(opts.out)
        self.failures: list[dict] = []
        self._done = set() if opts.overwrite or opts.format == "files" else self._done_keys()
        self._writer: ShardWriter | None = None
        self._jsonl = None

    def _done_keys(self) -> set[str]:
        """Keys already encoded by this model in a jsonl file or shard folder."""
        sha, done = self.ident.model_sha256, set()
        if self.opts.format == "jsonl" and self.out.exists():
            for line in self.out.read_text().splitlines():
                try:
                    key, rec = from_json_line(line)
                except (json.JSONDecodeError, KeyError, TokenFileError):
                    continue  # a line cut by a kill; it is redone
                if rec.model.model_sha256 == sha:
                    done.add(key)
        elif self.opts.format == "shards" and self.out.is_dir():
            for shard in sorted(self.out.glob("*.tar")):
                done.update(key for key, rec, _ in iter_shard(shard) if rec.model.model_sha256 == sha)
        return done

    def _file(self, item: InputItem) -> Path:
        return self.out / (item.rel + TOKEN_SUFFIX)

    def has(self, item: InputItem) -> bool:
        """Whether ``item`` was already encoded by this model (and ``overwrite`` is off)."""
        if self.opts.overwrite:
            return False
        if self.opts.format != "files":
            return _item_key(self.opts, item) in self._done
        out = self._file(item)
        try:
            return out.exists() and read_token_header(out).get("model_sha256") == self.ident.model_sha256
        except (OSError, ValueError):
            return False  # unreadable: redo it

    def __enter__(self) -> TokenSink:
        opts = self.opts
        if opts.format == "shards":
            start = len(list(self.out.glob(f"rank{opts.rank}-*.tar"))) if self.out.is_dir() else 0
            self._writer = ShardWriter(opts.out, opts.shard_size, prefix=f"rank{opts.rank}", start=start)
        elif opts.format == "jsonl":
            self.out.parent.mkdir(parents=True, exist_ok=True)
            _drop_partial_last_line(self.out)
            self._jsonl = open(self.out, "a")
        return self

    def write(self, item: InputItem, codes: torch.Tensor, n_samples: int) -> None:
        rec = TokenRecord(codes.cpu().numpy().astype(np.int64), self.ident, n_samples, item.path)
        if self._writer is not None:
            self._writer.write(_item_key(self.opts, item), rec, item.text)
        elif self._jsonl is not None:
            self._jsonl.write(to_json_line(item.rel, rec) + "\n")
            self._jsonl.flush()
        else:
            save_tokens(self._file(item), rec)

    def fail(self, item: InputItem, reason: str) -> None:
        self.failures.append({"path": item.path, "reason": reason})
        if self.opts.fail_fast:
            raise RuntimeError(f"{item.path}: {reason} (--fail-fast)")

    def __exit__(self, *exc) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._jsonl is not None:
            self._jsonl.close()
        if self.failures:
            opts = self.opts
            folder = self.out if opts.format != "jsonl" else self.out.parent
            path = folder / ("failed.jsonl" if opts.world_size == 1 else f"failed.rank{opts.rank}.jsonl")
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text("".join(json.dumps(f) + "\n" for f in self.failures))


def _durations(items: list[InputItem]) -> list[float]:
    """Seconds of each item from the file header (0 for unreadable files: they are reported when loaded)."""
    out = []
    for it in items:
        try:
            out.append((it.end or audio.info(it.path).duration) - (it.start or 0.0))
        except AudioError:
            out.append(0.0)
    return out


def _short_batches(durations: list[float], indices: list[int], batch_seconds: float) -> list[list[int]]:
    """Batches of ``indices`` by duration; ``batch_seconds <= 0``: one file per batch (fastest on CPUs)."""
    one_each = batch_seconds <= 0
    sampler = DurationBatchSampler(
        [max(durations[i], 1e-3) for i in indices],
        float("inf") if one_each else batch_seconds,
        max_items=1 if one_each else None,
        shuffle=False,
        rank=0,
        world_size=1,
    )
    return [[indices[j] for j in b] for b in sampler.epoch_batches(0)]


def _progress(name: str, total: float, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        unit="s",
        disable=not enabled,
        desc=f"encode [{name}]",
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}{postfix}]",
    )


def encode_items(model, name: str, items: list[InputItem], opts: EncodeOptions) -> RunSummary:
    """Encode ``items`` with ``model`` as ``opts`` says (this rank's share; items already done are skipped);
    returns what happened. Short files are batched by duration; files longer than ``window_seconds`` are encoded
    in overlapping windows (codec) or by the tokenizer's own windowing (S3)."""
    t0, summary = time.time(), RunSummary()
    items = items[opts.rank :: opts.world_size]
    with TokenSink(opts, model_identity(model, name)) as sink:
        todo = [it for it in items if not sink.has(it)]
        summary.skipped = len(items) - len(todo)
        durations = _durations(todo)
        window = opts.window_seconds if hasattr(model, "hop_length") else float("inf")
        dataset = _AudioItems(todo, model.sample_rate)
        bar = _progress(name, sum(durations), opts.progress)

        def emit(i: int, codes: torch.Tensor, n_samples: int) -> None:
            sink.write(todo[i], codes, n_samples)
            summary.ok += 1
            summary.seconds += n_samples / model.sample_rate

        def fail(i: int, reason: str) -> None:
            summary.failed += 1
            sink.fail(todo[i], reason)

        try:
            short = [i for i, d in enumerate(durations) if d <= window]
            batches = _short_batches(durations, short, opts.batch_seconds) if short else []
            loader = DataLoader(dataset, batch_sampler=batches, collate_fn=_collate, num_workers=opts.n_workers)
            for batch in loader if batches else []:
                good = []
                for i, wav, err in batch:
                    if err is None:
                        good.append((i, wav))
                    else:
                        fail(i, err)
                if good:
                    wavs, lens = pad_sequences([w for _, w in good])
                    codes, code_lens = model.encode(wavs, lens)
                    for k, (i, w) in enumerate(good):
                        emit(i, codes[k, : code_lens[k]], w.shape[-1])
                bar.update(sum(durations[i] for i, _, _ in batch))
                speed = summary.seconds / max(time.time() - t0, 1e-9)
                bar.set_postfix_str(
                    f"{summary.ok} ok, {summary.failed} failed, {summary.seconds / 3600:.2f} h, {speed:.0f}x realtime"
                )
            for i in (i for i, d in enumerate(durations) if d > window):
                _, wav, err = dataset[i]
                if err is not None:
                    fail(i, err)
                else:
                    emit(i, encode_long(model, wav, opts.window_seconds, opts.overlap_seconds), wav.shape[-1])
                bar.update(durations[i])
        finally:
            bar.close()
            summary.failures = sink.failures
    summary.wall = time.time() - t0
    return summary


def _drop_partial_last_line(path: Path) -> None:
    """A run killed mid-line leaves a last line without newline: cut it so the line is redone cleanly."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with atomic_path(path) as tmp:
            tmp.write_bytes(data[: data.rfind(b"\n") + 1])


# ---------------------------------------------------------------------------------------------------- decode
def decode_tokens(
    model,
    name: str,
    inputs: Iterable[str],
    out: str,
    sample_rate: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Decode token inputs to wav files under ``out`` (mirroring their names); refuses tokens made by another
    model unless ``force``."""
    t0 = time.time()
    ident = model_identity(model, name)
    summary = RunSummary()
    for rel, rec in tqdm(iter_token_inputs(inputs), desc=f"decode [{name}]", unit="file", disable=not progress):
        if rec.model.model_sha256 != ident.model_sha256 and not force:
            raise TokenFileError(
                f"{rel}: tokens were made by {rec.model.tokenizer} {rec.model.model_sha256[:12]}, not by this model "
                f"({ident.model_sha256[:12]}); use --force to decode anyway"
            )
        if rec.model.codebook_size > model.codebook_size:
            raise TokenFileError(f"{rel}: codebook of {rec.model.codebook_size} does not fit this model")
        codes = torch.as_tensor(rec.codes, dtype=torch.long)[None]
        wav, _ = model.decode(codes, lengths=torch.tensor([rec.n_samples]))
        wav = wav[0].cpu()
        rate = sample_rate or model.sample_rate
        wav = audio.resample(wav, model.sample_rate, rate)
        audio.save(Path(out) / f"{rel}.wav", wav, rate)
        summary.ok += 1
        summary.seconds += rec.n_samples / model.sample_rate
    summary.wall = time.time() - t0
    return summary


def describe(path: str | os.PathLike) -> dict:
    """What a token file, shard, JSONL or checkpoint is (for ``audiotok info``)."""
    p = Path(path)
    if p.name.endswith(TOKEN_SUFFIX):
        rec = load_tokens(p)
        return {
            "kind": "token file",
            **read_token_header(p),
            "n_codes": len(rec.codes),
            "duration_s": rec.n_samples / rec.model.sample_rate,
            "dtype": "codes",
        }
    if p.suffix == ".tar":
        recs = list(iter_shard(p))
        return {"kind": "token shard", "items": len(recs), "tokenizer": recs[0][1].model.tokenizer if recs else None}
    if p.suffix == ".safetensors":
        from audiotok.checkpoint import read_metadata

        meta = read_metadata(p)
        if "codes" in meta or meta.get("tokenizer"):
            return {"kind": "token file", **meta}
        return {
            "kind": "checkpoint",
            "model_type": meta.get("model_type"),
            "format_version": meta.get("format_version"),
            "size_mb": round(p.stat().st_size / 1e6, 2),
            "config": json.loads(meta.get("config", "{}")),
        }
    raise ValueError(f"{p}: not a token file, shard or checkpoint")
