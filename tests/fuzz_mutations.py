"""The mutation library of ``tests/unit/test_fuzz_files.py``: what turns the bytes of one valid file into a
mutated one.

A mutator is ``(rng, data) -> bytes`` (or ``-> (bytes, options)``, options going to the loader), drawn from a seeded
:class:`random.Random` so that the same seed makes the same files. There is one table of mutators per format: the
format-blind ones (truncated, empty, byte flips, random bytes) and the safetensors ones (header length, header JSON,
dtype, shapes, offsets, metadata), then token files (:data:`TOKEN_MUTATORS`), their JSONL lines
(:data:`JSONL_MUTATORS`) and tar shards (:data:`SHARD_MUTATORS`), our safetensors checkpoints
(:func:`checkpoint_mutators`), torch pickles (a WavTokenizer ``.ckpt``: :func:`wavtokenizer_mutators`; an
openai-whisper ``.pt``: :func:`whisper_mutators`) and S3Tokenizer ``.onnx`` files (:data:`ONNX_MUTATORS`). Nothing
here depends on pytest; the fixtures, the runner and the assertions are in the test.
"""

from __future__ import annotations

import copy
import io
import json
import random
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

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


# what breaks any safetensors file, token file or checkpoint alike
SAFETENSORS_MUTATORS: dict[str, Mutator] = {
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
}

TOKEN_MUTATORS: dict[str, Mutator] = {
    **SAFETENSORS_MUTATORS,
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
        **SAFETENSORS_MUTATORS,
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
