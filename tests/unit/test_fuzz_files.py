"""Files from strangers: hub ids mean loading files someone else made.

Statically, no loader may run code: every ``torch.load`` passes ``weights_only=True``, and nothing unpickles,
loads unsafe YAML or passes ``trust_remote_code``. Then a fuzz: from one valid tiny file of each format we read
(a token file, its JSONL line and shard; our safetensors checkpoints of a tiny codec and a tiny semantic tokenizer;
a WavTokenizer Lightning ``.ckpt``; an openai-whisper ``.pt``; an S3Tokenizer ``.onnx``), a seeded RNG writes
:data:`N_CASES` mutated files across kinds (truncated, header size wrong or huge, header JSON corrupted, dtype and
shapes changed, codes out of range, ``n_samples`` of 10^12, a codebook size that disagrees with the model, byte
flips, empty files, pickles that call code, ...). Each is read through the public loader (the token readers,
:func:`audiotok.registry.load`) and must either load (a flipped byte in float data is still a valid file:
"accepted") or raise a :class:`TokenFileError` / :class:`CheckpointError` whose message names the file: never
another exception type, a crash, a hang (each case gets 2 s; an alarm stops a real hang) or a large allocation
(the address space is capped at the start plus 3 GiB while the cases run). The count by kind is printed and is
in the failure message. ``audiotok decode`` gets a few mutated token files through its Python entry point.

The tiny files reuse the helpers of ``test_hub_resolvers`` (tiny codec, tiny S3 models, the ONNX writer: ``onnx`` is a
core dependency, so the ``.onnx`` format is fuzzed too) and its small Whisper dims; the WavTokenizer ``.ckpt`` is a
tiny config's model written in the released key layout (the inverse of
:func:`audiotok.codec.official.convert_state_dict`).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import io
import json
import random
import resource
import signal
import struct
import tarfile
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from audiotok import registry
from audiotok.checkpoint import CheckpointError
from audiotok.tokens import (
    TOKEN_SUFFIX,
    TokenFileError,
    TokenRecord,
    iter_shard,
    iter_token_inputs,
    load_tokens,
    model_identity,
    read_token_header,
    save_tokens,
    to_json_line,
)
from tests.conftest import speechlike
from tests.unit.test_hub_resolvers import _tiny_codec, tiny_s3, write_s3_onnx

ROOT = Path(__file__).resolve().parents[2]
N_CASES = 1000
SEED = 20251207
CASE_SECONDS = 2.0  # each case must finish well within this (a loaded 2-core box included)
ALARM_SECONDS = 20  # a real hang is stopped here and reported as one
MEMORY_HEADROOM = 3 << 30  # bytes of address space the cases may add
CLEAR = (TokenFileError, CheckpointError)  # the project's file errors (ModelNotFound is a CheckpointError)


# ------------------------------------------------------------------------------------------------ static check
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def unsafe_loads(source: str, where: str = "<source>") -> list[str]:
    """What in ``source`` could run code while reading a file: ``torch.load`` without ``weights_only=True``,
    ``pickle``/``dill``/``joblib``/``marshal`` loads, ``yaml.load``/``unsafe_load``, ``np.load(allow_pickle=True)``,
    ``torch.jit.load`` and ``trust_remote_code`` other than False."""
    found = []
    tree = ast.parse(source, where)
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
        module = node.module if isinstance(node, ast.ImportFrom) else None
        if any(n.split(".")[0] in ("pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal") for n in names) or (
            module and module.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib", "marshal")
        ):
            found.append(f"{where}:{node.lineno}: imports {module or names}")
    for call, func in _calls(tree):
        kw = {k.arg: k.value for k in call.keywords}
        line = f"{where}:{call.lineno}: {ast.unparse(call)[:120]}"
        if func == "torch.load":
            value = kw.get("weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                found.append(line)
        elif func in ("torch.jit.load", "yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
            found.append(line)
        elif func in ("np.load", "numpy.load") and not (
            isinstance(kw.get("allow_pickle", ast.Constant(False)), ast.Constant)
            and kw.get("allow_pickle", ast.Constant(False)).value is False
        ):
            found.append(line)
        if "trust_remote_code" in kw and not (
            isinstance(kw["trust_remote_code"], ast.Constant) and kw["trust_remote_code"].value is False
        ):
            found.append(line)
    return found


def test_no_loader_can_run_code_from_a_file():
    files = [p for d in ("audiotok", "tts", "asr") for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50
    bad = [hit for p in files for hit in unsafe_loads(p.read_text(), str(p.relative_to(ROOT)))]
    assert not bad, "loaders that could run code from a file:\n" + "\n".join(bad)
    # the check sees each kind of violation
    sample = (
        "import pickle\nimport torch, yaml\ntorch.load(p)\ntorch.load(p, weights_only=False)\nyaml.load(s)\n"
        "AutoModel.from_pretrained(x, trust_remote_code=True)\ntorch.load(p, weights_only=True)\nyaml.safe_load(s)\n"
    )
    assert [h.split(":")[1] for h in unsafe_loads(sample)] == ["1", "3", "4", "5", "6"]


# ------------------------------------------------------------------------------------------- the valid files
def _wavtokenizer_config() -> dict:
    """A tiny config in the released YAML's layout: one downsampling (hop 2), 16 codes, a narrow decoder."""
    from audiotok.codec.official import release_config

    cfg = release_config(320)
    args = cfg["model"]["init_args"]
    args["feature_extractor"]["init_args"].update(dowmsamples=[2], vq_bins=16)
    args["backbone"]["init_args"].update(dim=32, intermediate_dim=64, num_layers=1)
    args["head"]["init_args"].update(dim=32, n_fft=8, hop_length=2)
    return cfg


