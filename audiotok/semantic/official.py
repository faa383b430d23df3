"""Load a released S3Tokenizer ``.onnx`` (CosyVoice's ``speech_tokenizer_v1.onnx`` / ``speech_tokenizer_v2.onnx``)
into :class:`~audiotok.semantic.s3.SemanticTokenizer`.

The ONNX files hold the weights as graph initializers; their names follow the export, so the mapping is the one the
``s3tokenizer`` package's ``onnx2torch`` applies (read in its 0.3.0 source): the convs by initializer name, the
blocks by node path (``/blocks.0/attn/query/MatMul`` -> ``encoder.blocks.0.attn.query.weight``, transposed), the v1
codebook from the node ``/quantizer/rq/model/layers.0/_codebook/Pow_1``, the v2 FSQ projection by initializer name.
The result is the state dict of the package's model, which ours loads strictly. Only data is read (no code runs).

:data:`RELEASES` holds where the package downloads each name from and the sha256 it checks.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from audiotok.semantic.s3 import OFFICIAL, S3Config, SemanticTokenizer


@dataclass(frozen=True)
class S3Release:
    """Where the ``s3tokenizer`` package downloads an official name from, and the sha256 it checks."""

    url: str
    sha256: str


_MS = "https://www.modelscope.cn/models"
RELEASES: dict[str, S3Release] = {
    "speech_tokenizer_v1": S3Release(
        f"{_MS}/iic/cosyvoice-300m/resolve/master/speech_tokenizer_v1.onnx",
        "23b5a723ed9143aebfd9ffda14ac4c21231f31c35ef837b6a13bb9e5488abb1e",
    ),
    "speech_tokenizer_v1_25hz": S3Release(
        f"{_MS}/iic/CosyVoice-300M-25Hz/resolve/master/speech_tokenizer_v1.onnx",
        "56285ddd4a83e883ee0cb9f8d69c1089b53a94b1f78ff7e4a0224a27eb4cb486",
    ),
    "speech_tokenizer_v2_25hz": S3Release(
        f"{_MS}/iic/CosyVoice2-0.5B/resolve/master/speech_tokenizer_v2.onnx",
        "d43342aa12163a80bf07bffb94c9de2e120a8df2f9917cd2f642e7f4219c6f71",
    ),
}

# initializers matched by name rather than by node path: the two input convs of each release, v1's positions and
# v2's FSQ projection
_CONV_KEYS = ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias")
_BY_NAME = {
    **{f"onnx::Conv_{1519 + i}": f"encoder.{k}" for i, k in enumerate(_CONV_KEYS)},  # v1, 50 Hz
    **{f"encoders.{k}": f"encoder.{k}" for k in _CONV_KEYS},  # v1, 25 Hz
    **{f"onnx::Conv_{2216 + i}": f"encoder.{k}" for i, k in enumerate(_CONV_KEYS)},  # v2
    "encoders.positional_embedding": "encoder.positional_embedding",
    "quantizer.project_in.bias": "quantizer._codebook.project_down.bias",
    "onnx::MatMul_2536": "quantizer._codebook.project_down.weight",
}
_CODEBOOK_NODE = "/quantizer/rq/model/layers.0/_codebook/Pow_1"
# the op ending a block node's path -> the parameter it reads (v1 exports LayerNorm as Mul + Add_1; an Add before
# them adds eps, and the later Add_1 overwrites it, as in onnx2torch)
_PARAM = {"MatMul": "weight", "Mul": "weight", "Add": "bias", "Add_1": "bias", "Conv": "weight"}


def _block_module(node_name: str) -> tuple[str, str] | None:
    """``/blocks.0/attn/query/MatMul`` -> (``encoder.blocks.0.attn.query``, ``MatMul``); None outside the blocks."""
    if not node_name.startswith("/blocks."):
        return None
    *path, op = node_name[1:].split("/")
    return "encoder." + ".".join(path).replace("mlp.mlp", "mlp"), op


def _keys(node, name: str) -> list[tuple[str, str]]:
    """(state key, initializer name) pairs that ``node``'s initializer input ``name`` sets."""
    if name in _BY_NAME:
        return [(_BY_NAME[name], name)]
    if node.name == _CODEBOOK_NODE:
        return [("quantizer._codebook.embed", name)]
    found = _block_module(node.name)
    if found is None:
        return []
    module, op = found
    if node.op_type == "LayerNormalization":  # inputs: x, scale, bias
        return [(f"{module}.weight", node.input[1]), (f"{module}.bias", node.input[2])]
    return [(f"{module}.{_PARAM[op]}", name)] if op in _PARAM else []


