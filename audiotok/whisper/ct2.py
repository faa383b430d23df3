"""CTranslate2 Whisper ``model.bin`` -> openai-whisper weights, in plain Python (``ctranslate2`` is not needed).

The binary (versions 5 and 6, little-endian): ``u32`` version; spec name (string = ``u16`` length including the
NUL, then the bytes); ``u32`` revision; ``u32`` variable count; per variable its name, ``u8`` rank, ``u32`` x rank
dims, ``u8`` dtype, ``u32`` byte count and the raw data; then ``u32`` alias count and (alias, target) pairs. int8
weights come with ``<name>_scale`` (one per output row: weight = q / scale).

Names map onto openai-whisper's (:func:`openai_state_dict`): the encoder's and the decoder's self-attention
``linear_0`` holds q, k and v fused along the output dimension (the key has no bias), the cross-attention's
``linear_1`` k and v; ``decoder/projection`` is the tied token embedding. Head counts are not in the file's tensors:
they are read from the spec's scalar ``num_heads`` when present, else ``n_state / 64`` (every released Whisper).
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
import torch

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # 5 = bfloat16 (handled apart)
_MAX_VARIABLES = 100_000


class CT2FormatError(ValueError):
    """A file that is not a CTranslate2 Whisper model this reader understands; the message names the file."""


def read_ct2(path: str | os.PathLike) -> tuple[str, dict[str, np.ndarray]]:
    """``(spec name, {variable name: array})`` of a CTranslate2 ``model.bin``, aliases resolved, int8 weights
    dequantized to float32 (their ``_scale`` tensors consumed)."""
    path = Path(path)
    buf = memoryview(path.read_bytes())
    pos = 0

    def take(fmt: str):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(buf):
            raise CT2FormatError(f"{path}: truncated at byte {pos}")
        out = struct.unpack_from(fmt, buf, pos)
        pos += size
        return out[0] if len(out) == 1 else out

    def string() -> str:
        nonlocal pos
        n = take("<H")
        if n == 0 or pos + n > len(buf):
            raise CT2FormatError(f"{path}: bad string at byte {pos}")
        out = bytes(buf[pos : pos + n - 1]).decode("utf-8")
        pos += n
        return out

    version = take("<I")
    if not 5 <= version <= 6:
        raise CT2FormatError(f"{path}: CTranslate2 binary version {version} (this reader knows 5 and 6)")
    spec = string()
    take("<I")  # spec revision
    n_vars = take("<I")
    if n_vars > _MAX_VARIABLES:
        raise CT2FormatError(f"{path}: {n_vars} variables is not a plausible model")
    out: dict[str, np.ndarray] = {}
    for _ in range(n_vars):
        name = string()
        rank = take("<B")
        shape = tuple(take("<I") for _ in range(rank))
        dtype_id, n_bytes = take("<B"), take("<I")
        if pos + n_bytes > len(buf):
            raise CT2FormatError(f"{path}: variable {name!r} runs past the end of the file")
        raw = buf[pos : pos + n_bytes]
        pos += n_bytes
        if dtype_id == 5:  # bfloat16: the upper half of a float32
            bits = np.frombuffer(raw, np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif dtype_id in _DTYPES:
            arr = np.frombuffer(raw, _DTYPES[dtype_id])
        else:
            raise CT2FormatError(f"{path}: variable {name!r} has unknown dtype id {dtype_id}")
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise CT2FormatError(f"{path}: variable {name!r}: {arr.size} values for shape {shape}")
        out[name] = arr.reshape(shape)
    for _ in range(take("<I") if pos < len(buf) else 0):
        alias, target = string(), string()
        if target in out:
            out[alias] = out[target]
    for name in [n for n in out if n.endswith("_scale")]:
        weight = name.removesuffix("_scale")
        if weight in out and out[weight].dtype == np.int8:
            scale = out.pop(name).astype(np.float32)
            out[weight] = out[weight].astype(np.float32) / scale.reshape(-1, *([1] * (out[weight].ndim - 1)))
    return spec, out


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32 if a.dtype != np.float16 else np.float16, copy=True))


def _n_layers(v: dict[str, np.ndarray], prefix: str) -> int:
    found = {int(m.group(1)) for k in v for m in [re.match(rf"{prefix}/layer_(\d+)/", k)] if m}
    return 1 + max(found) if found else 0


def _heads(v: dict[str, np.ndarray], prefix: str, n_state: int) -> int:
    for key in (f"{prefix}/num_heads", "num_heads"):
        if key in v and v[key].size == 1:
            return int(v[key].reshape(-1)[0])
    return max(1, n_state // 64)


def openai_state_dict(v: dict[str, np.ndarray]) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """openai-whisper's ``(dims, model_state_dict)`` from the variables of :func:`read_ct2`."""
    try:
        n_state, n_mels, _ = v["encoder/conv1/weight"].shape
        n_vocab, n_text_state = v["decoder/embeddings/weight"].shape
        dims = {
            "n_mels": int(n_mels),
            "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
            "n_audio_state": int(n_state),
            "n_audio_head": _heads(v, "encoder", int(n_state)),
            "n_audio_layer": _n_layers(v, "encoder"),
            "n_vocab": int(n_vocab),
            "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
            "n_text_state": int(n_text_state),
            "n_text_head": _heads(v, "decoder", int(n_text_state)),
            "n_text_layer": _n_layers(v, "decoder"),
        }
    except KeyError as err:
        raise CT2FormatError(f"not a CTranslate2 Whisper model: no variable {err}") from None
    sd: dict[str, torch.Tensor] = {}

    def norm(src: str, dst: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = _t(v[f"{src}/gamma"]), _t(v[f"{src}/beta"])

    def linear(src: str, dst: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = _t(v[f"{src}/weight"])
        if bias:
            sd[f"{dst}.bias"] = _t(v[f"{src}/bias"])

    def split(src: str, dsts: list[str]) -> None:
        """A fused projection (k * d_out, d_in) -> its parts; the key (``*.key``) has no bias."""
        weights = np.split(v[f"{src}/weight"], len(dsts), axis=0)
        biases = np.split(v[f"{src}/bias"], len(dsts), axis=0)
        for dst, w, b in zip(dsts, weights, biases, strict=True):
            sd[f"{dst}.weight"] = _t(w)
            if not dst.endswith(".key"):
                sd[f"{dst}.bias"] = _t(b)

    def block(src: str, dst: str, cross: bool) -> None:
        att = "self_attention"
        split(f"{src}/{att}/linear_0", [f"{dst}.attn.{p}" for p in ("query", "key", "value")])
        linear(f"{src}/{att}/linear_1", f"{dst}.attn.out")
        norm(f"{src}/{att}/layer_norm", f"{dst}.attn_ln")
        if cross:
            linear(f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
            split(f"{src}/attention/linear_1", [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"])
            linear(f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
            norm(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
        linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")

    try:
        for conv in ("conv1", "conv2"):
            linear(f"encoder/{conv}", f"encoder.{conv}")
        sd["encoder.positional_embedding"] = _t(v["encoder/position_encodings/encodings"])
        for i in range(dims["n_audio_layer"]):
            block(f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
        norm("encoder/layer_norm", "encoder.ln_post")
        sd["decoder.token_embedding.weight"] = _t(v["decoder/embeddings/weight"])
        sd["decoder.positional_embedding"] = _t(v["decoder/position_encodings/encodings"])
        for i in range(dims["n_text_layer"]):
            block(f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
        norm("decoder/layer_norm", "decoder.ln")
    except KeyError as err:
        raise CT2FormatError(f"CTranslate2 Whisper model without variable {err}") from None
    return dims, sd


def load_ct2_whisper(path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """A ``whisper.model.Whisper`` with the weights of a CTranslate2 ``model.bin`` (cast to ``dtype``)."""
    from whisper.model import ModelDimensions, Whisper

    spec, variables = read_ct2(path)
    if "whisper" not in spec.lower():
        raise CT2FormatError(f"{path}: a {spec!r} model, not Whisper")
    try:
        dims, state = openai_state_dict(variables)
    except CT2FormatError as err:
        raise CT2FormatError(f"{path}: {err}") from None
    model = Whisper(ModelDimensions(**dims))
    try:
        model.load_state_dict({k: t.to(dtype) for k, t in state.items()}, strict=True)
    except RuntimeError as err:  # e.g. an MLP that is not 4 x n_state, which openai-whisper cannot express
        raise CT2FormatError(f"{path}: does not fit openai-whisper's architecture: {str(err)[:400]}") from None
    return model.eval()
