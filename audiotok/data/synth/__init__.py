"""The project's own speech data: a synthetic multi-speaker English corpus made with Debian TTS engines."""

from audiotok.data.synth.corpus import CorpusConfig, build_corpus
from audiotok.data.synth.voices import Voice, list_voices

__all__ = ["CorpusConfig", "Voice", "build_corpus", "list_voices"]