def _released_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our codec's state dict under the released checkpoint's names (inverse of ``convert_state_dict``)."""
    out = {}
    for key, value in state.items():
        if key.startswith("encoder."):
            name = "feature_extractor.encodec.encoder." + key[len("encoder.") :]
            name = name.replace(".conv.parametrizations.weight.original0", ".conv.conv.weight_g")
            name = name.replace(".conv.parametrizations.weight.original1", ".conv.conv.weight_v")
            out[name.replace(".conv.bias", ".conv.conv.bias")] = value
        elif key.startswith("quantizer.vq._codebook."):
            field = key.rsplit(".", 1)[1]
            base = "feature_extractor.encodec.quantizer.vq.layers.0._codebook."
            if field == "initted":
                out[base + "inited"] = torch.ones(1)
            else:
                out[base + field] = value.squeeze(0)
        else:
            out[key] = value
    return out


@dataclasses.dataclass
class Valid:
    """The valid tiny files the mutations start from."""

    root: Path
    codec: Path  # our safetensors checkpoint of a tiny codec
    semantic: Path  # ... of a tiny semantic tokenizer
    tokens: Path  # a token file made by ``codec``
    wavtokenizer: Path  # a WavTokenizer .ckpt (its config: ``wt_config``)
    wt_config: dict
    whisper: Path  # an openai-whisper .pt
    onnx: Path  # an S3Tokenizer .onnx


def _canonical(path: Path) -> Path:
    """A safetensors file rewritten with its header keys sorted (safetensors writes them in hash order, which
    changes from process to process), so that the seeded mutations are the same in every run."""
    path.write_bytes(st_join(*st_split(path.read_bytes())))
    return path


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Valid:
    from audiotok.codec.model import Codec
    from audiotok.codec.official import config_from_dict, convert_state_dict
    from audiotok.whisper import new_whisper, save_openai, small_dims

    root = tmp_path_factory.mktemp("valid")
    codec_path = _canonical(_tiny_codec(0).save(root / "codec.safetensors"))
    codec = registry.load(codec_path, "codec")  # as `audiotok decode --model` loads it (weights_sha256 set)
    codes, _ = codec.encode(speechlike(6000, 24000))
    varied = (np.arange(codes.shape[-1]) * 7 + 3) % codec.codebook_size  # a random codec's codes are all one code
    record = TokenRecord(varied, model_identity(codec, "tiny-codec"), 6000, "utt.wav")  # (a path would vary)
    tokens = _canonical(save_tokens(root / f"utt{TOKEN_SUFFIX}", record))
    semantic = _canonical(tiny_s3("speech_tokenizer_v1_25hz").save(root / "semantic.safetensors"))
    onnx_path = write_s3_onnx(tiny_s3("speech_tokenizer_v1"), root / "speech_tokenizer_v1.onnx", "speech_tokenizer_v1")

    wt_config = _wavtokenizer_config()
    torch.manual_seed(0)
    wt = Codec(config_from_dict(wt_config)).eval()
    released = _released_layout(wt.state_dict())
    converted = convert_state_dict(released)
    assert converted.keys() == wt.state_dict().keys()  # the inverse is right
    wt_path = root / "wavtokenizer_tiny.ckpt"
    torch.save({"state_dict": released, "pytorch-lightning_version": "2.1.0", "global_step": 0}, wt_path)
    loaded = registry.load(wt_path, "codec", config=wt_config).state_dict()
    same = [torch.equal(loaded[k], v) for k, v in wt.state_dict().items() if not k.endswith("initted")]
    assert all(same) and loaded["quantizer.vq._codebook.initted"]  # the released layout (k-means done: inited=1)

    dims = dataclasses.replace(small_dims(seconds=0.2, n_state=32, n_head=2, n_layer=1, n_text_ctx=8), n_vocab=64)
    whisper = save_openai(new_whisper(dims, seed=0), root / "whisper_tiny.pt")
    return Valid(root, codec_path, semantic, tokens, wt_path, wt_config, whisper, onnx_path)


# ------------------------------------------------------------------------------------------------ mutations
# A mutator is (rng, data) -> bytes, or -> (bytes, options) where options go to the loader (a WavTokenizer's
# config). ``data`` is the valid file's bytes.
Mutator = Callable[[random.Random, bytes], "bytes | tuple[bytes, dict]"]

_ST_DTYPES = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64", "F8_E4M3"]
_ST_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4}
_ST_SIZES.update({"F64": 8, "I64": 8, "U64": 8, "F8_E4M3": 1})
_HUGE = [10**12, 2**31, 2**32 + 1, 2**63 - 1, 10**18]


def st_split(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def st_join(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def truncated(rng, data):
    return data[: rng.randrange(len(data))]


def empty(rng, data):
    return b""


def byte_flips(rng, data):
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def random_bytes(rng, data):
    return rng.randbytes(rng.choice([1, 7, 8, 9, 64, 4096]))


def header_len_huge(rng, data):
    return struct.pack("<Q", rng.choice([len(data) - 7, len(data) + 1, *_HUGE, 2**64 - 1])) + data[8:]


def header_len_wrong(rng, data):
    n = struct.unpack("<Q", data[:8])[0]
    return struct.pack("<Q", max(0, n + rng.choice([-1, 1]) * rng.randint(1, 64))) + data[8:]


def header_json_corrupt(rng, data):
    n = struct.unpack("<Q", data[:8])[0]
    head = bytearray(data[8 : 8 + n])
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(head))
        head[i] = rng.choice(b'{}[]",:\\0 \xff-e9')
    return data[:8] + bytes(head) + data[8 + n :]


def st_dtype_changed(rng, data):
    header, body = st_split(data)
    key = rng.choice([k for k in header if k != "__metadata__"])
    header[key]["dtype"] = rng.choice([d for d in _ST_DTYPES if d != header[key]["dtype"]] + ["X9", ""])
    return st_join(header, body)


def st_shape_changed(rng, data):
    header, body = st_split(data)
    key = rng.choice([k for k in header if k != "__metadata__"])
    shape = header[key]["shape"]
    header[key]["shape"] = rng.choice(
        [[], [0], [rng.choice(_HUGE)], [*shape, 1], shape[:-1], [x + 1 for x in shape], [2, -1], [10**6, 10**6]]
    )
    return st_join(header, body)


def st_offsets_changed(rng, data):
    header, body = st_split(data)
    key = rng.choice([k for k in header if k != "__metadata__"])
    a, b = header[key]["data_offsets"]
    header[key]["data_offsets"] = rng.choice([[b, a], [a, b + 8], [a, rng.choice(_HUGE)], [-1, b], [a + 1, b + 1]])
    return st_join(header, body)


def _st_meta(edit: Callable[[random.Random, dict], None]) -> Mutator:
    def mutate(rng, data):
        header, body = st_split(data)
        meta = dict(header.get("__metadata__", {}))
        edit(rng, meta)
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}  # safetensors metadata are strings
        return st_join(header, body)

    return mutate


# ------------------------------------------------------------------------------------- token file mutations
def _codes_of(data: bytes) -> tuple[np.ndarray, dict]:
    from safetensors.numpy import load

    return load(data)["codes"], st_split(data)[0]["__metadata__"]


def _token_bytes(codes: np.ndarray, meta: dict) -> bytes:
    """A well-formed safetensors token file of ``codes`` as given (``to_bytes`` would refuse bad ones)."""
    from safetensors.numpy import save

    return save({"codes": codes}, metadata={k: str(v) for k, v in meta.items()})


def codes_out_of_range(rng, data):
    codes, meta = _codes_of(data)
    size = int(meta["codebook_size"])
    codes = codes.astype(np.int64)
    codes[rng.randrange(len(codes))] = rng.choice([size, size + 1, 2**31 - 1, -1, -(2**31)])
    return _token_bytes(codes.astype(np.int32 if codes.min() < 0 or codes.max() > 65535 else np.uint16), meta)


def codes_wrong_dtype(rng, data):
    codes, meta = _codes_of(data)
    dtype = rng.choice([np.float32, np.float16, np.bool_, np.int8, np.uint64, np.complex64, np.float64])
    return _token_bytes(codes.astype(dtype), meta)


def codes_wrong_shape(rng, data):
    codes, meta = _codes_of(data)
    shaped = rng.choice([codes[None], codes.reshape(-1, 1), codes[:0].reshape(0, 0), np.asarray(codes[0])])
    return _token_bytes(np.ascontiguousarray(shaped), meta)


def n_samples_bad(rng, meta):
    meta["n_samples"] = rng.choice([10**12, 10**15, -1, 2**64, "1e12", "nan", "", "24000.5", "9" * 5000])


def codebook_disagrees(rng, meta):
    # smaller than the codes, absurd, or larger than the model's (64): the reader or the decoder must refuse it
    meta["codebook_size"] = rng.choice([1, 8, 0, -64, 10**12, 4096, 65, "x"])


def rates_bad(rng, meta):
    key = rng.choice(["sample_rate", "frame_rate"])
    meta[key] = rng.choice(["0", "-24000", "nan", "inf", "1e-300", "1e300", "abc", ""])


def metadata_missing(rng, meta):
    key = rng.choice(["tokenizer", "model_sha256", "config_hash", "sample_rate", "frame_rate", "codebook_size"])
    if rng.random() < 0.7:
        del meta[key]
    else:
        meta["format_version"] = rng.choice(["", "2", "0", "1.0"])


def no_codes_tensor(rng, data):
    codes, meta = _codes_of(data)
    from safetensors.numpy import save

    return save({rng.choice(["code", "weights", "Codes"]): codes}, metadata=meta)


TOKEN_MUTATORS: dict[str, Mutator] = {
    "empty": empty,
    "truncated": truncated,
    "byte_flips": byte_flips,
    "random_bytes": random_bytes,
    "header_len_huge": header_len_huge,
    "header_len_wrong": header_len_wrong,
    "header_json_corrupt": header_json_corrupt,
    "dtype_changed": st_dtype_changed,
    "shape_changed": st_shape_changed,
    "offsets_changed": st_offsets_changed,
    "codes_out_of_range": codes_out_of_range,
    "codes_wrong_dtype": codes_wrong_dtype,
    "codes_wrong_shape": codes_wrong_shape,
    "no_codes_tensor": no_codes_tensor,
    "n_samples_bad": _st_meta(n_samples_bad),
    "codebook_disagrees": _st_meta(codebook_disagrees),
    "rates_bad": _st_meta(rates_bad),
    "metadata_missing": _st_meta(metadata_missing),
}


def _line_edit(edit: Callable[[random.Random, dict], None]) -> Mutator:
    def mutate(rng, data):
        d = json.loads(data)
        edit(rng, d)
        return json.dumps(d).encode()

    return mutate


def _codes_edit(rng, d):
    d["codes"] = rng.choice([[64], [-1], [2**70], [1.5, 2], [[1, 2], [3]], "abc", {"a": 1}, None, [True]])


JSONL_MUTATORS: dict[str, Mutator] = {
    "truncated": truncated,
    "byte_flips": byte_flips,
    "not_an_object": lambda rng, data: rng.choice([b"[1, 2]", b'"codes"', b"3", b"null", b"{"]),
    "codes_bad": _line_edit(_codes_edit),
    "n_samples_bad": _line_edit(lambda rng, d: n_samples_bad(rng, d)),
    "codebook_disagrees": _line_edit(lambda rng, d: codebook_disagrees(rng, d)),
    "metadata_missing": _line_edit(lambda rng, d: metadata_missing(rng, d)),
    "field_types": _line_edit(lambda rng, d: d.update({rng.choice(list(d)): rng.choice([[], {}, None, 1e309])})),
}


def _shard(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def shard_member_mutated(rng, data):
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.getmembers()[0]
        inner = tar.extractfile(member).read()
    kind = rng.choice(sorted(TOKEN_MUTATORS))
    return _shard({member.name: TOKEN_MUTATORS[kind](rng, inner), "utt.txt": b"hello"})


def shard_text_not_utf8(rng, data):
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.getmembers()[0]
        inner = tar.extractfile(member).read()
    return _shard({member.name: inner, "utt.txt": b"\xff\xfe\xfa"})


def shard_size_field_huge(rng, data):
    out = bytearray(data)
    out[124:136] = b"%011o\0" % rng.choice([8**11 - 1, 10**9])  # the first member's octal size field
    return bytes(out)


SHARD_MUTATORS: dict[str, Mutator] = {
    "empty": empty,
    "truncated": truncated,
    "byte_flips": byte_flips,
    "member_mutated": shard_member_mutated,
    "text_not_utf8": shard_text_not_utf8,
    "size_field_huge": shard_size_field_huge,
}


# ------------------------------------------------------------------------------- our checkpoint mutations
def _config_edit(path: list[str], values: list) -> Callable[[random.Random, dict], None]:
    def edit(rng, meta):
        config = json.loads(meta["config"])
        node = config
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = rng.choice(values)
        meta["config"] = json.dumps(config)

    return edit


def config_broken(rng, meta):
    choice = rng.randrange(6)
    if choice == 0:
        meta["config"] = meta["config"][: rng.randrange(len(meta["config"]))]
    elif choice == 1:
        del meta["config"]
    elif choice == 2:
        meta["config"] = rng.choice(["[]", "null", '"x"', "1"])
    elif choice == 3:
        meta["config"] = json.dumps({**json.loads(meta["config"]), "nope": 1})
    elif choice == 4:
        meta["model_type"] = rng.choice(["audiotok-s3", "audiotok-codec", "openai-whisper", "evil", ""])
    else:
        meta["format_version"] = rng.choice(["2", "", "0"])


def compact_rows_bad(rng, meta):
    key = rng.choice(["quantizer._codebook.embed", "encoder.conv1.weight", "quantizer.codebook", "nope"])
    meta["compact_rows"] = rng.choice([json.dumps({key: rng.choice(_HUGE)}), json.dumps({key: -1}), "{", "[1]"])


def shared_tensors_bad(rng, meta):
    file = rng.choice(["../../../etc/passwd", "/etc/passwd", "missing.safetensors", "", ".."])
    meta["shared_tensors"] = rng.choice(
        [json.dumps({"file": file, "keys": {"a": "b"}}), json.dumps({"keys": 1}), "{", json.dumps([file])]
    )


def checkpoint_mutators(codebook_path: list[str], layers_path: list[str]) -> dict[str, Mutator]:
    return {
        "empty": empty,
        "truncated": truncated,
        "byte_flips": byte_flips,
        "random_bytes": random_bytes,
        "header_len_huge": header_len_huge,
        "header_len_wrong": header_len_wrong,
        "header_json_corrupt": header_json_corrupt,
        "dtype_changed": st_dtype_changed,
        "shape_changed": st_shape_changed,
        "offsets_changed": st_offsets_changed,
        "codebook_disagrees": _st_meta(_config_edit(codebook_path, [8, 63, 65, 4096, 10**12, 0, -1, "64"])),
        "layers_huge": _st_meta(_config_edit(layers_path, [10**9, 10**6, 2**31, -1])),
        "config_broken": _st_meta(config_broken),
        "compact_rows_bad": _st_meta(compact_rows_bad),
        "shared_tensors_bad": _st_meta(shared_tensors_bad),
    }


# ----------------------------------------------------------------------------------- torch pickle mutations
class _RunsCode:
    """A pickle that calls ``exec`` when unpickled (it would create ``marker``)."""

    marker = ""

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _torch_obj(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=True)


def zip_pickle_corrupt(rng, data):
    """The archive rewritten with its ``data.pkl`` mutated (truncated or bytes flipped), the tensors kept."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith("data.pkl"):
                body = truncated(rng, body) if rng.random() < 0.3 else byte_flips(rng, body)
            out.writestr(info.filename, body)
    return buf.getvalue()


