"""Token files: versioned, self-describing, no pickle.

A token file is a ``.safetensors`` holding one tensor ``codes`` (uint16, or int32 when the codebook exceeds 65,535;
shape ``(L,)`` for one utterance) and header metadata: ``format_version``, ``tokenizer`` (name), ``model_sha256``
(sha256 of the weights file), ``config_hash``, ``sample_rate``, ``frame_rate``, ``codebook_size``, ``n_samples``
(original length at ``sample_rate``) and ``source`` (input path). ``--format jsonl`` lines carry the same fields
plus ``id`` and ``codes`` as a list; ``--format shards`` writes WebDataset tar shards whose members are token files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load as st_load_bytes
from safetensors.numpy import save as st_save_bytes

from audiotok.utils import atomic_path

TOKEN_FORMAT_VERSION = "1"
TOKEN_SUFFIX = ".tokens.safetensors"


class TokenFileError(ValueError):
    """A token file that cannot be read, or that does not belong to the model at hand."""


@dataclass(frozen=True)
class TokenizerId:
    """What made a set of tokens: enough to refuse decoding them with another model."""

    tokenizer: str  # e.g. "audiotok-codec" or "s3-v2"
    model_sha256: str  # sha256 of the weights file
    config_hash: str  # sha256 of the model config JSON
    sample_rate: int
    frame_rate: float
    codebook_size: int


@dataclass(frozen=True)
class TokenRecord:
    """One utterance's tokens and where they came from."""

    codes: np.ndarray  # (L,) integer
    model: TokenizerId
    n_samples: int  # original length at model.sample_rate
    source: str = ""

    @property
    def id(self) -> str:
        return Path(self.source).stem if self.source else ""


def config_hash(config_dict: dict) -> str:
    return hashlib.sha256(json.dumps(config_dict, sort_keys=True).encode()).hexdigest()


def codes_dtype(codebook_size: int) -> np.dtype:
    return np.dtype(np.uint16) if codebook_size <= 65535 else np.dtype(np.int32)


def _metadata(record: TokenRecord) -> dict[str, str]:
    return {
        "format_version": TOKEN_FORMAT_VERSION,
        **{k: str(v) for k, v in asdict(record.model).items()},
        "n_samples": str(record.n_samples),
        "source": record.source,
    }


def _from_metadata(codes: np.ndarray, meta: dict[str, str], where: str) -> TokenRecord:
    if meta.get("format_version") != TOKEN_FORMAT_VERSION:
        raise TokenFileError(f"{where}: unsupported token format_version {meta.get('format_version')!r}")
    try:
        model = TokenizerId(
            str(meta["tokenizer"]),
            str(meta["model_sha256"]),
            str(meta["config_hash"]),
            int(meta["sample_rate"]),
            float(meta["frame_rate"]),
            int(meta["codebook_size"]),
        )
        record = TokenRecord(codes, model, int(meta["n_samples"]), str(meta.get("source", "")))
    except (KeyError, TypeError, ValueError, OverflowError) as err:  # OverflowError: int() of an infinite rate
        raise TokenFileError(f"{where}: incomplete token metadata ({err})") from None
    return _checked(record, where)