def _initializer_array(init) -> np.ndarray:
    """An initializer's values, once its declared size is the data it holds (so that nothing is allocated past
    the file) and that data is inside the file: external data files are not read."""
    from onnx import TensorProto, numpy_helper

    if init.data_location == TensorProto.EXTERNAL or len(init.external_data):
        raise ValueError(f"initializer {init.name!r} refers to an external data file, which is not read")
    dtypes = {
        TensorProto.FLOAT: (4, "float_data"),
        TensorProto.FLOAT16: (2, "int32_data"),
        TensorProto.DOUBLE: (8, "double_data"),
    }
    if init.data_type not in dtypes:
        raise ValueError(f"initializer {init.name!r} is not floating point (ONNX data type {init.data_type})")
    itemsize, field = dtypes[init.data_type]
    n = math.prod(init.dims)
    held = len(init.raw_data) if init.HasField("raw_data") else len(getattr(init, field)) * itemsize
    if any(d < 0 for d in init.dims) or n * itemsize != held:
        raise ValueError(
            f"initializer {init.name!r} declares {list(init.dims)} of {itemsize}-byte values but holds {held} bytes"
        )
    return numpy_helper.to_array(init)


def onnx_state_dict(model) -> dict[str, torch.Tensor]:
    """The ``s3tokenizer`` state dict of a loaded ONNX model (``onnx.ModelProto``); later nodes win, as there."""
    inits = {i.name: i for i in model.graph.initializer}
    state: dict[str, torch.Tensor] = {}
    for node in model.graph.node:
        for name in (n for n in node.input if n in inits):
            for key, source in _keys(node, name):
                value = torch.from_numpy(_initializer_array(inits[source]).copy())
                state[key] = value.t() if value.ndim == 2 and key != "encoder.positional_embedding" else value
    return state


def _conv1_stride(model, state_key: str = "encoder.conv1.weight") -> int | None:
    """conv1's stride from the graph (the Conv node reading its weight), or None when not found."""
    names = {k for k, v in _BY_NAME.items() if v == state_key}
    for node in model.graph.node:
        if node.op_type == "Conv" and names.intersection(node.input):
            strides = [list(a.ints) for a in node.attribute if a.name == "strides"]
            return int(strides[0][0]) if strides else 1
    return None


def infer_config(model, state: dict[str, torch.Tensor], name: str | None = None) -> S3Config:
    """The architecture of an S3Tokenizer ONNX: sizes from the weights, the rest from ``name``'s official config
    (:data:`~audiotok.semantic.s3.OFFICIAL`) or, without a name, from the graph. The head count is not stored in
    the weights: Whisper's 64-dim heads are assumed (the releases: 1280 / 20)."""
    if "encoder.conv1.weight" not in state:
        raise ValueError("not an S3Tokenizer ONNX (no conv1 weight among its initializers)")
    dim, n_mels = state["encoder.conv1.weight"].shape[:2]
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("encoder.blocks.")}
    sizes = dict(dim=int(dim), n_mels=int(n_mels), n_heads=max(1, int(dim) // 64), n_layers=len(blocks))
    if "encoder.positional_embedding" in state:
        sizes["n_ctx"] = int(state["encoder.positional_embedding"].shape[0])
    version = "v2" if any("fsmn_block" in k for k in state) else "v1"
    if version == "v1" and "quantizer._codebook.embed" in state:
        sizes["codebook_size"] = int(state["quantizer._codebook.embed"].shape[0])
    if version == "v2":
        sizes["fsq_dims"] = int(state["quantizer._codebook.project_down.weight"].shape[0])
        sizes["codebook_size"] = 3 ** sizes["fsq_dims"]
        sizes["fsmn_kernel"] = int(next(v for k, v in state.items() if "fsmn_block" in k).shape[-1])
    if name is not None:
        base = OFFICIAL[name]
        if base.version != version:
            raise ValueError(f"the file holds an S3Tokenizer {version}, not {name} ({base.version})")
        return dataclasses.replace(base, **sizes)
    stride = _conv1_stride(model)
    if stride not in (1, 2):
        raise ValueError(f"cannot tell conv1's stride from the graph ({stride}): pass the official name")
    return S3Config(version=version, conv1_stride=stride, **sizes)


def name_of(sha256: str) -> str | None:
    """The official name whose release file has this sha256, if any."""
    return next((n for n, r in RELEASES.items() if r.sha256 == sha256), None)


def load_s3_onnx(path: str | os.PathLike, name: str | None = None, sha256: str | None = None) -> SemanticTokenizer:
    """Our tokenizer from a released ``.onnx``; ``name`` (or the file's ``sha256``, when it is a release) picks the
    official architecture. Tokens match the ``s3tokenizer`` package loading the same file."""
    try:
        import onnx
    except ImportError:
        raise ImportError("reading an S3Tokenizer .onnx needs the onnx package: pip install onnx") from None
    from audiotok.checkpoint import CheckpointError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends: not an ONNX file
        raise CheckpointError(f"{path}: not an ONNX file ({err})") from None
    name = name or (name_of(sha256) if sha256 else None)
    try:  # the architecture's sizes are read from the weights, so building it allocates what the file holds
        state = onnx_state_dict(model)
        tokenizer = SemanticTokenizer(infer_config(model, state, name))
        tokenizer.load_official_state_dict(state)
    except (ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: {err}") from None
    except (KeyError, IndexError, TypeError, StopIteration) as err:  # a graph without a tensor or node it needs
        raise CheckpointError(f"{path}: not an S3Tokenizer ONNX ({type(err).__name__}: {err})") from None
    return tokenizer.eval()