def pickled_code(marker: Path) -> Mutator:
    def mutate(rng, data):
        evil = _RunsCode()
        evil.marker = str(marker)
        obj = _torch_obj(data)
        where = rng.choice(["top", "inside"])
        return _torch_bytes(evil if where == "top" else {**obj, "hyper_parameters": evil})

    return mutate


def _state_edit(key_of: str, edit: Callable[[random.Random, dict, dict], object]) -> Mutator:
    """Mutate the unpickled object (its state dict under ``key_of``) and save it again."""

    def mutate(rng, data):
        obj = _torch_obj(data)
        result = edit(rng, obj, obj[key_of])
        return result if isinstance(result, tuple) else _torch_bytes(obj)

    return mutate


def _tensor_dtype(rng, obj, state):
    key = rng.choice(sorted(state))
    state[key] = state[key].to(rng.choice([torch.float64, torch.float16, torch.int64, torch.bool, torch.complex64]))


def _tensor_shape(rng, obj, state):
    key = rng.choice(sorted(state))
    v = state[key]
    state[key] = rng.choice([v.flatten(), v[:0], torch.zeros(*v.shape, 2), v[None], torch.zeros(3, 5)])


def _tensor_missing(rng, obj, state):
    for key in rng.sample(sorted(state), rng.randint(1, 3)):
        del state[key]


