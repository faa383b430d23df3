"""WavTokenizer-style acoustic codec."""

from audiotok.codec.model import Codec, CodecConfig, codec_config

__all__ = ["Codec", "CodecConfig", "codec_config"]
