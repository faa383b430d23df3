"""Load an official WavTokenizer release (Lightning ``.ckpt`` + YAML) into :class:`~audiotok.codec.model.Codec`.

Only the inference path is kept: keys under ``feature_extractor.encodec.encoder``, the codebook, ``backbone.``
and ``head.``; the unused SEANet decoder, discriminators, loss buffers and trainer state are skipped.
Old-style weight norm (``weight_g``/``weight_v``) maps onto ``torch.nn.utils.parametrizations.weight_norm``.

Configs: the released YAML when there is one. The large releases ship no YAML (WavTokenizer issue #45; users load
them with the small config of the same hop), so :data:`RELEASES` maps each released checkpoint file name to its hop
and :func:`release_config` builds that config from a dict in code (no YAML files are shipped as package data): all
releases share one inference architecture and differ only in the 40 / 75 tokens/s layout.
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


# every released checkpoint file (novateur/WavTokenizer* on the Hugging Face hub) -> its hop (600: 40 tokens/s,
# 320: 75 tokens/s); the file names are those transformers' convert_wavtokenizer_checkpoint.py lists
RELEASES: dict[str, int] = {
    "WavTokenizer_small_600_24k_4096.ckpt": 600,
    "WavTokenizer_small_320_24k_4096.ckpt": 320,
    "wavtokenizer_medium_speech_320_24k.ckpt": 320,
    "wavtokenizer_medium_speech_320_24k_v2.ckpt": 320,
    "wavtokenizer_medium_music_audio_320_24k.ckpt": 320,
    "wavtokenizer_medium_music_audio_320_24k_v2.ckpt": 320,
    "wavtokenizer_large_unify_600_24k.ckpt": 600,
    "wavtokenizer_large_speech_320_24k.ckpt": 320,
    "wavtokenizer_large_speech_320_v2.ckpt": 320,
}
_RELEASE_LAYOUT = {600: ([6, 5, 5, 4], 2400), 320: ([8, 5, 4, 2], 1280)}  # hop -> (dowmsamples, head n_fft)


def release_config(hop: int) -> dict:
    """The model section of the released ``wavtokenizer_smalldata_frame{40,75}_3s_nq1_code4096_dim512_kmeans200_attn``
    YAML for ``hop`` 600 or 320, as a dict in the YAML's layout (read by :func:`config_from_dict`)."""
    ratios, n_fft = _RELEASE_LAYOUT[hop]

    def section(**init_args) -> dict:
        return {"init_args": init_args}

    return {
        "model": section(
            sample_rate=24000,
            feature_extractor=section(num_quantizers=1, dowmsamples=ratios, vq_bins=4096, vq_kmeans=200),
            backbone=section(
                input_channels=512, dim=768, intermediate_dim=2304, num_layers=12, adanorm_num_embeddings=4
            ),
            head=section(dim=768, n_fft=n_fft, hop_length=hop, padding="same"),
        )
    }


def pick_config(ckpt_name: str, yaml_names: list[str]) -> str | dict | None:
    """The config of the checkpoint ``ckpt_name`` given the YAML files beside it: the one with the same stem, else
    the only one, else the built-in config of a known release (:data:`RELEASES`), else None."""
    stem = Path(ckpt_name).stem
    same = [y for y in yaml_names if Path(y).stem == stem]
    if same or len(yaml_names) == 1:
        return (same or yaml_names)[0]
    hop = RELEASES.get(Path(ckpt_name).name)
    return release_config(hop) if hop else None


def config_from_yaml(path: str | os.PathLike) -> CodecConfig:
    """Our config from the released YAML (``model.init_args.feature_extractor/backbone/head``)."""
    return config_from_dict(yaml.safe_load(Path(path).read_text()), str(path))


def config_from_dict(cfg: dict, path: str = "config") -> CodecConfig:
    """Our config from a release config in the YAML's layout (``path`` names it in errors)."""
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


def load_wavtokenizer(ckpt_path: str | os.PathLike, config: str | os.PathLike | dict) -> Codec:
    """Build our codec from an official checkpoint and its config (a YAML path, or a dict in the YAML's layout such
    as :func:`release_config` gives); outputs match the reference implementation. The checkpoint is read with
    ``weights_only=True`` (no code runs) and checked against the config before the model is built."""
    from audiotok.checkpoint import CheckpointError, check_fits, load_pickled, real_tensors, skeleton_shapes

    config = config_from_dict(config) if isinstance(config, dict) else config_from_yaml(config)
    ckpt = load_pickled(ckpt_path)
    state = real_tensors(
        ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None, ckpt_path, "a WavTokenizer checkpoint"
    )
    try:
        converted = convert_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:  # e.g. a codebook flag that is not one value
        raise CheckpointError(f"{ckpt_path}: not a WavTokenizer checkpoint ({err})") from None
    expected = skeleton_shapes(ckpt_path, "a codec", lambda: Codec(config), len(converted))  # nothing allocated
    if expected is not None:
        check_fits(ckpt_path, "the config", expected, {k: tuple(v.shape) for k, v in converted.items()})
    model = Codec(config)
    ours = model.state_dict()
    missing = sorted(set(ours) - set(converted))
    unexpected = sorted(set(converted) - set(ours))
    if missing or unexpected:
        raise CheckpointError(
            f"{ckpt_path}: checkpoint does not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    try:
        model.load_state_dict({k: v.to(ours[k].dtype) for k, v in converted.items()}, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{ckpt_path}: checkpoint does not fit the config: {err}") from None
    return model.eval()