def _not_tensors(rng, obj, state):
    state[rng.choice(sorted(state))] = rng.choice(["weights", 3, None, [1.0, 2.0], {"a": torch.zeros(2)}])


def _top_not_a_dict(rng, data):
    return _torch_bytes(rng.choice([[1, 2], torch.zeros(3), "state_dict", None, {"state_dict": [1]}]))


def _wt_codebook(rng, obj, state):
    """The codebook's rows disagree with the config's ``vq_bins`` (16): more or fewer rows, all its tensors."""
    rows = rng.choice([8, 17, 64])
    base = "feature_extractor.encodec.quantizer.vq.layers.0._codebook."
    state[base + "embed"] = torch.randn(rows, state[base + "embed"].shape[1])
    state[base + "embed_avg"] = state[base + "embed"].clone()
    state[base + "cluster_size"] = torch.ones(rows)


def wt_config_disagrees(config: dict) -> Mutator:
    """The YAML's codebook size (or another size) disagrees with the checkpoint's tensors."""

    def mutate(rng, data):
        cfg = copy.deepcopy(config)
        args = cfg["model"]["init_args"]
        section, key, values = rng.choice(
            [
                ("feature_extractor", "vq_bins", [8, 17, 4096, 10**12]),
                ("backbone", "dim", [64, 10**9]),
                ("backbone", "num_layers", [2, 0, 10**9]),
                ("backbone", "input_channels", [256]),
            ]
        )
        args[section]["init_args"][key] = rng.choice(values)
        return data, {"config": cfg}

    return mutate


