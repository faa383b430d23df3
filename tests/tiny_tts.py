"""A tiny random TTS (LM + flow + vocoder + semantic tokenizer) shared by the tests of the TTS, its inputs, the
CLI and the demo: it builds in about a second and synthesizes in milliseconds."""

from __future__ import annotations

from dataclasses import replace

import torch

from audiotok.data.features import cosyvoice2_mel
from audiotok.nn.vocos import VocosConfig
from tts.flow import FlowDecoder, flow_config
from tts.lm import TTSLM, lm_config
from tts.pipeline import TTS, SynthesisOptions
from tts.sampling import SamplingConfig
from tts.tokenizer import TTSTokenizer
from tts.vocoder import Vocoder, VocoderConfig

N_MELS = 16


def build_tiny_tts() -> TTS:
    """Tiny random LM + flow + vocoder + semantic tokenizer (also used by the demo's tests)."""
    from audiotok.semantic.supervised import SupervisedConfig, SupervisedTokenizerASR

    torch.manual_seed(0)
    sem = SupervisedTokenizerASR(
        SupervisedConfig(n_mels=80, seconds=4.0, n_state=32, n_head=2, n_layer=2, n_text_ctx=32, quantize_after=1)
    ).export_tokenizer()
    tok = TTSTokenizer.build(["The quick brown fox jumps over the lazy dog."] * 20, n_speech=6561, text_vocab_size=280)
    lm = TTSLM(replace(lm_config("tiny"), n_speech=6561), tok).eval()
    flow = FlowDecoder(replace(flow_config("tiny"), n_speech=6561)).eval()
    vocoder = Vocoder(
        VocoderConfig(
            hop_length=480,
            backbone=VocosConfig(
                input_dim=N_MELS,
                dim=32,
                intermediate_dim=64,
                n_layers=2,
                n_cond_embeddings=0,
                attention=False,
                dropout=0.0,
            ),
        )
    ).eval()
    return TTS(lm, flow, vocoder, sem, replace(cosyvoice2_mel(), n_mels=N_MELS))


OPTS = SynthesisOptions(sampling=SamplingConfig(min_ratio=2.0, max_ratio=4.0), n_steps=2, mask="chunk", seed=3)