def _checked(record: TokenRecord, where: str) -> TokenRecord:
    """``record`` with its codes as int64, once they and the lengths are consistent: one row of integers within
    the codebook, a frame rate from 1 Hz to the sample rate, and an ``n_samples`` that the codes could have come
    from (at most twice the audio they cover plus a second, which every tokenizer's rounding and windowing stays
    far within)."""
    m, codes = record.model, record.codes
    if m.codebook_size < 1 or m.sample_rate < 1 or not (1 <= m.frame_rate <= m.sample_rate):
        raise TokenFileError(
            f"{where}: invalid codebook_size {m.codebook_size}, sample_rate {m.sample_rate} or frame_rate "
            f"{m.frame_rate}"
        )
    if codes.ndim != 1 or codes.dtype.kind not in "iu":
        raise TokenFileError(f"{where}: codes must be one row of integers, not {codes.dtype} of shape {codes.shape}")
    codes = codes.astype(np.int64)
    if codes.size and (codes.min() < 0 or codes.max() >= m.codebook_size):
        raise TokenFileError(
            f"{where}: codes [{codes.min()}, {codes.max()}] outside the codebook [0, {m.codebook_size})"
        )
    limit = 2 * (len(codes) + 1) * m.sample_rate / m.frame_rate + m.sample_rate
    if not 0 <= record.n_samples <= limit:
        raise TokenFileError(
            f"{where}: n_samples {record.n_samples} does not fit {len(codes)} codes at {m.frame_rate} Hz "
            f"(at most {int(limit)} samples at {m.sample_rate} Hz)"
        )
    return TokenRecord(codes, m, record.n_samples, record.source)


def to_bytes(record: TokenRecord) -> bytes:
    codes = np.asarray(record.codes)
    if codes.size and (codes.min() < 0 or codes.max() >= record.model.codebook_size):
        raise TokenFileError(f"codes outside [0, {record.model.codebook_size})")
    return st_save_bytes({"codes": codes.astype(codes_dtype(record.model.codebook_size))}, metadata=_metadata(record))


def from_bytes(data: bytes, where: str = "<bytes>") -> TokenRecord:
    try:
        tensors = st_load_bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except Exception as err:  # safetensors raises its own types
        raise TokenFileError(f"{where}: not a token file ({err})") from None
    if "codes" not in tensors:
        raise TokenFileError(f"{where}: no 'codes' tensor")
    return _from_metadata(tensors["codes"], meta, where)


def save_tokens(path: str | os.PathLike, record: TokenRecord) -> Path:
    """Write a token file atomically."""
    path = Path(path)
    data = to_bytes(record)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def load_tokens(path: str | os.PathLike) -> TokenRecord:
    path = Path(path)
    if not path.is_file():
        raise TokenFileError(f"{path}: token file not found")
    return from_bytes(path.read_bytes(), str(path))


def read_token_header(path: str | os.PathLike) -> dict[str, str]:
    """Metadata only (reads the header, not the codes)."""
    path = Path(path)
    if not path.is_file():
        raise TokenFileError(f"{path}: token file not found")
    with open(path, "rb") as f:
        n, size = int.from_bytes(f.read(8), "little"), os.fstat(f.fileno()).st_size
        if size < 8 or n > size - 8:  # before reading: a header size from the file is not an allocation size
            raise TokenFileError(f"{path}: not a token file (header of {n} bytes in a file of {size})")
        try:
            meta = json.loads(f.read(n)).get("__metadata__") or {}
        except (ValueError, AttributeError) as err:  # not JSON, or not a JSON object
            raise TokenFileError(f"{path}: not a token file (header: {err})") from None
    if not isinstance(meta, dict):
        raise TokenFileError(f"{path}: not a token file (its __metadata__ is not an object)")
    return meta


def to_json_line(utt_id: str, record: TokenRecord) -> str:
    return json.dumps({"id": utt_id, "codes": [int(c) for c in record.codes], **_metadata(record)})