def wavtokenizer_mutators(config: dict, marker: Path) -> dict[str, Mutator]:
    return {
        "empty": empty,
        "truncated": truncated,
        "byte_flips": byte_flips,
        "random_bytes": random_bytes,
        "zip_pickle_corrupt": zip_pickle_corrupt,
        "pickled_code": pickled_code(marker),
        "not_a_dict": _top_not_a_dict,
        "dtype_changed": _state_edit("state_dict", _tensor_dtype),
        "shape_changed": _state_edit("state_dict", _tensor_shape),
        "tensors_missing": _state_edit("state_dict", _tensor_missing),
        "not_tensors": _state_edit("state_dict", _not_tensors),
        "codebook_disagrees": _state_edit("state_dict", _wt_codebook),
        "config_disagrees": wt_config_disagrees(config),
    }


def _dims_huge(rng, obj, state):
    key = rng.choice(["n_audio_layer", "n_text_layer", "n_audio_head", "n_text_head", *sorted(obj["dims"])])
    obj["dims"][key] = rng.choice(_HUGE)


def _dims_wrong(rng, obj, state):
    dims, key = obj["dims"], rng.choice(sorted(obj["dims"]))
    choice = rng.randrange(4)
    if choice == 0:
        del dims[key]
    elif choice == 1:
        dims["n_experts"] = 4
    elif choice == 2:
        dims[key] = rng.choice([0, -1, "32", 32.0, True, None])
    else:
        dims[key] += rng.choice([1, -1])


