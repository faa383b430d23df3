"""Load an official WavTokenizer release (Lightning ``.ckpt`` + YAML) into :class:`~audiotok.codec.model.Codec`.

Only the inference path is kept: keys under ``feature_extractor.encodec.encoder``, the codebook, ``backbone.``
and ``head.``; the unused SEANet decoder, discriminators, loss buffers and trainer state are skipped.
Old-style weight norm (``weight_g``/``weight_v``) maps onto ``torch.nn.utils.parametrizations.weight_norm``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import yaml

from audiotok.codec.model import Codec, CodecConfig
from audiotok.codec.quantizer import QuantizerConfig
from audiotok.nn.seanet import SEANetConfig
from audiotok.nn.vocos import VocosConfig

_ENC = "feature_extractor.encodec.encoder."
_CODEBOOK = "feature_extractor.encodec.quantizer.vq.layers.0._codebook."


def config_from_yaml(path: str | os.PathLike) -> CodecConfig:
    """Our config from the released YAML (``model.init_args.feature_extractor/backbone/head``)."""
    cfg = yaml.safe_load(Path(path).read_text())
    try:
        args = cfg["model"]["init_args"]
        fe, bb, hd = (args[k]["init_args"] for k in ("feature_extractor", "backbone", "head"))
    except (KeyError, TypeError):
        raise ValueError(
            f"{path}: not a WavTokenizer config (model.init_args.feature_extractor/backbone/head)"
        ) from None
    if fe.get("num_quantizers", 1) != 1:
        raise ValueError(f"{path}: only single-quantizer releases are supported (num_quantizers=1)")
    config = CodecConfig(
        sample_rate=int(args.get("sample_rate", 24000)),
        encoder=SEANetConfig(ratios=tuple(fe["dowmsamples"])),  # the rest is fixed in EncodecFeatures
        quantizer=QuantizerConfig(
            dim=512, codebook_size=int(fe["vq_bins"]), kmeans_iters=int(fe.get("vq_kmeans", 200))
        ),
        decoder=VocosConfig(
            input_dim=int(bb["input_channels"]),
            dim=int(bb["dim"]),
            intermediate_dim=int(bb["intermediate_dim"]),
            n_layers=int(bb["num_layers"]),
            n_cond_embeddings=int(bb.get("adanorm_num_embeddings") or 0),
        ),
    )
    if int(hd["n_fft"]) != config.n_fft or int(hd["hop_length"]) != config.hop_length or hd.get("padding") != "same":
        raise ValueError(f"{path}: head n_fft/hop/padding {hd} do not match 4 x hop = {config.n_fft}, 'same'")
    return config


def convert_state_dict(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map released key names and shapes onto ours; keys outside the inference path are dropped."""
    out = {}
    for key, value in official.items():
        if key.startswith(_ENC):
            name = "encoder." + key[len(_ENC) :]
            name = re.sub(r"\.conv\.conv\.weight_g$", ".conv.parametrizations.weight.original0", name)
            name = re.sub(r"\.conv\.conv\.weight_v$", ".conv.parametrizations.weight.original1", name)
            name = re.sub(r"\.conv\.conv\.bias$", ".conv.bias", name)
            out[name] = value
        elif key.startswith(_CODEBOOK):
            field = key[len(_CODEBOOK) :]
            target = {"inited": "initted"}.get(field, field)
            value = value.reshape(()).bool() if field == "inited" else value.unsqueeze(0)
            out[f"quantizer.vq._codebook.{target}"] = value
        elif key.startswith(("backbone.", "head.")):
            out[key] = value
    return out


def load_wavtokenizer(ckpt_path: str | os.PathLike, config_path: str | os.PathLike) -> Codec:
    """Build our codec from an official checkpoint and config; outputs match the reference implementation."""
    config = config_from_yaml(config_path)
    ckpt = torch.load(str(ckpt_path), map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt)
    model = Codec(config)
    converted = convert_state_dict(state)
    ours = model.state_dict()
    missing = sorted(set(ours) - set(converted))
    unexpected = sorted(set(converted) - set(ours))
    if missing or unexpected:
        raise ValueError(
            f"{ckpt_path}: checkpoint does not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.load_state_dict({k: v.to(ours[k].dtype) for k, v in converted.items()}, strict=True)
    return model.eval()
