"""audiotok: audio and speech tokenization (acoustic codec, supervised semantic tokenizer), token TTS and ASR
adaptation, on one shared data pipeline."""

__version__ = "0.1.0"