def _text_unit(rng, obj, state):
    obj["text_unit"] = rng.choice(["bytes", "", None, 1, ["bpe"]])


def whisper_mutators(marker: Path) -> dict[str, Mutator]:
    return {
        "empty": empty,
        "truncated": truncated,
        "byte_flips": byte_flips,
        "random_bytes": random_bytes,
        "zip_pickle_corrupt": zip_pickle_corrupt,
        "pickled_code": pickled_code(marker),
        "not_a_dict": _top_not_a_dict,
        "dims_huge": _state_edit("model_state_dict", _dims_huge),
        "dims_wrong": _state_edit("model_state_dict", _dims_wrong),
        "text_unit_bad": _state_edit("model_state_dict", _text_unit),
        "dtype_changed": _state_edit("model_state_dict", _tensor_dtype),
        "shape_changed": _state_edit("model_state_dict", _tensor_shape),
        "tensors_missing": _state_edit("model_state_dict", _tensor_missing),
        "not_tensors": _state_edit("model_state_dict", _not_tensors),
    }


# ------------------------------------------------------------------------------------------ ONNX mutations
def _onnx_edit(edit: Callable[[random.Random, object], None]) -> Mutator:
    def mutate(rng, data):
        import onnx

        model = onnx.load_from_string(data)
        edit(rng, model)
        return model.SerializeToString()

    return mutate


def _init_dims(rng, model):
    init = rng.choice(list(model.graph.initializer))
    dims = list(init.dims)
    del init.dims[:]
    init.dims.extend(rng.choice([[rng.choice(_HUGE)], [*dims, 2], dims[:-1] or [0], [10**6, 10**6], [-1]]))


def _init_dtype(rng, model):
    init = rng.choice(list(model.graph.initializer))
    init.data_type = rng.choice([0, 2, 3, 6, 7, 9, 10, 11, 16, 22, 99])


def _init_external(rng, model):
    from onnx import TensorProto

    init = rng.choice(list(model.graph.initializer))
    init.data_location = TensorProto.EXTERNAL
    entry = init.external_data.add()
    entry.key, entry.value = "location", rng.choice(["/etc/passwd", "../../../etc/hostname", "weights.bin"])
    init.ClearField("raw_data")


def _init_raw_cut(rng, model):
    init = rng.choice([i for i in model.graph.initializer if i.raw_data])
    init.raw_data = init.raw_data[: rng.randrange(len(init.raw_data))]


def _nodes_removed(rng, model):
    nodes = list(model.graph.node)
    keep = [n for n in nodes if rng.random() < 0.5]
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _node_renamed(rng, model):
    node = rng.choice(list(model.graph.node))
    node.name = rng.choice(["/blocks.7/attn/query/MatMul", "/blocks.x/attn/Add", "", "/conv1/Conv", "/blocks.0/mlp"])