def from_json_line(line: str, where: str = "<jsonl>") -> tuple[str, TokenRecord]:
    try:
        d = json.loads(line)
        codes = np.asarray(d["codes"])  # ints beyond int64 stay objects, floats floats: refused below
    except (KeyError, TypeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise TokenFileError(f"{where}: not a token line ({err!r})") from None
    if not isinstance(d, dict):
        raise TokenFileError(f"{where}: not a token line (not a JSON object)")
    return str(d.get("id", "")), _from_metadata(codes if codes.size else codes.astype(np.int64), d, where)


class ShardWriter:
    """WebDataset-style tar shards of ``shard_size`` items: members ``<key>.tokens.safetensors`` (+ ``<key>.txt``).

    Each shard is written to a temporary name and renamed when complete.
    """

    def __init__(self, out_dir: str | os.PathLike, shard_size: int = 1000, prefix: str = "shard", start: int = 0):
        self.out_dir = Path(out_dir)
        self.shard_size, self.prefix = shard_size, prefix
        self.index, self.count = start, 0
        self._tar, self._tmp, self.written = None, None, []

    def _open(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._final = self.out_dir / f"{self.prefix}-{self.index:06d}.tar"
        self._tmp = self._final.with_name(f".tmp{os.getpid()}.{self._final.name}")
        self._tar = tarfile.open(self._tmp, "w")

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))

    def write(self, key: str, record: TokenRecord, text: str | None = None) -> None:
        if self._tar is None:
            self._open()
        key = key.replace("/", "__").replace(".", "_")  # WebDataset keys: no dots, no folders
        self._add(f"{key}{TOKEN_SUFFIX}", to_bytes(record))
        if text is not None:
            self._add(f"{key}.txt", text.encode())
        self.count += 1
        if self.count >= self.shard_size:
            self._close()

    def _close(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        os.replace(self._tmp, self._final)
        self.written.append(self._final)
        self._tar, self.count = None, 0
        self.index += 1

    def close(self) -> list[Path]:
        self._close()
        return self.written


def iter_shard(path: str | os.PathLike):
    """Yield ``(key, TokenRecord, text or None)`` from a shard written by :class:`ShardWriter`."""
    texts, records = {}, []
    try:
        with tarfile.open(path, "r") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                data = tar.extractfile(member).read()
                if member.name.endswith(TOKEN_SUFFIX):
                    records.append((member.name[: -len(TOKEN_SUFFIX)], from_bytes(data, f"{path}:{member.name}")))
                elif member.name.endswith(".txt"):
                    texts[member.name[:-4]] = data.decode()
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as err:
        raise TokenFileError(f"{path}: not a token shard ({' '.join(str(err).split())})") from None
    for key, record in records:
        yield key, record, texts.get(key)


def codes_tensor(record: TokenRecord) -> torch.Tensor:
    return torch.from_numpy(np.asarray(record.codes, dtype=np.int64))


def model_identity(model, name: str) -> TokenizerId:
    """The tokenizer's identity for token files: weights hash (of the loaded file when known), config hash."""
    from audiotok.config import to_dict

    sha = getattr(model, "weights_sha256", None)
    if sha is None:
        h = hashlib.sha256()
        for k, v in sorted(model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().float().numpy().tobytes())
        sha = h.hexdigest()
    return TokenizerId(
        name,
        sha,
        config_hash(to_dict(model.config)),
        int(model.sample_rate),
        float(model.frame_rate),
        int(model.codebook_size),
    )


def iter_token_inputs(inputs: Iterable[str]):
    """Yield ``(rel, TokenRecord)`` from token files, folders of them, JSONL files and shards."""
    for spec in inputs:
        p = Path(spec)
        if p.is_dir():
            for f in sorted(p.rglob("*" + TOKEN_SUFFIX)):
                yield str(f.relative_to(p))[: -len(TOKEN_SUFFIX)], load_tokens(f)
            for f in sorted(p.rglob("*.tar")):
                for key, rec, _ in iter_shard(f):
                    yield key, rec
        elif p.suffix == ".tar":
            for key, rec, _ in iter_shard(p):
                yield key, rec
        elif p.name.endswith(".jsonl"):
            try:
                text = p.read_text()
            except UnicodeDecodeError as err:
                raise TokenFileError(f"{p}: not a JSONL token file ({err})") from None
            for n, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    yield from_json_line(line, f"{p}:{n}")
        else:
            yield p.name[: -len(TOKEN_SUFFIX)] if p.name.endswith(TOKEN_SUFFIX) else p.stem, load_tokens(p)