ONNX_MUTATORS: dict[str, Mutator] = {
    "empty": empty,
    "truncated": truncated,
    "byte_flips": byte_flips,
    "random_bytes": random_bytes,
    "initializer_dims": _onnx_edit(_init_dims),
    "initializer_dtype": _onnx_edit(_init_dtype),
    "external_data": _onnx_edit(_init_external),
    "raw_data_cut": _onnx_edit(_init_raw_cut),
    "nodes_removed": _onnx_edit(_nodes_removed),
    "node_renamed": _onnx_edit(_node_renamed),
}


# ---------------------------------------------------------------------------------------------- the runner
class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that no loader's ``except Exception`` swallows it."""


def _on_alarm(signum, frame):
    raise _Hang()


def run_case(load: Callable[..., object], path: Path, options: dict) -> tuple[str, str]:
    """``("accepted" | "rejected_clearly" | "bad", detail)`` of loading ``path``."""
    t0 = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, ALARM_SECONDS)
    try:
        load(path, **options)
        outcome, detail = "accepted", ""
    except CLEAR as err:
        msg = str(err)
        if str(path) not in msg:
            outcome, detail = "bad", f"{type(err).__name__} without the path: {msg[:300]}"
        elif "allocate" in msg or "memory" in msg.lower():
            outcome, detail = "bad", f"allocation failure: {msg[:300]}"
        else:
            outcome, detail = "rejected_clearly", msg
    except _Hang:
        outcome, detail = "bad", f"hang (stopped after {ALARM_SECONDS} s)"
    except BaseException as err:  # noqa: BLE001 - anything else is what the fuzz is looking for
        outcome, detail = "bad", f"{type(err).__module__}.{type(err).__name__}: {str(err)[:300]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    elapsed = time.perf_counter() - t0
    if elapsed > CASE_SECONDS and outcome != "bad":
        outcome, detail = "bad", f"took {elapsed:.1f} s"
    return outcome, detail


def _load_token_file(path: Path) -> None:
    """Both token-file readers: the header alone (``audiotok info``, resume checks), then the whole file (which
    must refuse what the header reader refused, and more: the codes)."""
    try:
        read_token_header(path)
    except TokenFileError as err:
        if str(path) not in str(err):
            raise
    load_tokens(path)


def _load_jsonl(path: Path) -> None:
    list(iter_token_inputs([str(path)]))


def _load_shard(path: Path) -> None:
    list(iter_shard(path))


def _registry_loader(kind: str) -> Callable[..., object]:
    def load(path: Path, **options):
        return registry.load(path, kind, **options)

    return load


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def test_a_thousand_mutated_files_are_clear_errors_or_load(valid, tmp_path):
    marker = tmp_path / "code-ran"
    token_line = to_json_line("utt", load_tokens(valid.tokens)).encode()
    token_shard = _shard({f"utt{TOKEN_SUFFIX}": valid.tokens.read_bytes(), "utt.txt": b"hello"})
    wt = _registry_loader("codec")
    formats = [  # (name, share of the cases, valid bytes, suffix, mutators, loader, loader options)
        ("tokens", 300, valid.tokens.read_bytes(), TOKEN_SUFFIX, TOKEN_MUTATORS, _load_token_file, {}),
        ("tokens-jsonl", 60, token_line, ".jsonl", JSONL_MUTATORS, _load_jsonl, {}),
        ("tokens-shard", 40, token_shard, ".tar", SHARD_MUTATORS, _load_shard, {}),
        (
            "codec-safetensors",
            150,
            valid.codec.read_bytes(),
            ".safetensors",
            checkpoint_mutators(["quantizer", "codebook_size"], ["decoder", "n_layers"]),
            _registry_loader("codec"),
            {},
        ),
        (
            "semantic-safetensors",
            100,
            valid.semantic.read_bytes(),
            ".safetensors",
            checkpoint_mutators(["codebook_size"], ["n_layers"]),
            _registry_loader("semantic"),
            {},
        ),
        (
            "wavtokenizer-ckpt",
            125,
            valid.wavtokenizer.read_bytes(),
            ".ckpt",
            wavtokenizer_mutators(valid.wt_config, marker),
            wt,
            {"config": valid.wt_config},
        ),
        (
            "whisper-pt",
            125,
            valid.whisper.read_bytes(),
            ".pt",
            whisper_mutators(marker),
            _registry_loader("whisper"),
            {},
        ),
        ("s3-onnx", 100, valid.onnx.read_bytes(), ".onnx", ONNX_MUTATORS, _registry_loader("semantic"), {}),
    ]
    assert sum(f[1] for f in formats) == N_CASES
    # the valid files load (and pay the one-time imports outside the timed cases)
    for name, _, data, suffix, _, load, options in formats:
        path = tmp_path / f"valid-{name}{suffix}"
        path.write_bytes(data)
        outcome, detail = run_case(load, path, {**options})
        assert outcome == "accepted", (name, detail)

    rng = random.Random(SEED)
    counts: dict[str, Counter] = defaultdict(Counter)
    bad: list[str] = []
    examples: dict[str, str] = {}  # one message of each kind, for reading
    cases = tmp_path / "cases"
    cases.mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm = _vm_size()
    limit = vm + MEMORY_HEADROOM if vm else resource.RLIM_INFINITY  # (no /proc: no cap, the RSS check below stays)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    slowest = (0.0, "")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    t_start = time.perf_counter()
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        for name, n, data, suffix, mutators, load, options in formats:
            kinds = sorted(mutators)
            for i in range(n):
                kind = kinds[i % len(kinds)]
                made = mutators[kind](rng, data)
                body, extra = made if isinstance(made, tuple) else (made, {})
                path = cases / f"{name}-{i:03d}-{kind}{suffix}"
                path.write_bytes(body)
                t0 = time.perf_counter()
                outcome, detail = run_case(load, path, {**options, **extra})
                slowest = max(slowest, (time.perf_counter() - t0, path.name))
                counts[f"{name}/{kind}"][outcome] += 1
                if outcome == "rejected_clearly":
                    examples.setdefault(f"{name}/{kind}", detail.replace(str(cases), "…")[:150])
                if outcome == "bad":
                    bad.append(f"{path.name}: {detail}")
                path.unlink()
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, old_handler)
    seconds = time.perf_counter() - t_start
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before

    table = {k: dict(sorted(v.items())) for k, v in sorted(counts.items())}
    totals = sum(counts.values(), Counter())
    report = "\n".join(f"  {k:<48} {v}" for k, v in table.items())
    report += f"\n  {'total':<48} {dict(sorted(totals.items()))}"
    report += f"\n  ({seconds:.1f} s; slowest case {slowest[0]:.2f} s, {slowest[1]}; peak RSS +{grew >> 20} MiB)"
    print(f"\nfuzzed files by kind:\n{report}\none refusal of each kind:")
    print("\n".join(f"  {k:<48} {v}" for k, v in sorted(examples.items())))
    assert sum(totals.values()) == N_CASES
    assert not marker.exists(), "a pickle ran code"
    assert not bad, f"{len(bad)} bad failures:\n" + "\n".join(bad[:25]) + f"\nby kind:\n{report}"
    assert grew < 1 << 30, f"peak memory grew by {grew >> 20} MiB\n{report}"
    # the kinds that can never be valid files are all refused
    never_valid = ["empty", "truncated", "header_len_huge", "codes_out_of_range", "n_samples_bad", "pickled_code"]
    for key, outcome in table.items():  # (a JSONL or tar cut at a line or member boundary is still one)
        if key.split("/")[1] in never_valid and key.split("/")[0] not in ("tokens-jsonl", "tokens-shard"):
            assert outcome.get("accepted", 0) == 0, (key, outcome)


# --------------------------------------------------------------------------------------------- the CLI
def test_audiotok_decode_refuses_mutated_token_files_in_one_line(valid, tmp_path, capsys):
    from audiotok.cli import main

    def decode(path: Path) -> tuple[int, str]:
        code = main(["decode", str(path), "-o", str(tmp_path / "out"), "--model", str(valid.codec), "--quiet"])
        return code, capsys.readouterr().err.strip()

    assert decode(valid.tokens) == (0, "")
    assert (tmp_path / "out" / "utt.wav").is_file()
    data = valid.tokens.read_bytes()
    rng = random.Random(SEED)
    mutated = {
        "codes_out_of_range": codes_out_of_range(rng, data),
        "n_samples_huge": _st_meta(lambda rng, m: m.update(n_samples=str(10**12)))(rng, data),
        "codebook_larger": _st_meta(lambda rng, m: m.update(codebook_size="4096"))(rng, data),
        "codebook_smaller": _st_meta(lambda rng, m: m.update(codebook_size="2"))(rng, data),
        "truncated": data[: len(data) // 2],
        "header_len_huge": header_len_huge(rng, data),
        "float_codes": _token_bytes(_codes_of(data)[0].astype(np.float32), _codes_of(data)[1]),
        "empty": b"",
    }
    messages = []
    for kind, body in mutated.items():
        path = tmp_path / f"bad_{kind}{TOKEN_SUFFIX}"
        path.write_bytes(body)
        code, err = decode(path)
        messages.append(f"  {kind:<20} {err}")
        assert code == 2, (kind, err)
        assert f"bad_{kind}" in err and "Traceback" not in err and len(err.splitlines()) == 1, (kind, err)
        assert not (tmp_path / "out" / f"bad_{kind}.wav").exists()
    print("audiotok decode of mutated token files:\n" + "\n".join(messages))
